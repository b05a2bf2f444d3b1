/**
 * Quality benchmark (DESIGN §2 "Baselines", "Fair protocol"; §7): EMO-DIR against global-EMO,
 * EagleEye and rule baselines on Fashion-MNIST, for the trained example models
 * (`examples/fmnist-resnet`, `examples/fmnist-resnet56`), at FLOPs-cut targets (default 50/70/85%),
 * over several seeds, with equal-compute variants of every baseline.
 *
 *   npm run bench:quality [-- --quick] [--json] [--models fmnist-resnet,fmnist-resnet56]
 *     [--targets 0.5,0.7,0.85] [--methods emo-dir,global-emo,eagleeye,global-l2,global-taylor,slimming,uniform-l1,random,unpruned]
 *     [--compute standard,passes,cpu] [--seeds N | --seeds 1,2,3 | --seed N] [--workers N]
 *     [--fine-tune-epochs E] [--fine-tune-limit N] [--test-limit N] [--search-train N] [--search-val N]
 *     [--population N] [--generations N] [--recovery-steps N] [--verify-top N] [--joint-recovery-steps N]
 *     [--prune-residual] [--importance l1|l2|bn-scale|taylor]
 *
 * Per model and seed: plan -> EMO-DIR (searches, merge, finalize per target) -> global-EMO with
 * EMO-DIR's evaluation count -> the mask baselines (bench/lib/quality-methods.ts). The seed
 * changes the search subsets, the search, the fine-tune and test subsets and the data order, for
 * every method alike, so seeds pair. Rows:
 *
 *   per seed   {model, method, compute, targetFlopsCut, seed, flopsCut, paramsCut, accuracy,
 *               accuracyBeforeFineTune, accuracyAfter1Epoch, searchSeconds, searchCpuSeconds,
 *               evaluations, recoveryImages, fineTuneImages, fineTuneCpuSeconds}
 *   aggregate  {model, method, compute, targetFlopsCut, seed: "mean", seeds, accuracy, accuracySe,
 *               accuracyBeforeFineTune, accuracyBeforeFineTuneSe, flopsCut}
 *   paired     {model, method, compute, targetFlopsCut, seed: "paired", versus: "emo-dir", seeds,
 *               difference, differenceSe, differenceBeforeFineTune, differenceBeforeFineTuneSe}
 *
 * `--json` prints them as JSON lines on stdout (per-seed rows as soon as measured, the others at
 * the end); without it, tables. Logs go to stderr.
 */
import { initEngine } from '../src/engine/backend.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { drawSearchSubsets } from '../src/dir/features.ts';
import { cpuSecondsSince } from '../src/dir/finalize.ts';
import { readManifest } from '../src/dir/manifest.ts';
import { planRun } from '../src/dir/plan.ts';
import { analyzeChannels } from '../src/model/groups.ts';
import { loadModel } from '../src/model/io.ts';
import type { RunSpec } from '../src/schema/spec.ts';
import { putJson } from '../src/store/object-store.ts';
import { runKeys } from '../src/store/keys.ts';
import { buildSpec, log, temporaryStore } from './lib/quality-common.ts';
import { RUN_ID, runEmoDir, runGlobalEmo, runMaskBaseline, runUnpruned } from './lib/quality-methods.ts';
import type { EmoCost, QualityRow, SeedContext } from './lib/quality-methods.ts';
import { modelDirectory, parseQualityOptions } from './lib/quality-options.ts';
import type { BenchModel, Method, QualityOptions } from './lib/quality-options.ts';
import { qualityTables } from './lib/quality-report.ts';
import { aggregateRows, pairedRows } from './lib/quality-stats.ts';

function specOf(options: QualityOptions, model: BenchModel, seed: number): RunSpec {
  const b = options.budgets;
  return buildSpec({
    model: modelDirectory(model),
    dataset: {
      name: 'fashion-mnist',
      searchTrain: b.searchTrain,
      searchVal: b.searchVal,
      ...(b.fineTuneLimit === undefined ? {} : { fineTuneLimit: b.fineTuneLimit }),
      ...(b.testLimit === undefined ? {} : { testLimit: b.testLimit }),
    },
    targets: options.targets.map((value) => ({ kind: 'flopsCut' as const, value })),
    divide: { pruneResidual: options.pruneResidual },
    search: { population: b.population, generations: b.generations, recoverySteps: b.recoverySteps, seed, importance: options.importance },
    merge: { verifyTop: b.verifyTop },
    finalize: { epochs: b.fineTuneEpochs, jointRecoverySteps: b.jointRecoverySteps },
  });
}

async function runSeed(options: QualityOptions, model: BenchModel, seed: number, data: { trainSet: SeedContext['trainSet']; testSet: SeedContext['testSet'] }, emit: (row: QualityRow) => void): Promise<void> {
  const spec = specOf(options, model, seed);
  const store = await temporaryStore(`quality-${model}-s${seed}`);
  await putJson(store, runKeys(RUN_ID).spec, spec);
  await planRun(store, RUN_ID, { log: (m) => log(`  plan: ${m}`) });
  const manifest = await readManifest(store, RUN_ID);
  const original = await loadModel(modelDirectory(model));
  try {
    const division = manifest.division;
    const analysis = analyzeChannels(original, { pruneResidual: division.pruneResidual });
    const groupIds = division.subnetworks.flatMap((s) => s.groupIds);
    log(`${model} seed ${seed}: division ${division.subnetworks.map((s) => `${s.id} [${s.groupIds.length} groups, ${s.genomeLength} channels]`).join('; ')}`);
    const ctx: SeedContext = {
      model,
      seed,
      spec,
      store,
      original,
      analysis,
      division,
      trainSet: data.trainSet,
      testSet: data.testSet,
      subsets: drawSearchSubsets(data.trainSet, { searchTrain: spec.dataset.searchTrain, searchVal: spec.dataset.searchVal, seed }),
      targets: options.targets,
      compute: options.compute,
      workers: options.workers,
      groupIds,
      emit,
    };
    const has = (m: Method): boolean => options.methods.includes(m);
    if (has('unpruned')) runUnpruned(ctx);
    let emo: EmoCost | undefined;
    if (has('emo-dir')) emo = await runEmoDir(ctx);
    else log('emo-dir not run: EMO budgets and equal-compute variants use its nominal evaluation count; passes/cpu variants are skipped');
    if (has('global-emo')) await runGlobalEmo(ctx, emo);
    for (const method of ['eagleeye', 'global-l2', 'global-taylor', 'slimming', 'uniform-l1', 'random'] as const) {
      if (has(method)) await runMaskBaseline(ctx, method, emo);
    }
  } finally {
    original.dispose();
  }
}

async function main(): Promise<void> {
  const options = parseQualityOptions(process.argv.slice(2));
  const benchStarted = performance.now();
  const cpuStarted = process.cpuUsage();
  await initEngine({ log });
  const b = options.budgets;
  log(
    `bench:quality${options.quick ? ' --quick' : ''}: models ${options.models.join(', ')}; targets ${options.targets.join(', ')}; ` +
      `methods ${options.methods.join(', ')}; compute ${options.compute.join(', ')}; seeds ${options.seeds.join(', ')}; ` +
      `search-train ${b.searchTrain}, search-val ${b.searchVal}, population ${b.population} x ${b.generations} generations, ` +
      `recovery ${b.recoverySteps} steps, verifyTop ${b.verifyTop}, joint recovery ${b.jointRecoverySteps} steps; ` +
      `fine-tune ${b.fineTuneEpochs} epoch(s) on ${b.fineTuneLimit ?? 'all'} images; test on ${b.testLimit ?? 'all'}; ` +
      `pruneResidual ${options.pruneResidual}, importance ${options.importance}; workers ${options.workers}`,
  );
  const trainSet = await loadFashionMnist({ split: 'train', log });
  const testSet = await loadFashionMnist({ split: 'test', log });
  const rows: QualityRow[] = [];
  const emit = (row: QualityRow): void => {
    rows.push(row);
    if (options.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    else log(`row: ${JSON.stringify(row)}`);
  };
  for (const model of options.models) {
    for (const seed of options.seeds) await runSeed(options, model, seed, { trainSet, testSet }, emit);
  }
  const aggregates = aggregateRows(rows);
  const paired = options.methods.includes('emo-dir') ? pairedRows(rows, 'emo-dir') : [];
  log(`bench:quality done in ${((performance.now() - benchStarted) / 1000).toFixed(0)} s wall, ${cpuSecondsSince(cpuStarted).toFixed(0)} CPU-s`);
  if (options.json) {
    for (const row of [...aggregates, ...paired]) process.stdout.write(`${JSON.stringify(row)}\n`);
  } else {
    process.stdout.write(qualityTables(rows, aggregates, paired));
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
