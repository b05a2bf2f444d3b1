// bench:quality's statistics (bench/lib/quality-stats.ts): mean and standard error, paired
// differences over the seeds both methods share, and the 2-SE verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregateRows, meanAndSe, pairedRows, verdict } from '../../bench/lib/quality-stats.ts';
import type { SeedRow } from '../../bench/lib/quality-stats.ts';

const row = (method: string, seed: number, accuracy: number | null, before: number | null = null, compute = 'standard'): SeedRow => ({
  model: 'm',
  method,
  compute,
  targetFlopsCut: 0.7,
  seed,
  accuracy,
  accuracyBeforeFineTune: before,
  flopsCut: 0.705,
});

test('meanAndSe: sample SD over sqrt(n); no SE from one value', () => {
  const { mean, se, n } = meanAndSe([1, 2, 3, 4]);
  assert.equal(mean, 2.5);
  assert.equal(n, 4);
  assert.ok(Math.abs(se! - Math.sqrt(5 / 3 / 4)) < 1e-12);
  assert.deepEqual(meanAndSe([0.9]), { mean: 0.9, se: null, n: 1 });
  assert.deepEqual(meanAndSe([]), { mean: null, se: null, n: 0 });
});

test('aggregates per cell, skipping unmeasured seeds', () => {
  const rows = [row('a', 1, 0.8), row('a', 2, 0.9), row('a', 3, null), row('b', 1, 0.7)];
  const [a, b] = aggregateRows(rows);
  assert.equal(a.seeds, 2);
  assert.ok(Math.abs(a.accuracy! - 0.85) < 1e-12);
  assert.ok(Math.abs(a.accuracySe! - 0.05) < 1e-12);
  assert.equal(a.seed, 'mean');
  assert.equal(b.accuracySe, null);
});

test('paired differences use the same seed; their SE is of the differences, not of the means', () => {
  // The seeds move both methods together: unpaired SEs are large, the paired one is small.
  const rows = [
    row('emo-dir', 1, 0.8, 0.5),
    row('emo-dir', 2, 0.9, 0.6),
    row('emo-dir', 3, 0.7, 0.4),
    row('base', 1, 0.79, 0.2),
    row('base', 2, 0.89, 0.3),
    row('base', 3, 0.68, 0.1),
    row('base', 4, 0.5, 0.1),
    row('base', 1, 0.81, 0.2, 'passes'),
  ];
  const paired = pairedRows(rows, 'emo-dir');
  const standard = paired.find((p) => p.compute === 'standard')!;
  assert.equal(standard.seeds, 3);
  assert.ok(Math.abs(standard.difference! - 0.04 / 3) < 1e-12);
  assert.ok(standard.differenceSe! < 0.004, `paired SE ${standard.differenceSe}`);
  assert.ok(Math.abs(standard.differenceBeforeFineTune! - 0.3) < 1e-12);
  const passes = paired.find((p) => p.compute === 'passes')!;
  assert.equal(passes.seeds, 1);
  assert.equal(passes.differenceSe, null);
});

test('verdict at 2 SE', () => {
  assert.equal(verdict(0.02, 0.005), 'wins');
  assert.equal(verdict(0.009, 0.005), 'ties');
  assert.equal(verdict(-0.02, 0.005), 'loses');
  assert.equal(verdict(0.02, null), 'ties');
  assert.equal(verdict(null, null), 'n/a');
});
