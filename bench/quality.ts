/**
 * Quality benchmark (DESIGN §2 "Baselines", §7): EMO-DIR against global-emo, uniform-l1 and
 * random on Fashion-MNIST with the trained example `examples/fmnist-resnet/model`, at FLOPs-cut
 * targets (default 50%, 70%, 85%).
 *
 *   npm run bench:quality [-- --quick] [--json] [--targets 0.5,0.7,0.85]
 *                         [--methods emo-dir,global-emo,uniform-l1,random,unpruned] [--seed N] [--workers N]
 *                         [--fine-tune-epochs E] [--fine-tune-limit N] [--test-limit N]
 *                         [--search-train N] [--search-val N] [--population N]
 *                         [--generations N] [--recovery-steps N]
 *
 * emo-dir runs the pipeline's own steps on a temporary FileStore: planRun -> searchSubnetwork
 * for every sub-network (as worker processes, `--workers N` at once, default one per core: what
 * the pipeline's parallel Batch jobs do; `--workers 1`: sequentially in this process) -> mergeRun
 * -> finalizeTarget per target. Its "before fine-tune" accuracy is of the verified, assembled
 * network of RECOVERED sub-networks. global-emo is one NSGA-II over the same groups with the
 * same total evaluation budget (what emo-dir's searches actually spent) and whole-network
 * recovery; its "before" accuracy is of the recovered winner. uniform-l1 and random are masks at
 * the target with inherited weights (no recovery). Every method then goes through the same
 * fine-tune (finalize.ts `fineTuneAndEvaluate`, same settings and data subsets: see
 * lib/quality-common.ts). All pruning methods prune the same groups (the union of the
 * division's searched groups). searchSeconds is wall clock of features + search (+ merge for
 * emo-dir); verify and fine-tune are not in it. searchWorkerSeconds sums the search processes'
 * times (the compute a cloud run pays for); for a search in this process it equals searchSeconds.
 * global-emo is one NSGA-II in this process. `unpruned` is the original on the same test subset,
 * not fine-tuned.
 *
 * `--json` prints one JSON object per row on stdout as soon as it is measured:
 *   {method, targetFlopsCut, flopsCut, paramsCut, accuracy, accuracyBeforeFineTune,
 *    accuracyAfter1Epoch, searchSeconds, searchWorkerSeconds, evaluations}
 * (accuracy = after the full fine-tune budget; null = not measured, e.g. an infeasible target
 * or a budget under one epoch). Logs go to stderr.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../src/engine/backend.ts';
import type { ImageDataset } from '../src/data/dataset.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import {
  globalEmoMasks,
  globalEmoSearch,
  pickForTarget,
  randomMasks,
  recoverGlobalEmoCandidate,
  uniformL1Masks,
  wholeNetworkDivision,
} from '../src/dir/baselines.ts';
import type { GlobalEmoOptions } from '../src/dir/baselines.ts';
import { computeBoundaryFeatures, drawSearchSubsets } from '../src/dir/features.ts';
import { fineTuneAndEvaluate, finalizeTarget, pruneAtMasks, summarizePruned } from '../src/dir/finalize.ts';
import type { FineTuneResult } from '../src/dir/finalize.ts';
import { readManifest } from '../src/dir/manifest.ts';
import { mergeRun } from '../src/dir/merge-run.ts';
import { planRun } from '../src/dir/plan.ts';
import { candidateSettingsFromSpec, searchSubnetwork } from '../src/dir/search-task.ts';
import { analyzeChannels } from '../src/model/groups.ts';
import type { ChannelAnalysis } from '../src/model/groups.ts';
import { loadModel } from '../src/model/io.ts';
import { targetName } from '../src/schema/spec.ts';
import type { RunSpec } from '../src/schema/spec.ts';
import { getJson, putJson } from '../src/store/object-store.ts';
import { LocalProcessJobRunner } from '../src/local/job-runner.ts';
import type { ObjectStore } from '../src/store/object-store.ts';
import { runKeys } from '../src/store/keys.ts';
import { evaluate } from '../src/train/evaluate.ts';
import {
  EXAMPLE_MODEL,
  benchFineTuneSettings,
  buildSpec,
  isPositiveInt,
  log,
  parseNumber,
  parseNumberList,
  percent,
  round,
  temporaryStore,
} from './lib/quality-common.ts';
import { formatTable } from './lib/table.ts';

const METHODS = ['emo-dir', 'global-emo', 'uniform-l1', 'random', 'unpruned'] as const;
type Method = (typeof METHODS)[number];
const RUN_ID = 'bench-quality';

export interface QualityRow {
  readonly method: Method;
  readonly targetFlopsCut: number;
  readonly flopsCut: number | null;
  readonly paramsCut: number | null;
  /** Test top-1 after the full fine-tune budget. */
  readonly accuracy: number | null;
  readonly accuracyBeforeFineTune: number | null;
  readonly accuracyAfter1Epoch: number | null;
  readonly searchSeconds: number;
  /** Process time of the searches: summed over worker processes (= searchSeconds when run in one process). */
  readonly searchWorkerSeconds: number;
  readonly evaluations: number;
}

interface Budgets {
  readonly searchTrain: number;
  readonly searchVal: number;
  readonly population: number;
  readonly generations: number;
  readonly recoverySteps: number;
  readonly verifyTop: number;
  readonly fineTuneEpochs: number;
  readonly fineTuneLimit: number | undefined;
  readonly testLimit: number | undefined;
}

/**
 * `--quick`: a few minutes in all. Full: sized from the quick run's measured speeds (wasm,
 * one thread per process; fine-tune with distillation at ~50-400 img/s) to finish well under an
 * hour on a 2-core machine (measured: 13-14 min with 2 workers): the example spec's search subsets,
 * the spec's 20 recovery steps, population 10 x 4 generations, 2 fine-tune epochs on 4k images,
 * tested on 5k.
 */
const QUICK: Budgets = {
  searchTrain: 512,
  searchVal: 256,
  population: 6,
  generations: 2,
  recoverySteps: 5,
  verifyTop: 2,
  fineTuneEpochs: 1,
  fineTuneLimit: 2000,
  testLimit: 1000,
};
const FULL: Budgets = {
  searchTrain: 1024,
  searchVal: 512,
  population: 10,
  generations: 4,
  recoverySteps: 20,
  verifyTop: 3,
  fineTuneEpochs: 2,
  fineTuneLimit: 4000,
  testLimit: 5000,
};

interface Options {
  readonly json: boolean;
  readonly quick: boolean;
  readonly targets: number[];
  readonly methods: Method[];
  readonly seed: number;
  /** emo-dir's sub-network searches at once, as worker processes; 1 = in this process. */
  readonly workers: number;
  readonly budgets: Budgets;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      targets: { type: 'string', default: '0.5,0.7,0.85' },
      methods: { type: 'string', default: METHODS.join(',') },
      seed: { type: 'string', default: '1' },
      workers: { type: 'string', default: String(availableParallelism()) },
      'fine-tune-epochs': { type: 'string' },
      'fine-tune-limit': { type: 'string' },
      'test-limit': { type: 'string' },
      'search-train': { type: 'string' },
      'search-val': { type: 'string' },
      population: { type: 'string' },
      generations: { type: 'string' },
      'recovery-steps': { type: 'string' },
    },
    strict: true,
  });
  const targets = parseNumberList(values.targets, '--targets', (n) => n > 0 && n < 1, 'FLOPs-cut fractions in (0, 1)');
  const methods = values.methods.split(',').filter((m) => m !== '');
  for (const m of methods) {
    if (!(METHODS as readonly string[]).includes(m)) throw new Error(`--methods: unknown method '${m}' (${METHODS.join(', ')})`);
  }
  const seed = parseNumber(values.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0') ?? 1;
  const base = values.quick ? QUICK : FULL;
  const int = (flag: string, value: string | undefined): number | undefined => parseNumber(value, flag, isPositiveInt, 'a positive integer');
  const budgets: Budgets = {
    searchTrain: int('--search-train', values['search-train']) ?? base.searchTrain,
    searchVal: int('--search-val', values['search-val']) ?? base.searchVal,
    population: int('--population', values.population) ?? base.population,
    generations: int('--generations', values.generations) ?? base.generations,
    recoverySteps: parseNumber(values['recovery-steps'], '--recovery-steps', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0') ?? base.recoverySteps,
    verifyTop: base.verifyTop,
    fineTuneEpochs: parseNumber(values['fine-tune-epochs'], '--fine-tune-epochs', (n) => Number.isFinite(n) && n >= 0, 'a number >= 0') ?? base.fineTuneEpochs,
    fineTuneLimit: int('--fine-tune-limit', values['fine-tune-limit']) ?? base.fineTuneLimit,
    testLimit: int('--test-limit', values['test-limit']) ?? base.testLimit,
  };
  const workers = parseNumber(values.workers, '--workers', isPositiveInt, 'a positive integer') ?? 1;
  return { json: values.json, quick: values.quick, targets, methods: methods as Method[], seed, workers, budgets };
}

function specOf(options: Options): RunSpec {
  const b = options.budgets;
  return buildSpec({
    model: EXAMPLE_MODEL,
    dataset: {
      name: 'fashion-mnist',
      searchTrain: b.searchTrain,
      searchVal: b.searchVal,
      ...(b.fineTuneLimit === undefined ? {} : { fineTuneLimit: b.fineTuneLimit }),
      ...(b.testLimit === undefined ? {} : { testLimit: b.testLimit }),
    },
    targets: options.targets.map((value) => ({ kind: 'flopsCut' as const, value })),
    search: { population: b.population, generations: b.generations, recoverySteps: b.recoverySteps, seed: options.seed },
    merge: { verifyTop: b.verifyTop },
    finalize: { epochs: b.fineTuneEpochs },
  });
}

/** What a method's search cost; workerSeconds defaults to the wall time (one process). */
interface SearchCost {
  readonly seconds: number;
  readonly evaluations: number;
  readonly workerSeconds?: number;
}

/** Accuracy after epoch 1: the checkpoint when the budget is longer, the end when it is exactly 1. */
function after1Epoch(result: { epochs: number; checkpoints: readonly { epoch: number; accuracy: number }[]; final: number }): number | undefined {
  const checkpoint = result.checkpoints.find((c) => c.epoch === 1);
  if (checkpoint) return checkpoint.accuracy;
  return Math.abs(result.epochs - 1) < 1e-9 ? result.final : undefined;
}

function rowFromFineTune(
  method: Method,
  target: number,
  cut: { flopsCut: number; paramsCut: number },
  tuned: FineTuneResult,
  search: SearchCost,
): QualityRow {
  return {
    method,
    targetFlopsCut: target,
    flopsCut: round(cut.flopsCut),
    paramsCut: round(cut.paramsCut),
    accuracy: round(tuned.afterFineTune.top1),
    accuracyBeforeFineTune: round(tuned.beforeFineTune.top1),
    accuracyAfter1Epoch: round(
      after1Epoch({ epochs: tuned.epochs, checkpoints: tuned.checkpoints.map((c) => ({ epoch: c.epoch, accuracy: c.result.top1 })), final: tuned.afterFineTune.top1 }),
    ),
    searchSeconds: round(search.seconds, 1) ?? 0,
    searchWorkerSeconds: round(search.workerSeconds ?? search.seconds, 1) ?? 0,
    evaluations: search.evaluations,
  };
}

function infeasibleRow(method: Method, target: number, search: SearchCost): QualityRow {
  return {
    method,
    targetFlopsCut: target,
    flopsCut: null,
    paramsCut: null,
    accuracy: null,
    accuracyBeforeFineTune: null,
    accuracyAfter1Epoch: null,
    searchSeconds: round(search.seconds, 1) ?? 0,
    searchWorkerSeconds: round(search.workerSeconds ?? search.seconds, 1) ?? 0,
    evaluations: search.evaluations,
  };
}

interface Context {
  readonly options: Options;
  readonly spec: RunSpec;
  readonly store: ObjectStore;
  readonly model: tf.LayersModel;
  readonly analysis: ChannelAnalysis;
  readonly trainSet: ImageDataset;
  readonly testSet: ImageDataset;
  /** The groups every pruning method prunes (the division's searched groups). */
  readonly groupIds: readonly string[];
  readonly emit: (row: QualityRow) => void;
}

/** emo-dir through the pipeline's steps; returns its total evaluations (global-emo's budget). */
async function runEmoDir(ctx: Context): Promise<number> {
  const { store, spec, model, analysis, trainSet, testSet } = ctx;
  const manifest = await readManifest(store, RUN_ID);
  const division = manifest.division;
  const started = performance.now();
  let evaluations = 0;
  let workerSeconds = 0;
  if (ctx.options.workers > 1) {
    ({ evaluations, workerSeconds } = await searchInWorkerProcesses(ctx, division.subnetworks.map((s) => s.id)));
  } else {
    for (const subnet of division.subnetworks) {
      const subnetStarted = performance.now();
      const result = await searchSubnetwork({
        store,
        runId: RUN_ID,
        subnet: subnet.id,
        spec,
        model,
        division,
        dataset: trainSet,
        analysis,
        stdout: false,
        log: (m) => log(`  ${m}`),
      });
      evaluations += result.sessionEvaluations;
      workerSeconds += (performance.now() - subnetStarted) / 1000;
    }
  }
  const merged = await mergeRun(store, RUN_ID, { log: (m, d) => log(`  merge: ${m}${d ? ` ${JSON.stringify(d)}` : ''}`) });
  const seconds = (performance.now() - started) / 1000;
  log(
    `emo-dir: ${division.subnetworks.length} searches (${ctx.options.workers > 1 ? `${ctx.options.workers} worker processes` : 'in this process'}) + merge: ` +
      `${evaluations} evaluations in ${seconds.toFixed(1)} s wall, ${workerSeconds.toFixed(1)} worker-s`,
  );
  for (const target of ctx.options.targets) {
    const name = targetName({ kind: 'flopsCut', value: target });
    if (!merged.targets.includes(name)) {
      log(`emo-dir: target ${name} infeasible (merge found no scheme)`);
      ctx.emit(infeasibleRow('emo-dir', target, { seconds, evaluations, workerSeconds }));
      continue;
    }
    const finalized = await finalizeTarget({
      store,
      runId: RUN_ID,
      target: name,
      spec,
      model,
      division,
      analysis,
      trainSet,
      testSet,
      log: (m, d) => log(`  finalize ${name}: ${m}${d && m.startsWith('scheme') ? ` ${JSON.stringify(d)}` : ''}`),
    });
    const m = finalized.metrics;
    ctx.emit({
      method: 'emo-dir',
      targetFlopsCut: target,
      flopsCut: round(m.achieved.flopsCut),
      paramsCut: round(m.achieved.paramsCut),
      accuracy: round(m.accuracy.afterFineTune),
      accuracyBeforeFineTune: round(m.accuracy.beforeFineTune),
      accuracyAfter1Epoch: round(after1Epoch({ epochs: m.fineTuneEpochs, checkpoints: m.fineTuneCheckpoints, final: m.accuracy.afterFineTune })),
      searchSeconds: round(seconds, 1) ?? 0,
      searchWorkerSeconds: round(workerSeconds, 1) ?? 0,
      evaluations,
    });
  }
  return evaluations;
}

/**
 * The sub-network searches as the pipeline runs them: one worker process per sub-network
 * (containers/worker.ts, what a Batch job runs), `workers` at a time, on the bench's store.
 * Returns the evaluations the searches report (search-stats.json) and the summed process time.
 */
async function searchInWorkerProcesses(ctx: Context, subnets: readonly string[]): Promise<{ evaluations: number; workerSeconds: number }> {
  const runner = new LocalProcessJobRunner({
    concurrency: ctx.options.workers,
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
  const workerSeconds = records.reduce((sum, record) => sum + record.workerSeconds, 0);
  return { evaluations, workerSeconds };
}

async function runGlobalEmo(ctx: Context, evaluations: number): Promise<void> {
  const { spec, model, analysis, trainSet, testSet } = ctx;
  const started = performance.now();
  const division = wholeNetworkDivision(model, analysis);
  const subsets = drawSearchSubsets(trainSet, { searchTrain: spec.dataset.searchTrain, searchVal: spec.dataset.searchVal, seed: spec.search.seed });
  const computed = await computeBoundaryFeatures(model, division, trainSet, subsets, { subnets: [division.subnetworks[0].id], log: (m) => log(`  ${m}`) });
  const features = computed.get(division.subnetworks[0].id)!;
  const globalOptions: GlobalEmoOptions = {
    model,
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
  const result = await globalEmoSearch(globalOptions);
  const seconds = (performance.now() - started) / 1000;
  const search = { seconds, evaluations: result.evaluations };
  for (const target of ctx.options.targets) {
    const point = pickForTarget(result, { kind: 'flopsCut', value: target });
    if (!point) {
      log(`global-emo: no front point meets a ${target} FLOPs cut (front of ${result.front.length} points)`);
      ctx.emit(infeasibleRow('global-emo', target, search));
      continue;
    }
    const summary = summarizePruned(analysis, globalEmoMasks(result, point.genome));
    const recovered = recoverGlobalEmoCandidate(globalOptions, point.genome);
    try {
      log(`global-emo ${target}: point flops ${point.flops.toFixed(3)} impairment ${point.impairment.toFixed(4)} search-val acc ${(point.accuracy * 100).toFixed(2)}%`);
      const tuned = await fineTuneAndEvaluate(recovered, model, trainSet, testSet, benchFineTuneSettings(spec, trainSet, testSet));
      ctx.emit(rowFromFineTune('global-emo', target, summary, tuned, search));
    } finally {
      recovered.dispose();
    }
  }
}

async function runMaskBaseline(ctx: Context, method: 'uniform-l1' | 'random'): Promise<void> {
  const { spec, model, analysis, trainSet, testSet } = ctx;
  for (const target of ctx.options.targets) {
    const started = performance.now();
    const maskOptions = { minKeep: spec.divide.minKeep, roundTo: spec.divide.roundTo, groupIds: ctx.groupIds };
    const t = { kind: 'flopsCut' as const, value: target };
    const masks = method === 'uniform-l1' ? uniformL1Masks(model, analysis, t, maskOptions) : randomMasks(model, analysis, t, spec.search.seed, maskOptions);
    const seconds = (performance.now() - started) / 1000;
    const pruned = pruneAtMasks(model, analysis, masks.masks);
    try {
      log(`${method} ${target}: keep fraction ${masks.keepFraction.toFixed(3)}, FLOPs cut ${(masks.summary.flopsCut * 100).toFixed(1)}%`);
      const tuned = await fineTuneAndEvaluate(pruned.model, model, trainSet, testSet, benchFineTuneSettings(spec, trainSet, testSet));
      ctx.emit(rowFromFineTune(method, target, pruned.summary, tuned, { seconds, evaluations: 0 }));
    } finally {
      pruned.model.dispose();
    }
  }
}

function runUnpruned(ctx: Context): void {
  const settings = benchFineTuneSettings(ctx.spec, ctx.trainSet, ctx.testSet);
  const result = evaluate(ctx.model, ctx.testSet, { batchSize: 256, normalize: 'unit', indices: settings.testIndices });
  const accuracy = round(result.top1);
  ctx.emit({
    method: 'unpruned',
    targetFlopsCut: 0,
    flopsCut: 0,
    paramsCut: 0,
    accuracy,
    accuracyBeforeFineTune: accuracy,
    accuracyAfter1Epoch: null,
    searchSeconds: 0,
    searchWorkerSeconds: 0,
    evaluations: 0,
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const benchStarted = performance.now();
  await initEngine({ log });
  const spec = specOf(options);
  const b = options.budgets;
  log(
    `bench:quality${options.quick ? ' --quick' : ''}: targets ${options.targets.join(', ')}; methods ${options.methods.join(', ')}; seed ${options.seed}; ` +
      `search-train ${b.searchTrain}, search-val ${b.searchVal}, population ${b.population}, generations ${b.generations}, ` +
      `recovery ${b.recoverySteps} steps x ${spec.search.recoveryBatchSize} (lr ${spec.search.recoveryLearningRate}, alpha ${spec.search.alpha}, beta ${spec.search.beta}); ` +
      `fine-tune ${b.fineTuneEpochs} epoch(s) on ${b.fineTuneLimit ?? 'all'} images (lr ${spec.finalize.learningRate}, distill ${spec.finalize.distillWeight}); test on ${b.testLimit ?? 'all'}`,
  );
  const store = await temporaryStore('quality');
  await putJson(store, runKeys(RUN_ID).spec, spec);
  await planRun(store, RUN_ID, { log: (m) => log(`  plan: ${m}`) });
  const manifest = await readManifest(store, RUN_ID);
  const model = await loadModel(EXAMPLE_MODEL);
  const analysis = analyzeChannels(model, { pruneResidual: manifest.division.pruneResidual });
  const trainSet = await loadFashionMnist({ split: 'train', log });
  const testSet = await loadFashionMnist({ split: 'test', log });
  const groupIds = manifest.division.subnetworks.flatMap((s) => s.groupIds);
  log(`division: ${manifest.division.subnetworks.map((s) => `${s.id} [${s.groupIds.join(' ')}]`).join('; ')}`);

  const rows: QualityRow[] = [];
  const emit = (row: QualityRow): void => {
    rows.push(row);
    if (options.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    else log(`row: ${JSON.stringify(row)}`);
  };
  const ctx: Context = { options, spec, store, model, analysis, trainSet, testSet, groupIds, emit };
  const has = (m: Method): boolean => options.methods.includes(m);

  if (has('unpruned')) runUnpruned(ctx);
  let evaluations: number | undefined;
  if (has('emo-dir')) evaluations = await runEmoDir(ctx);
  if (has('global-emo')) {
    if (evaluations === undefined) {
      // Without an emo-dir run to measure, its nominal budget: every sub-network evaluates
      // population x (generations + 1) at most (duplicates are not re-evaluated).
      evaluations = manifest.division.subnetworks.length * b.population * (b.generations + 1);
      log(`global-emo: emo-dir not run; using its nominal budget of ${evaluations} evaluations`);
    }
    await runGlobalEmo(ctx, evaluations);
  }
  if (has('uniform-l1')) await runMaskBaseline(ctx, 'uniform-l1');
  if (has('random')) await runMaskBaseline(ctx, 'random');
  model.dispose();

  log(`bench:quality done in ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`);
  if (!options.json) {
    const ordered = [...rows].sort((a, b2) => a.targetFlopsCut - b2.targetFlopsCut || METHODS.indexOf(a.method) - METHODS.indexOf(b2.method));
    process.stdout.write(
      `${formatTable(
        ['method', 'target cut %', 'FLOPs cut %', 'params cut %', 'acc before FT %', 'acc 1 ep %', 'acc final %', 'search s', 'search worker-s', 'evals'],
        ordered.map((r) => [
          r.method,
          percent(r.targetFlopsCut),
          percent(r.flopsCut),
          percent(r.paramsCut),
          percent(r.accuracyBeforeFineTune),
          percent(r.accuracyAfter1Epoch),
          percent(r.accuracy),
          r.searchSeconds,
          r.searchWorkerSeconds,
          r.evaluations,
        ]),
      )}\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
