import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { costOfLayers, countCost, countTotals } from '../../src/model/cost.ts';
import { masksKeeping, pruneModel } from '../../src/model/prune.ts';
import { buildModel } from '../../src/model/zoo.ts';

before(async () => {
  await initEngine();
});

type ST = tf.SymbolicTensor;

/** conv3x3(4, bias) -> bn -> relu -> maxpool2 -> depthwise3x3 -> conv1x1(6, no bias) -> flatten -> dense(5). */
function handToy(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'input' });
  let x = tf.layers.conv2d({ name: 'c1', filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as ST;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as ST;
  x = tf.layers.activation({ name: 'relu', activation: 'relu' }).apply(x) as ST;
  x = tf.layers.maxPooling2d({ name: 'pool', poolSize: 2 }).apply(x) as ST;
  x = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same' }).apply(x) as ST;
  x = tf.layers.conv2d({ name: 'c2', filters: 6, kernelSize: 1, useBias: false }).apply(x) as ST;
  x = tf.layers.flatten({ name: 'flat' }).apply(x) as ST;
  x = tf.layers.dense({ name: 'fc', units: 5 }).apply(x) as ST;
  return tf.model({ inputs: input, outputs: x, name: 'hand-toy' });
}

function byLayer(report: ReturnType<typeof countCost>): Record<string, [number, number]> {
  return Object.fromEntries(report.layers.map((l) => [l.name, [l.macs, l.params]]));
}

test('hand-computed toy: exact MACs and params, unpruned and pruned', () => {
  const model = handToy();
  const analysis = analyzeChannels(model);
  const full = countCost(analysis);
  assert.deepEqual(byLayer(full), {
    input: [0, 0],
    c1: [3 * 3 * 3 * 4 * 8 * 8, 3 * 3 * 3 * 4 + 4], // 6912, 112
    bn: [0, 4 * 4], // gamma, beta, moving mean, moving variance
    relu: [0, 0],
    pool: [0, 0],
    dw: [3 * 3 * 4 * 4 * 4, 3 * 3 * 4 + 4], // 576, 40
    c2: [4 * 6 * 4 * 4, 4 * 6], // 384, 24
    flat: [0, 0],
    fc: [96 * 5, 96 * 5 + 5], // 480, 485
  });
  assert.equal(full.macs, 8352);
  assert.equal(full.params, 677);
  assert.equal(full.params, model.countParams());

  // Keep 2 of c1's 4 channels and 3 of c2's 6.
  const masks = masksKeeping(analysis, { c1: [0, 3], c2: [1, 2, 5] });
  const pruned = countCost(analysis, masks);
  assert.deepEqual(byLayer(pruned), {
    input: [0, 0],
    c1: [3 * 3 * 3 * 2 * 64, 3 * 3 * 3 * 2 + 2], // 3456, 56
    bn: [0, 8],
    relu: [0, 0],
    pool: [0, 0],
    dw: [3 * 3 * 2 * 16, 3 * 3 * 2 + 2], // 288, 20
    c2: [2 * 3 * 16, 2 * 3], // 96, 6
    flat: [0, 0],
    fc: [48 * 5, 48 * 5 + 5], // 240, 245
  });
  assert.deepEqual(countTotals(analysis, masks), { macs: 4080, params: 335 });
  const fc = pruned.layers.find((l) => l.name === 'fc')!;
  assert.equal(fc.inChannels, 48);
  assert.deepEqual(pruned.layers.find((l) => l.name === 'flat')!.outputShape, [null, 48]);
  assert.throws(() => countCost(analysis, { nope: new Uint8Array(1) }), /no channel group 'nope'/);
  assert.deepEqual(costOfLayers(full, ['c1', 'bn', 'relu']), { macs: 6912, params: 128 });
  assert.deepEqual(costOfLayers(pruned, ['c2', 'fc']), { macs: 336, params: 251 });
  assert.throws(() => costOfLayers(full, ['c1', 'c3']), /no layer named 'c3'/);
  model.dispose();
});

function withinPercent(actual: number, expected: number, percent: number, what: string): void {
  const off = (Math.abs(actual - expected) / expected) * 100;
  assert.ok(off <= percent, `${what}: ${actual} is ${off.toFixed(2)}% from ${expected}`);
}

test('published sizes: ResNet-56 125.5M MACs / 0.85M params, ResNet-50 4.1G / 25.6M (within 2%)', () => {
  const r56 = buildModel('resnet56');
  const c56 = countCost(analyzeChannels(r56));
  withinPercent(c56.macs, 125.5e6, 2, 'resnet56 MACs');
  withinPercent(c56.params, 0.85e6, 2, 'resnet56 params');
  assert.equal(c56.params, r56.countParams());
  r56.dispose();
  const r50 = buildModel('resnet50');
  const c50 = countCost(analyzeChannels(r50));
  withinPercent(c50.macs, 4.1e9, 2, 'resnet50 MACs');
  withinPercent(c50.params, 25.6e6, 2, 'resnet50 params');
  assert.equal(c50.params, r50.countParams());
  r50.dispose();
});

function halfMasks(analysis: ChannelAnalysis): Record<string, Uint8Array> {
  const masks: Record<string, Uint8Array> = {};
  let toggle = 0;
  for (const group of analysis.groups) {
    if (!group.prunable) continue;
    // Keep channels 0, 2, 4, ... in one group and 0, 1, 3, 6, 10, ... (sparser) in the next.
    masks[group.id] = Uint8Array.from({ length: group.channels }, (_, c) =>
      toggle % 2 === 0 ? Number(c % 2 === 0) : Number(Number.isInteger((Math.sqrt(8 * c + 1) - 1) / 2)),
    );
    toggle++;
  }
  return masks;
}

for (const [name, build] of [
  ['resnet20', () => buildModel('resnet20')],
  ['fmnist-resnet', () => buildModel('fmnist-resnet')],
  ['vgg16 (width 1/4)', () => buildModel('vgg16', { widthMultiplier: 0.25 })],
  ['hand toy', handToy],
] as const) {
  test(`${name}: analytic cost of a mask set equals the cost of the physically pruned model`, () => {
    const model = build();
    // Residual groups too, so that residual consumers and producers are covered.
    const analysis = analyzeChannels(model, { pruneResidual: true });
    assert.equal(countCost(analysis).params, model.countParams());
    const masks = halfMasks(analysis);
    const analytic = countCost(analysis, masks);
    const pruned = pruneModel(model, masks, { analysis });
    const physical = countCost(analyzeChannels(pruned));
    assert.deepEqual(analytic.layers, physical.layers);
    assert.equal(analytic.macs, physical.macs);
    assert.equal(analytic.params, pruned.countParams());
    assert.ok(analytic.macs < countCost(analysis).macs);
    pruned.dispose();
    model.dispose();
  });
}
