/**
 * Import parity: every fixture exported from real PyTorch/torchvision models
 * (scripts/onnx/export_fixtures.py) is imported and run by tfjs and by onnxruntime on the same
 * random inputs; outputs must agree to 1e-4 of the output's scale.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../../src/engine/backend.ts';
import { onnxOriginOf } from '../../../src/model/onnx/metadata.ts';
import { importOnnxFile } from '../../../src/model/onnx/read.ts';
import { FIXTURES, inputDims, maxAbsDiff, randomInput, relativeError, runOrt, runTfjs } from './parity.ts';

before(async () => {
  await initEngine();
});

const TOLERANCE = 1e-4;

/** Layer classes each fixture must produce: proof that the op table is really exercised. */
const CASES: readonly { name: string; classes: readonly string[] }[] = [
  { name: 'resnet18', classes: ['Conv2D', 'ReLU', 'ZeroPadding2D', 'MaxPooling2D', 'Add', 'GlobalAveragePooling2D', 'Dense'] },
  { name: 'mobilenet_v2', classes: ['Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'ReLU', 'Add', 'Dense'] },
  { name: 'mobilenet_v3_small', classes: ['DepthwiseConv2D', 'HardSwish', 'HardSigmoid', 'Multiply', 'Reshape', 'Dense'] },
  { name: 'efficientnet_b0', classes: ['DepthwiseConv2D', 'Activation', 'Multiply', 'Reshape', 'BatchNormalization', 'Dense'] },
  { name: 'densenet121', classes: ['Concatenate', 'BatchNormalization', 'AveragePooling2D', 'MaxPooling2D', 'ZeroPadding2D', 'Dense'] },
  {
    name: 'ops_mix',
    classes: [
      'Conv2DTranspose', 'Cropping2D', 'UpSampling2D', 'PReLU', 'LeakyReLU', 'Clip', 'HardSigmoid', 'Subtract',
      'Scale', 'Shift', 'NegInfPadding2D', 'DepthwiseConv2D', 'Flatten', 'Dense', 'BatchNormalization', 'AveragePooling2D', 'Concatenate',
    ],
  },
  { name: 'ops_mix_opset9', classes: ['Conv2DTranspose', 'UpSampling2D', 'Clip', 'ReLU', 'NegInfPadding2D', 'ZeroPadding2D', 'Dense'] },
  { name: 'external_data', classes: ['Conv2D', 'Dense'] },
];

for (const { name, classes } of CASES) {
  test(`import parity with onnxruntime: ${name}`, async () => {
    const path = `${FIXTURES}${name}.onnx`;
    const model = await importOnnxFile(path);
    try {
      const present = new Set(model.layers.map((l) => l.getClassName()));
      for (const cls of classes) assert.ok(present.has(cls), `${name}: expected a ${cls} layer, got ${[...present].sort().join(', ')}`);
      const dims = inputDims(model);
      for (const seed of [1, 2]) {
        const input = randomInput(dims, seed);
        const reference = await runOrt(path, input, dims);
        const actual = runTfjs(model, input, dims);
        assert.equal(actual.length, reference.outputs.length);
        const other = runTfjs(model, randomInput(dims, seed + 100), dims);
        reference.outputs.forEach((out, i) => {
          const error = relativeError(actual[i], out.values);
          assert.ok(error < TOLERANCE, `${name} output ${out.name} (seed ${seed}): relative error ${error}`);
          // Another input moves the output far more than the parity error: the check resolves the model's work.
          const moved = maxAbsDiff(other[i], out.values);
          assert.ok(moved > 100 * maxAbsDiff(actual[i], out.values) && moved > 1e-5, `${name}: output ${out.name} barely depends on the input (${moved})`);
        });
      }
    } finally {
      model.dispose();
    }
  });
}

test('the imported model remembers its ONNX origin: opset, names, dims, initializers', async () => {
  const model = await importOnnxFile(`${FIXTURES}ops_mix.onnx`);
  try {
    const origin = onnxOriginOf(model)!;
    assert.equal(origin.opset, 13);
    assert.equal(origin.producerName, 'pytorch');
    assert.deepEqual(origin.inputs, [{ name: 'input', layer: 'input', dims: ['batch', 3, 32, 32] }]);
    assert.deepEqual(
      origin.outputs.map((o) => [o.name, o.dims]),
      [
        ['logits', ['batch', 5]],
        ['side', ['batch', 3]],
      ],
    );
    // MatMul + Add (the bias) became one Dense that remembers both initializers and the Add's output.
    const dense = Object.entries(origin.layers).find(([, o]) => o.op === 'MatMul' && o.output === 'logits');
    assert.ok(dense, 'a Dense made from /MatMul producing logits');
    assert.deepEqual(dense[1].weights, ['mm_weight', 'mm_bias']);
    assert.deepEqual(origin.layers.conv_s2_Conv, { node: '/conv_s2/Conv', op: 'Conv', output: '/conv_s2/Conv_output_0', weights: ['conv_s2.weight', 'conv_s2.bias'] });
    assert.equal(model.name, 'ops_mix');
  } finally {
    model.dispose();
  }
});

test('PyTorch 3x3 stride-2 pad-1 convs become ZeroPadding2D + valid, TF-compatible pads stay "same"', async () => {
  const model = await importOnnxFile(`${FIXTURES}resnet18.onnx`);
  try {
    const config = (name: string): Record<string, unknown> => model.getLayer(name).getConfig() as Record<string, unknown>;
    // layer2.0.conv1: 3x3 stride 2 pad 1 on 16x16 (TF 'same' would pad 0/1).
    const strided = model.layers.find((l) => l.name.startsWith('layer2_layer2.0_conv1') && l.getClassName() === 'Conv2D')!;
    assert.equal(config(strided.name).padding, 'valid');
    assert.deepEqual(config(`${strided.name}_pad`).padding, [
      [1, 1],
      [1, 1],
    ]);
    // layer1.0.conv1: 3x3 stride 1 pad 1, which is TF 'same'.
    const plain = model.layers.find((l) => l.name.startsWith('layer1_layer1.0_conv1') && l.getClassName() === 'Conv2D')!;
    assert.equal(config(plain.name).padding, 'same');
    // The stem max pool (3x3/2 pad 1) follows a ReLU: zero padding is exact there.
    const pool = model.layers.find((l) => l.getClassName() === 'MaxPooling2D')!;
    assert.equal(model.getLayer(`${pool.name}_pad`).getClassName(), 'ZeroPadding2D');
  } finally {
    model.dispose();
  }
});
