/**
 * GPIR merge: global performance impairment ranking over the sub-network fronts.
 *
 * Every sub-network search returns a front of points (cost of the pruned sub-network, its
 * impairment of the whole network's loss). Impairments are measured at the network's output,
 * so they are on one scale and a joint scheme (one point per sub-network) is estimated by their
 * sum; its cost is the network's fixed (non-searched) cost plus the chosen points' costs.
 *
 * Two answers:
 * - `jointFrontByRanking`: the cheap trace from no pruning to maximal compression. Each front's
 *   lower convex hull is walked from the unpruned point downwards; every hull step is a move
 *   (cost saved, impairment added); all moves of all sub-networks are applied in ascending
 *   order of impairment added per unit of cost saved. It only visits hull points.
 * - `solveTarget`: for one budget, an exact multiple-choice knapsack by dynamic programming over
 *   discretised cost, keeping the k best schemes per cost cell, so it also finds schemes that
 *   use points off the hulls. Costs are rounded UP to whole cells, so a scheme the DP accepts
 *   never exceeds the budget (each returned scheme is also re-checked in exact arithmetic).
 *   The price of that safety is bounded: the optimum found is at least as good as the true
 *   optimum under the budget shrunk by K cells (K = number of fronts), see the tests.
 *
 * Pure and fast (it runs in a Lambda): no I/O; input is validated with zod.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Input

const finiteNumber = z.number().refine(Number.isFinite, 'must be finite');
const cost = finiteNumber.refine((v) => v >= 0, 'must be >= 0');

export const frontPointSchema = z.object({
  id: z.string().min(1),
  /** Absolute FLOPs of the pruned sub-network. */
  flops: cost,
  /** Absolute params of the pruned sub-network. */
  params: cost,
  /** Global performance impairment (loss increase); about >= 0, may be slightly negative. */
  impairment: finiteNumber,
});

export const subnetFrontSchema = z
  .object({
    subnet: z.string().min(1),
    points: z.array(frontPointSchema).min(1),
    /** The point of the unpruned sub-network; default: the most expensive point (see `unprunedPoint`). */
    unprunedId: z.string().optional(),
  })
  .superRefine((front, ctx) => {
    const ids = new Set<string>();
    for (const point of front.points) {
      if (ids.has(point.id)) ctx.addIssue({ code: 'custom', message: `sub-network ${front.subnet}: point id ${point.id} repeats` });
      ids.add(point.id);
    }
    if (front.unprunedId !== undefined && !ids.has(front.unprunedId)) {
      ctx.addIssue({ code: 'custom', message: `sub-network ${front.subnet}: unprunedId ${front.unprunedId} is not a point` });
    }
  });

export const targetSchema = z.discriminatedUnion('kind', [
  /** Remove this fraction of the whole network's FLOPs (0.5 = half). */
  z.strictObject({ kind: z.literal('flopsCut'), value: z.number().min(0).lt(1) }),
  z.strictObject({ kind: z.literal('paramsCut'), value: z.number().min(0).lt(1) }),
  /** At most this many FLOPs for the whole network. */
  z.strictObject({ kind: z.literal('flopsBudget'), value: z.number().positive().refine(Number.isFinite, 'must be finite') }),
  z.strictObject({ kind: z.literal('paramsBudget'), value: z.number().positive().refine(Number.isFinite, 'must be finite') }),
]);

export const gpirInputSchema = z
  .object({
    fronts: z.array(subnetFrontSchema).min(1),
    /** Cost of the network outside the searched sub-networks (never pruned). */
    fixed: z.strictObject({ flops: cost, params: cost }),
  })
  .superRefine((input, ctx) => {
    const names = new Set<string>();
    for (const front of input.fronts) {
      if (names.has(front.subnet)) ctx.addIssue({ code: 'custom', message: `sub-network ${front.subnet} appears twice` });
      names.add(front.subnet);
    }
  });

export const gpirOptionsSchema = z.strictObject({
  /** Number of cost cells of the knapsack DP (more = closer to exact, linear in time/memory). */
  resolution: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Schemes returned per target (the finalize step verifies each for real). */
  verifyTop: z.number().int().min(1).max(100).default(3),
  /** The cost the ranking trace saves. */
  rankBy: z.enum(['flops', 'params']).default('flops'),
  /**
   * Land near the target, not only under it: schemes whose cost is within this fraction of the
   * original cost below the budget (a flopsCut target of 0.5 with 0.01: cuts of 50-51%) are the
   * only ones returned when there are any. Without it (or when that band holds no scheme) the
   * least-impaired schemes anywhere under the budget are. Whole-network cuts compare only at
   * equal cost: a scheme that cuts 3 points more with a lower *estimated* impairment is still a
   * different, smaller network.
   */
  tolerance: z.number().min(0).lt(1).optional(),
});

export type FrontPoint = z.infer<typeof frontPointSchema>;
export type SubnetFront = z.infer<typeof subnetFrontSchema>;
export type GpirTarget = z.infer<typeof targetSchema>;
export type GpirInput = z.infer<typeof gpirInputSchema>;
export type GpirOptions = z.input<typeof gpirOptionsSchema>;
export type CostKind = 'flops' | 'params';

/** Parses untrusted input (e.g. JSON from the store); errors list every bad field with its path. */
export function parseGpirInput(value: unknown): GpirInput {
  const parsed = gpirInputSchema.safeParse(value);
  if (!parsed.success) throw new Error(`invalid GPIR input: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function parseTarget(value: unknown): GpirTarget {
  const parsed = targetSchema.safeParse(value);
  if (!parsed.success) throw new Error(`invalid GPIR target: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function parseOptions(options: GpirOptions): z.output<typeof gpirOptionsSchema> {
  const parsed = gpirOptionsSchema.safeParse(options);
  if (!parsed.success) throw new Error(`invalid GPIR options: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// Output

/** One point per sub-network, with the estimated totals of the whole network. */
export interface JointScheme {
  /** Chosen point id per sub-network, in the order of `input.fronts`. */
  readonly choice: readonly string[];
  /** Whole-network FLOPs (fixed + chosen). */
  readonly flops: number;
  /** Whole-network params (fixed + chosen). */
  readonly params: number;
  /** Estimated impairment: sum of the chosen points' impairments. */
  readonly impairment: number;
  /** 1 - flops / original flops. */
  readonly flopsCut: number;
  /** 1 - params / original params. */
  readonly paramsCut: number;
}

export interface TargetResult {
  readonly target: GpirTarget;
  /** The whole-network cost limit the target means. */
  readonly budget: { readonly kind: CostKind; readonly value: number };
  /** The `verifyTop` best distinct schemes within the budget (and the band, if met), least impairment first. */
  readonly schemes: readonly JointScheme[];
  /** With a `tolerance`: the band's cost range and whether any scheme lies in it (else `schemes` ignore it). */
  readonly band?: { readonly lower: number; readonly upper: number; readonly met: boolean };
  /** The cheapest-impairment scheme of the ranking trace within the budget (for comparison). */
  readonly ranking: JointScheme;
}

export interface GpirResult {
  readonly subnets: readonly string[];
  /** Cost of the unpruned network. */
  readonly original: { readonly flops: number; readonly params: number };
  readonly jointFront: readonly JointScheme[];
  readonly targets: readonly TargetResult[];
}

/** A target no scheme can reach; `minimum` is the cheapest achievable whole-network cost. */
export class InfeasibleTargetError extends Error {
  constructor(
    readonly target: GpirTarget,
    readonly budget: number,
    readonly minimum: number,
    readonly original: number,
    readonly kind: CostKind,
  ) {
    super(
      `target ${target.kind} ${target.value} needs ${kind} <= ${budget}, but the minimum achievable is ${minimum} ` +
        `(a ${kind} cut of at most ${(100 * (1 - minimum / original)).toFixed(2)}%)`,
    );
    this.name = 'InfeasibleTargetError';
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * The point of the unpruned sub-network: `unprunedId` if given, else the point with the most
 * FLOPs (ties: most params, then least impairment). Every front includes it by contract.
 */
export function unprunedPoint(front: SubnetFront): FrontPoint {
  if (front.unprunedId !== undefined) {
    const found = front.points.find((p) => p.id === front.unprunedId);
    if (found) return found;
  }
  let best = front.points[0];
  for (const p of front.points) {
    if (p.flops > best.flops || (p.flops === best.flops && (p.params > best.params || (p.params === best.params && p.impairment < best.impairment)))) best = p;
  }
  return best;
}

/** Cost of the unpruned network. */
export function originalCost(input: GpirInput): { flops: number; params: number } {
  let flops = input.fixed.flops;
  let params = input.fixed.params;
  for (const front of input.fronts) {
    const p = unprunedPoint(front);
    flops += p.flops;
    params += p.params;
  }
  return { flops, params };
}

/** The whole-network cost limit a target stands for. */
export function targetBudget(target: GpirTarget, original: { flops: number; params: number }): { kind: CostKind; value: number } {
  switch (target.kind) {
    case 'flopsCut':
      return { kind: 'flops', value: (1 - target.value) * original.flops };
    case 'paramsCut':
      return { kind: 'params', value: (1 - target.value) * original.params };
    case 'flopsBudget':
      return { kind: 'flops', value: target.value };
    case 'paramsBudget':
      return { kind: 'params', value: target.value };
  }
}

function makeScheme(input: GpirInput, original: { flops: number; params: number }, picks: readonly FrontPoint[]): JointScheme {
  let flops = input.fixed.flops;
  let params = input.fixed.params;
  let impairment = 0;
  for (const p of picks) {
    flops += p.flops;
    params += p.params;
    impairment += p.impairment;
  }
  return {
    choice: picks.map((p) => p.id),
    flops,
    params,
    impairment,
    flopsCut: original.flops > 0 ? 1 - flops / original.flops : 0,
    paramsCut: original.params > 0 ? 1 - params / original.params : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// (a) Joint front by global ranking

/** One hull step of one sub-network. */
interface Move {
  readonly to: FrontPoint;
  readonly saved: number;
  readonly added: number;
}

/**
 * The lower convex hull of a front in (cost, impairment), from the unpruned point down to the
 * cheapest point, as moves. Only points no more expensive than the unpruned point count; of
 * equal-cost points the least impaired. Collinear points stay on the hull (finer steps at the
 * same rate). Consecutive moves have non-decreasing rates (added / saved), up to rounding.
 */
export function hullMoves(front: SubnetFront, kind: CostKind): { start: FrontPoint; moves: Move[] } {
  const start = unprunedPoint(front);
  const byCost = new Map<number, FrontPoint>();
  for (const p of front.points) {
    if (p[kind] > start[kind]) continue;
    const seen = byCost.get(p[kind]);
    if (!seen || p.impairment < seen.impairment) byCost.set(p[kind], p);
  }
  // The walk must start exactly at the unpruned point even if another point of equal cost is
  // slightly less impaired (it would be a move that saves nothing).
  byCost.set(start[kind], start);
  // Monotone chain, cost descending: keep turning the same way (a lower hull seen from the right).
  const points = [...byCost.values()].sort((a, b) => b[kind] - a[kind]);
  const hull: FrontPoint[] = [];
  for (const p of points) {
    while (hull.length >= 2) {
      const a = hull[hull.length - 2];
      const b = hull[hull.length - 1];
      // Rate of a->b vs a->p: drop b when p is reached from a at a lower rate (b above chord).
      const cross = (b[kind] - a[kind]) * (p.impairment - a.impairment) - (b.impairment - a.impairment) * (p[kind] - a[kind]);
      if (cross > 0) hull.pop();
      else break;
    }
    hull.push(p);
  }
  const moves: Move[] = [];
  for (let i = 1; i < hull.length; i++) {
    moves.push({ to: hull[i], saved: hull[i - 1][kind] - hull[i][kind], added: hull[i].impairment - hull[i - 1].impairment });
  }
  return { start, moves };
}

/**
 * The joint front traced by global ranking: start with every sub-network unpruned and apply
 * the hull moves of all sub-networks in ascending impairment added per cost saved. Merging the
 * per-front move lists (rather than sorting all moves) keeps each front's own order even where
 * rounding makes two of its consecutive rates tie the wrong way round.
 * The result has strictly decreasing cost and non-decreasing impairment: moves that reduce
 * impairment (negative rate, possible with slightly negative impairments) come first, and the
 * schemes they make dominated are dropped, so the trace starts at the least impaired scheme.
 */
export function jointFrontByRanking(input: GpirInput, kind: CostKind = 'flops'): JointScheme[] {
  const original = originalCost(input);
  const hulls = input.fronts.map((front) => hullMoves(front, kind));
  const picks = hulls.map((h) => h.start);
  const next = hulls.map(() => 0);
  const trace: JointScheme[] = [makeScheme(input, original, picks)];
  for (;;) {
    let best = -1;
    let bestRate = Infinity;
    hulls.forEach((h, k) => {
      const move = h.moves[next[k]];
      if (!move) return;
      const rate = move.added / move.saved;
      if (best === -1 || rate < bestRate) {
        best = k;
        bestRate = rate;
      }
    });
    if (best === -1) break;
    picks[best] = hulls[best].moves[next[best]].to;
    next[best]++;
    trace.push(makeScheme(input, original, picks));
  }
  // Drop schemes dominated by a cheaper later one (only possible before the first positive
  // move), and of schemes whose totals round to the same cost keep the least impaired.
  const result: JointScheme[] = [];
  let minLater = Infinity;
  for (let i = trace.length - 1; i >= 0; i--) {
    const scheme = trace[i];
    if (scheme.impairment > minLater) continue;
    if (result.length > 0 && scheme[kind] <= result[result.length - 1][kind]) result.pop();
    result.push(scheme);
    minLater = scheme.impairment;
  }
  return result.reverse();
}

// ---------------------------------------------------------------------------------------------
// (b) Exact multiple-choice knapsack per target

/**
 * The `verifyTop` least-impaired distinct schemes whose whole-network cost is within the
 * target's budget. DP over fronts; cell c of layer k holds the k best partial schemes whose
 * discretised cost over the first k fronts is exactly c (so every partial scheme lives in one
 * cell and the kept lists never repeat a scheme).
 *
 * Discretisation: only the cost above each front's cheapest point is discretised, over the
 * slack `budget - minimum cost`, into `resolution` cells of width w (for whole-number costs,
 * w = max(1, ceil(slack / resolution)), so the DP is exact when the slack fits); a point's cost
 * is rounded up to ceil(extra / w) cells. Since sum(ceil) >= sum(extra / w), a DP-feasible
 * scheme is feasible; each returned scheme is also re-checked exactly (floating-point paranoia).
 */
export function solveTarget(input: GpirInput, target: GpirTarget, options: GpirOptions = {}): TargetResult {
  const { resolution, verifyTop, rankBy, tolerance } = parseOptions(options);
  const original = originalCost(input);
  const budget = targetBudget(target, original);
  const kind = budget.kind;
  const fronts = input.fronts;
  const minima = fronts.map((f) => Math.min(...f.points.map((p) => p[kind])));
  // Summed in the order `makeScheme` sums, so the cheapest scheme's cost equals `minimum` exactly.
  let minimum = input.fixed[kind];
  for (const m of minima) minimum += m;
  if (minimum > budget.value) throw new InfeasibleTargetError(target, budget.value, minimum, original[kind], kind);

  const slack = budget.value - minimum;
  // FLOPs and params are counts: when every cost is a whole number, cells are whole numbers
  // too, and the DP is exact whenever the slack fits in `resolution` cells (cell width 1).
  const integral = Number.isSafeInteger(input.fixed[kind]) && fronts.every((f) => f.points.every((p) => Number.isSafeInteger(p[kind])));
  const cellWidth = integral ? Math.max(1, Math.ceil(slack / resolution)) : slack / resolution;
  // capacity * cellWidth <= slack, so a scheme within capacity is within budget.
  const capacity = integral ? Math.floor(slack / cellWidth) : resolution;
  const cells = capacity + 1;
  // Discretised costs; points that cannot fit even alone are excluded (-1).
  const weights = fronts.map((f, k) =>
    f.points.map((p) => {
      const extra = p[kind] - minima[k];
      if (extra === 0) return 0;
      if (!(cellWidth > 0)) return -1;
      const w = Math.ceil(extra / cellWidth);
      return w <= capacity ? w : -1;
    }),
  );
  // Per front, the candidate points in ascending cell cost (the DP loop stops at the first that
  // overflows). Without a band, a point dominated (in cells and impairment) by `verifyTop` others
  // of its front can be skipped: each scheme using it is beaten by `verifyTop` distinct schemes
  // using them. With one it cannot: its extra cost may be what lifts a scheme into the band.
  const candidates = fronts.map((f, k) => {
    const usable = f.points.map((_, j) => j).filter((j) => weights[k][j] >= 0);
    const kept = usable.filter((j) => {
      if (tolerance !== undefined) return true;
      let dominators = 0;
      for (const i of usable) {
        const wi = weights[k][i];
        const wj = weights[k][j];
        const ii = f.points[i].impairment;
        const ij = f.points[j].impairment;
        if (i !== j && wi <= wj && ii <= ij && (wi < wj || ii < ij || i < j)) dominators++;
      }
      return dominators < verifyTop;
    });
    return Int32Array.from(kept.sort((a, b) => weights[k][a] - weights[k][b] || a - b));
  });

  const top = verifyTop;
  // Per layer: impairment, chosen point, rank in the previous layer's cell. Size cells * top.
  const layers: { impairment: Float64Array; point: Int32Array; prevRank: Int32Array }[] = [];
  let previous = new Float64Array(cells * top).fill(Infinity);
  previous[0] = 0; // before any front: the empty scheme at cost 0
  for (let k = 0; k < fronts.length; k++) {
    const impairment = new Float64Array(cells * top).fill(Infinity);
    const point = new Int32Array(cells * top).fill(-1);
    const prevRank = new Int32Array(cells * top).fill(-1);
    const points = fronts[k].points;
    const order = candidates[k];
    const w = weights[k];
    for (let c = 0; c < cells; c++) {
      for (let r = 0; r < top; r++) {
        const base = previous[c * top + r];
        if (base === Infinity) break; // lists are sorted: the rest are empty
        for (let n = 0; n < order.length; n++) {
          const j = order[n];
          if (c + w[j] >= cells) break;
          insertTopK(impairment, point, prevRank, (c + w[j]) * top, top, base + points[j].impairment, j, r);
        }
      }
    }
    layers.push({ impairment, point, prevRank });
    previous = impairment;
  }

  // Collect the best `top` over all final cells; ties by cell (cheaper first), then rank.
  const finals: { cell: number; rank: number; impairment: number }[] = [];
  for (let c = 0; c < cells; c++) {
    for (let r = 0; r < top; r++) {
      const v = previous[c * top + r];
      if (v === Infinity) break;
      finals.push({ cell: c, rank: r, impairment: v });
    }
  }
  finals.sort((a, b) => a.impairment - b.impairment || a.cell - b.cell || a.rank - b.rank);

  const lower = tolerance === undefined ? undefined : budget.value - tolerance * original[kind];
  const inBand: JointScheme[] = [];
  const schemes: JointScheme[] = [];
  for (const final of finals) {
    // The band's schemes may lie deep in the ranking; the unbanded list is full after `top`.
    if (inBand.length >= top || (lower === undefined && schemes.length >= top)) break;
    const picks: FrontPoint[] = new Array<FrontPoint>(fronts.length);
    let cell = final.cell;
    let rank = final.rank;
    for (let k = fronts.length - 1; k >= 0; k--) {
      const slot = cell * top + rank;
      const j = layers[k].point[slot];
      picks[k] = fronts[k].points[j];
      rank = layers[k].prevRank[slot];
      cell -= weights[k][j];
    }
    const scheme = makeScheme(input, original, picks);
    if (scheme[kind] > budget.value) continue;
    if (schemes.length < top) schemes.push(scheme);
    if (lower !== undefined && scheme[kind] >= lower) inBand.push(scheme);
  }

  const trace = jointFrontByRanking(input, rankBy);
  // The trace's cost falls monotonically, so the first scheme within budget is its best one;
  // with rankBy on the other cost it may never get there, then its cheapest scheme is reported.
  let ranking = trace[trace.length - 1];
  for (const scheme of trace) {
    if (scheme[kind] <= budget.value) {
      ranking = scheme;
      break;
    }
  }
  if (lower === undefined) return { target, budget, schemes, ranking };
  const band = { lower, upper: budget.value, met: inBand.length > 0 };
  return { target, budget, schemes: band.met ? inBand : schemes, ranking, band };
}

/** Inserts (value, point, prevRank) into the sorted list of `top` slots at `offset`, if it makes the cut. */
function insertTopK(
  values: Float64Array,
  points: Int32Array,
  prevRanks: Int32Array,
  offset: number,
  top: number,
  value: number,
  point: number,
  prevRank: number,
): void {
  const last = offset + top - 1;
  // Strictly better only: on ties the earlier candidate stays first (deterministic).
  if (!(value < values[last])) return;
  let slot = last;
  while (slot > offset && value < values[slot - 1]) {
    values[slot] = values[slot - 1];
    points[slot] = points[slot - 1];
    prevRanks[slot] = prevRanks[slot - 1];
    slot--;
  }
  values[slot] = value;
  points[slot] = point;
  prevRanks[slot] = prevRank;
}

// ---------------------------------------------------------------------------------------------
// Everything at once

/**
 * The merge step: validates the fronts, traces the joint front, and solves every target.
 * An infeasible target throws `InfeasibleTargetError` (the caller decides whether that fails
 * the run or is reported per target).
 */
export function gpirMerge(input: unknown, targets: readonly unknown[], options: GpirOptions = {}): GpirResult {
  const parsed = parseGpirInput(input);
  const resolved = parseOptions(options);
  return {
    subnets: parsed.fronts.map((f) => f.subnet),
    original: originalCost(parsed),
    jointFront: jointFrontByRanking(parsed, resolved.rankBy),
    targets: targets.map((t) => solveTarget(parsed, parseTarget(t), resolved)),
  };
}
