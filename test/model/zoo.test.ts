import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { countTotals } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { buildModel, layerSeed, zooDefaults, zooNames, type ZooName } from '../../src/model/zoo.ts';

/**
 * Multiply-accumulates of conv2d and dense layers, from the built shapes. A deliberately naive
 * count (the exact counter with pruning support lives in src/model/flops.ts); here it only
 * checks that the architectures are the published ones.
 */
function countMacs(model: tf.LayersModel): number {
  let macs = 0;
  for (const layer of model.layers) {
    const className = layer.getClassName();
    if (className === 'Conv2D') {
      const [, outH, outW] = layer.outputShape as number[];
      const [kh, kw, cin, cout] = layer.weights[0].shape as number[];
      macs += outH * outW * kh * kw * cin * cout;
    } else if (className === 'Dense') {
      const [unitsIn, unitsOut] = layer.weights[0].shape as number[];
      macs += unitsIn * unitsOut;
    }
  }
  return macs;
}

function assertWithin(actual: number, expected: number, tolerance: number, what: string): void {
  const error = Math.abs(actual - expected) / expected;
  assert.ok(error <= tolerance, `${what}: ${actual} is ${(error * 100).toFixed(2)}% from ${expected} (allowed ${tolerance * 100}%)`);
}

/**
 * Published sizes. Params: torchvision / He et al. (the published counts exclude BN moving
 * statistics; countParams() includes them, which adds < 0.5% here). MACs: the usual tables
 * (ResNet-56 125.5M with option-A shortcuts; option B adds 0.26M).
 */
const PUBLISHED: Partial<Record<ZooName, { macs: number; params: number }>> = {
  resnet20: { macs: 40.8e6, params: 0.27e6 },
  resnet56: { macs: 125.5e6, params: 0.85e6 },
  resnet110: { macs: 253e6, params: 1.73e6 },
  vgg16: { macs: 313e6, params: 14.73e6 },
  resnet18: { macs: 1.82e9, params: 11.69e6 },
  resnet50: { macs: 4.1e9, params: 25.6e6 },
};

/** Every layer name the naming contract (top of src/model/zoo.ts) allows. */
const RESNET_NAME =
  /^(input|stem_(conv|bn|relu|pad|pool)|stage[1-9]\d*_block\d+_((conv|bn|relu)[1-3]|shortcut_(conv|bn)|add|out)|pool|head_dense)$/;
const VGG_NAME = /^(input|block[1-5]_((conv|bn|relu)[1-3]|pool)|pool|head_dense)$/;

before(async () => {
  await initEngine({ log: () => undefined });
});

// The large models take seconds to build; each default-options model is built once per file.
const built = new Map<ZooName, tf.LayersModel>();
function zooModel(name: ZooName): tf.LayersModel {
  let model = built.get(name);
  if (model === undefined) {
    model = buildModel(name);
    built.set(name, model);
  }
  return model;
}
after(() => {
  for (const model of built.values()) model.dispose();
});

describe('zoo', () => {
  for (const name of zooNames) {
    test(`${name}: shapes, sizes and layer names`, () => {
      const model = zooModel(name);
      const { inputShape, classes } = zooDefaults[name];
      assert.equal(model.name, name);
      assert.deepEqual(model.inputs[0].shape, [null, ...inputShape]);
      if (name === 'unet') {
        // Per-pixel logits from a linear 1x1 conv.
        assert.deepEqual(model.outputs[0].shape, [null, inputShape[0], inputShape[1], classes]);
        assert.equal(model.getLayer('logits').getConfig().activation, 'linear');
        return;
      }
      assert.deepEqual(model.outputs[0].shape, [null, classes]);
      const published = PUBLISHED[name];
      if (published) {
        assertWithin(model.countParams(), published.params, 0.02, `${name} params`);
        assertWithin(countMacs(model), published.macs, 0.02, `${name} MACs`);
      }
      const pattern = name === 'vgg16' ? VGG_NAME : name.startsWith('resnet') || name === 'fmnist-resnet' ? RESNET_NAME : undefined;
      for (const layer of pattern ? model.layers : []) {
        assert.match(layer.name, pattern!, `${name}: layer name '${layer.name}' is outside the naming contract`);
      }
      // The head is linear: the model outputs logits.
      const head = model.getLayer('head_dense').getConfig();
      assert.equal(head.activation, 'linear');
    });
  }

  test('corpus sizes match torchvision (params without BN statistics, analytic MACs incl. depthwise)', () => {
    // torchvision 0.15 model cards: parameter counts exact, GFLOPS rounded to 2 digits.
    const torchvision: Partial<Record<ZooName, { params: number; macs: number }>> = {
      mobilenetv2: { params: 3_504_872, macs: 0.3e9 },
      'mobilenetv3-small': { params: 2_542_856, macs: 0.06e9 },
      'efficientnet-b0': { params: 5_288_548, macs: 0.39e9 },
    };
    for (const [name, expected] of Object.entries(torchvision) as [ZooName, { params: number; macs: number }][]) {
      const model = zooModel(name);
      const statistics = model.layers
        .filter((layer) => layer.getClassName() === 'BatchNormalization')
        .reduce((sum, layer) => sum + 2 * layer.getWeights()[0].shape[0], 0);
      assert.equal(model.countParams() - statistics, expected.params, `${name} params`);
      assertWithin(countTotals(analyzeChannels(model)).macs, expected.macs, 0.07, `${name} MACs`);
    }
  });

  test('resnet56: 3 stages x 9 blocks, projection shortcuts exactly where the shape changes', () => {
    const model = zooModel('resnet56');
    const names = new Set(model.layers.map((layer) => layer.name));
    for (let stage = 1; stage <= 3; stage++) {
      for (let block = 0; block < 9; block++) {
        for (const part of ['conv1', 'bn1', 'relu1', 'conv2', 'bn2', 'add', 'out']) {
          assert.ok(names.has(`stage${stage}_block${block}_${part}`), `missing stage${stage}_block${block}_${part}`);
        }
      }
    }
    assert.ok(!names.has('stage1_block9_conv1'));
    const shortcuts = [...names].filter((n) => n.endsWith('_shortcut_conv')).sort();
    assert.deepEqual(shortcuts, ['stage2_block0_shortcut_conv', 'stage3_block0_shortcut_conv']);
    const shortcut = model.getLayer('stage2_block0_shortcut_conv').getConfig();
    assert.deepEqual(shortcut.kernelSize, [1, 1]);
    assert.deepEqual(shortcut.strides, [2, 2]);
    assert.equal(shortcut.useBias, false);
    assert.deepEqual(model.getLayer('stage1_block8_out').outputShape, [null, 32, 32, 16]);
    assert.deepEqual(model.getLayer('stage2_block8_out').outputShape, [null, 16, 16, 32]);
    assert.deepEqual(model.getLayer('stage3_block8_out').outputShape, [null, 8, 8, 64]);
    // conv1 of the stride-2 block carries the stride (it is what the shortcut projects to).
    assert.deepEqual(model.getLayer('stage3_block0_conv1').outputShape, [null, 8, 8, 64]);
  });

  test('resnet50: torchvision v1.5 layout (stride on the 3x3 conv, stem pool 112 -> 56)', () => {
    const model = zooModel('resnet50');
    assert.deepEqual(model.getLayer('stem_conv').outputShape, [null, 112, 112, 64]);
    assert.deepEqual(model.getLayer('stem_pad').outputShape, [null, 114, 114, 64]);
    assert.deepEqual(model.getLayer('stem_pool').outputShape, [null, 56, 56, 64]);
    // Stage 1 block 0 changes channels (64 -> 256) without a stride: it still needs a projection.
    assert.deepEqual(model.getLayer('stage1_block0_shortcut_conv').outputShape, [null, 56, 56, 256]);
    assert.deepEqual(model.getLayer('stage2_block0_conv1').outputShape, [null, 56, 56, 128]);
    assert.deepEqual(model.getLayer('stage2_block0_conv2').outputShape, [null, 28, 28, 128]);
    assert.deepEqual(model.getLayer('stage4_block2_out').outputShape, [null, 7, 7, 2048]);
    assert.throws(() => model.getLayer('stage4_block3_out'));
  });

  test('resnet18: basic blocks, no projection in stage 1', () => {
    const model = zooModel('resnet18');
    const names = model.layers.map((layer) => layer.name);
    assert.ok(!names.includes('stage1_block0_shortcut_conv'));
    assert.ok(names.includes('stage2_block0_shortcut_conv'));
    assert.ok(!names.some((n) => n.endsWith('conv3')));
    assert.deepEqual(model.getLayer('stage4_block1_out').outputShape, [null, 7, 7, 512]);
  });

  test('vgg16: 13 convs, 5 pools, block outputs halve the resolution', () => {
    const model = zooModel('vgg16');
    const convs = model.layers.filter((layer) => layer.getClassName() === 'Conv2D').map((layer) => layer.name);
    assert.equal(convs.length, 13);
    assert.deepEqual(convs.slice(0, 3), ['block1_conv1', 'block1_conv2', 'block2_conv1']);
    assert.deepEqual(model.getLayer('block1_pool').outputShape, [null, 16, 16, 64]);
    assert.deepEqual(model.getLayer('block5_pool').outputShape, [null, 1, 1, 512]);
    assert.deepEqual(model.getLayer('head_dense').getWeights()[0].shape, [512, 10]);
  });

  test('fmnist-resnet: forward pass gives [n, 10] finite logits; small enough for CPU training', () => {
    const model = zooModel('fmnist-resnet');
    const macs = countMacs(model);
    assert.ok(macs < 8e6, `fmnist-resnet has ${macs} MACs`);
    assert.ok(model.countParams() < 0.25e6, `fmnist-resnet has ${model.countParams()} params`);
    assert.deepEqual(model.getLayer('stage3_block1_out').outputShape, [null, 4, 4, 64]);
    const logits = tf.tidy(() => model.predict(tf.randomUniform([5, 28, 28, 1], 0, 1, 'float32', 1)) as tf.Tensor);
    assert.deepEqual(logits.shape, [5, 10]);
    assert.ok(Array.from(logits.dataSync()).every(Number.isFinite));
    logits.dispose();
  });

  test('initialisation is deterministic in the seed and differs across seeds and layers', () => {
    const a = buildModel('fmnist-resnet', { seed: 7 });
    const b = buildModel('fmnist-resnet', { seed: 7 });
    const c = buildModel('fmnist-resnet', { seed: 8 });
    try {
      const weightsA = a.getWeights().map((w) => w.dataSync());
      const weightsB = b.getWeights().map((w) => w.dataSync());
      const weightsC = c.getWeights().map((w) => w.dataSync());
      assert.deepEqual(weightsA, weightsB);
      const kernelIndex = a.weights.findIndex((w) => w.originalName === 'stage1_block0_conv2/kernel');
      assert.notDeepEqual(weightsA[kernelIndex], weightsC[kernelIndex]);
      // Two same-shaped kernels of one model must not share their initial values.
      const otherIndex = a.weights.findIndex((w) => w.originalName === 'stage1_block1_conv1/kernel');
      assert.notDeepEqual(weightsA[kernelIndex], weightsA[otherIndex]);
      assert.notEqual(layerSeed(7, 'stem_conv'), layerSeed(8, 'stem_conv'));
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  test('options: inputShape, classes and widthMultiplier', () => {
    const half = buildModel('resnet20', { widthMultiplier: 0.5, classes: 100 });
    const tiny = buildModel('fmnist-resnet', { widthMultiplier: 0.01, inputShape: [32, 32, 3] });
    try {
      assert.deepEqual(half.outputs[0].shape, [null, 100]);
      assert.deepEqual(half.getLayer('stem_conv').outputShape, [null, 32, 32, 8]);
      assert.deepEqual(half.getLayer('stage3_block2_out').outputShape, [null, 8, 8, 32]);
      // Widths never round to zero.
      assert.deepEqual(tiny.getLayer('stage3_block1_out').outputShape, [null, 4, 4, 1]);
      assert.deepEqual(tiny.inputs[0].shape, [null, 32, 32, 3]);
    } finally {
      half.dispose();
      tiny.dispose();
    }
  });

  test('invalid names and options are refused with the offending value', () => {
    assert.throws(() => buildModel('resnet19' as ZooName), /unknown zoo model 'resnet19'.*resnet20/);
    assert.throws(() => buildModel('resnet20', { classes: 0 }), /classes must be a positive integer, got 0/);
    assert.throws(() => buildModel('resnet20', { widthMultiplier: -1 }), /widthMultiplier must be > 0, got -1/);
    assert.throws(() => buildModel('resnet20', { inputShape: [32, 32, 0] }), /inputShape .*\[32,32,0\]/);
    assert.throws(() => buildModel('resnet20', { seed: 0.5 }), /seed must be an integer/);
  });
});
