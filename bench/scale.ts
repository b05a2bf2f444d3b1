/**
 * Scale benchmark (DESIGN §3 "Scale", §7): does a worker's memory stay bounded as the data grows?
 *
 *   npm run bench:scale [-- --json] [--stage search|finalize|all] [--sizes 64,128,256]
 *                       [--subnets k1,k2,k3,k4] [--val-ratio 0.5] [--concurrency 2] [--keep]
 *
 * `search` stage: ResNet-50 at 224x224 on synthetic shards the bench writes (deterministic noise
 * images in the project's shard format, not a real data set); for every (sub-network,
 * searchTrain) one search worker process (bench/lib/scale-search.ts) computes its boundary
 * features and runs a tiny NSGA-II step; the row is its peak RSS and seconds per evaluation.
 * searchVal = searchTrain * --val-ratio (0.5: the spec defaults' 2048:1024 proportion).
 * After the rows, a least-squares line per sub-network gives the peak's growth per added search
 * image (train + val) and projects it to the spec defaults (2048 + 1024).
 *
 * `finalize` stage: a finalize worker's peak RSS and fine-tune throughput against the data set size
 * (2k and 8k synthetic 224x224 images, streamed against loaded whole): bench/lib/scale-finalize.ts.
 *
 * `--json` prints one JSON object per row on stdout (DESIGN §7: {model, subnet, searchTrain,
 * peakRssBytes, secondsPerEvaluation} plus extra fields; projections carry "projected": true);
 * logs go to stderr. The work directory (shards, stores) is deleted unless `--keep`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable } from './lib/table.ts';
import { reportScaleFinalize, runScaleFinalize } from './lib/scale-finalize.ts';
import { SCALE_MODEL, searchScaleRows } from './lib/scale-search.ts';
import type { ScaleSearchRow } from './lib/scale-search.ts';
import { writeSyntheticShards } from './lib/synthetic-shards.ts';

const STAGES = ['search', 'finalize', 'all'] as const;
type Stage = (typeof STAGES)[number];

/** The spec defaults the projection is for. */
const PROJECT_TRAIN = 2048;
const PROJECT_VAL = 1024;

interface Options {
  readonly json: boolean;
  readonly stage: Stage;
  readonly sizes: number[];
  readonly subnets: string[];
  readonly valRatio: number;
  readonly concurrency: number;
  readonly keep: boolean;
}

function positiveIntegers(value: string, flag: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`${flag}: expected comma-separated positive integers, got '${value}'`);
  return list;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      json: { type: 'boolean', default: false },
      stage: { type: 'string', default: 'search' },
      sizes: { type: 'string', default: '64,128,256' },
      subnets: { type: 'string', default: 'k1,k2,k3,k4' },
      'val-ratio': { type: 'string', default: '0.5' },
      concurrency: { type: 'string', default: '2' },
      keep: { type: 'boolean', default: false },
    },
  });
  if (!(STAGES as readonly string[]).includes(values.stage)) throw new Error(`--stage: expected ${STAGES.join('|')}, got '${values.stage}'`);
  const valRatio = Number(values['val-ratio']);
  if (!(valRatio > 0 && valRatio <= 4)) throw new Error(`--val-ratio: expected a number in (0, 4], got '${values['val-ratio']}'`);
  const subnets = values.subnets.split(',').map((s) => s.trim());
  if (subnets.some((s) => !/^k[1-9][0-9]*$/.test(s))) throw new Error(`--subnets: expected ids like k1,k2, got '${values.subnets}'`);
  const [concurrency] = positiveIntegers(values.concurrency, '--concurrency');
  return { json: values.json, stage: values.stage as Stage, sizes: positiveIntegers(values.sizes, '--sizes'), subnets, valRatio, concurrency, keep: values.keep };
}

const log = (message: string): void => void process.stderr.write(`${message}\n`);

/** Least-squares line through (x, y). */
function fitLine(points: readonly (readonly [number, number])[]): { slope: number; intercept: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const slope = sxx > 0 ? points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

interface Projection {
  readonly model: string;
  readonly subnet: string;
  readonly searchTrain: number;
  readonly searchVal: number;
  readonly peakRssBytes: number;
  readonly projected: true;
  /** Growth of the peak per added search image (train + val), from the measured rows. */
  readonly slopeBytesPerImage: number;
  readonly measuredMaxPeakRssBytes: number;
}

function project(rows: readonly ScaleSearchRow[]): Projection[] {
  const bySubnet = new Map<string, ScaleSearchRow[]>();
  for (const row of rows) bySubnet.set(row.subnet, [...(bySubnet.get(row.subnet) ?? []), row]);
  return [...bySubnet].map(([subnet, measured]) => {
    const { slope, intercept } = fitLine(measured.map((r) => [r.searchTrain + r.searchVal, r.peakRssBytes] as const));
    return {
      model: measured[0].model,
      subnet,
      searchTrain: PROJECT_TRAIN,
      searchVal: PROJECT_VAL,
      peakRssBytes: Math.round(intercept + slope * (PROJECT_TRAIN + PROJECT_VAL)),
      projected: true,
      slopeBytesPerImage: slope,
      measuredMaxPeakRssBytes: Math.max(...measured.map((r) => r.peakRssBytes)),
    };
  });
}

const MIB = 2 ** 20;

function printSearchTable(rows: readonly ScaleSearchRow[], projections: readonly Projection[]): void {
  console.log(`\nsearch workers, ${SCALE_MODEL} at 224x224 (peak RSS of each worker process)`);
  console.log(
    formatTable(
      ['subnet', 'searchTrain', 'searchVal', 'peak RSS MiB', 's/eval', 'features MiB', 'GMACs/eval', 'worker s'],
      rows.map((r) => [r.subnet, r.searchTrain, r.searchVal, r.peakRssBytes / MIB, r.secondsPerEvaluation, r.featureBytes / MIB, r.macsPerEvaluation / 1e9, r.workerSeconds]),
    ),
  );
  console.log(`\nprojection to ${PROJECT_TRAIN} + ${PROJECT_VAL} (least squares over the rows above)`);
  console.log(
    formatTable(
      ['subnet', 'slope KiB/image', 'projected peak MiB', 'measured max MiB'],
      projections.map((p) => [p.subnet, p.slopeBytesPerImage / 1024, p.peakRssBytes / MIB, p.measuredMaxPeakRssBytes / MIB]),
    ),
  );
}

type StageRunner = (options: Options, workDir: string) => Promise<void>;

async function runSearchStage(options: Options, workDir: string): Promise<void> {
  const largest = Math.max(...options.sizes);
  const count = largest + Math.max(1, Math.round(largest * options.valRatio)) + 64;
  const shardsDir = join(workDir, 'shards');
  const started = performance.now();
  await writeSyntheticShards(shardsDir, { count, height: 224, width: 224, classes: 1000, seed: 7 });
  log(`bench:scale search: ${count} synthetic 224x224 images in ${((performance.now() - started) / 1000).toFixed(1)} s under ${shardsDir}`);
  const rows = await searchScaleRows(
    { shardsDir, workDir, subnets: options.subnets, sizes: options.sizes, valRatio: options.valRatio, concurrency: options.concurrency, log },
    (row) => {
      log(`  -> ${row.subnet} ${row.searchTrain}+${row.searchVal}: peak ${(row.peakRssBytes / MIB).toFixed(0)} MiB, ${row.secondsPerEvaluation.toFixed(1)} s/eval`);
      if (options.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    },
  );
  const projections = project(rows);
  if (options.json) {
    for (const p of projections) process.stdout.write(`${JSON.stringify(p)}\n`);
  } else {
    printSearchTable(rows, projections);
  }
}

async function runFinalizeStage(options: Options, workDir: string): Promise<void> {
  const { rows, summary } = await runScaleFinalize({ dir: join(workDir, 'finalize'), log });
  reportScaleFinalize(rows, summary, options.json);
}

const stageRunners: Record<Exclude<Stage, 'all'>, StageRunner> = {
  search: runSearchStage,
  finalize: runFinalizeStage,
};

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const stages = options.stage === 'all' ? (['search', 'finalize'] as const) : [options.stage];
  const workDir = await mkdtemp(join(tmpdir(), 'emo-dir-scale-'));
  const started = performance.now();
  try {
    for (const stage of stages) {
      await stageRunners[stage](options, workDir);
    }
  } finally {
    if (options.keep) log(`bench:scale: kept ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
  log(`bench:scale: done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

await main();
