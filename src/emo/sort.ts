/**
 * Non-dominated sorting and crowding distance (Deb et al. 2002), all objectives minimised.
 *
 * Both work on plain `number[][]` objective vectors (row = point) and return indices, so they
 * know nothing about genomes and can rank any set of points.
 */

/** True when `a` is no worse than `b` in every objective and better in at least one. */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let better = false;
  for (let m = 0; m < a.length; m++) {
    if (a[m] > b[m]) return false;
    if (a[m] < b[m]) better = true;
  }
  return better;
}

export interface NonDominatedSorting {
  /** Fronts in rank order; each lists point indices in ascending order. */
  readonly fronts: number[][];
  /** rank[i] = index of the front holding point i (0 = non-dominated). */
  readonly rank: Int32Array;
}

/**
 * Deb's fast non-dominated sort: O(M N^2) comparisons, O(N^2) memory for the domination lists.
 * Points with equal objective vectors do not dominate each other and share a front.
 * `stopAfter` ends the sort once that many points are ranked (survival never needs more);
 * unranked points keep rank -1.
 */
export function nonDominatedSort(points: readonly (readonly number[])[], stopAfter = points.length): NonDominatedSorting {
  const n = points.length;
  const dominatedBy = new Int32Array(n); // how many points dominate i
  const dominatesList: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (dominates(points[i], points[j])) {
        dominatesList[i].push(j);
        dominatedBy[j]++;
      } else if (dominates(points[j], points[i])) {
        dominatesList[j].push(i);
        dominatedBy[i]++;
      }
    }
  }
  const rank = new Int32Array(n).fill(-1);
  const fronts: number[][] = [];
  let current: number[] = [];
  for (let i = 0; i < n; i++) if (dominatedBy[i] === 0) current.push(i);
  let ranked = 0;
  while (current.length > 0 && ranked < stopAfter) {
    const r = fronts.length;
    for (const i of current) rank[i] = r;
    fronts.push(current);
    ranked += current.length;
    const next: number[] = [];
    for (const i of current) {
      for (const j of dominatesList[i]) {
        if (--dominatedBy[j] === 0) next.push(j);
      }
    }
    next.sort((a, b) => a - b);
    current = next;
  }
  return { fronts, rank };
}

/**
 * Crowding distance of the points `front` (indices into `points`), returned in the order of
 * `front`. Per objective the points are ordered (ties by index, so the result is deterministic),
 * the two extremes get +Infinity, and every inner point adds the normalised gap between its
 * neighbours. An objective with zero range adds nothing (dividing by zero would only make NaN).
 */
export function crowdingDistance(points: readonly (readonly number[])[], front: readonly number[]): Float64Array {
  const size = front.length;
  const distance = new Float64Array(size);
  if (size === 0) return distance;
  if (size <= 2) return distance.fill(Infinity);
  const objectives = points[front[0]].length;
  const order = Array.from({ length: size }, (_, k) => k);
  for (let m = 0; m < objectives; m++) {
    order.sort((a, b) => points[front[a]][m] - points[front[b]][m] || front[a] - front[b]);
    const low = points[front[order[0]]][m];
    const high = points[front[order[size - 1]]][m];
    distance[order[0]] = Infinity;
    distance[order[size - 1]] = Infinity;
    const range = high - low;
    if (!(range > 0)) continue;
    for (let k = 1; k < size - 1; k++) {
      const gap = points[front[order[k + 1]]][m] - points[front[order[k - 1]]][m];
      distance[order[k]] += gap / range;
    }
  }
  return distance;
}
