/**
 * Statistics of the quality benchmark: per cell (model, method, compute, target) the mean over
 * seeds with its standard error, and the paired difference EMO-DIR minus each baseline on the
 * same seed (same search subsets, same fine-tune and test subsets), with its standard error.
 * Pairing removes what a seed does to every method alike (which test images, which fine-tune
 * order), so the paired SE is the one a claim "A beats B" must clear.
 */

/** Mean and standard error of the mean (sample SD / sqrt(n)); se is null below two values. */
export function meanAndSe(values: readonly number[]): { mean: number | null; se: number | null; n: number } {
  const n = values.length;
  if (n === 0) return { mean: null, se: null, n };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, se: null, n };
  const variance = values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (n - 1);
  return { mean, se: Math.sqrt(variance / n), n };
}

/** What a per-seed row must carry for aggregation. */
export interface SeedRow {
  readonly model: string;
  readonly method: string;
  readonly compute: string;
  readonly targetFlopsCut: number;
  readonly seed: number;
  readonly accuracy: number | null;
  readonly accuracyBeforeFineTune: number | null;
  readonly flopsCut: number | null;
}

export interface AggregateRow {
  readonly model: string;
  readonly method: string;
  readonly compute: string;
  readonly targetFlopsCut: number;
  readonly seed: 'mean';
  readonly seeds: number;
  readonly accuracy: number | null;
  readonly accuracySe: number | null;
  readonly accuracyBeforeFineTune: number | null;
  readonly accuracyBeforeFineTuneSe: number | null;
  readonly flopsCut: number | null;
}

export interface PairedRow {
  readonly model: string;
  /** The baseline EMO-DIR is compared with. */
  readonly method: string;
  readonly compute: string;
  readonly targetFlopsCut: number;
  readonly seed: 'paired';
  readonly versus: string;
  /** Seeds on which both methods have an accuracy. */
  readonly seeds: number;
  /** Mean over seeds of (versus - method) accuracy after fine-tune; positive = `versus` ahead. */
  readonly difference: number | null;
  readonly differenceSe: number | null;
  readonly differenceBeforeFineTune: number | null;
  readonly differenceBeforeFineTuneSe: number | null;
}

function cellKey(row: Pick<SeedRow, 'model' | 'method' | 'compute' | 'targetFlopsCut'>): string {
  return `${row.model}\u0000${row.method}\u0000${row.compute}\u0000${row.targetFlopsCut}`;
}

function present(values: readonly (number | null)[]): number[] {
  return values.filter((v): v is number => v !== null && Number.isFinite(v));
}

/** One aggregate row per (model, method, compute, target), in first-seen order. */
export function aggregateRows(rows: readonly SeedRow[]): AggregateRow[] {
  const cells = new Map<string, SeedRow[]>();
  for (const row of rows) {
    const key = cellKey(row);
    const list = cells.get(key);
    if (list) list.push(row);
    else cells.set(key, [row]);
  }
  return [...cells.values()].map((cell) => {
    const first = cell[0];
    const accuracy = meanAndSe(present(cell.map((r) => r.accuracy)));
    const before = meanAndSe(present(cell.map((r) => r.accuracyBeforeFineTune)));
    return {
      model: first.model,
      method: first.method,
      compute: first.compute,
      targetFlopsCut: first.targetFlopsCut,
      seed: 'mean',
      seeds: accuracy.n,
      accuracy: accuracy.mean,
      accuracySe: accuracy.se,
      accuracyBeforeFineTune: before.mean,
      accuracyBeforeFineTuneSe: before.se,
      flopsCut: meanAndSe(present(cell.map((r) => r.flopsCut))).mean,
    };
  });
}

/**
 * Paired differences `versus` (with compute `versusCompute`) minus every other method and
 * compute variant, per model and target, over the seeds both have.
 */
export function pairedRows(rows: readonly SeedRow[], versus: string, versusCompute = 'standard'): PairedRow[] {
  const reference = new Map<string, SeedRow>();
  for (const row of rows) {
    if (row.method === versus && row.compute === versusCompute) reference.set(`${row.model}\u0000${row.targetFlopsCut}\u0000${row.seed}`, row);
  }
  const cells = new Map<string, { row: SeedRow; after: number[]; before: number[] }>();
  for (const row of rows) {
    if (row.method === versus) continue;
    const ref = reference.get(`${row.model}\u0000${row.targetFlopsCut}\u0000${row.seed}`);
    if (!ref) continue;
    const key = cellKey(row);
    let cell = cells.get(key);
    if (!cell) {
      cell = { row, after: [], before: [] };
      cells.set(key, cell);
    }
    if (ref.accuracy !== null && row.accuracy !== null) cell.after.push(ref.accuracy - row.accuracy);
    if (ref.accuracyBeforeFineTune !== null && row.accuracyBeforeFineTune !== null) cell.before.push(ref.accuracyBeforeFineTune - row.accuracyBeforeFineTune);
  }
  return [...cells.values()].map(({ row, after, before }) => {
    const a = meanAndSe(after);
    const b = meanAndSe(before);
    return {
      model: row.model,
      method: row.method,
      compute: row.compute,
      targetFlopsCut: row.targetFlopsCut,
      seed: 'paired',
      versus,
      seeds: a.n,
      difference: a.mean,
      differenceSe: a.se,
      differenceBeforeFineTune: b.mean,
      differenceBeforeFineTuneSe: b.se,
    };
  });
}

/**
 * Plain-words verdict of a paired difference at `sigmas` standard errors: 'wins' / 'loses' when
 * the mean is beyond that many SEs from 0, 'ties' otherwise (and with fewer than two seeds, when
 * no SE exists, 'ties' too: one seed cannot separate methods).
 */
export function verdict(difference: number | null, se: number | null, sigmas = 2): 'wins' | 'ties' | 'loses' | 'n/a' {
  if (difference === null) return 'n/a';
  if (se === null) return 'ties';
  if (difference > sigmas * se) return 'wins';
  if (difference < -sigmas * se) return 'loses';
  return 'ties';
}
