import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../src/engine/backend.ts';
import {
  analyzeChannels,
  findGroup,
  fullMasks,
  genomeFromMasks,
  genomeLength,
  genomeSlots,
  masksFromGenome,
  groupLayers,
  keptIndices,
  layerChannels,
  prunableChannels,
  validateMasks,
} from '../../src/model/groups.ts';
import type { ChannelGroup } from '../../src/model/groups.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { concatToy } from './fixtures.ts';

before(async () => {
  await initEngine();
});

const layersOf = (members: ChannelGroup['producers']): string[] => members.map((m) => m.layer);

test('concat toy: groups, segments, offsets and the flatten layout', () => {
  const analysis = analyzeChannels(concatToy());
  assert.deepEqual(
    analysis.groups.map((g) => [g.id, g.channels, g.residual, g.prunable, g.boundary]),
    [
      ['input', 3, false, false, 'input'],
      ['a_conv', 4, false, true, null],
      ['b_conv', 3, false, true, null],
      ['pw_conv', 5, true, false, null],
      ['logits', 3, false, false, 'output'],
    ],
  );
  const a = findGroup(analysis, 'a_conv');
  assert.deepEqual(layersOf(a.producers), ['a_conv']);
  assert.deepEqual(layersOf(a.passThrough), ['a_bn', 'a_relu', 'cat', 'cat_bn', 'dw', 'dw_relu']);
  assert.deepEqual(layersOf(a.consumers).sort(), ['pw_conv', 'skip_conv']);
  const b = findGroup(analysis, 'b_conv');
  assert.deepEqual(layersOf(b.passThrough), ['b_relu', 'cat', 'cat_bn', 'dw', 'dw_relu']);
  assert.deepEqual(layersOf(b.consumers).sort(), ['pw_conv', 'skip_conv']);
  const pw = findGroup(analysis, 'pw_conv');
  assert.deepEqual(layersOf(pw.producers).sort(), ['pw_conv', 'skip_conv']);
  assert.deepEqual(pw.consumers, [{ layer: 'logits', className: 'Dense' }]);
  assert.equal(prunableChannels(analysis), 7);

  // The dense reads a 5x5x5 map flattened: 25 positions of interleaved channels.
  const dense = layerChannels(analysis, 'logits');
  assert.deepEqual(dense.inputs[0], {
    kind: 'flatten',
    channels: 5,
    spatial: 25,
    segments: [{ group: 'pw_conv', offset: 0, start: 0, channels: 5 }],
  });
  // b's channels sit behind a's 4 in the concatenation.
  const cat = layerChannels(analysis, 'cat');
  assert.deepEqual(cat.output.segments, [
    { group: 'a_conv', offset: 0, start: 0, channels: 4 },
    { group: 'b_conv', offset: 4, start: 0, channels: 3 },
  ]);
  assert.deepEqual(groupLayers(a), ['a_conv', 'a_bn', 'a_relu', 'cat', 'cat_bn', 'dw', 'dw_relu', 'pw_conv', 'skip_conv']);
  // The whole analysis is plain data (a manifest can carry it).
  assert.deepEqual(JSON.parse(JSON.stringify(analysis)), analysis);
});

test('kept indices follow segments and the NHWC flatten interleaving', () => {
  const analysis = analyzeChannels(concatToy(), { pruneResidual: true });
  const masks = { a_conv: Uint8Array.from([1, 0, 1, 1]), b_conv: Uint8Array.from([0, 1, 0]), pw_conv: Uint8Array.from([0, 1, 0, 0, 1]) };
  validateMasks(analysis, masks);
  assert.deepEqual([...keptIndices(layerChannels(analysis, 'cat').output, masks)], [0, 2, 3, 5]);
  const rows = keptIndices(layerChannels(analysis, 'logits').inputs[0], masks);
  assert.equal(rows.length, 25 * 2);
  assert.deepEqual([...rows.slice(0, 6)], [1, 4, 6, 9, 11, 14]);
  assert.deepEqual([...rows.slice(-2)], [24 * 5 + 1, 24 * 5 + 4]);
  assert.equal(findGroup(analysis, 'pw_conv').prunable, true);
});

test('resnet20: one prunable group per block, residual streams tied per stage', () => {
  const analysis = analyzeChannels(buildModel('resnet20'));
  const ids = analysis.groups.map((g) => g.id);
  assert.equal(analysis.groups.length, 14);
  assert.equal(ids[0], 'input');
  assert.equal(ids[ids.length - 1], 'head_dense');
  const inBlock = analysis.groups.filter((g) => g.prunable);
  assert.deepEqual(
    inBlock.map((g) => g.id),
    [0, 1, 2].flatMap((s) => [0, 1, 2].map((b) => `stage${s + 1}_block${b}_conv1`)),
  );
  for (const g of inBlock) {
    const block = g.id.replace(/_conv1$/, '');
    assert.deepEqual(layersOf(g.producers), [`${block}_conv1`]);
    assert.deepEqual(layersOf(g.passThrough), [`${block}_bn1`, `${block}_relu1`]);
    assert.deepEqual(layersOf(g.consumers), [`${block}_conv2`]);
  }
  const residual = analysis.groups.filter((g) => g.residual);
  assert.deepEqual(residual.map((g) => [g.id, g.channels]), [['stem_conv', 16], ['stage2_block0_conv2', 32], ['stage3_block0_conv2', 64]]);
  const stage1 = findGroup(analysis, 'stem_conv');
  assert.deepEqual(layersOf(stage1.producers), ['stem_conv', 'stage1_block0_conv2', 'stage1_block1_conv2', 'stage1_block2_conv2']);
  assert.ok(layersOf(stage1.consumers).includes('stage2_block0_shortcut_conv'));
  const stage3 = findGroup(analysis, 'stage3_block0_conv2');
  assert.ok(layersOf(stage3.producers).includes('stage3_block0_shortcut_conv'));
  assert.deepEqual(stage3.consumers.map((m) => m.layer).at(-1), 'head_dense');
  assert.equal(findGroup(analysis, 'head_dense').boundary, 'output');
  assert.equal(prunableChannels(analysis), 3 * 16 + 3 * 32 + 3 * 64);

  const withResidual = analyzeChannels(buildModel('resnet20'), { pruneResidual: true });
  assert.deepEqual(
    withResidual.groups.filter((g) => g.prunable).length,
    12,
    'residual groups become prunable, input and output never',
  );
  assert.equal(findGroup(withResidual, 'head_dense').prunable, false);
  assert.equal(findGroup(withResidual, 'input').prunable, false);
});

test('vgg16: every conv is its own prunable group; bottleneck resnet50 has two per block', () => {
  const vgg = analyzeChannels(buildModel('vgg16', { widthMultiplier: 0.125 }));
  assert.equal(vgg.groups.filter((g) => g.prunable).length, 13);
  assert.ok(vgg.groups.every((g) => !g.residual));
  const full = fullMasks(vgg);
  assert.equal(Object.keys(full).length, 13);
  assert.ok(Object.values(full).every((m) => m.every((bit) => bit === 1)));

  const r50 = analyzeChannels(buildModel('resnet50', { inputShape: [32, 32, 3], widthMultiplier: 0.125 }));
  const prunable = r50.groups.filter((g) => g.prunable).map((g) => g.id);
  // 16 bottleneck blocks x (conv1, conv2), plus the stem (its output meets a projection shortcut, no Add).
  assert.equal(prunable.length, 33);
  assert.equal(prunable[0], 'stem_conv');
  assert.ok(prunable.includes('stage4_block2_conv2'));
  assert.equal(r50.groups.filter((g) => g.residual).length, 4);
});

test('masks are validated with errors naming the group', () => {
  const analysis = analyzeChannels(concatToy());
  assert.throws(() => validateMasks(analysis, { nope: new Uint8Array(1) }), /no channel group 'nope'.*groups: input, a_conv/);
  assert.throws(() => validateMasks(analysis, { a_conv: Uint8Array.from([1, 1]) }), /'a_conv' has 2 entries, the group has 4/);
  assert.throws(() => validateMasks(analysis, { b_conv: new Uint8Array(3) }), /'b_conv' keeps no channel/);
  assert.throws(() => validateMasks(analysis, { logits: Uint8Array.from([1, 1, 0]) }), /'logits' is the model's output/);
  assert.throws(() => validateMasks(analysis, { input: Uint8Array.from([1, 0, 1]) }), /'input' is the model's input/);
  // Whole masks of fixed groups are harmless; residual groups may be cut physically.
  validateMasks(analysis, { logits: Uint8Array.from([1, 1, 1]), pw_conv: Uint8Array.from([1, 0, 1, 1, 1]) });
});

test('genome layout: prunable groups back to back; masks view the genome and round-trip', () => {
  const analysis = analyzeChannels(concatToy());
  const slots = genomeSlots(analysis);
  assert.deepEqual(slots, [
    { group: 'a_conv', start: 0, channels: 4 },
    { group: 'b_conv', start: 4, channels: 3 },
  ]);
  assert.equal(genomeLength(slots), prunableChannels(analysis));
  const genome = Uint8Array.from([1, 0, 1, 1, 0, 1, 1]);
  const masks = masksFromGenome(slots, genome);
  assert.deepEqual([...masks.a_conv], [1, 0, 1, 1]);
  assert.deepEqual([...masks.b_conv], [0, 1, 1]);
  validateMasks(analysis, masks);
  assert.deepEqual(genomeFromMasks(slots, masks), genome);
  assert.deepEqual([...genomeFromMasks(slots, {})], [1, 1, 1, 1, 1, 1, 1]);
  // An explicit list may include a residual group (a search allowed to cut it).
  const withResidual = genomeSlots(analysis, ['pw_conv', 'b_conv']);
  assert.deepEqual(withResidual.map((s) => [s.group, s.start]), [['pw_conv', 0], ['b_conv', 5]]);
  assert.throws(() => masksFromGenome(slots, new Uint8Array(6)), /genome has 6 bits, the layout needs 7/);
  assert.throws(() => genomeSlots(analysis, ['nope']), /no channel group 'nope'/);
});
