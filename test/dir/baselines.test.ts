// Baselines (src/dir/baselines.ts) on a trained fmnist-resnet: uniform-l1 and random hit the
// target cut to within a channel step and keep what they claim to keep, random is seeded,
// global-emo returns a non-dominated front within its evaluation budget whose points are
// reproducible by recovery, and the shared fine-tune path trains exactly the requested steps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { sliceDataset } from '../../src/data/dataset.ts';
import { dominates } from '../../src/emo/sort.ts';
import { countCost } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { channelImportance } from '../../src/model/importance.ts';
import { loadModel } from '../../src/model/io.ts';
import { computeBoundaryFeatures, drawSearchSubsets, evaluateOnFeatures } from '../../src/dir/features.ts';
import {
  BaselineError,
  fineTuneAndEvaluate,
  globalEmoMasks,
  globalEmoSearch,
  pickNearTarget,
  pruneAtMasks,
  randomMasks,
  recoverGlobalEmoCandidate,
  targetBudget,
  uniformL1Masks,
  wholeNetworkDivision,
} from '../../src/dir/baselines.ts';
import type { GlobalEmoOptions } from '../../src/dir/baselines.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/fmnist-resnet/model', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/fmnist-resnet-4k', import.meta.url));

let model: tf.LayersModel;
let analysis: ChannelAnalysis;
let trainSet: ImageDataset;

before(async () => {
  await initEngine();
  model = await loadModel(existsSync(`${EXAMPLE}/model.json`) ? EXAMPLE : FIXTURE);
  analysis = analyzeChannels(model);
  trainSet = await loadFashionMnist({ split: 'train' });
});
after(() => {
  model?.dispose();
});

function keptCounts(masks: Record<string, Uint8Array>): Record<string, number> {
  return Object.fromEntries(Object.entries(masks).map(([id, m]) => [id, m.reduce((a, b) => a + b, 0)]));
}

describe('uniform-l1', () => {
  for (const cut of [0.5, 0.7, 0.85]) {
    test(`hits a ${cut * 100}% FLOPs cut within 2 points, keeping the largest-L1 channels`, () => {
      const result = uniformL1Masks(model, analysis, { kind: 'flopsCut', value: cut });
      assert.ok(result.summary.flopsCut >= cut - 1e-12, `cut ${result.summary.flopsCut} misses ${cut}`);
      assert.ok(result.summary.flopsCut <= cut + 0.02, `cut ${result.summary.flopsCut} overshoots ${cut} by more than 2 points`);
      assert.equal(result.summary.macs, countCost(analysis, result.masks).macs);
      assert.ok(result.summary.macs <= result.budget.value);
      const importance = channelImportance(model, analysis);
      const fractions: number[] = [];
      for (const [id, mask] of Object.entries(result.masks)) {
        const scores = importance[id];
        let weakestKept = Infinity;
        let strongestDropped = -Infinity;
        mask.forEach((bit, c) => {
          if (bit) weakestKept = Math.min(weakestKept, scores[c]);
          else strongestDropped = Math.max(strongestDropped, scores[c]);
        });
        assert.ok(weakestKept >= strongestDropped, `group ${id}: a dropped channel outranks a kept one`);
        fractions.push(mask.reduce((a, b) => a + b, 0) / mask.length);
      }
      // "Uniform": every group keeps the same fraction up to rounding to whole channels.
      const spread = Math.max(...fractions) - Math.min(...fractions);
      assert.ok(spread <= 1 / 16 + 1e-9, `kept fractions ${fractions.join(', ')}`);
      assert.deepEqual(Object.keys(result.masks), analysis.groups.filter((g) => g.prunable).map((g) => g.id));
    });
  }

  test('a params target and an infeasible target', () => {
    const params = uniformL1Masks(model, analysis, { kind: 'paramsCut', value: 0.5 });
    assert.ok(params.summary.paramsCut >= 0.5 && params.summary.paramsCut <= 0.52, `params cut ${params.summary.paramsCut}`);
    assert.throws(() => uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.99 }), BaselineError);
  });

  test('pruneAtMasks builds the model the summary describes', () => {
    const result = uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.5 });
    const pruned = pruneAtMasks(model, analysis, result.masks);
    try {
      assert.equal(countCost(analyzeChannels(pruned.model)).macs, result.summary.macs);
      assert.equal(pruned.summary.macs, result.summary.macs);
    } finally {
      pruned.model.dispose();
    }
  });
});

describe('random', () => {
  test('is seeded, hits the target, and keeps the same widths as uniform-l1', () => {
    const target = { kind: 'flopsCut', value: 0.5 } as const;
    const a = randomMasks(model, analysis, target, 11);
    const b = randomMasks(model, analysis, target, 11);
    const c = randomMasks(model, analysis, target, 12);
    assert.deepEqual(a.masks, b.masks);
    assert.notDeepEqual(a.masks, c.masks);
    assert.ok(a.summary.flopsCut >= 0.5 && a.summary.flopsCut <= 0.52, `cut ${a.summary.flopsCut}`);
    // The cost depends only on the kept counts, so the bisection lands on uniform-l1's widths.
    assert.deepEqual(keptCounts(a.masks), keptCounts(uniformL1Masks(model, analysis, target).masks));
    assert.notDeepEqual(a.masks, uniformL1Masks(model, analysis, target).masks);
  });
});

describe('global-emo', () => {
  test('one NSGA-II over the whole network: budget respected, non-dominated front, reproducible points', async () => {
    const division = wholeNetworkDivision(model, analysis);
    assert.equal(division.subnetworks.length, 1);
    const subsets = drawSearchSubsets(trainSet, { searchTrain: 128, searchVal: 128, seed: 5 });
    const features = (await computeBoundaryFeatures(model, division, trainSet, subsets, { batchSize: 128, log: () => undefined })).get('k1')!;
    const options: GlobalEmoOptions = {
      model,
      analysis,
      features,
      division,
      budget: { evaluations: 7, population: 4 },
      seed: 2,
      recovery: { recoverySteps: 2, batchSize: 32, learningRate: 0.01, alpha: 1, beta: 1, bnRecalibrationBatches: 1, seed: 2 },
    };
    const result = await globalEmoSearch(options);
    assert.ok(result.evaluations <= 7 && result.evaluations >= 4, `evaluations ${result.evaluations}`);
    assert.ok(result.front.length >= 1);
    assert.equal(result.original.macs, countCost(analysis).macs);
    // The slots cover every prunable group of the whole network.
    assert.deepEqual(result.slots.map((s) => s.group), analysis.groups.filter((g) => g.prunable).map((g) => g.id));
    for (const p of result.front) {
      for (const q of result.front) assert.ok(!dominates([q.flops, q.impairment], [p.flops, p.impairment]), 'a front point is dominated');
      assert.equal(p.macs, countCost(analysis, globalEmoMasks(result, p.genome)).macs);
    }
    for (let i = 1; i < result.front.length; i++) assert.ok(result.front[i - 1].flops <= result.front[i].flops);

    // The cheapest point under a loose budget is picked by least impairment among those meeting it.
    const target = { kind: 'flopsCut', value: 0.05 } as const;
    const budget = targetBudget(target, result.original);
    const picked = pickNearTarget({ archive: result.front, original: result.original }, target, Number.POSITIVE_INFINITY);
    const meeting = result.front.filter((p) => p.macs <= budget.value);
    if (meeting.length === 0) assert.equal(picked, undefined);
    else assert.equal(picked?.impairment, Math.min(...meeting.map((p) => p.impairment)));
    assert.equal(pickNearTarget({ archive: result.front, original: result.original }, { kind: 'flopsCut', value: 0.999 }, Number.POSITIVE_INFINITY), undefined);

    // Recovery is deterministic: rebuilding the most pruned point's network reproduces its score.
    const point = result.front[0];
    const recovered = recoverGlobalEmoCandidate(options, point.genome);
    try {
      const metrics = evaluateOnFeatures(recovered, features, 'val', 'input');
      assert.ok(Math.abs(metrics.loss - features.baseline.loss - point.impairment) < 1e-4, `${metrics.loss - features.baseline.loss} vs ${point.impairment}`);
    } finally {
      recovered.dispose();
    }
  });
});

describe('fineTuneAndEvaluate', () => {
  test('trains round(epochs * steps per epoch) steps and evaluates before, after and at whole epochs', async () => {
    const train = sliceDataset(trainSet, 0, 64);
    const test_ = sliceDataset(trainSet, 1000, 1128);
    const pruned = pruneAtMasks(model, analysis, uniformL1Masks(model, analysis, { kind: 'flopsCut', value: 0.5 }).masks).model;
    try {
      const result = await fineTuneAndEvaluate(pruned, model, train, test_, {
        epochs: 1.5,
        batchSize: 32,
        learningRate: 0.01,
        weightDecay: 5e-4,
        distillWeight: 0.5,
        distillTemperature: 4,
        augment: true,
        seed: 1,
        evaluateAfterEpochs: [1, 2],
      });
      assert.equal(result.steps, 3);
      assert.equal(result.epochs, 1.5);
      assert.deepEqual(result.checkpoints.map((c) => c.epoch), [1]);
      assert.equal(result.beforeFineTune.count, 128);
      assert.ok(result.original && result.original.top1 >= result.beforeFineTune.top1 - 0.2);
      assert.notEqual(result.afterFineTune.loss, result.beforeFineTune.loss);
      const none = await fineTuneAndEvaluate(pruned, model, train, test_, {
        epochs: 0,
        batchSize: 32,
        learningRate: 0.01,
        weightDecay: 0,
        distillWeight: 0,
        distillTemperature: 4,
        augment: false,
        seed: 1,
        skipOriginal: true,
      });
      assert.equal(none.steps, 0);
      assert.equal(none.original, undefined);
      assert.equal(none.afterFineTune, none.beforeFineTune);
    } finally {
      pruned.dispose();
    }
  });
});
