// The Finalize step (src/dir/finalize.ts) on a prepared run in a file store: a trained
// fmnist-resnet, its division, real boundary features of Fashion-MNIST images saved through the
// feature cache, and a plan whose schemes keep the most important half of every group ("good"),
// the least important half ("bad", ranked FIRST with the smaller estimate, so finalize must pick by
// the measured impairment) and the good half of k2 only ("single", whose measured impairment must
// equal what the candidate evaluator scored: recovery is reproduced, not approximated).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { stratifiedSample } from '../../src/data/sampling.ts';
import { encodeGenome } from '../../src/emo/genome.ts';
import { countCost } from '../../src/model/cost.ts';
import { analyzeChannels, genomeSlots, masksFromGenome } from '../../src/model/groups.ts';
import type { ChannelAnalysis } from '../../src/model/groups.ts';
import { channelImportance } from '../../src/model/importance.ts';
import { loadModel, resolveModel } from '../../src/model/io.ts';
import { divideNetwork, subnetworkCost } from '../../src/dir/divide.ts';
import type { Division, SubnetworkSpec } from '../../src/dir/divide.ts';
import { computeBoundaryFeatures, drawSearchSubsets, saveBoundaryFeatures } from '../../src/dir/features.ts';
import type { BoundaryFeatures } from '../../src/dir/features.ts';
import { createCandidateEvaluator } from '../../src/dir/candidate.ts';
import { buildSubnetworkModel, buildTailModel } from '../../src/dir/subnetwork.ts';
import { MANIFEST_VERSION, planSchema } from '../../src/dir/manifest.ts';
import type { Plan, PlanScheme } from '../../src/dir/manifest.ts';
import { FinalizeError, finalizeMetricsSchema, finalizeTarget, recoverySettingsFromSpec, runFinalizeStep } from '../../src/dir/finalize.ts';
import { planRun } from '../../src/dir/plan.ts';
import type { FinalizeInput } from '../../src/dir/finalize.ts';
import { metricsFileSchema } from '../../src/report/build.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import type { RunSpec } from '../../src/schema/spec.ts';
import { runKeys } from '../../src/store/keys.ts';
import { FileStore, putJson } from '../../src/store/index.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/fmnist-resnet/model', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/fmnist-resnet-4k', import.meta.url));
const RUN = 'finalize-test';
const TARGET = 'flops-50';

let dir: string;
let store: FileStore;
let model: tf.LayersModel;
let analysis: ChannelAnalysis;
let division: Division;
let trainSet: ImageDataset;
let testSet: ImageDataset;
let spec: RunSpec;
let features: Map<string, BoundaryFeatures>;
let importance: Record<string, Float32Array>;
let modelDir: string;
let specInput: Record<string, unknown>;

const noLog = (): void => undefined;

/** Genome of one sub-network keeping the most (or least) important half of every searched group. */
function halfGenome(subnet: SubnetworkSpec, which: 'top' | 'bottom'): Uint8Array {
  const genome = new Uint8Array(subnet.genomeLength);
  for (const slot of genomeSlots(analysis, subnet.groupIds)) {
    const scores = importance[slot.group];
    const order = Array.from(scores, (v, c) => ({ v, c })).sort((a, b) => (which === 'top' ? b.v - a.v : a.v - b.v) || a.c - b.c);
    for (let j = 0; j < Math.ceil(slot.channels / 2); j++) genome[slot.start + order[j].c] = 1;
  }
  return genome;
}

function scheme(rank: number, name: string, genomes: Record<string, Uint8Array>, estimatedImpairment: number): PlanScheme {
  const union: Record<string, Uint8Array> = {};
  const picks = division.subnetworks.map((subnet) => {
    const genome = genomes[subnet.id] ?? new Uint8Array(subnet.genomeLength).fill(1);
    const masks = masksFromGenome(genomeSlots(analysis, subnet.groupIds), genome);
    Object.assign(union, masks);
    const cost = subnetworkCost(analysis, division, subnet.id, masks);
    const unpruned = genomes[subnet.id] === undefined;
    return {
      subnet: subnet.id,
      pointId: unpruned ? `${subnet.id}-p00` : `${subnet.id}-${name}`,
      genome: encodeGenome(genome),
      macs: cost.macs,
      params: cost.params,
      impairment: unpruned ? 0 : estimatedImpairment / Object.keys(genomes).length,
    };
  });
  const original = countCost(analysis);
  const cost = countCost(analysis, union);
  return {
    rank,
    picks,
    estimatedImpairment,
    macs: cost.macs,
    params: cost.params,
    flopsCut: 1 - cost.macs / original.macs,
    paramsCut: 1 - cost.params / original.params,
  };
}

function planOf(target: string, schemes: PlanScheme[], error?: string): Plan {
  const original = countCost(analysis);
  const plan = {
    version: MANIFEST_VERSION,
    runId: RUN,
    target: { name: target, kind: 'flopsCut', value: 0.5 },
    original: { macs: original.macs, params: original.params },
    schemes,
    ...(error === undefined ? {} : { error }),
    createdAt: new Date(0).toISOString(),
  };
  return planSchema.parse(plan);
}

function input(target: string): FinalizeInput {
  return { store, runId: RUN, target, spec, model, division, analysis, trainSet, testSet, log: noLog, now: new Date(0) };
}

const genomes: Record<string, Record<string, Uint8Array>> = {};

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-finalize-'));
  store = new FileStore(dir);
  modelDir = existsSync(`${EXAMPLE}/model.json`) ? EXAMPLE : FIXTURE;
  model = await loadModel(modelDir);
  analysis = analyzeChannels(model);
  division = divideNetwork(model, analysis);
  importance = channelImportance(model, analysis);
  trainSet = await loadFashionMnist({ split: 'train' });
  testSet = await loadFashionMnist({ split: 'test' });
  specInput = {
    model: modelDir,
    dataset: { name: 'fashion-mnist', searchTrain: 256, searchVal: 256, fineTuneLimit: 256, testLimit: 256 },
    targets: [{ kind: 'flopsCut', value: 0.5 }],
    search: { recoverySteps: 4, recoveryBatchSize: 32, bnRecalibrationBatches: 1, seed: 3 },
    merge: { verifyTop: 3 },
    // Joint recovery off: the first test checks that an assembled scheme IS the searched candidate.
    finalize: { epochs: 0.5, batchSize: 64, learningRate: 0.01, jointRecoverySteps: 0 },
  };
  spec = runSpecSchema.parse(specInput);
  const subsets = drawSearchSubsets(trainSet, { searchTrain: 256, searchVal: 256, seed: 3 });
  features = await computeBoundaryFeatures(model, division, trainSet, subsets, { batchSize: 128, log: noLog });
  for (const f of features.values()) await saveBoundaryFeatures(store, RUN, f, { log: noLog });

  const top = Object.fromEntries(division.subnetworks.map((s) => [s.id, halfGenome(s, 'top')]));
  const bottom = Object.fromEntries(division.subnetworks.map((s) => [s.id, halfGenome(s, 'bottom')]));
  genomes.good = top;
  genomes.bad = bottom;
  genomes.single = { k2: top.k2 };
  await putJson(
    store,
    runKeys(RUN).merge.plan(TARGET),
    planOf(TARGET, [scheme(1, 'bad', bottom, 0.01), scheme(2, 'good', top, 0.05), scheme(3, 'single', { k2: top.k2 }, 0.02)]),
  );
});

after(async () => {
  model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('finalizeTarget', () => {
  test('verifies every scheme, keeps the least measured impairment, fine-tunes, exports and writes metrics once', async () => {
    const started = performance.now();
    const result = await finalizeTarget(input(TARGET));
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.outcome, 'created');
    const keys = runKeys(RUN).target(TARGET);
    assert.equal(result.metricsKey, keys.metrics);
    assert.equal(result.modelKey, keys.modelPrefix);

    // metrics.json: valid for finalize's own schema and for the report step's reader.
    const raw = JSON.parse(await readFile(join(dir, keys.metrics), 'utf8')) as unknown;
    const metrics = finalizeMetricsSchema.parse(raw);
    const forReport = metricsFileSchema.parse(raw);
    assert.equal(forReport.target, TARGET);
    assert.deepEqual(metrics.targetSpec, { name: TARGET, kind: 'flopsCut', value: 0.5 });

    // Every scheme was verified; the kept one has the least MEASURED impairment, whatever its rank.
    assert.deepEqual(metrics.verified.map((v) => v.rank), [1, 2, 3]);
    const least = metrics.verified.reduce((a, b) => (b.measuredImpairment < a.measuredImpairment ? b : a));
    assert.equal(metrics.schemeRank, least.rank);
    assert.equal(metrics.measuredImpairment, least.measuredImpairment);
    assert.equal(metrics.estimateError, metrics.measuredImpairment - metrics.estimatedImpairment);
    const [bad, good, single] = metrics.verified;
    // Keeping the weakest filters must hurt more than keeping the strongest (same widths).
    assert.equal(bad.macs, good.macs);
    assert.ok(good.measuredImpairment < bad.measuredImpairment, `good ${good.measuredImpairment} vs bad ${bad.measuredImpairment}`);
    // Rank 1 ("bad") had the best estimate; it must not win on rank alone.
    assert.notEqual(metrics.schemeRank, 1);
    assert.deepEqual(metrics.scheme.choice, least.choice);
    assert.equal(good.choice.k2, 'k2-good');
    assert.equal(single.choice.k1, 'k1-p00');

    // "single" prunes only k2: its assembled, measured impairment is exactly the candidate
    // evaluator's score for that genome, so finalize rebuilt the searched candidate.
    const k2 = division.subnetworks.find((s) => s.id === 'k2')!;
    const subModel = buildSubnetworkModel(model, division, 'k2');
    const tail = buildTailModel(model, division, 'k2');
    try {
      const subAnalysis = analyzeChannels(subModel);
      const evaluator = createCandidateEvaluator({
        originalSubnet: subModel,
        tail,
        features: features.get('k2')!,
        analysis: subAnalysis,
        slots: genomeSlots(subAnalysis, k2.groupIds),
        settings: recoverySettingsFromSpec(spec),
      });
      const scored = evaluator.evaluate(genomes.single.k2);
      assert.ok(Math.abs(scored.impairment - single.measuredImpairment) < 1e-4, `evaluator ${scored.impairment} vs assembled ${single.measuredImpairment}`);
    } finally {
      subModel.dispose();
      tail.dispose();
    }

    // Achieved cost is the chosen scheme's; the exported model is that physically smaller network.
    assert.equal(metrics.achieved.macs, least.macs);
    assert.ok(Math.abs(metrics.achieved.flopsCut - (1 - least.macs / metrics.original.macs)) < 1e-12);
    assert.ok(metrics.achieved.flopsCut > 0.05, `flops cut ${metrics.achieved.flopsCut}`);
    const loaded = (await resolveModel({ store, prefix: metrics.modelKey })).model;
    try {
      const own = countCost(analyzeChannels(loaded));
      assert.equal(own.macs, metrics.achieved.macs);
      assert.equal(own.params, metrics.achieved.params);
      // The exported weights are the fine-tuned ones: same test accuracy on the same images.
      const testIndices = stratifiedSample(testSet, { total: 256, seed: 3 });
      const reloaded = evaluate(loaded, testSet, { indices: testIndices });
      assert.equal(metrics.testCount, 256);
      assert.ok(Math.abs(reloaded.top1 - metrics.accuracy.afterFineTune) < 1e-9, `reloaded ${reloaded.top1} vs ${metrics.accuracy.afterFineTune}`);
      assert.ok(Math.abs(reloaded.loss - metrics.loss.afterFineTune) < 1e-4);
    } finally {
      loaded.dispose();
    }
    assert.ok(metrics.layers.some((l) => l.channelsAfter < l.channelsBefore));
    assert.ok(metrics.layers.every((l) => l.channelsAfter <= l.channelsBefore && l.channelsAfter > 0));
    assert.equal(metrics.layers.find((l) => l.name === 'head_dense')?.channelsAfter, 10);
    // Half an epoch of 256 images in batches of 64: 2 optimiser steps.
    assert.equal(metrics.fineTuneSteps, 2);
    assert.equal(metrics.fineTuneEpochs, 0.5);
    assert.deepEqual(metrics.fineTuneCheckpoints, []);
    assert.ok(metrics.accuracy.original !== undefined && metrics.accuracy.original > 0.5, `original accuracy ${metrics.accuracy.original}`);
    process.stderr.write(
      `finalize: ${seconds.toFixed(1)} s; measured ${metrics.verified.map((v) => `#${v.rank} ${v.measuredImpairment.toFixed(4)}`).join(', ')}; ` +
        `test top-1 original ${metrics.accuracy.original} before ${metrics.accuracy.beforeFineTune} after ${metrics.accuracy.afterFineTune}\n`,
    );

    // A retried job finds the commit record and neither recomputes nor rewrites anything.
    const before = await readFile(join(dir, keys.metrics));
    const weightsBefore = await readFile(join(dir, keys.modelPrefix, 'weights.bin'));
    // "No work", observed rather than timed: the data sets are never read and the store only
    // answers reads of the commit record.
    const dataReads: string[] = [];
    const watched = (dataset: ImageDataset): ImageDataset =>
      new Proxy(dataset, {
        get: (target, property, receiver) => {
          dataReads.push(`${target.name}.${String(property)}`);
          return Reflect.get(target, property, receiver) as unknown;
        },
      });
    const storeCalls: string[] = [];
    const watchedStore: ObjectStore = {
      location: store.location,
      get: (key) => (storeCalls.push(`get ${key}`), store.get(key)),
      getRange: (key, offset, length, into) => (storeCalls.push(`getRange ${key}`), store.getRange(key, offset, length, into)),
      put: (key, body, options) => (storeCalls.push(`put ${key}`), store.put(key, body, options)),
      exists: (key) => (storeCalls.push(`exists ${key}`), store.exists(key)),
      list: (prefix) => (storeCalls.push(`list ${prefix}`), store.list(prefix)),
      delete: (key) => (storeCalls.push(`delete ${key}`), store.delete(key)),
    };
    const retry = await finalizeTarget({ ...input(TARGET), store: watchedStore, trainSet: watched(trainSet), testSet: watched(testSet), now: new Date(1000) });
    assert.equal(retry.outcome, 'existing');
    assert.deepEqual(retry.metrics, metrics);
    assert.deepEqual(dataReads, [], 'a retry of a finished target reads no data');
    assert.deepEqual(new Set(storeCalls), new Set([`get ${keys.metrics}`]), 'a retry of a finished target only reads its metrics');
    assert.deepEqual(await readFile(join(dir, keys.metrics)), before);
    assert.deepEqual(await readFile(join(dir, keys.modelPrefix, 'weights.bin')), weightsBefore);
  });

  test('runFinalizeStep finalizes from the store alone (manifest, spec, model, data set)', async () => {
    await putJson(store, runKeys(RUN).spec, specInput);
    await planRun(store, RUN);
    const target = 'single-only';
    await putJson(store, runKeys(RUN).merge.plan(target), planOf(target, [scheme(1, 'single', genomes.single, 0.02)]));
    const result = await runFinalizeStep(store, RUN, target, { log: noLog, trainSet, testSet });
    assert.equal(result.outcome, 'created');
    assert.equal(result.metrics.verified.length, 1);
    assert.equal(result.metrics.scheme.choice.k2, 'k2-single');
    assert.ok(await store.exists(`${result.modelKey}model.json`));
    const again = await runFinalizeStep(store, RUN, target, { log: noLog });
    assert.equal(again.outcome, 'existing');
    assert.deepEqual(again.metrics, result.metrics);
  });

  test('a target without a plan, or whose plan records an error, fails with the key', async () => {
    await assert.rejects(finalizeTarget(input('flops-70')), (error: unknown) => {
      assert.ok(error instanceof FinalizeError);
      assert.match(error.message, /runs\/finalize-test\/merge\/plans\/flops-70\.json does not exist/);
      return true;
    });
    await putJson(store, runKeys(RUN).merge.plan('impossible'), planOf('impossible', [], 'target impossible is infeasible'));
    await assert.rejects(finalizeTarget(input('impossible')), /no scheme for target impossible/);
  });
});
