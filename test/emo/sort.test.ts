import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { crowdingDistance, dominates, nonDominatedSort } from '../../src/emo/sort.ts';
import { hypervolume2d, paretoFront } from '../../src/emo/hypervolume.ts';

// Small integer coordinates so ties and duplicates are common.
const pointsArb = (k: number) =>
  fc.array(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: k, maxLength: k }), { maxLength: 25 });

/** Rank by definition: peel off the non-dominated set repeatedly. */
function bruteForceRanks(points: number[][]): number[] {
  const rank = new Array<number>(points.length).fill(-1);
  let remaining = points.map((_, i) => i);
  for (let r = 0; remaining.length > 0; r++) {
    const layer = remaining.filter((i) => !remaining.some((j) => dominates(points[j], points[i])));
    for (const i of layer) rank[i] = r;
    remaining = remaining.filter((i) => rank[i] === -1);
  }
  return rank;
}

test('fast non-dominated sort equals brute-force peeling (k = 2, 3)', () => {
  for (const k of [2, 3]) {
    fc.assert(
      fc.property(pointsArb(k), (points) => {
        const { fronts, rank } = nonDominatedSort(points);
        assert.deepEqual(Array.from(rank), bruteForceRanks(points));
        assert.deepEqual(fronts.flat().sort((a, b) => a - b), points.map((_, i) => i));
      }),
    );
  }
});

test('crowding distance equals the textbook formula', () => {
  fc.assert(
    fc.property(pointsArb(2), (points) => {
      const front = nonDominatedSort(points).fronts[0] ?? [];
      const distance = crowdingDistance(points, front);
      if (front.length <= 2) {
        assert.ok(distance.every((d) => d === Infinity));
        return;
      }
      // Brute force per objective: extremes infinite; inner = (next - previous) / range, where
      // neighbours follow a sort by value then index.
      const expected = new Array<number>(front.length).fill(0);
      for (let m = 0; m < 2; m++) {
        const order = front.map((_, k) => k).sort((a, b) => points[front[a]][m] - points[front[b]][m] || front[a] - front[b]);
        const values = order.map((k) => points[front[k]][m]);
        const range = values[values.length - 1] - values[0];
        expected[order[0]] = Infinity;
        expected[order[order.length - 1]] = Infinity;
        for (let r = 1; r < order.length - 1; r++) {
          if (range > 0) expected[order[r]] += (values[r + 1] - values[r - 1]) / range;
        }
      }
      expected.forEach((e, k) => (e === Infinity ? assert.equal(distance[k], Infinity) : assert.ok(Math.abs(distance[k] - e) < 1e-12)));
    }),
  );
});

test('paretoFront: non-dominated, complete, deduplicated, sorted (k = 2, 3)', () => {
  for (const k of [2, 3]) {
    fc.assert(
      fc.property(pointsArb(k), (points) => {
        const front = paretoFront(points);
        const nonDominated = points.map((_, i) => i).filter((i) => !points.some((p) => dominates(p, points[i])));
        const distinct = new Set(nonDominated.map((i) => points[i].join(',')));
        assert.equal(front.length, distinct.size);
        for (const i of front) assert.ok(nonDominated.includes(i));
        for (let r = 1; r < front.length; r++) assert.ok(points[front[r - 1]][0] <= points[front[r]][0]);
      }),
    );
  }
});

test('2-D hypervolume equals the area counted on the integer grid', () => {
  fc.assert(
    fc.property(pointsArb(2), (points) => {
      const reference: [number, number] = [7, 7];
      // Every unit cell [x, x+1) x [y, y+1) is dominated iff some point has p <= (x, y).
      let cells = 0;
      for (let x = 0; x < 7; x++) for (let y = 0; y < 7; y++) if (points.some((p) => p[0] <= x && p[1] <= y)) cells++;
      assert.equal(hypervolume2d(points, reference), cells);
    }),
  );
  assert.equal(hypervolume2d([[0.5, 0.5]], [1, 1]), 0.25);
  assert.equal(hypervolume2d([[2, 0]], [1, 1]), 0);
});
