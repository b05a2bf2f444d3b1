/**
 * The human tables of bench:quality: per model, the mean +- SE per method, compute variant and
 * target (accuracy before fine-tune and after), and the paired differences EMO-DIR minus each
 * baseline with a plain-words verdict at 2 paired SEs.
 */
import { percent } from './quality-common.ts';
import type { QualityRow } from './quality-methods.ts';
import { METHODS } from './quality-options.ts';
import type { AggregateRow, PairedRow } from './quality-stats.ts';
import { verdict } from './quality-stats.ts';
import { formatTable } from './table.ts';

function pm(mean: number | null, se: number | null): string {
  if (mean === null) return '-';
  const m = (mean * 100).toFixed(2);
  return se === null ? m : `${m} ± ${(se * 100).toFixed(2)}`;
}

const methodOrder = (method: string): number => (METHODS as readonly string[]).indexOf(method);

export function qualityTables(rows: readonly QualityRow[], aggregates: readonly AggregateRow[], paired: readonly PairedRow[]): string {
  const out: string[] = [];
  const models = [...new Set(aggregates.map((a) => a.model))];
  for (const model of models) {
    const cells = aggregates
      .filter((a) => a.model === model)
      .sort((a, b) => a.targetFlopsCut - b.targetFlopsCut || methodOrder(a.method) - methodOrder(b.method) || a.compute.localeCompare(b.compute));
    const cost = (a: AggregateRow): { cpu: number | undefined; evaluations: number | undefined } => {
      const matching = rows.filter((r) => r.model === a.model && r.method === a.method && r.compute === a.compute && r.targetFlopsCut === a.targetFlopsCut);
      if (matching.length === 0) return { cpu: undefined, evaluations: undefined };
      const mean = (f: (r: QualityRow) => number): number => matching.reduce((s, r) => s + f(r), 0) / matching.length;
      return { cpu: Math.round(mean((r) => r.searchCpuSeconds + r.fineTuneCpuSeconds)), evaluations: Math.round(mean((r) => r.evaluations)) };
    };
    out.push(`\n${model}: test top-1 %, mean ± SE over seeds\n`);
    out.push(
      formatTable(
        ['target %', 'method', 'compute', 'seeds', 'FLOPs cut %', 'before FT', 'after FT', 'search+FT CPU-s', 'evals'],
        cells.map((a) => {
          const c = cost(a);
          return [percent(a.targetFlopsCut), a.method, a.compute, a.seeds, percent(a.flopsCut), pm(a.accuracyBeforeFineTune, a.accuracyBeforeFineTuneSe), pm(a.accuracy, a.accuracySe), c.cpu, c.evaluations];
        }),
      ),
    );
    const pairs = paired
      .filter((p) => p.model === model)
      .sort((a, b) => a.targetFlopsCut - b.targetFlopsCut || methodOrder(a.method) - methodOrder(b.method) || a.compute.localeCompare(b.compute));
    if (pairs.length > 0) {
      out.push(`\n${model}: EMO-DIR minus baseline (same seed), points, mean ± paired SE; verdict at 2 SE after fine-tune\n`);
      out.push(
        formatTable(
          ['target %', 'baseline', 'compute', 'seeds', 'before FT', 'after FT', 'EMO-DIR'],
          pairs.map((p) => [
            percent(p.targetFlopsCut),
            p.method,
            p.compute,
            p.seeds,
            pm(p.differenceBeforeFineTune, p.differenceBeforeFineTuneSe),
            pm(p.difference, p.differenceSe),
            verdict(p.difference, p.differenceSe),
          ]),
        ),
      );
    }
  }
  return `${out.join('\n')}\n`;
}
