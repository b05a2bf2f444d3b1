/**
 * bench:quality's tables as Markdown for bench/README.md (bench/quality-summary.ts --markdown):
 * per model, test top-1 mean +- SE per method, compute variant and target (straight after
 * pruning and after the fine-tune), the FLOPs cut each method landed at, what each spent, and
 * the paired differences EMO-DIR minus each baseline with the 2-SE verdict.
 * (Fine-tune CPU seconds are left out: emo-dir's fine-tune runs inside finalizeTarget, unmeasured.)
 */
import type { QualityRow } from './quality-methods.ts';
import { METHODS } from './quality-options.ts';
import type { AggregateRow, PairedRow } from './quality-stats.ts';
import { meanAndSe, verdict } from './quality-stats.ts';

/** Points with one decimal, `mean ± se` when there is an SE. */
function points(mean: number | null, se: number | null, signed = false): string {
  if (mean === null) return '-';
  const sign = signed && mean >= 0 ? '+' : '';
  return se === null ? `${sign}${(mean * 100).toFixed(1)}` : `${sign}${(mean * 100).toFixed(1)} ± ${(se * 100).toFixed(1)}`;
}

const methodOrder = (method: string): number => (METHODS as readonly string[]).indexOf(method);

/** Distinct (method, compute) pairs in METHODS order, `standard` first within a method. */
function methodKeys(cells: readonly { method: string; compute: string }[]): { method: string; compute: string }[] {
  const keys = new Map<string, { method: string; compute: string }>();
  for (const { method, compute } of cells) keys.set(`${method}\u0000${compute}`, { method, compute });
  const computeOrder = (c: string): number => (c === 'standard' ? 0 : c === 'passes' ? 1 : 2);
  return [...keys.values()].sort((a, b) => methodOrder(a.method) - methodOrder(b.method) || computeOrder(a.compute) - computeOrder(b.compute));
}

const percentLabel = (target: number): string => `${Math.round(target * 100)}%`;

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

function accuracyTable(model: string, aggregates: readonly AggregateRow[], targets: readonly number[], seedCount: number): string[] {
  const cells = aggregates.filter((a) => a.model === model && a.method !== 'unpruned');
  const out = [
    row(['method', 'compute', ...targets.flatMap((t) => [`${percentLabel(t)} pruned`, `${percentLabel(t)} fine-tuned`])]),
    row(['---', '---', ...targets.flatMap(() => ['---', '---'])]),
  ];
  for (const { method, compute } of methodKeys(cells)) {
    const values = targets.flatMap((t) => {
      const a = cells.find((c) => c.method === method && c.compute === compute && c.targetFlopsCut === t);
      if (!a) return ['', 'not run'];
      // The compute variants only lengthen the fine-tune: their pruned network is `standard`'s.
      const pruned = compute === 'standard' ? `${points(a.accuracyBeforeFineTune, a.accuracyBeforeFineTuneSe)}` : '=';
      // A cell some seeds could not reach (no scheme within +-1% of the target) says how many did.
      const seedsNote = a.seeds === seedCount ? '' : a.seeds === 0 ? 'not reached' : ` (${a.seeds} of ${seedCount} seeds)`;
      return [pruned, a.seeds === 0 ? seedsNote : `${points(a.accuracy, a.accuracySe)}${seedsNote}`];
    });
    out.push(row([method, compute, ...values]));
  }
  return out;
}

function landingTable(model: string, rows: readonly QualityRow[], targets: readonly number[]): string[] {
  const standard = rows.filter((r) => r.model === model && r.compute === 'standard' && r.method !== 'unpruned');
  const out = [row(['method', ...targets.map((t) => `${percentLabel(t)} target: cut reached (min-max)`)]), row(['---', ...targets.map(() => '---')])];
  for (const { method } of methodKeys(standard)) {
    const values = targets.map((t) => {
      const cuts = standard.filter((r) => r.method === method && r.targetFlopsCut === t && r.flopsCut !== null).map((r) => r.flopsCut as number);
      if (cuts.length === 0) return 'not reached';
      const lo = Math.min(...cuts) * 100;
      const hi = Math.max(...cuts) * 100;
      return lo.toFixed(1) === hi.toFixed(1) ? lo.toFixed(1) : `${lo.toFixed(1)}-${hi.toFixed(1)}`;
    });
    out.push(row([method, ...values]));
  }
  return out;
}

function costTable(model: string, rows: readonly QualityRow[]): string[] {
  const measuredRows = rows.filter((r) => r.model === model && r.method !== 'unpruned' && r.accuracy !== null);
  const out = [
    row(['method', 'compute', 'search CPU-s', 'evaluations', 'recovery images', 'fine-tune images']),
    row(['---', '---', '---', '---', '---', '---']),
  ];
  const mean = (values: number[]): string => {
    const m = meanAndSe(values).mean;
    return m === null ? '-' : String(Math.round(m));
  };
  for (const { method, compute } of methodKeys(measuredRows)) {
    const cell = measuredRows.filter((r) => r.method === method && r.compute === compute);
    out.push(
      row([
        method,
        compute,
        mean(cell.map((r) => r.searchCpuSeconds)),
        mean(cell.map((r) => r.evaluations)),
        mean(cell.map((r) => r.recoveryImages)),
        mean(cell.map((r) => r.fineTuneImages)),
      ]),
    );
  }
  return out;
}

function pairedTable(model: string, paired: readonly PairedRow[], targets: readonly number[]): string[] {
  const pairs = paired.filter((p) => p.model === model && p.method !== 'unpruned');
  const out = [
    row(['baseline', 'compute', ...targets.flatMap((t) => [`${percentLabel(t)} pruned`, `${percentLabel(t)} fine-tuned`])]),
    row(['---', '---', ...targets.flatMap(() => ['---', '---'])]),
  ];
  for (const { method, compute } of methodKeys(pairs)) {
    const values = targets.flatMap((t) => {
      const p = pairs.find((c) => c.method === method && c.compute === compute && c.targetFlopsCut === t);
      if (!p) return ['', 'not run'];
      if (p.difference === null) return ['', 'n/a'];
      const pruned = compute === 'standard' ? points(p.differenceBeforeFineTune, p.differenceBeforeFineTuneSe, true) : '=';
      // Below 3 seeds the SE has at most one degree of freedom: the verdict is shown, not claimed.
      const call = verdict(p.difference, p.differenceSe);
      return [pruned, `${points(p.difference, p.differenceSe, true)} (${p.seeds}) ${p.seeds >= 3 ? `**${call}**` : `_${call}?_`}`];
    });
    out.push(row([method, compute, ...values]));
  }
  return out;
}

export function qualityMarkdown(rows: readonly QualityRow[], aggregates: readonly AggregateRow[], paired: readonly PairedRow[]): string {
  const out: string[] = [];
  for (const model of [...new Set(aggregates.map((a) => a.model))]) {
    const targets = [...new Set(aggregates.filter((a) => a.model === model && a.method !== 'unpruned').map((a) => a.targetFlopsCut))].sort((a, b) => a - b);
    const seeds = [...new Set(rows.filter((r) => r.model === model).map((r) => r.seed))].sort((a, b) => a - b);
    const unpruned = aggregates.find((a) => a.model === model && a.method === 'unpruned');
    out.push(
      `**${model}**, seeds ${seeds.join(', ')}: test top-1 %, mean ± SE over the seeds that measured the cell; "pruned" = straight after pruning ` +
        `(EMO methods: recovered and verified; mask baselines: BN re-estimated), "=" = the same network as \`standard\`. ` +
        `Unpruned: ${unpruned ? points(unpruned.accuracy, unpruned.accuracySe) : 'not measured'}.`,
      '',
      ...accuracyTable(model, aggregates, targets, seeds.length),
      '',
      'EMO-DIR (`standard`) minus each baseline on the same seed, points: mean ± paired SE (seeds), verdict at 2 paired SE ' +
        '(in bold from 3 seeds on; _in italics with a ?_ below 3 seeds, where the SE rests on one or no degree of freedom; n/a = the baseline reached the target on no seed).',
      '',
      ...pairedTable(model, paired, targets),
      '',
      'FLOPs cut reached, % (over seeds):',
      '',
      ...landingTable(model, rows, targets),
      '',
      'What each spent, mean over the measured seeds and targets (search CPU-s: process time of the search; recovery and fine-tune images: training passes the final network carries):',
      '',
      ...costTable(model, rows),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
