/**
 * Pareto filtering and exact 2-D hypervolume, objectives minimised. The search reports the
 * hypervolume of its front per generation (progress you can plot), and tests use it to check
 * that the search improves.
 */
import { dominates } from './sort.ts';

/**
 * Indices of the non-dominated points, sorted by the first objective, then the next ones, then
 * index. Of several points with identical objective vectors only the first (lowest index) is
 * kept, so a front never lists the same trade-off twice.
 * 2-D: O(N log N) sweep. Other dimensions: O(M N^2) pairwise check.
 */
export function paretoFront(points: readonly (readonly number[])[]): number[] {
  const order = points.map((_, i) => i);
  order.sort((a, b) => {
    const pa = points[a];
    const pb = points[b];
    for (let m = 0; m < pa.length; m++) if (pa[m] !== pb[m]) return pa[m] - pb[m];
    return a - b;
  });
  const front: number[] = [];
  if (points.length > 0 && points[0].length === 2) {
    // Sorted by (x, y): a point is non-dominated iff its y is below every y seen so far.
    let bestY = Infinity;
    for (const i of order) {
      if (points[i][1] < bestY) {
        front.push(i);
        bestY = points[i][1];
      }
    }
    return front;
  }
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (k > 0 && points[order[k - 1]].every((v, m) => v === points[i][m])) continue;
    if (!order.some((j) => j !== i && dominates(points[j], points[i]))) front.push(i);
  }
  return front;
}

/**
 * Exact hypervolume of 2-D points w.r.t. `reference`: the area dominated by the points and
 * bounded by the reference point. Points that do not strictly dominate the reference in both
 * objectives add nothing.
 */
export function hypervolume2d(points: readonly (readonly number[])[], reference: readonly [number, number]): number {
  const [refX, refY] = reference;
  const inside = points.filter((p) => p[0] < refX && p[1] < refY);
  let area = 0;
  let lastY = refY;
  for (const i of paretoFront(inside)) {
    const [x, y] = inside[i];
    // Front sorted by x ascending has y strictly descending: each point adds the slab between
    // its y and the previous point's y, from its x to the reference.
    area += (refX - x) * (lastY - y);
    lastY = y;
  }
  return area;
}
