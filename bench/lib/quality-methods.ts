/**
 * The methods of bench:quality for one model and one seed (bench/quality.ts loops over models and
 * seeds). Every method prunes the same groups (the division's searched groups), lands in
 * [target, target + 1%] of the FLOPs cut, and its network goes through the same fine-tune and test
 * (`fineTuneAndEvaluate` with `benchFineTuneSettings`). Mask baselines get BN re-estimation on
 * search-train before any accuracy is read (adaptive-bn.ts), as EMO-DIR's candidates do after
 * recovery. Equal-compute variants (see COMPUTE_VARIANTS) add fine-tune images to a baseline's
 * standard budget.
 */
import type { ImageDataset } from '../../src/data/dataset.ts';
import { globalEmoMasks, globalEmoSearch, pickNearTarget, randomMasks, recoverGlobalEmoCandidate, uniformL1Masks, wholeNetworkDivision } from '../../src/dir/baselines.ts';
import type { GlobalEmoOptions } from '../../src/dir/baselines.ts';
import { adaptBatchNorm } from '../../src/dir/baselines/adaptive-bn.ts';
import type { AdaptiveBnData } from '../../src/dir/baselines/adaptive-bn.ts';
import { eagleEyeSearch } from '../../src/dir/baselines/eagleeye.ts';
import { globalMagnitudeMasks } from '../../src/dir/baselines/global-magnitude.ts';
import { slimmingMasks } from '../../src/dir/baselines/slimming.ts';
import { globalTaylorMasks } from '../../src/dir/baselines/taylor.ts';
import { computeBoundaryFeatures } from '../../src/dir/features.ts';
import type { SearchSubsets } from '../../src/dir/features.ts';
import { cpuSecondsSince, fineTuneAndEvaluate, finalizeTarget, pruneAtMasks, summarizePruned } from '../../src/dir/finalize.ts';
import type { FineTuneResult } from '../../src/dir/finalize.ts';
import type { Division } from '../../src/dir/divide.ts';
import { mergeRun } from '../../src/dir/merge-run.ts';
import { candidateSettingsFromSpec, searchSubnetwork } from '../../src/dir/search-task.ts';
import type { tf } from '../../src/engine/backend.ts';
import { LocalProcessJobRunner } from '../../src/local/job-runner.ts';
import type { ChannelAnalysis, GroupMasks } from '../../src/model/groups.ts';
import { targetName } from '../../src/schema/spec.ts';
import type { RunSpec } from '../../src/schema/spec.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson } from '../../src/store/object-store.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { benchFineTuneSettings, log, round } from './quality-common.ts';
import type { QualityRow } from './quality-rows.ts';
import { COMPUTE_VARIANTS } from './quality-options.ts';
import type { Compute, Method } from './quality-options.ts';

export type { QualityRow } from './quality-rows.ts';

export const RUN_ID = 'bench-quality';

export interface SeedContext {
  readonly model: string;
  readonly seed: number;
  readonly spec: RunSpec;
  readonly store: ObjectStore;
  readonly original: tf.LayersModel;
  readonly analysis: ChannelAnalysis;
  readonly division: Division;
  readonly trainSet: ImageDataset;
  readonly testSet: ImageDataset;
  readonly subsets: SearchSubsets;
  readonly targets: readonly number[];
  readonly compute: readonly Compute[];
  readonly workers: number;
  /** The groups every pruning method prunes (the division's searched groups). */
  readonly groupIds: readonly string[];
  readonly emit: (row: QualityRow) => void;
}

/** EMO-DIR's evaluation count, or without an emo-dir run its nominal budget (population x (generations + 1) per sub-network). */
function emoEvaluations(ctx: SeedContext, emo: EmoCost | undefined): number {
  return emo?.evaluations ?? ctx.division.subnetworks.length * ctx.spec.search.population * (ctx.spec.search.generations + 1);
}

/** What EMO-DIR spent: the reference of the equal-compute variants and of the EMO baselines' budgets. */
export interface EmoCost {
  readonly evaluations: number;
  readonly searchCpuSeconds: number;
  /** Image passes of recovery training its final network carries (every sub-network's candidate). */
  readonly recoveryImages: number;
}

function after1Epoch(tuned: FineTuneResult): number | null {
  const checkpoint = tuned.checkpoints.find((c) => c.epoch === 1);
  if (checkpoint) return round(checkpoint.result.top1);
  return Math.abs(tuned.epochs - 1) < 1e-9 ? round(tuned.afterFineTune.top1) : null;
}

function infeasible(ctx: SeedContext, method: Method, compute: Compute, target: number, cost: { seconds: number; cpu: number; evaluations: number }): QualityRow {
  return {
    model: ctx.model,
    method,
    compute,
    targetFlopsCut: target,
    seed: ctx.seed,
    flopsCut: null,
    paramsCut: null,
    accuracy: null,
    accuracyBeforeFineTune: null,
    accuracyAfter1Epoch: null,
    searchSeconds: round(cost.seconds, 1) ?? 0,
    searchCpuSeconds: round(cost.cpu, 1) ?? 0,
    evaluations: cost.evaluations,
    recoveryImages: 0,
    fineTuneImages: 0,
    fineTuneCpuSeconds: 0,
  };
}

/** Search-train for the BN statistics, search-val for the score, with the spec's recovery batches and seed. */
export function adaptiveBnData(ctx: Pick<SeedContext, 'spec' | 'trainSet' | 'subsets'>): AdaptiveBnData {
  return {
    trainSet: ctx.trainSet,
    bnIndices: ctx.subsets.train,
    valIndices: ctx.subsets.val,
    batchSize: ctx.spec.search.recoveryBatchSize,
    maxBatches: ctx.spec.search.bnRecalibrationBatches,
    seed: ctx.spec.search.seed,
  };
}

// ---------------------------------------------------------------------------------------------
// emo-dir

/** EMO-DIR through the pipeline's steps (plan was run by the caller); returns what it spent. */
export async function runEmoDir(ctx: SeedContext): Promise<EmoCost> {
  const { store, spec, original, division, analysis, trainSet, testSet } = ctx;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  let evaluations = 0;
  let workerSeconds = 0;
  if (ctx.workers > 1) {
    ({ evaluations, workerSeconds } = await searchInWorkerProcesses(ctx, division.subnetworks.map((s) => s.id)));
  } else {
    for (const subnet of division.subnetworks) {
      const result = await searchSubnetwork({
        store,
        runId: RUN_ID,
        subnet: subnet.id,
        spec,
        model: original,
        division,
        dataset: trainSet,
        analysis,
        stdout: false,
        log: (m) => log(`  ${m}`),
      });
      evaluations += result.sessionEvaluations;
    }
  }
  const merged = await mergeRun(store, RUN_ID, { log: (m, d) => log(`  merge: ${m}${d ? ` ${JSON.stringify(d)}` : ''}`) });
  const seconds = (performance.now() - started) / 1000;
  const searchCpuSeconds = ctx.workers > 1 ? workerSeconds + cpuSecondsSince(cpuStarted) : cpuSecondsSince(cpuStarted);
  const recoveryImages = division.subnetworks.length * spec.search.recoverySteps * spec.search.recoveryBatchSize + spec.finalize.jointRecoverySteps * spec.search.recoveryBatchSize;
  log(`emo-dir: ${division.subnetworks.length} searches + merge: ${evaluations} evaluations, ${seconds.toFixed(1)} s wall, ${searchCpuSeconds.toFixed(1)} CPU-s`);
  for (const target of ctx.targets) {
    const name = targetName({ kind: 'flopsCut', value: target });
    if (!merged.targets.includes(name)) {
      log(`emo-dir: target ${name} infeasible (merge found no scheme)`);
      ctx.emit(infeasible(ctx, 'emo-dir', 'standard', target, { seconds, cpu: searchCpuSeconds, evaluations }));
      continue;
    }
    const finalized = await finalizeTarget({
      store,
      runId: RUN_ID,
      target: name,
      spec,
      model: original,
      division,
      analysis,
      trainSet,
      testSet,
      log: (m, d) => log(`  finalize ${name}: ${m}${d && m.startsWith('scheme') ? ` ${JSON.stringify(d)}` : ''}`),
    });
    const m = finalized.metrics;
    const checkpoint = m.fineTuneCheckpoints.find((c) => c.epoch === 1);
    ctx.emit({
      model: ctx.model,
      method: 'emo-dir',
      compute: 'standard',
      targetFlopsCut: target,
      seed: ctx.seed,
      flopsCut: round(m.achieved.flopsCut),
      paramsCut: round(m.achieved.paramsCut),
      accuracy: round(m.accuracy.afterFineTune),
      accuracyBeforeFineTune: round(m.accuracy.beforeFineTune),
      accuracyAfter1Epoch: checkpoint ? round(checkpoint.accuracy) : Math.abs(m.fineTuneEpochs - 1) < 1e-9 ? round(m.accuracy.afterFineTune) : null,
      searchSeconds: round(seconds, 1) ?? 0,
      searchCpuSeconds: round(searchCpuSeconds, 1) ?? 0,
      evaluations,
      recoveryImages,
      fineTuneImages: m.fineTuneSteps * spec.finalize.batchSize,
      fineTuneCpuSeconds: 0,
    });
  }
  return { evaluations, searchCpuSeconds, recoveryImages };
}

/**
 * The sub-network searches as the pipeline runs them: one worker process per sub-network
 * (containers/worker.ts), `workers` at a time. Returns the evaluations the searches report and
 * their summed wall seconds (child CPU time is not visible to this process).
 */
async function searchInWorkerProcesses(ctx: SeedContext, subnets: readonly string[]): Promise<{ evaluations: number; workerSeconds: number }> {
  const runner = new LocalProcessJobRunner({
    concurrency: ctx.workers,
    env: { EMO_DIR_STORE: ctx.store.location },
    onOutput: (job, line, stream) => {
      if (stream === 'stderr') log(`  [${job.label}] ${line}`);
    },
    log: (line) => log(`  ${line}`),
  });
  const records = await Promise.all(
    subnets.map((subnet) =>
      runner.run({
        jobId: `bench-search-${subnet}`,
        jobName: 'emo-dir-search',
        definition: 'search',
        command: ['search', '--run-id', RUN_ID, '--subnet', subnet],
        environment: {},
        label: `search ${subnet}`,
      }),
    ),
  );
  let evaluations = 0;
  for (const subnet of subnets) {
    const stats = await getJson(ctx.store, runKeys(RUN_ID).subnet(subnet).stats);
    const sessionEvaluations = (stats as { sessionEvaluations?: unknown }).sessionEvaluations;
    if (typeof sessionEvaluations !== 'number') throw new Error(`search-stats of ${subnet} has no sessionEvaluations`);
    evaluations += sessionEvaluations;
  }
  return { evaluations, workerSeconds: records.reduce((sum, record) => sum + record.workerSeconds, 0) };
}

// ---------------------------------------------------------------------------------------------
// Fine-tune with the equal-compute variants

interface BaselineOutcome {
  readonly method: Method;
  readonly target: number;
  readonly summary: { flopsCut: number; paramsCut: number };
  /** Builds the network straight after pruning (fresh each call: every variant starts from it). */
  readonly start: () => tf.LayersModel;
  readonly searchSeconds: number;
  readonly searchCpuSeconds: number;
  readonly evaluations: number;
  /** Recovery image passes the network already carries (global-emo's winner). */
  readonly recoveryImages: number;
}

/**
 * The standard fine-tune, then each requested equal-compute variant from the same start: extra
 * images = EMO-DIR's recovery images minus the method's own (`passes`), or EMO-DIR's search CPU
 * minus the method's own, converted to images at the standard fine-tune's measured CPU per image
 * (`cpu`). A variant with nothing to add is not run (it would repeat `standard`).
 */
export async function fineTuneVariants(ctx: SeedContext, outcome: BaselineOutcome, emo: EmoCost | undefined): Promise<void> {
  const settings = benchFineTuneSettings(ctx.spec, ctx.trainSet, ctx.testSet);
  const images = (settings.trainIndices?.length ?? ctx.trainSet.count);
  const standardImages = Math.round(settings.epochs * images);
  let cpuPerImage: number | undefined;
  // `standard` first: the `cpu` variant converts seconds to images at its measured rate.
  for (const compute of COMPUTE_VARIANTS.filter((c) => ctx.compute.includes(c))) {
    let extra = 0;
    if (compute === 'passes') extra = emo ? emo.recoveryImages - outcome.recoveryImages : 0;
    if (compute === 'cpu') extra = emo && cpuPerImage ? (emo.searchCpuSeconds - outcome.searchCpuSeconds) / cpuPerImage : 0;
    if (compute !== 'standard' && extra <= 0) {
      log(`${outcome.method} ${outcome.target} ${compute}: nothing to add (EMO-DIR ${compute === 'passes' ? 'recovery images' : 'search CPU'} not above the method's own)`);
      continue;
    }
    const epochs = settings.epochs + extra / images;
    const model = outcome.start();
    try {
      const tuned = await fineTuneAndEvaluate(model, ctx.original, ctx.trainSet, ctx.testSet, { ...settings, epochs });
      if (compute === 'standard' && tuned.steps > 0) cpuPerImage = tuned.cpuSeconds / (tuned.steps * settings.batchSize);
      ctx.emit({
        model: ctx.model,
        method: outcome.method,
        compute,
        targetFlopsCut: outcome.target,
        seed: ctx.seed,
        flopsCut: round(outcome.summary.flopsCut),
        paramsCut: round(outcome.summary.paramsCut),
        accuracy: round(tuned.afterFineTune.top1),
        accuracyBeforeFineTune: round(tuned.beforeFineTune.top1),
        accuracyAfter1Epoch: after1Epoch(tuned),
        searchSeconds: round(outcome.searchSeconds, 1) ?? 0,
        searchCpuSeconds: round(outcome.searchCpuSeconds, 1) ?? 0,
        evaluations: outcome.evaluations,
        recoveryImages: outcome.recoveryImages,
        fineTuneImages: tuned.steps * settings.batchSize,
        fineTuneCpuSeconds: round(tuned.cpuSeconds, 1) ?? 0,
      });
    } finally {
      model.dispose();
    }
    if (compute === 'standard') log(`${outcome.method} ${outcome.target}: standard fine-tune ${standardImages} images`);
  }
}

// ---------------------------------------------------------------------------------------------
// global-emo

export async function runGlobalEmo(ctx: SeedContext, emo: EmoCost | undefined): Promise<void> {
  const { spec, original, analysis, trainSet } = ctx;
  const evaluations = emoEvaluations(ctx, emo);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const division = wholeNetworkDivision(original, analysis);
  const computed = await computeBoundaryFeatures(original, division, trainSet, ctx.subsets, { subnets: [division.subnetworks[0].id], log: (m) => log(`  ${m}`) });
  const features = computed.get(division.subnetworks[0].id)!;
  const options: GlobalEmoOptions = {
    model: original,
    analysis,
    features,
    division,
    budget: { evaluations, population: spec.search.population },
    seed: spec.search.seed,
    recovery: candidateSettingsFromSpec(spec),
    minKeep: spec.divide.minKeep,
    roundTo: spec.divide.roundTo,
    objective: 'flops',
    importanceBias: spec.search.importanceBiasedMutation ? 0.5 : 0,
    groupIds: ctx.groupIds,
    log: (m) => log(`  ${m}`),
  };
  const result = await globalEmoSearch(options);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSecondsSince(cpuStarted);
  for (const target of ctx.targets) {
    const point = pickNearTarget(result, { kind: 'flopsCut', value: target });
    if (!point) {
      log(`global-emo: no archive point within [${target}, ${target + 0.01}] FLOPs cut (${result.archive.length} evaluated)`);
      for (const compute of ctx.compute) ctx.emit(infeasible(ctx, 'global-emo', compute, target, { seconds, cpu, evaluations: result.evaluations }));
      continue;
    }
    log(`global-emo ${target}: point flops ${point.flops.toFixed(3)} impairment ${point.impairment.toFixed(4)} search-val acc ${(point.accuracy * 100).toFixed(2)}%`);
    const masks = globalEmoMasks(result, point.genome);
    await fineTuneVariants(
      ctx,
      {
        method: 'global-emo',
        target,
        summary: summarizePruned(analysis, masks),
        start: () => recoverGlobalEmoCandidate(options, point.genome),
        searchSeconds: seconds,
        searchCpuSeconds: cpu,
        evaluations: result.evaluations,
        recoveryImages: spec.search.recoverySteps * spec.search.recoveryBatchSize,
      },
      emo,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Mask baselines (rules and EagleEye)

type MaskMethod = 'uniform-l1' | 'random' | 'global-l2' | 'global-taylor' | 'slimming' | 'eagleeye';

function masksOf(ctx: SeedContext, method: MaskMethod, target: number, emo: EmoCost | undefined): { masks: GroupMasks; evaluations: number } {
  const { spec, original, analysis } = ctx;
  const t = { kind: 'flopsCut' as const, value: target };
  const options = { minKeep: spec.divide.minKeep, roundTo: spec.divide.roundTo, groupIds: ctx.groupIds };
  switch (method) {
    case 'uniform-l1':
      return { masks: uniformL1Masks(original, analysis, t, options).masks, evaluations: 0 };
    case 'random':
      return { masks: randomMasks(original, analysis, t, spec.search.seed, options).masks, evaluations: 0 };
    case 'global-l2':
      return { masks: globalMagnitudeMasks(original, analysis, t, options).masks, evaluations: 0 };
    case 'slimming':
      return { masks: slimmingMasks(original, analysis, t, options).masks, evaluations: 0 };
    case 'global-taylor':
      return {
        masks: globalTaylorMasks(original, analysis, t, { trainSet: ctx.trainSet, indices: ctx.subsets.train, batchSize: spec.search.recoveryBatchSize, maxBatches: 8 }, options).masks,
        evaluations: 0,
      };
    case 'eagleeye': {
      const candidates = emoEvaluations(ctx, emo);
      const result = eagleEyeSearch(original, analysis, t, adaptiveBnData(ctx), { ...options, candidates, seed: spec.search.seed, log: (m) => log(`  ${m}`) });
      log(`eagleeye ${target}: best search-val top-1 ${(result.best.accuracy * 100).toFixed(2)}% of ${result.evaluations} (median ${(median(result.accuracies) * 100).toFixed(2)}%)`);
      return { masks: result.best.masks, evaluations: result.evaluations };
    }
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)];
}

export async function runMaskBaseline(ctx: SeedContext, method: MaskMethod, emo: EmoCost | undefined): Promise<void> {
  for (const target of ctx.targets) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    let chosen: { masks: GroupMasks; evaluations: number };
    try {
      chosen = masksOf(ctx, method, target, emo);
    } catch (error) {
      log(`${method} ${target}: ${(error as Error).message}`);
      for (const compute of ctx.compute) ctx.emit(infeasible(ctx, method, compute, target, { seconds: 0, cpu: 0, evaluations: 0 }));
      continue;
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuSecondsSince(cpuStarted);
    const summary = summarizePruned(ctx.analysis, chosen.masks);
    log(`${method} ${target}: FLOPs cut ${(summary.flopsCut * 100).toFixed(2)}%, params cut ${(summary.paramsCut * 100).toFixed(2)}% (${cpu.toFixed(1)} CPU-s)`);
    await fineTuneVariants(
      ctx,
      {
        method,
        target,
        summary,
        start: () => {
          const pruned = pruneAtMasks(ctx.original, ctx.analysis, chosen.masks).model;
          adaptBatchNorm(pruned, adaptiveBnData(ctx));
          return pruned;
        },
        searchSeconds: seconds,
        searchCpuSeconds: cpu,
        evaluations: chosen.evaluations,
        recoveryImages: 0,
      },
      emo,
    );
  }
}

export function runUnpruned(ctx: SeedContext): void {
  const settings = benchFineTuneSettings(ctx.spec, ctx.trainSet, ctx.testSet);
  const result = evaluate(ctx.original, ctx.testSet, { batchSize: 256, normalize: 'unit', indices: settings.testIndices });
  const accuracy = round(result.top1);
  ctx.emit({
    model: ctx.model,
    method: 'unpruned',
    compute: 'standard',
    targetFlopsCut: 0,
    seed: ctx.seed,
    flopsCut: 0,
    paramsCut: 0,
    accuracy,
    accuracyBeforeFineTune: accuracy,
    accuracyAfter1Epoch: null,
    searchSeconds: 0,
    searchCpuSeconds: 0,
    evaluations: 0,
    recoveryImages: 0,
    fineTuneImages: 0,
    fineTuneCpuSeconds: 0,
  });
}
