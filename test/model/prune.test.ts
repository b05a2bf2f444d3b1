import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { analyzeChannels, fullMasks } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { masksKeeping, pruneModel } from '../../src/model/prune.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { concatToy, lcg, randomizeBatchNorm, zeroDroppedReads } from './fixtures.ts';

before(async () => {
  await initEngine();
});

type ST = tf.SymbolicTensor;

/** Flatten of a concatenation (two segments interleaved per position), then a hidden dense. */
function flatConcatToy(): tf.LayersModel {
  const input = tf.input({ shape: [3, 3, 2], name: 'input' });
  const c1 = tf.layers.conv2d({ name: 'c1', filters: 3, kernelSize: 1 }).apply(input) as ST;
  const c2 = tf.layers.conv2d({ name: 'c2', filters: 2, kernelSize: 2, padding: 'same' }).apply(input) as ST;
  const cat = tf.layers.concatenate({ name: 'cat' }).apply([c1, c2]) as ST;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(cat) as ST;
  const hidden = tf.layers.dense({ name: 'hidden', units: 6, activation: 'relu' }).apply(flat) as ST;
  const out = tf.layers.dense({ name: 'out', units: 2 }).apply(hidden) as ST;
  return tf.model({ inputs: input, outputs: out, name: 'flat-concat-toy' });
}

/** Each mask keeps about half of its group's channels (never none). */
function halfMasks(analysis: ChannelAnalysis, seed: number, groups = analysis.groups.filter((g) => g.prunable)): Record<string, Uint8Array> {
  const random = lcg(seed);
  const masks: Record<string, Uint8Array> = {};
  for (const group of groups) {
    const mask = Uint8Array.from({ length: group.channels }, () => (random() < 0.5 ? 1 : 0));
    mask[Math.floor(random() * group.channels)] = 1;
    masks[group.id] = mask;
  }
  return masks;
}

function maxAbsDiff(a: tf.LayersModel, b: tf.LayersModel, x: tf.Tensor): number {
  return tf.tidy(() => {
    const ya = a.predict(x) as tf.Tensor;
    const yb = b.predict(x) as tf.Tensor;
    assert.deepEqual(ya.shape, yb.shape);
    return tf.max(tf.abs(ya.sub(yb))).dataSync()[0];
  });
}

function inputFor(model: tf.LayersModel, batch: number, seed: number): tf.Tensor {
  const shape = model.inputs[0].shape.slice(1) as number[];
  return tf.randomNormal([batch, ...shape], 0, 1, 'float32', seed);
}

interface Case {
  readonly name: string;
  readonly build: () => tf.LayersModel;
}

const cases: readonly Case[] = [
  { name: 'resnet20', build: () => buildModel('resnet20') },
  { name: 'vgg16 (width 1/4)', build: () => buildModel('vgg16', { widthMultiplier: 0.25 }) },
  { name: 'concat toy', build: concatToy },
  { name: 'flatten-of-concat toy', build: flatConcatToy },
];

for (const { name, build } of cases) {
  test(`${name}: all-ones masks rebuild the same function, names and classes`, () => {
    const model = build();
    randomizeBatchNorm(model, 1);
    const analysis = analyzeChannels(model, { pruneResidual: true });
    const x = inputFor(model, 2, 7);
    for (const masks of [{}, fullMasks(analysis)]) {
      const pruned = pruneModel(model, masks, { analysis });
      assert.equal(pruned.name, model.name);
      assert.deepEqual(
        pruned.layers.map((l) => [l.name, l.getClassName()]),
        model.layers.map((l) => [l.name, l.getClassName()]),
      );
      assert.equal(pruned.countParams(), model.countParams());
      // Same topology and layer settings (initializers included) as the original.
      assert.deepEqual(pruned.toJSON(null, false), model.toJSON(null, false));
      const diff = maxAbsDiff(model, pruned, x);
      assert.ok(diff < 1e-5, `max |diff| ${diff}`);
      pruned.dispose();
    }
    x.dispose();
    model.dispose();
  });

  test(`${name}: removing channels equals zeroing the weights that read them`, () => {
    const model = build();
    randomizeBatchNorm(model, 2);
    // Residual groups too: pruning them is the search's choice, physically it must be exact.
    const analysis = analyzeChannels(model, { pruneResidual: true });
    const masks = halfMasks(analysis, 3);
    assert.ok(Object.keys(masks).length >= 3);
    zeroDroppedReads(model, analysis, masks);
    const before = model.getWeights().map((w) => w.dataSync().slice());
    const tensorsBefore = tf.memory().numTensors;
    const pruned = pruneModel(model, masks, { analysis });
    assert.ok(pruned.countParams() < model.countParams());
    const x = inputFor(model, 2, 11);
    const diff = maxAbsDiff(model, pruned, x);
    x.dispose();
    assert.ok(diff < 1e-5, `max |diff| ${diff}`);
    // Producers shrank by their masks.
    for (const group of analysis.groups) {
      const kept = masks[group.id]?.reduce((s, bit) => s + bit, 0) ?? group.channels;
      for (const p of group.producers) {
        const kernel = pruned.getLayer(p.layer).getWeights()[0];
        assert.equal(kernel.shape[kernel.rank - 1], kept, `${p.layer} output channels`);
      }
    }
    // The original is untouched, and nothing leaked besides the new model's weights.
    model.getWeights().forEach((w, i) => assert.deepEqual(w.dataSync(), before[i]));
    pruned.dispose();
    assert.equal(tf.memory().numTensors, tensorsBefore);
    model.dispose();
  });
}

test('dense rows behind a flatten follow the NHWC interleaving (kept weights, checked by value)', () => {
  const model = flatConcatToy();
  const analysis = analyzeChannels(model);
  const masks = masksKeeping(analysis, { c1: [0, 2], c2: [1], hidden: [1, 3, 4] });
  const pruned = pruneModel(model, masks, { analysis });
  const original = model.getLayer('hidden').getWeights()[0].arraySync() as number[][];
  const kernel = pruned.getLayer('hidden').getWeights()[0].arraySync() as number[][];
  // 9 positions x 3 kept channels (0, 2 of c1; 4 = channel 1 of c2) -> rows p*5 + {0, 2, 4}.
  assert.equal(kernel.length, 27);
  assert.equal(kernel[0].length, 3);
  for (let p = 0; p < 9; p++) {
    [0, 2, 4].forEach((c, j) => {
      assert.deepEqual(kernel[p * 3 + j], [1, 3, 4].map((u) => original[p * 5 + c][u]));
    });
  }
  const out = pruned.getLayer('out').getWeights()[0].arraySync() as number[][];
  assert.equal(out.length, 3);
  pruned.dispose();
  model.dispose();
});

test('a Sequential model is pruned into an equivalent functional model', () => {
  const model = tf.sequential({
    name: 'seq',
    layers: [
      tf.layers.conv2d({ name: 'c', inputShape: [5, 5, 2], filters: 4, kernelSize: 3 }),
      tf.layers.flatten({ name: 'f' }),
      tf.layers.dense({ name: 'd', units: 3, activation: 'relu' }),
      tf.layers.dense({ name: 'out', units: 2 }),
    ],
  });
  const analysis = analyzeChannels(model);
  const masks = masksKeeping(analysis, { c: [1, 2, 3], d: [0, 2] });
  zeroDroppedReads(model, analysis, masks);
  const pruned = pruneModel(model, masks, { analysis });
  assert.deepEqual(pruned.getLayer('d').getWeights()[0].shape, [9 * 3, 2]);
  const x = inputFor(model, 3, 4);
  const diff = maxAbsDiff(model, pruned, x);
  assert.ok(diff < 1e-5, `max |diff| ${diff}`);
  x.dispose();
  pruned.dispose();
  model.dispose();
});

test('invalid masks are rejected before anything is built', () => {
  const model = concatToy();
  assert.throws(() => pruneModel(model, { ghost: new Uint8Array(2) }), /no channel group 'ghost'/);
  assert.throws(() => pruneModel(model, { a_conv: new Uint8Array(5).fill(1) }), /'a_conv' has 5 entries, the group has 4/);
  assert.throws(() => pruneModel(model, { b_conv: new Uint8Array(3) }), /'b_conv' keeps no channel/);
  assert.throws(() => pruneModel(model, { logits: Uint8Array.from([0, 1, 1]) }), /'logits' is the model's output/);
  model.dispose();
});

/** One SGD step on random data: the loss is finite and the weights move. */
async function trainStep(model: tf.LayersModel): Promise<void> {
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
  const outShape = model.outputs[0].shape.slice(1) as number[];
  const x = inputFor(model, 4, 5);
  const y = tf.randomNormal([4, ...outShape], 0, 1, 'float32', 6);
  const before = model.getWeights().map((w) => w.dataSync().slice());
  const loss = (await model.trainOnBatch(x, y)) as number;
  assert.ok(Number.isFinite(loss), `loss ${loss}`);
  const moved = model.getWeights().some((w, i) => w.dataSync().some((v, j) => v !== before[i][j]));
  assert.ok(moved, 'a train step changed the weights');
  tf.dispose([x, y]);
}

test('pruned models train: fmnist-resnet (residual groups cut too) and the concat toy', async () => {
  for (const model of [buildModel('fmnist-resnet'), concatToy()]) {
    const analysis = analyzeChannels(model, { pruneResidual: true });
    const pruned = pruneModel(model, halfMasks(analysis, 9), { analysis });
    await trainStep(pruned);
    pruned.dispose();
    model.dispose();
  }
});
