/**
 * Group importance by hand: every coupled layer contributes (producer columns, BN |gamma|,
 * consumer rows), averaged over the layers touching each channel, normalised by the group mean.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { channelImportance } from '../../src/model/importance.ts';

before(async () => {
  await initEngine();
});

type ST = tf.SymbolicTensor;

/** input [2,2,1] -> a (1x1, 2, no bias) -> bn -> b (1x1, 3) -> global pool -> logits (2). */
function tiny(): tf.LayersModel {
  const input = tf.input({ shape: [2, 2, 1], name: 'input' });
  const a = tf.layers.conv2d({ name: 'a', filters: 2, kernelSize: 1, useBias: false }).apply(input) as ST;
  const bn = tf.layers.batchNormalization({ name: 'bn' }).apply(a) as ST;
  const b = tf.layers.conv2d({ name: 'b', filters: 3, kernelSize: 1 }).apply(bn) as ST;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(b) as ST;
  const logits = tf.layers.dense({ name: 'logits', units: 2 }).apply(pooled) as ST;
  const model = tf.model({ inputs: input, outputs: logits, name: 'tiny' });
  const set = (name: string, values: tf.Tensor[]): void => {
    model.getLayer(name).setWeights(values);
    tf.dispose(values);
  };
  set('a', [tf.tensor4d([1, -2], [1, 1, 1, 2])]);
  set('bn', [tf.tensor1d([0.5, 3]), tf.tensor1d([0, 0]), tf.tensor1d([0, 0]), tf.tensor1d([1, 1])]);
  // b's rows: channel 0 reads [1, 1, 1] (L1 3), channel 1 reads [-2, 0, 2] (L1 4).
  set('b', [tf.tensor4d([1, 1, 1, -2, 0, 2], [1, 1, 2, 3]), tf.tensor1d([0.1, -0.2, 0.3])]);
  set('logits', [tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), tf.tensor1d([0, 0])]);
  return model;
}

const close = (actual: ArrayLike<number>, expected: number[], what: string): void => {
  assert.equal(actual.length, expected.length, what);
  expected.forEach((value, i) => assert.ok(Math.abs(actual[i] - value) < 1e-5, `${what}[${i}]: ${actual[i]} vs ${value}`));
};

test('l1 and l2: producer, BN gamma and consumer rows averaged; normalised by the group mean', () => {
  const model = tiny();
  const analysis = analyzeChannels(model);
  const raw = channelImportance(model, analysis, { normalize: false });
  // a's channel 0: (|1| + 0.5 + 3) / 3; channel 1: (|-2| + 3 + 4) / 3.
  close(raw.a, [4.5 / 3, 9 / 3], 'l1 a');
  // b's channel j: its column of b's kernel ([1, -2], [1, 0], [1, 2]) and its row of the dense.
  close(raw.b, [(3 + 3) / 2, (1 + 7) / 2, (3 + 11) / 2], 'l1 b');
  const normalised = channelImportance(model, analysis);
  close(normalised.a, [4.5 / 6.75, 9 / 6.75], 'normalised a');
  const l2 = channelImportance(model, analysis, { criterion: 'l2', normalize: false, groups: ['a'] });
  assert.deepEqual(Object.keys(l2), ['a']);
  close(l2.a, [(1 + 0.25 + 3) / 3, (4 + 9 + 8) / 3], 'l2 a');
  assert.throws(() => channelImportance(model, analysis, { groups: ['nope'] }), /no channel group 'nope'/);
  model.dispose();
});

test('bn-scale reads |gamma|, falling back to l1 where no BN carries the group; taylor needs gradients', () => {
  const model = tiny();
  const analysis = analyzeChannels(model);
  const slim = channelImportance(model, analysis, { criterion: 'bn-scale', normalize: false });
  close(slim.a, [0.5, 3], 'bn-scale a');
  close(slim.b, [3, 4, 7], 'bn-scale b falls back to l1');
  assert.throws(() => channelImportance(model, analysis, { criterion: 'taylor' }), /needs the loss gradients/);
  // Gradients of one: |w * g| = |w|, over every trained weight (BN beta and conv biases too).
  const gradients = new Map(model.layers.map((layer) => [layer.name, layer.getWeights().map((w) => tf.onesLike(w))]));
  const taylor = channelImportance(model, analysis, { criterion: 'taylor', gradients, normalize: false });
  // a: kernel column, gamma, beta (0), b's row: 4 contributions.
  close(taylor.a, [4.5 / 4, 9 / 4], 'taylor a');
  // b: its kernel column, its bias, the dense rows.
  close(taylor.b, [(3 + 0.1 + 3) / 3, (1 + 0.2 + 7) / 3, (3 + 0.3 + 11) / 3], 'taylor b');
  for (const list of gradients.values()) tf.dispose(list);
  model.dispose();
});

test('a depthwise multiplier counts each channel once; flattened rows are summed per channel', () => {
  const input = tf.input({ shape: [2, 2, 1], name: 'input' });
  const a = tf.layers.conv2d({ name: 'a', filters: 2, kernelSize: 1, useBias: false, kernelInitializer: 'ones' }).apply(input) as ST;
  const dw = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 1, depthMultiplier: 2, useBias: false, depthwiseInitializer: 'ones' }).apply(a) as ST;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(dw) as ST;
  const out = tf.layers.dense({ name: 'out', units: 1, useBias: false, kernelInitializer: 'ones' }).apply(flat) as ST;
  const model = tf.model({ inputs: input, outputs: out, name: 'dw-flat' });
  const scores = channelImportance(model, analyzeChannels(model), { normalize: false });
  // a's column (1), dw's two filters of the channel (2), the dense rows: 4 positions x 2 outputs = 8.
  close(scores.a, [11 / 3, 11 / 3], 'a');
  model.dispose();
});
