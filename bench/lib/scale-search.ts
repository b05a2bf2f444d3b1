/**
 * bench:scale, `search` stage: the peak memory and per-evaluation time of ONE sub-network search
 * worker of ResNet-50 at 224x224, as the search subsets grow (DESIGN §3 "Scale", §7).
 *
 * Every measurement is its own worker process (this file with `--child`), which does what a
 * Batch search job does, through the same library function (`searchSubnetwork`): boundary
 * features of its sub-network computed from the images (read per batch from synthetic shards
 * through an ImageSource) and cached in a FileStore, then NSGA-II with a tiny budget, a
 * checkpoint and front.json. The process reports `process.resourceUsage().maxRSS` (KiB) at
 * exit: its peak resident memory, feature computation included.
 *
 * Budget per worker (kept tiny so 12 workers of ResNet-50 fit in minutes on 2 cores): population
 * 4, at most 2 evaluations (the unpruned reference and one pruned candidate), 1 recovery step of
 * 8 images, 1 BN batch, inference in batches of 16. Peak memory depends on these batch sizes (a
 * fixed buffer), not on the subset sizes: what the rows check.
 *
 *   node --import tsx bench/lib/scale-search.ts --child --shards DIR --store DIR --subnet k1 \
 *        --search-train 64 --search-val 32
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Division } from '../../src/dir/divide.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import type { RunSpec } from '../../src/schema/spec.ts';

export const SCALE_MODEL = 'resnet50';

export interface ScaleSearchRow {
  readonly model: string;
  readonly subnet: string;
  readonly searchTrain: number;
  readonly searchVal: number;
  /** Peak resident set of the worker process (bytes). */
  readonly peakRssBytes: number;
  /** Wall seconds per candidate evaluation (mean over the pruned candidates evaluated). */
  readonly secondsPerEvaluation: number;
  readonly evaluations: number;
  /** Bytes of X_{k-1}/X_k/label rows cached for this sub-network (spool files, store shards). */
  readonly featureBytes: number;
  /** Multiply-accumulates of one pruned-candidate evaluation at these settings (counted from the graph). */
  readonly macsPerEvaluation: number;
  /** Wall seconds of the whole worker (features + search). */
  readonly workerSeconds: number;
}

/** The tiny search budget of a scale worker (every other field: the spec's defaults). */
export function scaleSpec(searchTrain: number, searchVal: number): RunSpec {
  return runSpecSchema.parse({
    model: `zoo:${SCALE_MODEL}`,
    dataset: { name: 'synthetic-imagenet', searchTrain, searchVal },
    targets: [{ kind: 'flopsCut', value: 0.5 }],
    search: {
      population: 4,
      generations: 1,
      maxEvaluations: 2,
      recoverySteps: 1,
      recoveryBatchSize: 8,
      bnRecalibrationBatches: 1,
      // Smaller than every subset here, so every row computes and scores in full batches: the
      // peak then reflects the subset sizes, not a batch that grows with them up to its default.
      featureBatchSize: 16,
      evalBatchSize: 16,
    },
  });
}

export interface EvaluationCostSettings {
  readonly recoverySteps: number;
  readonly recoveryBatchSize: number;
  readonly bnRecalibrationBatches: number;
  /** Whether the CE term runs T_k (beta > 0). */
  readonly beta: number;
  readonly searchVal: number;
  /** Pruned S_k MACs / unpruned (1: the unpruned cost, an upper bound). */
  readonly keptMacsRatio: number;
}

/**
 * MACs of one candidate evaluation of sub-network `subnet` (candidate.ts): recovery steps train
 * S_k' (forward, input and weight gradients: 3x its MACs) through the frozen T_k (forward and
 * input gradient: 2x, when beta > 0), BN re-estimation runs S_k' forward, and scoring runs S_k'
 * and T_k forward over the search-validation subset.
 */
export function evaluationMacs(division: Division, subnet: string, settings: EvaluationCostSettings): number {
  const index = division.subnetworks.findIndex((s) => s.id === subnet);
  if (index < 0) throw new Error(`evaluationMacs: no sub-network ${subnet}`);
  const pruned = division.subnetworks[index].macs * settings.keptMacsRatio;
  const tail = division.subnetworks.slice(index + 1).reduce((sum, s) => sum + s.macs, 0);
  const images = settings.recoverySteps * settings.recoveryBatchSize;
  const recovery = images * (3 * pruned + (settings.beta > 0 ? 2 * tail : 0));
  const bn = settings.bnRecalibrationBatches * settings.recoveryBatchSize * pruned;
  const scoring = settings.searchVal * (pruned + tail);
  return recovery + bn + scoring;
}

// ---------------------------------------------------------------------------------------------
// The parent side: one child process per measurement

export interface ScaleSearchOptions {
  readonly shardsDir: string;
  /** A fresh directory per worker's store is made under it. */
  readonly workDir: string;
  readonly subnets: readonly string[];
  readonly sizes: readonly number[];
  /** searchVal = round(searchTrain * valRatio). */
  readonly valRatio: number;
  /** Workers at once (each is one single-threaded process; peak RSS is per process either way). */
  readonly concurrency: number;
  readonly log: (message: string) => void;
}

function runChild(args: readonly string[], log: (message: string) => void): Promise<ScaleSearchRow> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, '--child', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of chunk.split('\n')) if (line.trim()) log(`    [${args[5]} ${args[7]}] ${line}`);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) {
        reject(new Error(`scale worker ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${stderr.split('\n').slice(-20).join('\n')}`));
        return;
      }
      try {
        resolve(JSON.parse(last) as ScaleSearchRow);
      } catch {
        reject(new Error(`scale worker ${args.join(' ')} printed no row: ${last}`));
      }
    });
  });
}

/** One worker process per (subnet, size), `concurrency` at a time; rows in (subnet, size) order. */
export async function searchScaleRows(options: ScaleSearchOptions, onRow: (row: ScaleSearchRow) => void = () => {}): Promise<ScaleSearchRow[]> {
  const jobs = options.subnets.flatMap((subnet) => options.sizes.map((searchTrain) => ({ subnet, searchTrain, searchVal: Math.max(1, Math.round(searchTrain * options.valRatio)) })));
  const rows: ScaleSearchRow[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const at = next++;
      const { subnet, searchTrain, searchVal } = jobs[at];
      options.log(`  search worker ${SCALE_MODEL} ${subnet}: searchTrain ${searchTrain} + searchVal ${searchVal}`);
      const store = `${options.workDir}/store-${subnet}-${searchTrain}`;
      rows[at] = await runChild(
        ['--shards', options.shardsDir, '--store', store, '--subnet', subnet, '--search-train', String(searchTrain), '--search-val', String(searchVal)],
        options.log,
      );
      onRow(rows[at]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, jobs.length)) }, worker));
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The worker side

async function child(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      child: { type: 'boolean' },
      shards: { type: 'string' },
      store: { type: 'string' },
      subnet: { type: 'string' },
      'search-train': { type: 'string' },
      'search-val': { type: 'string' },
    },
  });
  const started = performance.now();
  const searchTrain = Number(values['search-train']);
  const searchVal = Number(values['search-val']);
  const subnet = values.subnet ?? 'k1';
  if (!values.shards || !values.store || !Number.isInteger(searchTrain) || !Number.isInteger(searchVal)) {
    throw new Error('usage: scale-search.ts --child --shards DIR --store DIR --subnet kN --search-train N --search-val M');
  }
  const log = (message: string): void => void process.stderr.write(`${message}\n`);
  const [{ initEngine }, { buildModel }, { analyzeChannels }, { divideNetwork }, { searchSubnetwork }, { FileStore }, { featureIndexSchema, featuresPrefix, FEATURES_INDEX }, { getJson }, { shardImageSource }] =
    await Promise.all([
      import('../../src/engine/backend.ts'),
      import('../../src/model/zoo.ts'),
      import('../../src/model/groups.ts'),
      import('../../src/dir/divide.ts'),
      import('../../src/dir/search-task.ts'),
      import('../../src/store/file-store.ts'),
      import('../../src/dir/features.ts'),
      import('../../src/store/object-store.ts'),
      import('./synthetic-shards.ts'),
    ]);
  await initEngine({ log });
  const model = buildModel(SCALE_MODEL, { seed: 1 });
  const analysis = analyzeChannels(model);
  const division = divideNetwork(model, analysis);
  const source = await shardImageSource(values.shards, 'synthetic-imagenet');
  const store = new FileStore(values.store);
  const spec = scaleSpec(searchTrain, searchVal);
  const runId = `scale-${subnet}-${searchTrain}`;
  let pruned = 0;
  let prunedSeconds = 0;
  let prunedMacs = 0;
  const unprunedMacs = division.subnetworks.find((s) => s.id === subnet)!.macs;
  try {
    await searchSubnetwork({
      store,
      runId,
      subnet,
      spec,
      model,
      division,
      analysis,
      dataset: source,
      log,
      stdout: false,
      onEvaluation: (result) => {
        if (result.recovery.steps === 0) return; // the unpruned reference: no recovery, not a candidate's cost
        pruned++;
        prunedSeconds += result.seconds;
        prunedMacs += result.macs;
      },
    });
  } finally {
    source.close();
  }
  const index = featureIndexSchema.parse(await getJson(store, `${featuresPrefix(runId, subnet)}${FEATURES_INDEX}`));
  const s = spec.search;
  const row: ScaleSearchRow = {
    model: SCALE_MODEL,
    subnet,
    searchTrain,
    searchVal,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    secondsPerEvaluation: pruned > 0 ? prunedSeconds / pruned : Number.NaN,
    evaluations: pruned,
    featureBytes: index.totalBytes,
    macsPerEvaluation: evaluationMacs(division, subnet, {
      recoverySteps: s.recoverySteps,
      recoveryBatchSize: s.recoveryBatchSize,
      bnRecalibrationBatches: s.bnRecalibrationBatches,
      beta: s.beta,
      searchVal,
      keptMacsRatio: pruned > 0 ? prunedMacs / pruned / unprunedMacs : 1,
    }),
    workerSeconds: (performance.now() - started) / 1000,
  };
  model.dispose();
  process.stdout.write(`${JSON.stringify(row)}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--child')) {
  await child(process.argv.slice(2));
}
