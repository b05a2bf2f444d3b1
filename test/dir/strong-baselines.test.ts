// The strong baselines (src/dir/baselines/): global thresholds over group-normalised scores land
// in [target, target + 1%] and drop only channels scored below the threshold; EagleEye's random
// allocations all land there too and its search keeps its best-scored candidate; global-emo's
// archive pick stays in the window; joint recovery is deterministic.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { Rng } from '../../src/emo/rng.ts';
import { countCost } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { channelImportance } from '../../src/model/importance.ts';
import { loadModel } from '../../src/model/io.ts';
import { pickNearTarget, pruneAtMasks, uniformL1Masks } from '../../src/dir/baselines.ts';
import type { GlobalEmoPoint } from '../../src/dir/baselines.ts';
import { adaptBatchNorm, scoreOnSearchVal } from '../../src/dir/baselines/adaptive-bn.ts';
import type { AdaptiveBnData } from '../../src/dir/baselines/adaptive-bn.ts';
import { eagleEyeMaskSampler, eagleEyeSearch } from '../../src/dir/baselines/eagleeye.ts';
import { globalMagnitudeMasks } from '../../src/dir/baselines/global-magnitude.ts';
import { globalThresholdMasks } from '../../src/dir/baselines/global-threshold.ts';
import { slimmingMasks } from '../../src/dir/baselines/slimming.ts';
import { globalTaylorMasks } from '../../src/dir/baselines/taylor.ts';
import { computeBoundaryFeatures, drawSearchSubsets } from '../../src/dir/features.ts';
import { wholeNetworkDivision } from '../../src/dir/baselines.ts';
import { jointRecover, TeacherLogits } from '../../src/dir/joint-recovery.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/fmnist-resnet/model', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/fmnist-resnet-4k', import.meta.url));

let model: tf.LayersModel;
let analysis: ChannelAnalysis;
let trainSet: ImageDataset;
let data: AdaptiveBnData;

before(async () => {
  await initEngine();
  model = await loadModel(existsSync(`${EXAMPLE}/model.json`) ? EXAMPLE : FIXTURE);
  analysis = analyzeChannels(model);
  trainSet = await loadFashionMnist({ split: 'train' });
  const subsets = drawSearchSubsets(trainSet, { searchTrain: 128, searchVal: 128, seed: 3 });
  data = { trainSet, bnIndices: subsets.train, valIndices: subsets.val, batchSize: 64, maxBatches: 2, seed: 3 };
});
after(() => {
  model?.dispose();
});

function assertInWindow(flopsCut: number, target: number): void {
  assert.ok(flopsCut >= target - 1e-12, `cut ${flopsCut} misses ${target}`);
  assert.ok(flopsCut <= target + 0.01, `cut ${flopsCut} overshoots ${target} by more than 1 point`);
}

describe('global threshold', () => {
  for (const cut of [0.5, 0.7, 0.85]) {
    test(`global-l2 at ${cut * 100}%: in the window, and only channels at or below the threshold are dropped`, () => {
      const result = globalMagnitudeMasks(model, analysis, { kind: 'flopsCut', value: cut });
      assertInWindow(result.summary.flopsCut, cut);
      assert.equal(result.summary.macs, countCost(analysis, result.masks).macs);
      const scores = channelImportance(model, analysis, { criterion: 'l2' });
      let droppedSomewhere = false;
      for (const [id, mask] of Object.entries(result.masks)) {
        mask.forEach((bit, c) => {
          if (bit === 0) {
            droppedSomewhere = true;
            assert.ok(scores[id][c] <= result.threshold, `group ${id} channel ${c} (${scores[id][c]}) dropped above the threshold ${result.threshold}`);
          }
        });
      }
      assert.ok(droppedSomewhere);
    });
  }

  test('is global: groups keep different fractions, unlike uniform-l1', () => {
    const global = globalMagnitudeMasks(model, analysis, { kind: 'flopsCut', value: 0.7 });
    const fractions = Object.values(global.masks).map((m) => m.reduce((a, b) => a + b, 0) / m.length);
    assert.ok(Math.max(...fractions) - Math.min(...fractions) > 0.1, `fractions ${fractions.join(', ')}`);
    assert.notDeepEqual(global.masks, uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.7 }).masks);
  });

  test('slimming and global-taylor land in the window too; bad scores are refused', () => {
    assertInWindow(slimmingMasks(model, analysis, { kind: 'flopsCut', value: 0.7 }).summary.flopsCut, 0.7);
    const taylor = globalTaylorMasks(model, analysis, { kind: 'flopsCut', value: 0.7 }, { trainSet, indices: data.bnIndices, batchSize: 64, maxBatches: 1 });
    assertInWindow(taylor.summary.flopsCut, 0.7);
    const group = analysis.groups.find((g) => g.prunable)!;
    assert.throws(() => globalThresholdMasks(analysis, { [group.id]: new Float32Array(group.channels).fill(Number.NaN) }, { kind: 'flopsCut', value: 0.5 }, { groupIds: [group.id] }), /score of channel 0/);
  });
});

describe('eagleeye', () => {
  test('every random allocation lands in the window; draws differ', () => {
    const sample = eagleEyeMaskSampler(model, analysis, { kind: 'flopsCut', value: 0.7 }, {});
    const rng = Rng.fromSeed(4);
    const draws = [sample(rng), sample(rng), sample(rng)];
    for (const masks of draws) assertInWindow(1 - countCost(analysis, masks).macs / countCost(analysis).macs, 0.7);
    assert.notDeepEqual(draws[0], draws[1]);
  });

  test('the search keeps the candidate with the best search-val accuracy after adaptive BN', () => {
    const target = { kind: 'flopsCut', value: 0.5 } as const;
    const result = eagleEyeSearch(model, analysis, target, data, { candidates: 3, seed: 9 });
    assert.equal(result.evaluations, 3);
    assert.equal(result.best.accuracy, Math.max(...result.accuracies));
    // Re-scoring the winner reproduces its accuracy (adaptive BN is seeded).
    const pruned = pruneAtMasks(model, analysis, result.best.masks).model;
    try {
      adaptBatchNorm(pruned, data);
      assert.equal(scoreOnSearchVal(pruned, data).top1, result.best.accuracy);
    } finally {
      pruned.dispose();
    }
  });
});

describe('pickNearTarget', () => {
  const point = (macs: number, impairment: number): GlobalEmoPoint => ({ genome: `g${macs}`, flops: macs / 100, paramsRatio: 1, macs, params: 10, impairment, accuracy: 0.9 });
  test('least impairment among archive points with a cut in [target, target + tolerance]', () => {
    const archive = [point(100, 0), point(31, 0.01), point(29.5, 0.2), point(29.2, 0.1), point(25, 0.05)];
    const picked = pickNearTarget({ archive, original: { macs: 100, params: 10 } }, { kind: 'flopsCut', value: 0.7 });
    assert.equal(picked?.macs, 29.2);
    assert.equal(pickNearTarget({ archive: [point(100, 0), point(25, 0.05)], original: { macs: 100, params: 10 } }, { kind: 'flopsCut', value: 0.7 }), undefined);
  });
});

describe('joint recovery', () => {
  test('deterministic: two copies of one assembled network end identical, and different from the start', async () => {
    const division = wholeNetworkDivision(model, analysis);
    const subsets = drawSearchSubsets(trainSet, { searchTrain: 128, searchVal: 64, seed: 2 });
    const features = (await computeBoundaryFeatures(model, division, trainSet, subsets, { batchSize: 128, log: () => undefined })).get('k1')!;
    const masks = uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.5 }).masks;
    const a = pruneAtMasks(model, analysis, masks).model;
    const b = pruneAtMasks(model, analysis, masks).model;
    // A teacher each: nothing carries over from one recovery to the other.
    const teachers = [new TeacherLogits(model), new TeacherLogits(model)];
    try {
      const start = a.getWeights().map((w) => w.dataSync().slice());
      const settings = { steps: 2, batchSize: 32, learningRate: 0.01, alpha: 1, beta: 1, bnRecalibrationBatches: 1, seed: 5 };
      assert.equal(jointRecover(a, teachers[0], features, settings), 64);
      jointRecover(b, teachers[1], features, settings);
      const wa = a.getWeights().map((w) => Array.from(w.dataSync()));
      const wb = b.getWeights().map((w) => Array.from(w.dataSync()));
      assert.deepEqual(wa, wb);
      assert.ok(wa.some((w, i) => w.some((v, j) => v !== start[i][j])));
    } finally {
      for (const teacher of teachers) teacher.dispose();
      a.dispose();
      b.dispose();
    }
  });

  test('shared teacher logits: the same networks as with a teacher each, and batches of other rows are refused', async () => {
    const division = wholeNetworkDivision(model, analysis);
    const subsets = drawSearchSubsets(trainSet, { searchTrain: 128, searchVal: 64, seed: 2 });
    const features = (await computeBoundaryFeatures(model, division, trainSet, subsets, { batchSize: 128, log: () => undefined })).get('k1')!;
    const masks = uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.5 }).masks;
    const settings = { steps: 3, batchSize: 32, learningRate: 0.01, alpha: 1, beta: 1, bnRecalibrationBatches: 1, seed: 5 };
    const networks = [0, 1, 2].map(() => pruneAtMasks(model, analysis, masks).model);
    const own = new TeacherLogits(model);
    const teacher = new TeacherLogits(model);
    try {
      jointRecover(networks[0], own, features, settings);
      // The first shared call fills the cache, the second reads it.
      jointRecover(networks[1], teacher, features, settings);
      jointRecover(networks[2], teacher, features, settings);
      const weights = networks.map((n) => n.getWeights().map((w) => Array.from(w.dataSync())));
      assert.deepEqual(weights[1], weights[0]);
      assert.deepEqual(weights[2], weights[0]);
      assert.throws(() => jointRecover(networks[0], teacher, features, { ...settings, seed: 6 }), /step 0 were computed for other search-train rows/);
      // One logits tensor per step, freed by dispose.
      const held = tf.memory().numTensors;
      teacher.dispose();
      assert.equal(tf.memory().numTensors, held - settings.steps);
    } finally {
      own.dispose();
      teacher.dispose();
      for (const n of networks) n.dispose();
    }
  });
});
