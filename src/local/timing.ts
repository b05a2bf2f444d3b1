/** Wall-clock accounting of an embedded run: how much of it the runner itself cost. */

export interface Interval {
  /** Epoch milliseconds. */
  readonly start: number;
  readonly end: number;
}

/**
 * Milliseconds of [from, to] covered by none of `busy`. Overlapping intervals (parallel workers)
 * count once, which is why this, not `wall - sum(worker time)`, measures the runner's overhead.
 */
export function uncoveredMs(from: number, to: number, busy: readonly Interval[]): number {
  const clipped = busy
    .map((interval) => ({ start: Math.max(from, interval.start), end: Math.min(to, interval.end) }))
    .filter((interval) => interval.end > interval.start)
    .sort((a, b) => a.start - b.start);
  let covered = 0;
  let cursor = from;
  for (const interval of clipped) {
    if (interval.end <= cursor) continue;
    covered += interval.end - Math.max(cursor, interval.start);
    cursor = interval.end;
  }
  return Math.max(0, to - from - covered);
}

/** Wraps an async function so every call's interval is appended to `intervals`. */
export function timed<A extends unknown[], R>(fn: (...args: A) => Promise<R>, intervals: Interval[]): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const start = Date.now();
    try {
      return await fn(...args);
    } finally {
      intervals.push({ start, end: Date.now() });
    }
  };
}
