import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { countCost } from '../../src/model/cost.ts';
import { buildGraph, cutPoints } from '../../src/model/graph.ts';
import { analyzeChannels, groupLayers } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { buildModel } from '../../src/model/zoo.ts';
import type { ZooName } from '../../src/model/zoo.ts';
import { DivideError, divideNetwork, findSubnetwork, parseDivision, subnetworkCost } from '../../src/dir/divide.ts';
import type { Division } from '../../src/dir/divide.ts';

before(async () => {
  await initEngine();
});

const analyses = new Map<string, { model: ReturnType<typeof buildModel>; analysis: ChannelAnalysis }>();
function analysed(name: ZooName, pruneResidual = false): { model: ReturnType<typeof buildModel>; analysis: ChannelAnalysis } {
  const key = `${name}/${pruneResidual}`;
  let entry = analyses.get(key);
  if (!entry) {
    const model = analyses.get(`${name}/${!pruneResidual}`)?.model ?? buildModel(name);
    entry = { model, analysis: analyzeChannels(model, { pruneResidual }) };
    analyses.set(key, entry);
  }
  return entry;
}

/** The invariants every division must satisfy, whatever the cuts. */
function checkInvariants(division: Division, analysis: ChannelAnalysis): void {
  const graph = analysis.graph;
  const nonInput = graph.nodes.filter((n) => n.className !== 'InputLayer').map((n) => n.name);
  // Pieces partition the layers, contiguously in topological order.
  assert.deepEqual(division.subnetworks.flatMap((s) => s.layers), nonInput);
  assert.equal(division.subnetworks.length, division.cuts.length + 1);
  division.subnetworks.forEach((s, i) => {
    assert.equal(s.id, `k${i + 1}`);
    assert.equal(s.index, i + 1);
    assert.equal(s.inputTensor, i === 0 ? graph.inputs[0] : division.cuts[i - 1]);
    assert.equal(s.outputTensor, i === division.cuts.length ? graph.outputs[0] : division.cuts[i]);
    assert.equal(s.layers[s.layers.length - 1], s.outputTensor);
    assert.ok(s.groupIds.length > 0, `${s.id} searches nothing`);
  });
  // Every searched group lies wholly inside its piece and is not carried by a cut tensor.
  const cutGroups = new Set(
    division.cuts.flatMap((cut) => analysis.layers.find((l) => l.name === cut)!.output.segments.map((seg) => seg.group)),
  );
  const seen = new Set<string>();
  for (const s of division.subnetworks) {
    const inside = new Set(s.layers);
    let genome = 0;
    for (const id of s.groupIds) {
      assert.ok(!seen.has(id), `group ${id} searched twice`);
      seen.add(id);
      assert.ok(!cutGroups.has(id), `group ${id} is on a cut but searched by ${s.id}`);
      const group = analysis.groups.find((g) => g.id === id)!;
      assert.equal(group.boundary, null);
      for (const layer of groupLayers(group)) assert.ok(inside.has(layer), `group ${id} member ${layer} outside ${s.id}`);
      genome += group.channels;
    }
    assert.equal(s.genomeLength, genome);
  }
  for (const e of division.excludedGroups) assert.ok(cutGroups.has(e.id));
  // Costs add up.
  const cost = countCost(analysis);
  assert.equal(division.totalMacs, cost.macs);
  assert.equal(division.totalParams, cost.params);
  assert.equal(division.subnetworks.reduce((a, s) => a + s.macs, 0), cost.macs);
  assert.equal(division.subnetworks.reduce((a, s) => a + s.params, 0), cost.params);
  assert.equal(division.fixedMacs + division.subnetworks.reduce((a, s) => a + s.prunableMacs, 0), cost.macs);
  assert.equal(division.fixedParams + division.subnetworks.reduce((a, s) => a + s.prunableParams, 0), cost.params);
  // Plain JSON data (it is the manifest), and it parses back.
  assert.deepEqual(JSON.parse(JSON.stringify(division)), division);
  assert.deepEqual(parseDivision(JSON.parse(JSON.stringify(division))), division);
}

describe('divideNetwork defaults', () => {
  test('fmnist-resnet: one sub-network per stage, stem first, head last', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    const division = divideNetwork(model, analysis);
    checkInvariants(division, analysis);
    assert.equal(division.method, 'stages');
    assert.deepEqual(division.cuts, ['stage1_block1_out', 'stage2_block1_out']);
    const [k1, k2, k3] = division.subnetworks;
    assert.equal(k1.layers[0], 'stem_conv');
    assert.deepEqual(k3.layers.slice(-2), ['pool', 'head_dense']);
    assert.deepEqual(k1.groupIds, ['stem_conv', 'stage1_block0_conv1', 'stage1_block1_conv1']);
    assert.deepEqual(k2.groupIds, ['stage2_block0_conv1', 'stage2_block1_conv1']);
    assert.deepEqual(k1.inputShape, [28, 28, 1]);
    assert.deepEqual(k1.outputShape, [14, 14, 16]);
    assert.deepEqual(k3.outputShape, [10]);
    assert.deepEqual(division.excludedGroups, []);
  });

  test('resnet20 with pruneResidual: residual groups on a cut are excluded, inner ones searched', () => {
    const { model, analysis } = analysed('resnet20', true);
    const division = divideNetwork(model, analysis);
    checkInvariants(division, analysis);
    assert.deepEqual(division.cuts, ['stage1_block2_out', 'stage2_block2_out']);
    // The stage-1 residual stream starts at the stem (identity shortcuts) and is the first cut's tensor.
    assert.deepEqual(
      division.excludedGroups.map((e) => [e.id, e.cut]),
      [
        ['stem_conv', 'stage1_block2_out'],
        ['stage2_block0_conv2', 'stage2_block2_out'],
      ],
    );
    // The last stage's residual stream ends at the head: wholly inside k3, so it is searched.
    assert.ok(division.subnetworks[2].groupIds.includes('stage3_block0_conv2'));
    assert.ok(!division.subnetworks[0].groupIds.includes('stem_conv'));
    assert.equal(division.pruneResidual, true);
    // Without pruneResidual no residual group is searched at all.
    const plain = divideNetwork(model, analysed('resnet20').analysis);
    checkInvariants(plain, analysed('resnet20').analysis);
    assert.ok(!plain.subnetworks[2].groupIds.includes('stage3_block0_conv2'));
  });

  test('vgg16: one sub-network per block, cut after each block pool', () => {
    const { model, analysis } = analysed('vgg16');
    const division = divideNetwork(model, analysis);
    checkInvariants(division, analysis);
    assert.deepEqual(division.cuts, ['block1_pool', 'block2_pool', 'block3_pool', 'block4_pool']);
    // In a plain chain the cut tensor carries the block's last conv channels: not searched.
    assert.deepEqual(
      division.excludedGroups.map((e) => e.id),
      ['block1_conv2', 'block2_conv2', 'block3_conv3', 'block4_conv3'],
    );
  });

  test('candidates keep one layer per run of tensors with the same channels', () => {
    const { model, analysis } = analysed('resnet20');
    const division = divideNetwork(model, analysis);
    const all = cutPoints(buildGraph(model));
    assert.ok(division.candidates.every((c) => all.includes(c)));
    assert.ok(division.candidates.includes('stem_relu'));
    assert.ok(!division.candidates.includes('stem_bn'));
    assert.ok(!division.candidates.includes('stage1_block0_add'));
    assert.ok(!division.candidates.includes('input'));
  });
});

describe('divideNetwork on a model without zoo names', () => {
  type ST = tf.SymbolicTensor;
  /** conv-relu chain over three resolutions (8x8, 4x4, 2x2), a residual pair at 4x4, GAP + dense. */
  function chainToy(): tf.LayersModel {
    const input = tf.input({ shape: [8, 8, 3], name: 'image' });
    const conv = (x: ST, name: string, filters: number, strides = 1): ST =>
      tf.layers.activation({ name: `${name}_act`, activation: 'relu' }).apply(
        tf.layers.conv2d({ name, filters, kernelSize: 3, strides, padding: 'same' }).apply(x) as ST,
      ) as ST;
    const a = conv(conv(input, 'a1', 4), 'a2', 4);
    const b1 = conv(a, 'b1', 6, 2);
    const b2 = conv(b1, 'b2', 6);
    const b3 = tf.layers.conv2d({ name: 'b3', filters: 6, kernelSize: 3, padding: 'same' }).apply(b2) as ST;
    const sum = tf.layers.add({ name: 'sum' }).apply([b3, b1]) as ST;
    const c = conv(conv(sum, 'c1', 8, 2), 'c2', 8);
    const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as ST;
    const logits = tf.layers.dense({ name: 'logits', units: 3 }).apply(pooled) as ST;
    return tf.model({ inputs: input, outputs: logits, name: 'chain-toy' });
  }

  test('one sub-network per spatial resolution, cut at the last tensor of each', () => {
    const model = chainToy();
    const analysis = analyzeChannels(model);
    const division = divideNetwork(model, analysis);
    checkInvariants(division, analysis);
    assert.equal(division.method, 'resolutions');
    // a2_act carries a2's channels (excluded); sum carries the residual group (never prunable).
    assert.deepEqual(division.cuts, ['a2_act', 'sum']);
    assert.deepEqual(division.subnetworks.map((s) => s.groupIds), [['a1'], ['b2'], ['c1', 'c2']]);
    assert.deepEqual(division.excludedGroups.map((e) => [e.id, e.cut]), [['a2', 'a2_act']]);
    assert.equal(division.subnetworks[0].inputTensor, 'image');
  });

  test('a resolution with nothing to search joins the next sub-network', () => {
    const input = tf.input({ shape: [8, 8, 3], name: 'image' });
    const first = tf.layers.conv2d({ name: 'only', filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as ST;
    const down = tf.layers.maxPooling2d({ name: 'down', poolSize: 2 }).apply(first) as ST;
    const second = tf.layers.conv2d({ name: 'second', filters: 4, kernelSize: 3, padding: 'same' }).apply(down) as ST;
    const third = tf.layers.conv2d({ name: 'third', filters: 4, kernelSize: 3, padding: 'same' }).apply(second) as ST;
    const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(third) as ST;
    const logits = tf.layers.dense({ name: 'logits', units: 3 }).apply(pooled) as ST;
    const model = tf.model({ inputs: input, outputs: logits, name: 'merge-toy' });
    const analysis = analyzeChannels(model);
    const division = divideNetwork(model, analysis);
    checkInvariants(division, analysis);
    // Cutting at 'down' would leave the 8x8 piece with nothing to search ('only' is on the cut).
    assert.deepEqual(division.cuts, []);
    assert.deepEqual(division.subnetworks[0].groupIds, ['only', 'second', 'third']);
  });
});

describe('divideNetwork balanced (subnetworks: K)', () => {
  /** Every (K-1)-subset of the candidates, in order. */
  function* combinations(items: readonly string[], k: number, start = 0): Generator<string[]> {
    if (k === 0) {
      yield [];
      return;
    }
    for (let i = start; i <= items.length - k; i++) for (const rest of combinations(items, k - 1, i + 1)) yield [items[i], ...rest];
  }

  for (const k of [2, 3, 4]) {
    test(`resnet20 K=${k}: the DP is optimal (brute force over every cut set)`, () => {
      const { model, analysis } = analysed('resnet20');
      const division = divideNetwork(model, analysis, { subnetworks: k });
      checkInvariants(division, analysis);
      assert.equal(division.method, 'balanced');
      assert.equal(division.subnetworks.length, k);
      const worst = (d: Division): number => Math.max(...d.subnetworks.map((s) => s.prunableMacs));
      let best = Infinity;
      for (const cuts of combinations(division.candidates, k - 1)) {
        let d: Division;
        try {
          d = divideNetwork(model, analysis, { cuts });
        } catch {
          continue;
        }
        if (d.subnetworks.some((s) => s.groupIds.length === 0)) continue;
        best = Math.min(best, worst(d));
      }
      assert.equal(worst(division), best);
    });
  }

  test('K=1 is the whole network', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    const division = divideNetwork(model, analysis, { subnetworks: 1 });
    checkInvariants(division, analysis);
    assert.deepEqual(division.cuts, []);
    assert.equal(division.subnetworks[0].groupIds.length, analysis.groups.filter((g) => g.prunable).length);
  });

  test('vgg16 K=2 does not prefer cuts that drop big groups: pieces are balanced in touched MACs', () => {
    const { model, analysis } = analysed('vgg16');
    const division = divideNetwork(model, analysis, { subnetworks: 2 });
    checkInvariants(division, analysis);
    const [a, b] = division.subnetworks.map((s) => s.macs);
    assert.ok(Math.max(a, b) / Math.min(a, b) < 1.5, `unbalanced ${a} vs ${b}`);
  });

  test('too many sub-networks is an error naming the model and the maximum', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    assert.throws(() => divideNetwork(model, analysis, { subnetworks: 20 }), (error: Error) => {
      assert.ok(error instanceof DivideError);
      assert.match(error.message, /fmnist-resnet.*20 sub-networks.*at most \d+/);
      return true;
    });
    assert.throws(() => divideNetwork(model, analysis, { subnetworks: 0 }), /positive integer/);
  });
});

describe('explicit cuts, lookup and cost', () => {
  test('a layer that is not a cut point is refused by name', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    assert.throws(() => divideNetwork(model, analysis, { cuts: ['stage1_block0_conv1'] }), /'stage1_block0_conv1' is not a cut point/);
    assert.throws(() => divideNetwork(model, analysis, { cuts: ['nope'] }), /cut 'nope' is not a layer/);
    assert.throws(
      () => divideNetwork(model, analysis, { cuts: ['stage2_block0_out', 'stage1_block0_out'] }),
      /out of order/,
    );
  });

  test('findSubnetwork by id or index', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    const division = divideNetwork(model, analysis);
    assert.equal(findSubnetwork(division, 'k2').index, 2);
    assert.equal(findSubnetwork(division, 3).id, 'k3');
    assert.throws(() => findSubnetwork(division, 'k9'), /no sub-network "k9".*k1, k2, k3/);
  });

  test('subnetworkCost: unpruned equals the division; masks reduce only the prunable part', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    const division = divideNetwork(model, analysis);
    const k2 = division.subnetworks[1];
    const full = subnetworkCost(analysis, division, 'k2', {});
    assert.deepEqual(full, { macs: k2.macs, params: k2.params, prunableMacs: k2.prunableMacs, prunableParams: k2.prunableParams });
    const id = k2.groupIds[0];
    const channels = analysis.groups.find((g) => g.id === id)!.channels;
    const half = new Uint8Array(channels).map((_, i) => (i % 2 === 0 ? 1 : 0));
    // A mask of another sub-network's group is ignored for k2.
    const other = division.subnetworks[0].groupIds[0];
    const otherMask = new Uint8Array(analysis.groups.find((g) => g.id === other)!.channels);
    otherMask[0] = 1;
    const pruned = subnetworkCost(analysis, division, 'k2', { [id]: half, [other]: otherMask });
    const whole = countCost(analysis, { [id]: half });
    assert.equal(k2.macs - pruned.macs, countCost(analysis).macs - whole.macs);
    assert.equal(k2.prunableMacs - pruned.prunableMacs, k2.macs - pruned.macs);
    assert.ok(pruned.macs < k2.macs);
  });

  test('parseDivision names the bad field', () => {
    const { model, analysis } = analysed('fmnist-resnet');
    const json = JSON.parse(JSON.stringify(divideNetwork(model, analysis))) as { subnetworks: { outputTensor: string; groupIds: string[] }[] };
    json.subnetworks[0].outputTensor = 'stage1_block0_out';
    assert.throws(() => parseDivision(json, 'runs/r/manifest.json'), /runs\/r\/manifest.json: invalid division:[\s\S]*must be the cut 'stage1_block1_out'[\s\S]*subnetworks\[0\]\.outputTensor/);
    json.subnetworks[0].outputTensor = 'stage1_block1_out';
    json.subnetworks[1].groupIds.push('stem_conv');
    assert.throws(() => parseDivision(json), /group 'stem_conv' is searched twice/);
  });

  test('the analysis must be of the model', () => {
    const { analysis } = analysed('fmnist-resnet');
    assert.throws(() => divideNetwork(analysed('resnet20').model, analysis), /analysis is of model 'fmnist-resnet', not of 'resnet20'/);
  });
});
