/**
 * Shared pieces of the quality benchmarks (bench/quality.ts, bench/ablation.ts and the tools that
 * re-run a finished store's finalize): logging to stderr, number-list flags, temporary stores, the
 * run spec both build, and the one fine-tune configuration every method is measured with.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { stratifiedSample } from '../../src/data/sampling.ts';
import type { FineTuneSettings } from '../../src/dir/finalize.ts';
import { fineTuneSettingsFromSpec } from '../../src/dir/finalize.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import type { RunSpec, RunSpecInput } from '../../src/schema/spec.ts';
import { FileStore } from '../../src/store/file-store.ts';

/** The trained example (DESIGN §2: ~91-92% top-1 on Fashion-MNIST). */
export const EXAMPLE_MODEL = resolve('examples/fmnist-resnet/model');

export function log(message: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

export function parseNumberList(value: string, flag: string, check: (n: number) => boolean, what: string): number[] {
  const numbers = value
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(Number);
  if (numbers.length === 0 || numbers.some((n) => !check(n))) throw new Error(`${flag}: expected a comma-separated list of ${what}, got '${value}'`);
  return numbers;
}

export function parseNumber(value: string | undefined, flag: string, check: (n: number) => boolean, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!check(n)) throw new Error(`${flag}: expected ${what}, got '${value}'`);
  return n;
}

export const isPositiveInt = (n: number): boolean => Number.isInteger(n) && n > 0;

/**
 * A temporary copy of a finished run's store without its targets' results, so finalize can run
 * again on the same plans (bench/joint-recovery.ts, bench/start-weights.ts); `remove` deletes it.
 */
export async function storeCopyWithoutTargets(source: string, runId: string): Promise<{ store: FileStore; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-rerun-'));
  await cp(source, dir, { recursive: true });
  await rm(join(dir, 'runs', runId, 'targets'), { recursive: true, force: true });
  return { store: new FileStore(dir), remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A temporary FileStore for one benchmark run (left on disk for inspection; its path is logged). */
export async function temporaryStore(name: string): Promise<FileStore> {
  const dir = await mkdtemp(join(tmpdir(), `emo-dir-${name}-`));
  log(`store: ${dir}`);
  return new FileStore(dir);
}

/** Validates a spec input the way the pipeline does (defaults filled in). */
export function buildSpec(input: RunSpecInput): RunSpec {
  return runSpecSchema.parse(input);
}

/**
 * THE fine-tune configuration of the benchmark, built exactly as finalizeTarget builds it
 * (src/dir/finalize.ts), so the baselines are fine-tuned and tested like EMO-DIR's result: same
 * spec settings, same stratified fine-tune and test subsets (seeded by spec.search.seed), an
 * evaluation after epoch 1 when the budget is longer.
 */
export function benchFineTuneSettings(spec: RunSpec, trainSet: ImageDataset, testSet: ImageDataset): FineTuneSettings {
  return {
    ...fineTuneSettingsFromSpec(spec, 'unit'),
    ...(spec.dataset.fineTuneLimit !== undefined && spec.dataset.fineTuneLimit < trainSet.count
      ? { trainIndices: stratifiedSample(trainSet, { total: spec.dataset.fineTuneLimit, seed: spec.search.seed }) }
      : {}),
    ...(spec.dataset.testLimit !== undefined && spec.dataset.testLimit < testSet.count
      ? { testIndices: stratifiedSample(testSet, { total: spec.dataset.testLimit, seed: spec.search.seed }) }
      : {}),
    ...(spec.finalize.epochs > 1 ? { evaluateAfterEpochs: [1] } : {}),
    skipOriginal: true,
    log: (message) => log(`  ${message}`),
  };
}

/** Rounds for JSON rows (4 decimals for fractions, 1 for seconds); null for a value not measured. */
export function round(value: number | undefined, digits = 4): number | null {
  if (value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Percent for the human table (undefined stays '-'). */
export function percent(value: number | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : Math.round(value * 10000) / 100;
}
