/**
 * The corpus of real architectures against the pruning library's invariants, on random legal
 * masks (fast-check): the pruned model builds and runs with the same output shape; the analytic
 * cost equals a fresh count of the pruned model (and tfjs' own parameter count); pruning nothing
 * is the identity; and pruning equals zeroing, in the unpruned model, every weight that reads a
 * dropped channel (the check that channel coupling is complete and exact).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { countTotals } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import type { ChannelAnalysis, ChannelGroup } from '../../src/model/groups.ts';
import { pruneModel } from '../../src/model/prune.ts';
import { buildModel } from '../../src/model/zoo.ts';
import type { ZooName } from '../../src/model/zoo.ts';
import { divideNetwork } from '../../src/dir/divide.ts';
import { randomizeAllButKernels, zeroDroppedReads } from './fixtures.ts';

before(async () => {
  await initEngine();
});

/**
 * Each corpus model at 28x28x1 (Fashion-MNIST's shape; VGG's five 2x2 pools need 32x32),
 * narrowed so 20 cases stay quick.
 */
const CORPUS: readonly { name: ZooName; widthMultiplier: number; size?: number }[] = [
  { name: 'resnet20', widthMultiplier: 0.5 },
  { name: 'resnet50', widthMultiplier: 0.125 },
  { name: 'vgg16', widthMultiplier: 0.125, size: 32 },
  { name: 'mobilenetv2', widthMultiplier: 0.35 },
  { name: 'mobilenetv3-small', widthMultiplier: 0.5 },
  { name: 'efficientnet-b0', widthMultiplier: 0.25 },
  { name: 'densenet', widthMultiplier: 0.25 },
  { name: 'xception', widthMultiplier: 0.125 },
  { name: 'inception-resnet', widthMultiplier: 0.25 },
  { name: 'unet', widthMultiplier: 0.5 },
];

const RUNS = 20;

/** Masks over every group that may be cut physically (residual ones included), each keeping >= 1 channel. */
function masksArbitrary(groups: readonly ChannelGroup[]): fc.Arbitrary<Record<string, Uint8Array>> {
  const perGroup = groups.map((group) =>
    fc
      .tuple(fc.boolean(), fc.uint8Array({ minLength: group.channels, maxLength: group.channels, min: 0, max: 1 }), fc.nat(group.channels - 1))
      .map(([cut, bits, anchor]) => {
        if (!cut) return undefined;
        const mask = Uint8Array.from(bits);
        mask[anchor] = 1;
        return mask;
      }),
  );
  return fc.tuple(...perGroup).map((masks) => {
    const out: Record<string, Uint8Array> = {};
    masks.forEach((mask, i) => {
      if (mask) out[groups[i].id] = mask;
    });
    return out;
  });
}

function outputs(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

for (const { name, widthMultiplier, size = 28 } of CORPUS) {
  test(`corpus ${name}: ${RUNS} random masks prune exactly (cost, shape, identity, zeroed reads)`, () => {
    const model = buildModel(name, { inputShape: [size, size, 1], classes: 10, widthMultiplier, seed: 3 });
    randomizeAllButKernels(model, 5);
    const analysis: ChannelAnalysis = analyzeChannels(model, { pruneResidual: true });
    const cuttable = analysis.groups.filter((g) => g.boundary === null && g.producers.length > 0);
    assert.ok(cuttable.length >= 3, `${name}: ${cuttable.length} groups`);
    const x = tf.randomNormal([2, size, size, 1], 0, 1, 'float32', 7);
    const reference = outputs(model, x);
    const original = model.getWeights().map((w) => w.clone());
    const scale = Math.max(1, ...reference.map(Math.abs));

    // Pruning nothing is the identity.
    const same = pruneModel(model, {}, { analysis });
    assert.ok(maxAbsDiff(outputs(same, x), reference) < 1e-5, `${name}: pruning nothing changed the outputs`);
    same.dispose();

    fc.assert(
      fc.property(masksArbitrary(cuttable), (masks) => {
        const pruned = pruneModel(model, masks, { analysis });
        try {
          assert.deepEqual(pruned.outputs[0].shape, model.outputs[0].shape);
          const fresh = countTotals(analyzeChannels(pruned, { pruneResidual: true }));
          assert.deepEqual(fresh, countTotals(analysis, masks), 'analytic cost = fresh count of the pruned model');
          assert.equal(fresh.params, pruned.countParams());
          zeroDroppedReads(model, analysis, masks);
          const diff = maxAbsDiff(outputs(pruned, x), outputs(model, x));
          assert.ok(diff < 1e-4 * scale, `${name}: pruned vs zeroed reads differ by ${diff} (output scale ${scale})`);
        } finally {
          pruned.dispose();
          model.setWeights(original);
        }
      }),
      // No shrinking: one counterexample, reported at once, is what a failure here needs.
      { numRuns: RUNS, seed: 42, endOnFailure: true },
    );
    tf.dispose([x, ...original]);
    model.dispose();
  });
}

test('corpus: every model divides at its cut points (one sub-network when there are none)', () => {
  for (const { name, widthMultiplier, size = 28 } of CORPUS) {
    if (name === 'unet') continue; // a per-pixel output: no classification head to divide towards
    const model = buildModel(name, { inputShape: [size, size, 1], classes: 10, widthMultiplier });
    const analysis = analyzeChannels(model);
    const division = divideNetwork(model, analysis);
    assert.ok(division.subnetworks.length >= 1, name);
    const searched = division.subnetworks.flatMap((s) => s.groupIds);
    assert.equal(new Set(searched).size, searched.length, `${name}: a group is searched twice`);
    model.dispose();
  }
});
