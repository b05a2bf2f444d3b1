/**
 * Focused cases of index-level channel coupling (a concatenation feeding an add, an SE gate, a
 * separable block, depthwise multipliers, broadcast merges, reshapes, PReLU, LayerNorm), and
 * every refused layer kind with a message naming the layer.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { countTotals } from '../../src/model/cost.ts';
import { Subtract } from '../../src/model/custom-layers.ts';
import { analyzeChannels, ChannelAnalysisError, findGroup, layerChannels } from '../../src/model/groups.ts';
import type { ChannelAnalysis, GroupMasks } from '../../src/model/groups.ts';
import { masksKeeping, pruneModel } from '../../src/model/prune.ts';
import { randomizeAllButKernels, zeroDroppedReads } from './fixtures.ts';

before(async () => {
  await initEngine();
});

type ST = tf.SymbolicTensor;

const conv = (x: ST, name: string, filters: number, kernelSize = 1): ST =>
  tf.layers.conv2d({ name, filters, kernelSize, padding: 'same' }).apply(x) as ST;
const bn = (x: ST, name: string): ST => tf.layers.batchNormalization({ name }).apply(x) as ST;
const relu = (x: ST, name: string): ST => tf.layers.activation({ name, activation: 'relu' }).apply(x) as ST;
const head = (x: ST): ST => {
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as ST;
  return tf.layers.dense({ name: 'logits', units: 3 }).apply(pooled) as ST;
};

/** Pruned with `masks` equals the original with the dropped channels' reads zeroed; cost matches a fresh count. */
function assertExactPrune(model: tf.LayersModel, analysis: ChannelAnalysis, masks: GroupMasks): void {
  randomizeAllButKernels(model, 11);
  const x = tf.randomNormal([2, ...(model.inputs[0].shape.slice(1) as number[])], 0, 1, 'float32', 3);
  const pruned = pruneModel(model, masks, { analysis });
  assert.deepEqual(countTotals(analyzeChannels(pruned, { pruneResidual: true })), countTotals(analysis, masks));
  zeroDroppedReads(model, analysis, masks);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(pruned.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor))).dataSync()[0]);
  assert.ok(diff < 1e-4, `pruned vs zeroed reads: max |diff| ${diff}`);
  tf.dispose(x);
  pruned.dispose();
}

test('a concatenation added to a single convolution couples channel by channel', () => {
  // stem (4) + concat(p: 2, q: 3)... the Inception-style case: cat(p, q) + wide, wide = 5 channels.
  const input = tf.input({ shape: [6, 6, 2], name: 'input' });
  const stem = relu(conv(input, 'stem', 5, 3), 'stem_relu');
  const p = relu(bn(conv(stem, 'p', 2), 'p_bn'), 'p_relu');
  const q = relu(bn(conv(stem, 'q', 3, 3), 'q_bn'), 'q_relu');
  const cat = tf.layers.concatenate({ name: 'cat' }).apply([p, q]) as ST;
  const sum = tf.layers.add({ name: 'sum' }).apply([cat, stem]) as ST;
  const model = tf.model({ inputs: input, outputs: head(relu(sum, 'out')), name: 'concat-add' });
  const analysis = analyzeChannels(model, { pruneResidual: true });
  const group = findGroup(analysis, 'stem');
  assert.equal(group.channels, 5);
  assert.equal(group.residual, true);
  assert.deepEqual(group.producers.map((m) => m.layer), ['stem', 'p', 'q']);
  // stem's channel 3 is q's channel 1: one mask bit.
  assert.deepEqual(layerChannels(analysis, 'cat').output.segments, [{ group: 'stem', offset: 0, start: 0, channels: 5 }]);
  assert.deepEqual(layerChannels(analysis, 'q').output.segments, [{ group: 'stem', offset: 0, start: 2, channels: 3 }]);
  const masks = masksKeeping(analysis, { stem: [0, 3, 4] });
  const pruned = pruneModel(model, masks, { analysis });
  assert.equal(pruned.getLayer('p').getWeights()[0].shape[3], 1, 'p keeps its channel 0');
  assert.equal(pruned.getLayer('q').getWeights()[0].shape[3], 2, 'q keeps its channels 1 and 2');
  pruned.dispose();
  assertExactPrune(model, analysis, masks);
  // Without pruneResidual the coupled group is not searched.
  assert.equal(findGroup(analyzeChannels(model), 'stem').prunable, false);
});

test('concat of concats, add of concats with different layouts', () => {
  const input = tf.input({ shape: [5, 5, 1], name: 'input' });
  const a = conv(input, 'a', 2);
  const b = conv(input, 'b', 4);
  const c = conv(input, 'c', 3);
  const d = conv(input, 'd', 3);
  const left = tf.layers.concatenate({ name: 'left' }).apply([a, b]) as ST; // 2 + 4
  const right = tf.layers.concatenate({ name: 'right' }).apply([c, d]) as ST; // 3 + 3
  const sum = tf.layers.add({ name: 'sum' }).apply([left, right]) as ST;
  const e = conv(input, 'e', 2);
  const wide = tf.layers.concatenate({ name: 'wide' }).apply([sum, e]) as ST;
  const model = tf.model({ inputs: input, outputs: head(bn(wide, 'wide_bn')), name: 'concats' });
  const analysis = analyzeChannels(model, { pruneResidual: true });
  // a0-1 ~ c0-1, b0 ~ c2, b1-3 ~ d0-2: one group of 6; e stays apart.
  assert.equal(findGroup(analysis, 'a').channels, 6);
  assert.deepEqual(findGroup(analysis, 'a').producers.map((m) => m.layer), ['a', 'b', 'c', 'd']);
  assert.equal(findGroup(analysis, 'e').residual, false);
  assertExactPrune(model, analysis, masksKeeping(analysis, { a: [1, 2, 5], e: [1] }));
});

test('squeeze-and-excitation: the excitation and the gated map are one group, not residual', () => {
  const input = tf.input({ shape: [6, 6, 3], name: 'input' });
  const x = relu(bn(conv(input, 'expand', 8), 'expand_bn'), 'expand_relu');
  const dw = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same' }).apply(x) as ST;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'se_pool' }).apply(dw) as ST;
  const squeezed = tf.layers.reshape({ name: 'se_reshape', targetShape: [1, 1, 8] }).apply(pooled) as ST;
  const s = relu(conv(squeezed, 'se_squeeze', 2), 'se_relu');
  const gate = tf.layers.activation({ name: 'se_gate', activation: 'sigmoid' }).apply(conv(s, 'se_excite', 8)) as ST;
  const gated = tf.layers.multiply({ name: 'se_scale' }).apply([dw, gate]) as ST;
  const model = tf.model({ inputs: input, outputs: head(conv(gated, 'project', 4)), name: 'se' });
  const analysis = analyzeChannels(model);
  const group = findGroup(analysis, 'expand');
  assert.equal(group.residual, false);
  assert.equal(group.prunable, true);
  assert.deepEqual(group.producers.map((m) => m.layer), ['expand', 'se_excite']);
  assert.deepEqual(group.consumers.map((m) => m.layer), ['se_squeeze', 'project']);
  assert.ok(findGroup(analysis, 'se_squeeze').prunable);
  assertExactPrune(model, analysis, masksKeeping(analysis, { expand: [0, 2, 3, 7], se_squeeze: [1] }));
});

test('separable conv reads its input group; depthwise multipliers repeat channels', () => {
  const input = tf.input({ shape: [6, 6, 2], name: 'input' });
  const x = relu(conv(input, 'c1', 4), 'c1_relu');
  const sep = tf.layers.separableConv2d({ name: 'sep', filters: 5, kernelSize: 3, padding: 'same', depthMultiplier: 2 }).apply(x) as ST;
  const dw = tf.layers.depthwiseConv2d({ name: 'dw3', kernelSize: 3, padding: 'same', depthMultiplier: 3 }).apply(relu(sep, 'sep_relu')) as ST;
  const model = tf.model({ inputs: input, outputs: head(conv(dw, 'c2', 6)), name: 'separable' });
  const analysis = analyzeChannels(model);
  assert.deepEqual(findGroup(analysis, 'c1').consumers.map((m) => m.layer), ['sep']);
  // dw3's output: each of sep's 5 channels three times.
  assert.deepEqual(layerChannels(analysis, 'dw3').output.segments, [{ group: 'sep', offset: 0, start: 0, channels: 5, repeat: 3 }]);
  const masks = masksKeeping(analysis, { c1: [1, 3], sep: [0, 4], c2: [0, 1, 5] });
  const pruned = pruneModel(model, masks, { analysis });
  const [depthwise, pointwise] = pruned.getLayer('sep').getWeights();
  assert.deepEqual(depthwise.shape, [3, 3, 2, 2]);
  assert.deepEqual(pointwise.shape, [1, 1, 4, 2]);
  assert.deepEqual(pruned.getLayer('c2').getWeights()[0].shape, [1, 1, 6, 3]);
  pruned.dispose();
  assertExactPrune(model, analysis, masks);
});

test('broadcast merges, PReLU, reshape round trips, subtract/average/maximum/minimum, transposed conv', () => {
  const input = tf.input({ shape: [4, 4, 2], name: 'input' });
  const a = conv(input, 'a', 4);
  const b = conv(input, 'b', 4);
  const attention = tf.layers.activation({ name: 'att', activation: 'sigmoid' }).apply(conv(input, 'att_conv', 1)) as ST;
  const gated = tf.layers.multiply({ name: 'gated' }).apply([a, attention]) as ST; // 1 channel broadcast: no coupling
  const diff = new Subtract({ name: 'diff' }).apply([gated, b]) as ST;
  const avg = tf.layers.average({ name: 'avg' }).apply([diff, a]) as ST;
  const mx = tf.layers.maximum({ name: 'mx' }).apply([avg, b]) as ST;
  const mn = tf.layers.minimum({ name: 'mn' }).apply([mx, a]) as ST;
  const act = tf.layers.prelu({ name: 'prelu' }).apply(mn) as ST; // alpha per position and channel
  const flat = tf.layers.reshape({ name: 'flat', targetShape: [64] }).apply(act) as ST;
  const back = tf.layers.reshape({ name: 'unflat', targetShape: [4, 4, 4] }).apply(flat) as ST;
  const up = tf.layers.conv2dTranspose({ name: 'up', filters: 3, kernelSize: 2, strides: 2, padding: 'same' }).apply(back) as ST;
  const norm = tf.layers.layerNormalization({ name: 'ln' }).apply(up) as ST;
  const model = tf.model({ inputs: input, outputs: head(conv(norm, 'c', 5)), name: 'merges' });
  const analysis = analyzeChannels(model, { pruneResidual: true });
  const group = findGroup(analysis, 'a');
  assert.deepEqual(group.producers.map((m) => m.layer), ['a', 'b']);
  assert.equal(group.residual, true);
  assert.equal(findGroup(analysis, 'att_conv').channels, 1);
  assert.equal(findGroup(analysis, 'att_conv').prunable, false, 'a one-channel group is never searched');
  assert.deepEqual(layerChannels(analysis, 'flat').output, {
    kind: 'flatten',
    channels: 4,
    spatial: 16,
    segments: [{ group: 'a', offset: 0, start: 0, channels: 4 }],
  });
  const masks = masksKeeping(analysis, { a: [1, 2], c: [0, 3] });
  const pruned = pruneModel(model, masks, { analysis });
  assert.deepEqual(pruned.getLayer('prelu').getWeights()[0].shape, [4, 4, 2]);
  assert.deepEqual(pruned.getLayer('up').getWeights()[0].shape, [2, 2, 3, 2]);
  pruned.dispose();
  // LayerNorm normalises across channels, so only groups it does not carry prune exactly.
  assertExactPrune(model, analysis, masks);
});

function expectRefused(name: string, build: () => tf.LayersModel, pattern: RegExp): void {
  assert.throws(
    () => analyzeChannels(build()),
    (error: unknown) => error instanceof ChannelAnalysisError && error.message.includes(`layer '${name}'`) && pattern.test(error.message),
    `refusal of '${name}'`,
  );
}

class Opaque extends tf.layers.Layer {
  static readonly className = 'OpaqueTestLayer';
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.reverse(Array.isArray(inputs) ? inputs[0] : inputs, -1));
  }
}
tf.serialization.registerClass(Opaque);

test('refused layer kinds name the layer and why', () => {
  const input = (shape: number[]): ST => tf.input({ shape, name: 'input' });
  expectRefused('custom', () => {
    const x = input([4, 4, 2]);
    return tf.model({ inputs: x, outputs: new Opaque({ name: 'custom' }).apply(conv(x, 'c', 3)) as ST });
  }, /OpaqueTestLayer.*custom or unsupported/);
  expectRefused('f', () => {
    const x = input([4, 4, 2]);
    return tf.model({ inputs: x, outputs: tf.layers.flatten({ name: 'f', dataFormat: 'channelsFirst' }).apply(conv(x, 'c', 3)) as ST });
  }, /channelsFirst/);
  expectRefused('cf', () => {
    const x = input([4, 4, 2]);
    return tf.model({ inputs: x, outputs: tf.layers.conv2d({ name: 'cf', filters: 2, kernelSize: 1, dataFormat: 'channelsFirst' }).apply(x) as ST });
  }, /channelsFirst/);
  expectRefused('c1d', () => {
    const x = input([8, 2]);
    return tf.model({ inputs: x, outputs: tf.layers.conv1d({ name: 'c1d', filters: 2, kernelSize: 3 }).apply(x) as ST });
  }, /1-D convolutions/);
  expectRefused('mix', () => {
    const x = input([4, 4, 2]);
    return tf.model({ inputs: x, outputs: tf.layers.reshape({ name: 'mix', targetShape: [4, 8] }).apply(conv(x, 'c', 2)) as ST });
  }, /mixes channels/);
  expectRefused('perm', () => {
    const x = input([4, 4, 2]);
    return tf.model({ inputs: x, outputs: tf.layers.permute({ name: 'perm', dims: [3, 1, 2] }).apply(conv(x, 'c', 2)) as ST });
  }, /moves the channel axis/);
  expectRefused('cat', () => {
    const x = input([4, 4, 2]);
    const f = tf.layers.flatten({ name: 'flat' }).apply(conv(x, 'c', 2)) as ST;
    return tf.model({ inputs: x, outputs: tf.layers.concatenate({ name: 'cat' }).apply([f, f]) as ST });
  }, /flattened/);
  expectRefused('bnflat', () => {
    const x = input([4, 4, 2]);
    const f = tf.layers.flatten({ name: 'flat' }).apply(conv(x, 'c', 2)) as ST;
    return tf.model({ inputs: x, outputs: tf.layers.batchNormalization({ name: 'bnflat' }).apply(f) as ST });
  }, /last \(channel\) axis/);
  expectRefused('pool5', () => {
    const x = input([4, 4, 2]);
    const p = tf.layers.maxPooling2d({ name: 'pool5', poolSize: 5, padding: 'valid' }).apply(conv(x, 'c', 2)) as ST;
    return tf.model({ inputs: x, outputs: p });
  }, /is empty/);
});
