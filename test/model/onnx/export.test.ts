/**
 * Export: (1) every fixture, imported and exported again, computes what the original file
 * computes (onnxruntime on both) and keeps its opset and names; (2) physically pruned models
 * exported to ONNX compute what the pruned tfjs model computes; (3) models that never were ONNX
 * (built with tfjs layers, NHWC) export too.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../../src/engine/backend.ts';
import { analyzeChannels } from '../../../src/model/groups.ts';
import type { GroupMasks } from '../../../src/model/groups.ts';
import { exportOnnx, encodeOnnx } from '../../../src/model/onnx/export.ts';
import { onnxOriginOf } from '../../../src/model/onnx/metadata.ts';
import { decodeModel } from '../../../src/model/onnx/proto.ts';
import { importOnnxFile } from '../../../src/model/onnx/read.ts';
import { pruneModel } from '../../../src/model/prune.ts';
import { buildModel } from '../../../src/model/zoo.ts';
import { lcg, randomizeBatchNorm } from '../fixtures.ts';
import { FIXTURES, inputDims, maxAbsDiff, randomInput, relativeError, runOrt, runTfjs } from './parity.ts';

before(async () => {
  await initEngine();
});

const TOLERANCE = 1e-4;

for (const name of ['resnet18', 'mobilenet_v2', 'mobilenet_v3_small', 'efficientnet_b0', 'densenet121', 'ops_mix', 'ops_mix_opset9', 'external_data']) {
  test(`import then export reproduces the original: ${name}`, async () => {
    const path = `${FIXTURES}${name}.onnx`;
    const model = await importOnnxFile(path);
    try {
      const origin = onnxOriginOf(model)!;
      const bytes = encodeOnnx(model, { origin });
      const exported = decodeModel(bytes, 'exported');
      const original = decodeModel(await import('node:fs/promises').then((fs) => fs.readFile(path)), path);
      assert.deepEqual(exported.opset_import.map((o) => o.version), [origin.opset]);
      assert.deepEqual(exported.graph.input.map((i) => i.name), original.graph.input.filter((i) => !original.graph.initializer.some((t) => t.name === i.name)).map((i) => i.name));
      assert.deepEqual(exported.graph.output.map((o) => o.name), original.graph.output.map((o) => o.name));
      assert.deepEqual(exported.graph.input[0].type, original.graph.input[0].type, 'input dims (incl. a dynamic batch) are the original ones');
      // Every original weight name survives (the exporter writes its initializers under them).
      const exportedNames = new Set(exported.graph.initializer.map((t) => t.name));
      const weightNames = Object.values(origin.layers).flatMap((l) => l.weights ?? []).filter((n) => n !== '');
      for (const weight of weightNames) assert.ok(exportedNames.has(weight), `${name}: initializer ${weight} is missing from the export`);
      const dims = inputDims(model);
      const input = randomInput(dims, 5);
      const expected = await runOrt(path, input, dims);
      const actual = await runOrt(bytes, input, dims);
      expected.outputs.forEach((out, i) => {
        const error = relativeError(actual.outputs[i].values, out.values);
        assert.ok(error < 1e-6, `${name} output ${out.name}: exported vs original relative error ${error}`);
      });
    } finally {
      model.dispose();
    }
  });
}

/** Masks keeping a random ~60% of every prunable group (at least one channel each). */
function randomMasks(model: tf.LayersModel, seed: number): GroupMasks {
  const analysis = analyzeChannels(model);
  const random = lcg(seed);
  const masks: Record<string, Uint8Array> = {};
  for (const group of analysis.groups.filter((g) => g.prunable)) {
    const mask = Uint8Array.from({ length: group.channels }, () => (random() < 0.6 ? 1 : 0));
    mask[Math.floor(random() * group.channels)] = 1;
    masks[group.id] = mask;
  }
  assert.ok(Object.keys(masks).length > 0, 'the model has prunable groups');
  return masks;
}

/** Prunes an imported fixture, exports it with the original's origin, and checks ort against tfjs. */
async function prunedExportParity(name: string): Promise<void> {
  const path = `${FIXTURES}${name}.onnx`;
  const model = await importOnnxFile(path);
  let pruned: tf.LayersModel | undefined;
  try {
    pruned = pruneModel(model, randomMasks(model, 17));
    const origin = onnxOriginOf(model)!;
    const bytes = encodeOnnx(pruned, { origin });
    const dims = inputDims(model);
    const input = randomInput(dims, 9);
    const reference = await runOrt(bytes, input, dims);
    const actual = runTfjs(pruned, input, dims);
    const unpruned = runTfjs(model, input, dims);
    reference.outputs.forEach((out, i) => {
      const error = relativeError(actual[i], out.values);
      assert.ok(error < TOLERANCE, `${name} pruned output ${out.name}: relative error ${error}`);
      assert.ok(maxAbsDiff(unpruned[i], out.values) > 100 * maxAbsDiff(actual[i], out.values), `${name}: pruning changed nothing the check can see`);
    });
    // The file is smaller, with the original names on narrower weights.
    const original = decodeModel(await import('node:fs/promises').then((fs) => fs.readFile(path)), path);
    const exported = decodeModel(bytes, 'pruned');
    const count = (m: typeof original): number => m.graph.initializer.reduce((sum, t) => sum + t.dims.reduce((p, d) => p * d, 1), 0);
    assert.ok(count(exported) < 0.8 * count(original), `${name}: ${count(exported)} weights after pruning, ${count(original)} before`);
    assert.deepEqual(exported.graph.output.map((o) => o.name), original.graph.output.map((o) => o.name));
    assert.equal(exported.opset_import[0].version, origin.opset);
  } finally {
    pruned?.dispose();
    model.dispose();
  }
}

// Every fixture the channel analysis can prune (all of them since the per-layer-kind analysis).
for (const name of ['resnet18', 'mobilenet_v3_small', 'efficientnet_b0', 'mobilenet_v2', 'densenet121', 'ops_mix']) {
  test(`pruned export parity: ${name}`, async () => {
    await prunedExportParity(name);
  });
}

/** A tfjs-native model with the export-only paths: separable conv, fused activations, an NHWC flatten into a Dense, merges. */
function nativeModel(): tf.LayersModel {
  type ST = tf.SymbolicTensor;
  const input = tf.input({ shape: [12, 10, 3], name: 'image' });
  const a = tf.layers.conv2d({ name: 'stem', filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(input) as ST;
  const b = tf.layers.separableConv2d({ name: 'sep', filters: 8, kernelSize: 3, padding: 'same', depthMultiplier: 2 }).apply(a) as ST;
  const c = tf.layers.batchNormalization({ name: 'bn', axis: -1 }).apply(b) as ST;
  const d = tf.layers.elu({ name: 'elu' }).apply(c) as ST;
  const avg = tf.layers.average({ name: 'avg' }).apply([a, d]) as ST;
  const mx = tf.layers.maximum({ name: 'max' }).apply([a, d]) as ST;
  const cat = tf.layers.concatenate({ name: 'cat' }).apply([avg, mx]) as ST;
  const up = tf.layers.upSampling2d({ name: 'up', size: [2, 2] }).apply(cat) as ST;
  const t = tf.layers.conv2dTranspose({ name: 'deconv', filters: 4, kernelSize: 3, strides: 2, padding: 'same' }).apply(cat) as ST;
  const both = tf.layers.concatenate({ name: 'cat2' }).apply([up, t]) as ST;
  const pool = tf.layers.averagePooling2d({ name: 'pool', poolSize: 3, strides: 2, padding: 'same' }).apply(both) as ST;
  const prelu = tf.layers.prelu({ name: 'prelu' }).apply(pool) as ST;
  const gmp = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(prelu) as ST;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(prelu) as ST;
  const fc = tf.layers.dense({ name: 'fc', units: 7, activation: 'tanh' }).apply(flat) as ST;
  const merged = tf.layers.concatenate({ name: 'head' }).apply([fc, gmp]) as ST;
  const out = tf.layers.dense({ name: 'logits', units: 5, activation: 'softmax' }).apply(merged) as ST;
  const side = tf.layers.reshape({ name: 'side', targetShape: [6, 5, 4] }).apply(tf.layers.dense({ name: 'side_fc', units: 120 }).apply(gmp) as ST) as ST;
  return tf.model({ inputs: input, outputs: [out, side], name: 'native' });
}

for (const opset of [9, 11, 13, 17]) {
  test(`a tfjs-built model exports at opset ${opset} and runs in onnxruntime like in tfjs`, async () => {
    const model = nativeModel();
    try {
      randomizeBatchNorm(model, 3);
      const proto = exportOnnx(model, { opset });
      assert.equal(proto.opset_import?.[0].version, opset);
      assert.equal(proto.graph.input?.[0].name, 'image');
      const bytes = encodeOnnx(model, { opset });
      const dims = [2, 3, 12, 10];
      const input = randomInput(dims, 3);
      const reference = await runOrt(bytes, input, dims);
      const actual = runTfjs(model, input, dims);
      assert.deepEqual(reference.outputs.map((o) => o.name), ['logits', 'side']);
      reference.outputs.forEach((out, i) => {
        const error = relativeError(actual[i], out.values);
        assert.ok(error < TOLERANCE, `opset ${opset} output ${out.name}: relative error ${error}`);
      });
    } finally {
      model.dispose();
    }
  });
}

test('a zoo model (fmnist-resnet) exports and matches tfjs in onnxruntime', async () => {
  const model = buildModel('fmnist-resnet');
  try {
    randomizeBatchNorm(model, 4);
    const bytes = encodeOnnx(model);
    const dims = [2, 1, 28, 28];
    const input = randomInput(dims, 8);
    const reference = await runOrt(bytes, input, dims);
    const error = relativeError(runTfjs(model, input, dims)[0], reference.outputs[0].values);
    assert.ok(error < TOLERANCE, `relative error ${error}`);
  } finally {
    model.dispose();
  }
});
