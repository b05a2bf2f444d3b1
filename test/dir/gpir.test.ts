import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  gpirMerge,
  hullMoves,
  InfeasibleTargetError,
  jointFrontByRanking,
  originalCost,
  parseGpirInput,
  solveTarget,
  type GpirInput,
} from '../../src/dir/gpir.ts';

/**
 * Random fronts: each has the unpruned point (most FLOPs, impairment ~0) plus cheaper points.
 * `integer` makes costs whole numbers so a DP with one-unit cells is exact.
 */
function frontsArb(integer: boolean, maxFronts = 4, maxPoints = 5) {
  // Real-valued costs in micro-units: fractional like measured values, but no denormals whose
  // sums round away (which would test floating point rather than the algorithm).
  const costArb = integer ? fc.integer({ min: 0, max: 40 }) : fc.integer({ min: 0, max: 40_000_000 }).map((v) => v / 1e6);
  const pointArb = fc.record({ flops: costArb, params: costArb, impairment: fc.integer({ min: -50_000, max: 3_000_000 }).map((v) => v / 1e6) });
  return fc
    .record({
      fronts: fc.array(fc.record({ points: fc.array(pointArb, { maxLength: maxPoints }), impairment0: fc.integer({ min: -10_000, max: 10_000 }).map((v) => v / 1e6) }), {
        minLength: 1,
        maxLength: maxFronts,
      }),
      fixed: fc.record({ flops: costArb, params: costArb }),
    })
    .map(({ fronts, fixed }): GpirInput => ({
      fixed,
      fronts: fronts.map((f, k) => ({
        subnet: `s${k}`,
        points: [{ id: 'full', flops: 50, params: 50, impairment: f.impairment0 }, ...f.points.map((p, j) => ({ id: `p${j}`, ...p }))],
      })),
    }));
}

/** Every joint scheme (one point per front), by enumeration. */
function allSchemes(input: GpirInput): { flops: number; params: number; impairment: number }[] {
  let partial = [{ flops: input.fixed.flops, params: input.fixed.params, impairment: 0 }];
  for (const front of input.fronts) {
    partial = partial.flatMap((s) => front.points.map((p) => ({ flops: s.flops + p.flops, params: s.params + p.params, impairment: s.impairment + p.impairment })));
  }
  return partial;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * (1 + Math.abs(a) + Math.abs(b));

test('knapsack DP finds the brute-force optimum and the same top-k values (integer costs, exact cells)', () => {
  fc.assert(
    fc.property(frontsArb(true), fc.integer({ min: 0, max: 250 }), fc.integer({ min: 1, max: 4 }), (input, budget, verifyTop) => {
      const schemes = allSchemes(input);
      const feasible = schemes.filter((s) => s.flops <= budget).map((s) => s.impairment).sort((a, b) => a - b);
      const minimum = Math.min(...schemes.map((s) => s.flops));
      const target = { kind: 'flopsBudget' as const, value: Math.max(budget, 1e-9) };
      if (feasible.length === 0) {
        assert.throws(() => solveTarget(input, target), (e: unknown) => e instanceof InfeasibleTargetError && e.minimum === minimum);
        return;
      }
      // Cells one FLOP wide: slack budget - minimum is a whole number, so rounding up is exact.
      const resolution = Math.max(1, budget - minimum);
      const result = solveTarget(input, target, { resolution, verifyTop });
      assert.equal(result.schemes.length, Math.min(verifyTop, feasible.length));
      result.schemes.forEach((s, r) => assert.ok(close(s.impairment, feasible[r]), `rank ${r}: ${s.impairment} vs ${feasible[r]}`));
      const keys = result.schemes.map((s) => s.choice.join('|'));
      assert.equal(new Set(keys).size, keys.length, 'schemes are distinct');
      for (const s of result.schemes) assert.ok(s.flops <= budget);
    }),
    { numRuns: 300 },
  );
});

test('with a tolerance the DP returns the best schemes in the band next to the budget, or the unbanded ones when the band is empty', () => {
  fc.assert(
    fc.property(
      frontsArb(true),
      fc.integer({ min: 0, max: 250 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 30 }).map((v) => v / 100),
      (input, budget, verifyTop, tolerance) => {
        const schemes = allSchemes(input);
        const feasible = schemes.filter((s) => s.flops <= budget);
        fc.pre(feasible.length > 0 && budget > 0);
        const minimum = Math.min(...schemes.map((s) => s.flops));
        const lower = budget - tolerance * originalCost(input).flops;
        const inBand = feasible.filter((s) => s.flops >= lower);
        const expected = (inBand.length > 0 ? inBand : feasible).map((s) => s.impairment).sort((a, b) => a - b);
        const result = solveTarget(input, { kind: 'flopsBudget', value: budget }, { resolution: Math.max(1, budget - minimum), verifyTop, tolerance });
        assert.deepEqual(result.band, { lower, upper: budget, met: inBand.length > 0 });
        assert.equal(result.schemes.length, Math.min(verifyTop, expected.length));
        result.schemes.forEach((s, r) => assert.ok(close(s.impairment, expected[r]), `rank ${r}: ${s.impairment} vs ${expected[r]}`));
        for (const s of result.schemes) {
          assert.ok(s.flops <= budget, 'never over budget');
          if (inBand.length > 0) assert.ok(s.flops >= lower, 'inside the band when the band has schemes');
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a hand-made band: the least-impaired scheme overshoots the target, the band keeps the one at it', () => {
  // Cutting 40% of 100 FLOPs: point `deep` (cost 50, cut 50%) has the lower estimated impairment
  // by noise; `at` (cost 60, cut exactly 40%) is what the target asks for.
  const input = parseGpirInput({
    fixed: { flops: 0, params: 0 },
    fronts: [{ subnet: 'a', points: [{ id: 'full', flops: 100, params: 10, impairment: 0 }, { id: 'at', flops: 60, params: 6, impairment: 0.3 }, { id: 'deep', flops: 50, params: 5, impairment: 0.2 }] }],
  });
  const target = { kind: 'flopsCut' as const, value: 0.4 };
  assert.deepEqual(solveTarget(input, target, { verifyTop: 1 }).schemes[0].choice, ['deep']);
  const banded = solveTarget(input, target, { verifyTop: 1, tolerance: 0.01 });
  assert.deepEqual(banded.schemes[0].choice, ['at']);
  assert.equal(banded.band?.met, true);
  // A band too narrow for any scheme: the best under the budget, and the plan says so.
  const empty = solveTarget(input, { kind: 'flopsCut', value: 0.35 }, { verifyTop: 1, tolerance: 0.01 });
  assert.deepEqual(empty.schemes[0].choice, ['deep']);
  assert.equal(empty.band?.met, false);
});

test('with coarse cells the DP stays within budget and is sandwiched between exact optima', () => {
  fc.assert(
    fc.property(frontsArb(false), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 30 }), (input, fraction, resolution) => {
      const schemes = allSchemes(input);
      const minimum = Math.min(...schemes.map((s) => s.flops));
      const original = originalCost(input).flops;
      const budget = minimum + fraction * (original - minimum);
      fc.pre(budget > 0);
      const result = solveTarget(input, { kind: 'flopsBudget', value: budget }, { resolution, verifyTop: 2 });
      const best = (limit: number) => Math.min(...schemes.filter((s) => s.flops <= limit).map((s) => s.impairment));
      const found = result.schemes[0].impairment;
      for (const s of result.schemes) assert.ok(s.flops <= budget, 'never over budget');
      assert.ok(found >= best(budget) - 1e-9, 'cannot beat the true optimum');
      // Rounding up loses at most one cell per front.
      const cell = (budget - minimum) / resolution;
      assert.ok(found <= best(budget - input.fronts.length * cell) + 1e-9, 'within K cells of the optimum');
    }),
    { numRuns: 300 },
  );
});

test('joint front by ranking: cost strictly falls, impairment never falls, ends at maximal compression', () => {
  fc.assert(
    fc.property(frontsArb(false, 5, 8), (input) => {
      const trace = jointFrontByRanking(input);
      for (let i = 1; i < trace.length; i++) {
        assert.ok(trace[i].flops < trace[i - 1].flops, 'cost strictly decreasing');
        assert.ok(trace[i].impairment >= trace[i - 1].impairment - 1e-12, 'impairment non-decreasing');
      }
      const minimum = Math.min(...allSchemes(input).map((s) => s.flops));
      assert.ok(close(trace[trace.length - 1].flops, minimum));
      // Each front's moves come in non-decreasing rate order (convexity of the hull).
      for (const front of input.fronts) {
        const { moves } = hullMoves(front, 'flops');
        for (let i = 1; i < moves.length; i++) {
          assert.ok(moves[i].saved > 0);
          assert.ok(moves[i].added / moves[i].saved >= moves[i - 1].added / moves[i - 1].saved - 1e-9);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('the knapsack is never worse than the ranking trace at the same budget', () => {
  fc.assert(
    fc.property(frontsArb(true), (input) => {
      const minimum = Math.min(...allSchemes(input).map((s) => s.flops));
      for (const scheme of jointFrontByRanking(input)) {
        fc.pre(scheme.flops > 0);
        const result = solveTarget(input, { kind: 'flopsBudget', value: scheme.flops }, { resolution: Math.max(1, scheme.flops - minimum) });
        assert.ok(result.schemes[0].impairment <= scheme.impairment + 1e-9);
        assert.ok(result.ranking.impairment <= scheme.impairment + 1e-9);
      }
    }),
    { numRuns: 100 },
  );
});

test('a hand-made case: the DP catches a point off the hull that ranking misses', () => {
  // Sub-network a: hull goes 100 -> 40 (impairment 1.0); the point at 60 (0.9) is above the
  // chord, so the ranking trace jumps from 100 to 40. Sub-network b only has a bad cut.
  const input = parseGpirInput({
    fixed: { flops: 0, params: 10 },
    fronts: [
      { subnet: 'a', points: [{ id: 'a100', flops: 100, params: 100, impairment: 0 }, { id: 'a60', flops: 60, params: 60, impairment: 0.9 }, { id: 'a40', flops: 40, params: 40, impairment: 1 }] },
      { subnet: 'b', points: [{ id: 'b100', flops: 100, params: 100, impairment: 0 }, { id: 'b50', flops: 50, params: 50, impairment: 5 }] },
    ],
  });
  const merged = gpirMerge(input, [{ kind: 'flopsCut', value: 0.2 }, { kind: 'paramsBudget', value: 170 }], { verifyTop: 2 });
  assert.deepEqual(merged.subnets, ['a', 'b']);
  assert.deepEqual(merged.original, { flops: 200, params: 210 });
  assert.deepEqual(merged.jointFront.map((s) => s.choice), [['a100', 'b100'], ['a40', 'b100'], ['a40', 'b50']]);
  const [cut, params] = merged.targets;
  assert.deepEqual(cut.budget, { kind: 'flops', value: 160 });
  assert.deepEqual(cut.schemes.map((s) => s.choice), [['a60', 'b100'], ['a40', 'b100']]);
  assert.ok(close(cut.schemes[0].flopsCut, 0.2));
  assert.deepEqual(cut.ranking.choice, ['a40', 'b100']);
  assert.deepEqual(params.schemes[0].choice, ['a60', 'b100']);
  assert.equal(params.schemes[0].params, 170);
  assert.throws(
    () => gpirMerge(input, [{ kind: 'flopsCut', value: 0.7 }]),
    /needs flops <= 60.*minimum achievable is 90 \(a flops cut of at most 55.00%\)/,
  );
});

test('input validation names the bad field', () => {
  const point = { id: 'x', flops: 1, params: 1, impairment: 0 };
  assert.throws(() => parseGpirInput({ fixed: { flops: 0, params: 0 }, fronts: [] }), /fronts/);
  assert.throws(() => parseGpirInput({ fixed: { flops: 0, params: 0 }, fronts: [{ subnet: 'a', points: [point, point] }] }), /point id x repeats/);
  assert.throws(() => parseGpirInput({ fixed: { flops: -1, params: 0 }, fronts: [{ subnet: 'a', points: [point] }] }), /fixed\.flops/);
  assert.throws(() => gpirMerge({ fixed: { flops: 0, params: 0 }, fronts: [{ subnet: 'a', points: [point] }] }, [{ kind: 'flopsCut', value: 1.5 }]), /invalid GPIR target/);
});

test('fast enough for a Lambda: 6 fronts x 60 points, 1e4 cells, top 5', () => {
  let seed = 1;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const fronts = Array.from({ length: 6 }, (_, k) => ({
    subnet: `s${k}`,
    points: Array.from({ length: 60 }, (_, j) => {
      const keep = j === 0 ? 1 : 0.1 + 0.9 * random();
      return { id: `p${j}`, flops: 1e8 * keep * (1 + k), params: 1e5 * keep, impairment: j === 0 ? 0 : (1 - keep) ** 2 * (1 + random()) };
    }),
  }));
  // CPU time, not wall time: a loaded machine stretches the wall clock, not the merge's work.
  const cpu = process.cpuUsage();
  const merged = gpirMerge({ fixed: { flops: 5e7, params: 1e4 }, fronts }, [
    { kind: 'flopsCut', value: 0.5 },
    { kind: 'flopsCut', value: 0.7 },
    { kind: 'paramsCut', value: 0.6 },
  ], { verifyTop: 5 });
  const { user, system } = process.cpuUsage(cpu);
  const seconds = (user + system) / 1e6;
  // Unloaded this takes well under a second.
  assert.ok(seconds < 10, `took ${seconds} s of CPU`);
  for (const t of merged.targets) {
    assert.equal(t.schemes.length, 5);
    for (const s of t.schemes) assert.ok(s[t.budget.kind] <= t.budget.value);
    assert.ok(t.schemes[0].impairment <= t.ranking.impairment + 1e-12);
  }
});
