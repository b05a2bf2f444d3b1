// bench/quality-summary.ts's pieces: collecting per-seed rows from several bench:quality --json
// outputs (bench/lib/quality-rows.ts) and the Markdown tables built from them
// (bench/lib/quality-markdown.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { QualityRow } from '../../bench/lib/quality-methods.ts';
import { qualityMarkdown } from '../../bench/lib/quality-markdown.ts';
import { collectSeedRows } from '../../bench/lib/quality-rows.ts';
import { aggregateRows, pairedRows } from '../../bench/lib/quality-stats.ts';

function seedRow(method: QualityRow['method'], seed: number, accuracy: number | null, overrides: Partial<QualityRow> = {}): QualityRow {
  return {
    model: 'fmnist-resnet',
    method,
    compute: 'standard',
    targetFlopsCut: 0.7,
    seed,
    flopsCut: accuracy === null ? null : 0.702,
    paramsCut: accuracy === null ? null : 0.65,
    accuracy,
    accuracyBeforeFineTune: accuracy === null ? null : accuracy - 0.05,
    accuracyAfter1Epoch: null,
    searchSeconds: 10,
    searchCpuSeconds: 8,
    evaluations: 150,
    recoveryImages: 3840,
    fineTuneImages: 8000,
    fineTuneCpuSeconds: 12,
    ...overrides,
  };
}

const jsonl = (rows: readonly object[]): string => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

test('collects per-seed rows from several outputs and drops their aggregate and paired rows', () => {
  const s1 = jsonl([seedRow('emo-dir', 1, 0.86), seedRow('uniform-l1', 1, 0.82), { model: 'fmnist-resnet', seed: 'mean', accuracy: 0.5 }]);
  const s2 = jsonl([seedRow('emo-dir', 2, 0.88), { seed: 'paired', versus: 'emo-dir' }]);
  const rows = collectSeedRows([
    { file: 's1.jsonl', text: s1 },
    { file: 's2.jsonl', text: s2 },
  ]);
  assert.deepEqual(
    rows.map((r) => `${r.method}/${r.seed}`),
    ['emo-dir/1', 'uniform-l1/1', 'emo-dir/2'],
  );
});

test('a seed measured in two outputs is an error naming both places', () => {
  const text = jsonl([seedRow('emo-dir', 1, 0.86)]);
  assert.throws(
    () =>
      collectSeedRows([
        { file: 'a.jsonl', text },
        { file: 'b.jsonl', text },
      ]),
    /b\.jsonl:1: fmnist-resnet emo-dir standard target 0\.7 seed 1 was already read at a\.jsonl:1/,
  );
});

test('an override output replaces the same cells of the plain outputs, in place, whatever the order given', () => {
  const plain = jsonl([seedRow('emo-dir', 1, 0.86), seedRow('uniform-l1', 1, 0.82)]);
  const rerun = jsonl([seedRow('emo-dir', 1, 0.9), seedRow('emo-dir', 2, 0.88)]);
  const replaced: string[] = [];
  const rows = collectSeedRows(
    [
      { file: 'rerun.jsonl', text: rerun, override: true },
      { file: 's1.jsonl', text: plain },
    ],
    (m) => replaced.push(m),
  );
  assert.deepEqual(
    rows.map((r) => `${r.method}/${r.seed}/${r.accuracy}`),
    ['emo-dir/1/0.9', 'uniform-l1/1/0.82', 'emo-dir/2/0.88'],
  );
  assert.deepEqual(replaced, ['fmnist-resnet emo-dir standard target 0.7 seed 1: s1.jsonl:1 replaced by rerun.jsonl:1']);
  // Two overrides of one cell are still one seed measured twice.
  assert.throws(
    () =>
      collectSeedRows([
        { file: 's1.jsonl', text: plain },
        { file: 'a.jsonl', text: rerun, override: true },
        { file: 'b.jsonl', text: rerun, override: true },
      ]),
    /b\.jsonl:1: .* was already read at a\.jsonl:1/,
  );
});

test('a bad line names the file, the line and the field', () => {
  const good = JSON.stringify(seedRow('emo-dir', 1, 0.86));
  assert.throws(() => collectSeedRows([{ file: 'x.jsonl', text: `${good}\n{oops\n` }]), /x\.jsonl:2: not JSON/);
  const badMethod = JSON.stringify({ ...seedRow('emo-dir', 1, 0.86), method: 'magic' });
  assert.throws(() => collectSeedRows([{ file: 'y.jsonl', text: `\n${badMethod}\n` }]), /y\.jsonl:2: not a bench:quality row \(method: /);
  const { accuracy: _dropped, ...missing } = seedRow('emo-dir', 1, 0.86);
  assert.throws(() => collectSeedRows([{ file: 'z.jsonl', text: JSON.stringify(missing) }]), /z\.jsonl:1: .*accuracy/);
});

test('markdown: mean +- SE per cell, paired difference with its verdict, cells some seeds did not reach or did not run', () => {
  const rows = [
    seedRow('emo-dir', 1, 0.86),
    seedRow('emo-dir', 2, 0.88),
    seedRow('emo-dir', 3, 0.87),
    seedRow('uniform-l1', 1, 0.82),
    seedRow('uniform-l1', 2, 0.85),
    seedRow('uniform-l1', 3, 0.83),
    seedRow('global-emo', 1, 0.8),
    seedRow('global-emo', 2, null),
    seedRow('global-emo', 3, null),
    // A run stopped part-way: uniform-l1 measured at 85%, emo-dir not.
    seedRow('uniform-l1', 1, 0.7, { targetFlopsCut: 0.85 }),
  ];
  const text = qualityMarkdown(rows, aggregateRows(rows), pairedRows(rows, 'emo-dir'));
  // emo-dir: mean 87.0, SE 0.58; uniform-l1: 83.3 +- 0.9; differences 4, 3, 4 points: 3.7 +- 0.3.
  assert.match(text, /\| emo-dir \| standard \| 82\.0 ± 0\.6 \| 87\.0 ± 0\.6 \| {2}\| not run \|/);
  assert.match(text, /\| uniform-l1 \| standard \| 78\.3 ± 0\.9 \| 83\.3 ± 0\.9 \|/);
  assert.match(text, /\| uniform-l1 \| standard \| \+3\.7 ± 0\.3 \| \+3\.7 ± 0\.3 \(3\) \*\*wins\*\* \|/);
  assert.match(text, /\| global-emo \| standard \| 75\.0 \| 80\.0 \(1 of 3 seeds\) \|/);
  assert.match(text, /\| global-emo \| standard \| \+6\.0 \| \+6\.0 \(1\) _ties\?_ \|/);
  assert.match(text, /\| emo-dir \| 70\.2 \|/);
});
