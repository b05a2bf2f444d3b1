import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { buildGraph } from '../../src/model/graph.ts';
import { analyzeChannels, fullMasks } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { buildModel } from '../../src/model/zoo.ts';
import type { ZooName } from '../../src/model/zoo.ts';
import { lcg, randomizeBatchNorm } from '../model/fixtures.ts';
import { divideNetwork } from '../../src/dir/divide.ts';
import type { Division } from '../../src/dir/divide.ts';
import {
  assemblePrunedModel,
  buildBoundaryModel,
  buildHeadModel,
  buildSubnetworkModel,
  buildTailModel,
  checkSubnetworkGroups,
  pruneSubnetwork,
} from '../../src/dir/subnetwork.ts';

before(async () => {
  await initEngine();
});

function randomInput(model: tf.LayersModel, batch: number, seed: number): tf.Tensor {
  const shape = model.inputs[0].shape.slice(1) as number[];
  return tf.randomUniform([batch, ...shape], 0, 1, 'float32', seed);
}

function run(model: tf.LayersModel, x: tf.Tensor): tf.Tensor {
  return model.apply(x, { training: false }) as tf.Tensor;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

interface Fixture {
  model: tf.LayersModel;
  analysis: ChannelAnalysis;
  division: Division;
  x: tf.Tensor;
  expected: tf.Tensor;
}

const fixtures = new Map<string, Fixture>();
function fixture(name: ZooName, pruneResidual = false): Fixture {
  const key = `${name}/${pruneResidual}`;
  let f = fixtures.get(key);
  if (!f) {
    const model = fixtures.get(`${name}/${!pruneResidual}`)?.model ?? buildModel(name, { seed: 7 });
    if (!fixtures.has(`${name}/${!pruneResidual}`)) randomizeBatchNorm(model, 11);
    const analysis = analyzeChannels(model, { pruneResidual });
    const division = divideNetwork(model, analysis);
    const x = randomInput(model, 3, 5);
    f = { model, analysis, division, x, expected: run(model, x) };
    fixtures.set(key, f);
  }
  return f;
}

/** Half of each group's channels, never none. */
function halfMasks(analysis: ChannelAnalysis, ids: readonly string[], seed: number): Record<string, Uint8Array> {
  const random = lcg(seed);
  const masks: Record<string, Uint8Array> = {};
  for (const id of ids) {
    const group = analysis.groups.find((g) => g.id === id)!;
    const mask = Uint8Array.from({ length: group.channels }, () => (random() < 0.5 ? 1 : 0));
    mask[Math.floor(random() * group.channels)] = 1;
    masks[id] = mask;
  }
  return masks;
}

for (const name of ['fmnist-resnet', 'resnet20'] as const) {
  describe(`${name}: pieces of the original network`, () => {
    test('S_K(...S_1(x)) equals the full model', () => {
      const { model, division, x, expected } = fixture(name);
      let features = x;
      for (const spec of division.subnetworks) {
        const sub = buildSubnetworkModel(model, division, spec.id);
        assert.deepEqual(sub.inputs[0].shape.slice(1), [...spec.inputShape]);
        assert.deepEqual(sub.outputs[0].shape.slice(1), [...spec.outputShape]);
        const next = run(sub, features);
        if (features !== x) features.dispose();
        features = next;
      }
      assert.ok(maxAbsDiff(features, expected) < 1e-4);
      features.dispose();
    });

    test('T_k(P_k(x)) equals the full model for every k, and P_k = buildBoundaryModel', () => {
      const { model, division, x, expected } = fixture(name);
      const boundaries = buildBoundaryModel(model, division, division.subnetworks.map((s) => s.outputTensor));
      const all = boundaries.apply(x, { training: false }) as tf.Tensor[];
      for (const [i, spec] of division.subnetworks.entries()) {
        const head = buildHeadModel(model, division, spec.id);
        const xk = run(head, x);
        assert.equal(maxAbsDiff(xk, all[i]), 0);
        const out = run(buildTailModel(model, division, spec.id), xk);
        assert.ok(maxAbsDiff(out, expected) < 1e-4, `T_${spec.index}`);
        tf.dispose([xk, out]);
      }
      tf.dispose(all);
    });

    test('groups of the standalone S_k analyse like the full model (same ids, members)', () => {
      for (const pruneResidual of [false, true]) {
        const { model, analysis, division } = fixture(name, pruneResidual);
        for (const spec of division.subnetworks) {
          const sub = buildSubnetworkModel(model, division, spec.id);
          const subAnalysis = analyzeChannels(sub, { pruneResidual });
          checkSubnetworkGroups(analysis, division, spec.id, subAnalysis);
          // And the searched groups are prunable there as well; the input is a fixed boundary.
          for (const id of spec.groupIds) assert.equal(subAnalysis.groups.find((g) => g.id === id)!.prunable, true);
          assert.equal(subAnalysis.groups.find((g) => g.boundary === 'input')!.channels, spec.inputShape[spec.inputShape.length - 1]);
        }
      }
    });

    test('building and disposing pieces leaves the original model intact', () => {
      const { model, division, x, expected } = fixture(name);
      // Disposing a model that shares the original layers only drops its reference to them.
      buildSubnetworkModel(model, division, 'k2').dispose();
      buildTailModel(model, division, 'k1').dispose();
      buildHeadModel(model, division, 'k2').dispose();
      const graph = buildGraph(model);
      assert.equal(graph.nodes.length, model.layers.length);
      assert.equal(maxAbsDiff(run(model, x), expected), 0);
    });

    test('assembling all-ones masks (and the unpruned S_k clones) equals the original', () => {
      const { model, analysis, division, x, expected } = fixture(name);
      const masks = new Map(division.subnetworks.map((s) => [s.id, Object.fromEntries(s.groupIds.map((id) => [id, fullMasks(analysis)[id]]))]));
      const clones = new Map(division.subnetworks.map((s) => [s.id, pruneSubnetwork(buildSubnetworkModel(model, division, s.id), {})]));
      const assembled = assemblePrunedModel(model, analysis, masks, clones, { division });
      assert.equal(assembled.countParams(), model.countParams());
      assert.deepEqual(assembled.layers.map((l) => l.name), model.layers.map((l) => l.name));
      assert.ok(maxAbsDiff(run(assembled, x), expected) < 1e-5);
      assembled.dispose();
      for (const clone of clones.values()) clone.dispose();
    });
  });
}

describe('disposing pieces', () => {
  test('disposing any piece never frees the original weights (fresh model, no other users)', () => {
    const model = buildModel('fmnist-resnet', { seed: 2 });
    const division = divideNetwork(model, analyzeChannels(model));
    const x = randomInput(model, 2, 1);
    const expected = run(model, x);
    buildHeadModel(model, division, 'k2').dispose();
    buildBoundaryModel(model, division, ['stage1_block1_out', 'head_dense']).dispose();
    buildSubnetworkModel(model, division, 'k1').dispose();
    buildTailModel(model, division, 'k1').dispose();
    assert.equal(maxAbsDiff(run(model, x), expected), 0);
    tf.dispose([x, expected]);
    model.dispose();
  });
});

describe('pruned sub-networks', () => {
  test('the pruned clone trains independently of the original (its weights are copies)', () => {
    const { model, division } = fixture('fmnist-resnet');
    const sub = buildSubnetworkModel(model, division, 'k2');
    const clone = pruneSubnetwork(sub, {});
    const layer = clone.getLayer('stage2_block0_conv1');
    const before = model.getLayer('stage2_block0_conv1').getWeights()[0].dataSync().slice();
    const doubled = tf.mul(layer.getWeights()[0], 2);
    layer.setWeights([doubled]);
    doubled.dispose();
    assert.deepEqual(model.getLayer('stage2_block0_conv1').getWeights()[0].dataSync(), before);
    // ...whereas the shared S_k IS the original's layer.
    assert.equal(sub.getLayer('stage2_block0_conv1'), model.getLayer('stage2_block0_conv1'));
    clone.dispose();
  });

  test('assembled model = T_k(S_k\'(P_{k-1}(x))) with recovered weights, and is physically smaller', () => {
    const { model, analysis, division, x } = fixture('fmnist-resnet');
    const spec = division.subnetworks[1];
    const masks = halfMasks(analysis, spec.groupIds, 3);
    const pruned = pruneSubnetwork(buildSubnetworkModel(model, division, spec.id), masks);
    // "Recovery": change every weight of S_k' so inherited-vs-recovered weights are told apart.
    for (const layer of pruned.layers) {
      const weights = layer.getWeights();
      if (weights.length === 0) continue;
      // Adding a positive amount keeps BN moving variances positive.
      const changed = weights.map((w, i) => tf.tidy(() => tf.add(w, tf.randomUniform(w.shape, 0, 0.1, 'float32', i + 1))));
      layer.setWeights(changed);
      tf.dispose(changed);
    }
    const assembled = assemblePrunedModel(model, analysis, { [spec.id]: masks }, { [spec.id]: pruned }, { division });
    assert.ok(assembled.countParams() < model.countParams());
    const previous = run(buildHeadModel(model, division, 'k1'), x);
    const mid = run(pruned, previous);
    const expected = run(buildTailModel(model, division, spec.id), mid);
    assert.ok(maxAbsDiff(run(assembled, x), expected) < 1e-4);
    // Without the recovered weights the assembly differs (it inherits the original kept weights).
    const inherited = assemblePrunedModel(model, analysis, { [spec.id]: masks });
    assert.ok(maxAbsDiff(run(inherited, x), expected) > 1e-3);
    tf.dispose([previous, mid, expected]);
    assembled.dispose();
    inherited.dispose();
    pruned.dispose();
  });

  test('mismatched masks and recovered model: error names the layer and the shapes', () => {
    const { model, analysis, division } = fixture('fmnist-resnet');
    const spec = division.subnetworks[0];
    const masks = halfMasks(analysis, spec.groupIds, 4);
    const other = halfMasks(analysis, spec.groupIds, 5);
    const pruned = pruneSubnetwork(buildSubnetworkModel(model, division, spec.id), other);
    assert.throws(
      () => assemblePrunedModel(model, analysis, { k1: masks }, { k1: pruned }),
      /sub-network k1: recovered weights of layer '[a-z0-9_]+' have shapes \[.*\], the pruned model's layer has/,
    );
    pruned.dispose();
  });

  test('masks for a group another sub-network searches are refused', () => {
    const { model, analysis, division } = fixture('fmnist-resnet');
    const foreign = halfMasks(analysis, [division.subnetworks[2].groupIds[0]], 1);
    assert.throws(
      () => assemblePrunedModel(model, analysis, { k1: foreign }, {}, { division }),
      /sub-network k1: mask for group 'stage3_block0_conv1', which it does not search/,
    );
    const mine = halfMasks(analysis, [division.subnetworks[0].groupIds[0]], 1);
    assert.throws(() => assemblePrunedModel(model, analysis, { k1: mine, k2: mine }), /group 'stem_conv' has masks from sub-networks k1 and k2/);
  });

  test('pruneSubnetwork refuses to prune the boundary input', () => {
    const { model, division } = fixture('fmnist-resnet');
    const sub = buildSubnetworkModel(model, division, 'k2');
    const inputGroup = analyzeChannels(sub).groups.find((g) => g.boundary === 'input')!;
    const mask = new Uint8Array(inputGroup.channels).fill(1);
    mask[0] = 0;
    assert.throws(() => pruneSubnetwork(sub, { [inputGroup.id]: mask }), /fmnist-resnet_k2.*cannot be pruned/);
  });
});
