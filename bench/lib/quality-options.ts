/**
 * Flags and budgets of bench:quality (bench/quality.ts; bench/README.md lists them).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isPositiveInt, parseNumber, parseNumberList } from './quality-common.ts';

export const METHODS = [
  'emo-dir',
  'global-emo',
  'eagleeye',
  'global-l2',
  'global-taylor',
  'slimming',
  'uniform-l1',
  'random',
  'unpruned',
] as const;
export type Method = (typeof METHODS)[number];

/**
 * The compute a baseline's final network is given: `standard` = the common fine-tune only;
 * `passes` = plus as many extra fine-tune images as EMO-DIR's final network saw in recovery;
 * `cpu` = plus as much extra fine-tune CPU time as EMO-DIR's search took beyond the baseline's own.
 */
export const COMPUTE_VARIANTS = ['standard', 'passes', 'cpu'] as const;
export type Compute = (typeof COMPUTE_VARIANTS)[number];

/** The benchmark models: examples/<name>/model (trained, checked in). */
export const MODELS = ['fmnist-resnet', 'fmnist-resnet56'] as const;
export type BenchModel = (typeof MODELS)[number];

export function modelDirectory(model: BenchModel): string {
  return resolve('examples', model, 'model');
}

export interface Budgets {
  readonly searchTrain: number;
  readonly searchVal: number;
  readonly population: number;
  readonly generations: number;
  readonly recoverySteps: number;
  readonly verifyTop: number;
  /** Steps of joint recovery of each assembled scheme before it is verified (finalize). */
  readonly jointRecoverySteps: number;
  readonly fineTuneEpochs: number;
  readonly fineTuneLimit: number | undefined;
  readonly testLimit: number | undefined;
}

/**
 * `--quick`: every method, one seed, one model, a small search and a 1-epoch fine-tune on 1k
 * images (sized to finish within 10 minutes on an idle 2-core machine). Full: three seeds, both
 * models, the example spec's search subsets, 10 x 4 NSGA-II, 20 recovery steps, 2 fine-tune epochs
 * on 4k images, tested on 5k.
 */
export const QUICK: Budgets = {
  searchTrain: 512,
  searchVal: 256,
  population: 6,
  generations: 2,
  recoverySteps: 5,
  verifyTop: 2,
  jointRecoverySteps: 10,
  fineTuneEpochs: 1,
  fineTuneLimit: 1000,
  testLimit: 1000,
};
export const FULL: Budgets = {
  searchTrain: 1024,
  searchVal: 512,
  population: 10,
  generations: 4,
  recoverySteps: 20,
  verifyTop: 3,
  jointRecoverySteps: 40,
  fineTuneEpochs: 2,
  fineTuneLimit: 4000,
  testLimit: 5000,
};

export interface QualityOptions {
  readonly json: boolean;
  readonly quick: boolean;
  readonly models: BenchModel[];
  readonly targets: number[];
  readonly methods: Method[];
  readonly compute: Compute[];
  readonly seeds: number[];
  /** emo-dir's sub-network searches at once, as worker processes; 1 = in this process (CPU seconds measured). */
  readonly workers: number;
  readonly pruneResidual: boolean;
  readonly importance: 'l1' | 'l2' | 'bn-scale' | 'taylor';
  readonly budgets: Budgets;
}

function listOf<T extends string>(value: string, flag: string, known: readonly T[]): T[] {
  const items = value.split(',').filter((m) => m !== '');
  for (const item of items) {
    if (!(known as readonly string[]).includes(item)) throw new Error(`${flag}: unknown value '${item}' (${known.join(', ')})`);
  }
  if (items.length === 0) throw new Error(`${flag}: empty list`);
  return items as T[];
}

/** `--seeds 5` = seeds 1..5; `--seeds 3,7` = those seeds. */
function parseSeeds(value: string): number[] {
  if (/^\d+$/.test(value.trim())) {
    const count = Number(value);
    if (!isPositiveInt(count)) throw new Error(`--seeds: expected a count >= 1 or a list, got '${value}'`);
    return Array.from({ length: count }, (_, i) => i + 1);
  }
  return parseNumberList(value, '--seeds', (n) => Number.isInteger(n) && n >= 0, 'integers >= 0');
}

export function parseQualityOptions(argv: string[]): QualityOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      models: { type: 'string' },
      targets: { type: 'string', default: '0.5,0.7,0.85' },
      methods: { type: 'string', default: METHODS.join(',') },
      compute: { type: 'string' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string', default: '1' },
      'prune-residual': { type: 'boolean', default: false },
      importance: { type: 'string', default: 'l1' },
      'fine-tune-epochs': { type: 'string' },
      'fine-tune-limit': { type: 'string' },
      'test-limit': { type: 'string' },
      'search-train': { type: 'string' },
      'search-val': { type: 'string' },
      population: { type: 'string' },
      generations: { type: 'string' },
      'recovery-steps': { type: 'string' },
      'verify-top': { type: 'string' },
      'joint-recovery-steps': { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick;
  const base = quick ? QUICK : FULL;
  const targets = parseNumberList(values.targets, '--targets', (n) => n > 0 && n < 1, 'FLOPs-cut fractions in (0, 1)');
  const methods = listOf(values.methods, '--methods', METHODS);
  const compute = listOf(values.compute ?? (quick ? 'standard,passes' : COMPUTE_VARIANTS.join(',')), '--compute', COMPUTE_VARIANTS);
  if (!compute.includes('standard')) throw new Error("--compute: must include 'standard' (the variants are measured against it)");
  const models = listOf(values.models ?? (quick ? 'fmnist-resnet' : MODELS.join(',')), '--models', MODELS);
  for (const model of models) {
    if (!existsSync(join(modelDirectory(model), 'model.json'))) {
      throw new Error(`--models: ${model} has no trained model at ${join(modelDirectory(model), 'model.json')} (see examples/${model}/README.md to train it)`);
    }
  }
  if (values.seed !== undefined && values.seeds !== undefined) throw new Error('give --seed or --seeds, not both');
  const seeds = values.seed !== undefined ? [parseNumber(values.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0')!] : parseSeeds(values.seeds ?? (quick ? '1' : '3'));
  const importance = listOf(values.importance, '--importance', ['l1', 'l2', 'bn-scale', 'taylor'] as const)[0];
  const int = (flag: string, value: string | undefined): number | undefined => parseNumber(value, flag, isPositiveInt, 'a positive integer');
  const nonNegativeInt = (flag: string, value: string | undefined): number | undefined =>
    parseNumber(value, flag, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  const budgets: Budgets = {
    searchTrain: int('--search-train', values['search-train']) ?? base.searchTrain,
    searchVal: int('--search-val', values['search-val']) ?? base.searchVal,
    population: int('--population', values.population) ?? base.population,
    generations: int('--generations', values.generations) ?? base.generations,
    recoverySteps: nonNegativeInt('--recovery-steps', values['recovery-steps']) ?? base.recoverySteps,
    verifyTop: int('--verify-top', values['verify-top']) ?? base.verifyTop,
    jointRecoverySteps: nonNegativeInt('--joint-recovery-steps', values['joint-recovery-steps']) ?? base.jointRecoverySteps,
    fineTuneEpochs: parseNumber(values['fine-tune-epochs'], '--fine-tune-epochs', (n) => Number.isFinite(n) && n >= 0, 'a number >= 0') ?? base.fineTuneEpochs,
    fineTuneLimit: int('--fine-tune-limit', values['fine-tune-limit']) ?? base.fineTuneLimit,
    testLimit: int('--test-limit', values['test-limit']) ?? base.testLimit,
  };
  const workers = parseNumber(values.workers, '--workers', isPositiveInt, 'a positive integer') ?? 1;
  return { json: values.json, quick, models, targets, methods, compute, seeds, workers, pruneResidual: values['prune-residual'], importance, budgets };
}
