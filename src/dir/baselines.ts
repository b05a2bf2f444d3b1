/**
 * Baselines for the quality benchmark (DESIGN §2 "Baselines"). Each produces channel masks for
 * the whole network at a target; the benchmark then takes them through the SAME path as EMO-DIR's
 * result (finalize.ts: `pruneAtMasks` / recovered weights -> `fineTuneAndEvaluate`), so the
 * methods differ only in which channels they keep.
 *
 *   uniform-l1  every pruned group keeps the same fraction f of its channels, the ones with the
 *               largest L1 filter norm; f found by bisection so the whole network meets the target.
 *   random      the same bisection on f, but each group keeps a seeded random choice of channels.
 *   global-emo  ONE NSGA-II over the whole network's genome (every pruned group), with the same
 *               evaluation budget as EMO-DIR's total, each candidate recovered as a whole network.
 *
 * GLOBAL-EMO REUSES THE SUB-NETWORK MACHINERY WITH K = 1. A division into a single sub-network
 * (`wholeNetworkDivision`) has X_0 = the input images and X_1 = the network output (logits), no
 * tail. Its candidate evaluator (candidate.ts) then recovers the pruned whole network on the
 * search-train subset with loss alpha * MSE(logits', logits) / Var(logits) + beta * CE(logits', y):
 * the first term is distillation to the original's logits (set alpha = 0 for plain CE), and the
 * impairment is CE on search-val minus the original's, the same scale as EMO-DIR's. So global-emo
 * and EMO-DIR differ in exactly one thing: one big search versus K small ones merged by GPIR.
 *
 * WHICH GROUPS. By default every group the analysis marks prunable. EMO-DIR never prunes groups
 * whose channels cross a sub-network cut (they are the boundary contract); to compare on the same
 * search space pass `groupIds` = the union of the division's `groupIds`.
 */
import type { TargetKind } from '../schema/spec.ts';
import { targetBudget as gpirTargetBudget } from './gpir.ts';
import { tf } from '../engine/backend.ts';
import { Rng } from '../emo/rng.ts';
import { legalKeptCount } from '../emo/groups.ts';
import type { ChannelGroup as EmoGroup } from '../emo/groups.ts';
import { front as paretoArchiveFront, runNsga2 } from '../emo/nsga2.ts';
import type { Evaluation, Nsga2Config, Problem, StopReason } from '../emo/nsga2.ts';
import { decodeGenome } from '../emo/genome.ts';
import { countTotals } from '../model/cost.ts';
import { analyzeChannels, findGroup, genomeSlots, masksFromGenome } from '../model/groups.ts';
import type { ChannelAnalysis, GenomeSlot } from '../model/groups.ts';
import { channelImportance } from '../model/importance.ts';
import { createCandidateEvaluator } from './candidate.ts';
import type { CandidateEvaluator, CandidateSettings } from './candidate.ts';
import { divideNetwork } from './divide.ts';
import type { Division } from './divide.ts';
import type { BoundaryFeatures } from './features.ts';
import { summarizePruned } from './finalize.ts';
import type { PrunedSummary } from './finalize.ts';
import { buildSubnetworkModel } from './subnetwork.ts';

export { fineTuneAndEvaluate, pruneAtMasks, summarizePruned } from './finalize.ts';
export type { FineTuneResult, FineTuneSettings, PrunedSummary } from './finalize.ts';

export class BaselineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BaselineError';
  }
}

/** A target as specs, manifests and plans write it. */
export interface BaselineTarget {
  readonly kind: TargetKind;
  readonly value: number;
}

export interface Budget {
  /** The cost the target bounds. */
  readonly kind: 'flops' | 'params';
  /** Whole-network MACs (flops) or params allowed. */
  readonly value: number;
}

/** The whole-network limit a target means, exactly as the GPIR merge reads it. */
export function targetBudget(target: BaselineTarget, original: { readonly macs: number; readonly params: number }): Budget {
  return gpirTargetBudget(target, { flops: original.macs, params: original.params });
}

export function costFor(budget: Budget, cost: { readonly macs: number; readonly params: number }): number {
  return budget.kind === 'flops' ? cost.macs : cost.params;
}

export interface MaskBaselineOptions {
  /** Every group keeps at least this fraction of its channels (and one). Default 0.1 (the spec's default minKeep). */
  readonly minKeep?: number;
  /** Kept counts are multiples of this (or the whole group). Default 1. */
  readonly roundTo?: number;
  /** Groups to prune (default: every prunable group of the analysis). */
  readonly groupIds?: readonly string[];
}

export interface BaselineMasks {
  /** One mask per pruned group (1 = keep). */
  readonly masks: Record<string, Uint8Array>;
  /** The common keep fraction the bisection settled on. */
  readonly keepFraction: number;
  readonly budget: Budget;
  readonly summary: PrunedSummary;
}

/** The minKeep / roundTo rule of a mask baseline, validated (defaults: the spec's). */
export function keepRuleOf(options: MaskBaselineOptions): { minKeep: number; roundTo: number } {
  const rule = { minKeep: options.minKeep ?? 0.1, roundTo: options.roundTo ?? 1 };
  if (!(rule.minKeep > 0 && rule.minKeep <= 1)) throw new BaselineError(`minKeep must be in (0, 1], got ${rule.minKeep}`);
  if (!Number.isInteger(rule.roundTo) || rule.roundTo < 1) throw new BaselineError(`roundTo must be an integer >= 1, got ${rule.roundTo}`);
  return rule;
}

export interface KeepGroup {
  readonly id: string;
  readonly channels: number;
  /** Local channel indices in the order they are kept (first = kept first). */
  readonly order: Int32Array;
}

/** Channel indices by score, highest first; ties by index so masks are reproducible. */
export function byScore(scores: ArrayLike<number>): Int32Array {
  return Int32Array.from({ length: scores.length }, (_, c) => c).sort((a, b) => scores[b] - scores[a] || a - b);
}

/** The mask keeping the first legal count near `wanted` of `group.order` (every mask baseline's last step). */
export function keepFirst(group: KeepGroup, rule: { minKeep: number; roundTo: number }, wanted: number): Uint8Array {
  const kept = legalKeptCount({ length: group.channels, ...rule }, wanted);
  const mask = new Uint8Array(group.channels);
  for (let j = 0; j < kept; j++) mask[group.order[j]] = 1;
  return mask;
}

/** Groups to prune, validated (a boundary group cannot be cut, whatever the caller asks). */
export function baselineGroups(analysis: ChannelAnalysis, groupIds: readonly string[] | undefined): { id: string; channels: number }[] {
  const groups = groupIds ? groupIds.map((id) => findGroup(analysis, id)) : analysis.groups.filter((g) => g.prunable);
  for (const group of groups) {
    if (group.boundary !== null) throw new BaselineError(`group '${group.id}' carries the model's ${group.boundary} channels and cannot be pruned`);
  }
  if (groups.length === 0) throw new BaselineError(`model '${analysis.graph.name}' has no prunable channel groups`);
  return groups.map((g) => ({ id: g.id, channels: g.channels }));
}

/**
 * Bisection on the common keep fraction f: kept_g(f) = the legal count nearest f * channels_g
 * (at least minKeep, a multiple of roundTo). Cost is non-decreasing in f, so the largest f whose
 * network meets the budget is found to float precision; the result meets the target and
 * overshoots it by at most one channel step of one group.
 */
function bisectKeepFraction(
  analysis: ChannelAnalysis,
  groups: readonly KeepGroup[],
  target: BaselineTarget,
  options: MaskBaselineOptions,
): BaselineMasks {
  const rule = keepRuleOf(options);
  const original = countTotals(analysis);
  const budget = targetBudget(target, original);
  const masksAt = (fraction: number): Record<string, Uint8Array> => {
    const masks: Record<string, Uint8Array> = {};
    for (const group of groups) masks[group.id] = keepFirst(group, rule, Math.round(fraction * group.channels));
    return masks;
  };
  const costAt = (fraction: number): number => costFor(budget, countTotals(analysis, masksAt(fraction)));
  let low = 0;
  let high = 1;
  const minimum = costAt(low);
  if (minimum > budget.value) {
    throw new BaselineError(
      `target ${target.kind} ${target.value} of '${analysis.graph.name}' needs ${budget.kind} <= ${Math.round(budget.value)}, ` +
        `but keeping minKeep ${rule.minKeep} of every pruned group still costs ${minimum}`,
    );
  }
  if (costAt(high) <= budget.value) {
    low = high;
  } else {
    // 50 halvings: far below the smallest step (1 / channels of the widest group).
    for (let i = 0; i < 50; i++) {
      const middle = (low + high) / 2;
      if (costAt(middle) <= budget.value) low = middle;
      else high = middle;
    }
  }
  const masks = masksAt(low);
  return { masks, keepFraction: low, budget, summary: summarizePruned(analysis, masks) };
}

/**
 * uniform-l1: every pruned group keeps the same fraction of its channels, those with the largest
 * L1 filter norm (summed over coupled producers, `channelImportance`), the fraction chosen by
 * bisection so the whole network meets `target`.
 */
export function uniformL1Masks(model: tf.LayersModel, analysis: ChannelAnalysis, target: BaselineTarget, options: MaskBaselineOptions = {}): BaselineMasks {
  const chosen = baselineGroups(analysis, options.groupIds);
  const importance = channelImportance(model, analysis, { criterion: 'l1', groups: chosen.map((g) => g.id) });
  const groups = chosen.map((g) => ({ ...g, order: byScore(importance[g.id]) }));
  return bisectKeepFraction(analysis, groups, target, options);
}

/**
 * random: the same bisection on a common keep fraction, with each group's kept channels a seeded
 * random choice (one permutation per group, drawn in group order from `seed`; the first k
 * channels of it are kept, so a larger fraction keeps a superset and the bisection is monotone).
 */
export function randomMasks(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  seed: number,
  options: MaskBaselineOptions = {},
): BaselineMasks {
  if (analysis.graph.name !== model.name) throw new BaselineError(`the analysis is of '${analysis.graph.name}', the model is '${model.name}'`);
  const rng = Rng.fromSeed(seed);
  const groups = baselineGroups(analysis, options.groupIds).map((g) => {
    const order = Int32Array.from({ length: g.channels }, (_, c) => c);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return { ...g, order };
  });
  return bisectKeepFraction(analysis, groups, target, options);
}

// ---------------------------------------------------------------------------------------------
// global-emo

/** The division of `model` into ONE sub-network: X_0 = input, X_1 = output (see the module comment). */
export function wholeNetworkDivision(model: tf.LayersModel, analysis: ChannelAnalysis): Division {
  const division = divideNetwork(model, analysis, { subnetworks: 1, pruneResidual: analysis.pruneResidual });
  if (division.subnetworks.length !== 1) throw new BaselineError(`whole-network division of '${model.name}' has ${division.subnetworks.length} pieces`);
  return division;
}

export interface GlobalEmoOptions {
  readonly model: tf.LayersModel;
  readonly analysis: ChannelAnalysis;
  /**
   * Boundary features of the whole network: computeBoundaryFeatures(model, wholeNetworkDivision(...),
   * trainSet, subsets) for sub-network `k1` (X_0 = input images, X_1 = logits).
   */
  readonly features: BoundaryFeatures;
  /** Default: wholeNetworkDivision(model, analysis); must be the division the features were computed for. */
  readonly division?: Division;
  /** `evaluations`: the same total as EMO-DIR's (sum over its sub-networks); `population`: NSGA-II population. */
  readonly budget: { readonly evaluations: number; readonly population: number };
  readonly seed: number;
  /** Whole-network recovery per candidate (alpha: KD-like term to the original logits; beta: CE). */
  readonly recovery: CandidateSettings;
  readonly minKeep?: number;
  readonly roundTo?: number;
  /** The cost objective. Default 'flops'. */
  readonly objective?: 'flops' | 'params';
  /** NSGA-II mutation bias towards dropping unimportant channels, in [0, 1]. Default 0. */
  readonly importanceBias?: number;
  /** Groups to search (default: every prunable group; see WHICH GROUPS). */
  readonly groupIds?: readonly string[];
  readonly log?: (message: string) => void;
}

export interface GlobalEmoPoint {
  /** encodeGenome text over `slots`. */
  readonly genome: string;
  /** Pruned / original whole-network MACs. */
  readonly flops: number;
  readonly paramsRatio: number;
  readonly macs: number;
  readonly params: number;
  readonly impairment: number;
  /** Top-1 on search-val after recovery. */
  readonly accuracy: number;
}

export interface GlobalEmoResult {
  /** The Pareto front of every evaluated point in (cost objective, impairment), cheapest first. */
  readonly front: readonly GlobalEmoPoint[];
  /** Every evaluated point (the archive), in evaluation order: `pickNearTarget` chooses from it. */
  readonly archive: readonly GlobalEmoPoint[];
  readonly evaluations: number;
  readonly generations: number;
  readonly stopReason: StopReason;
  readonly seconds: number;
  /** Genome layout (whole-network group ids). */
  readonly slots: readonly GenomeSlot[];
  readonly original: { readonly macs: number; readonly params: number };
}

interface WholeNetwork {
  readonly evaluator: CandidateEvaluator;
  readonly slots: GenomeSlot[];
  readonly piece: tf.LayersModel;
}

function buildWholeNetwork(options: GlobalEmoOptions): WholeNetwork {
  const { model, analysis, features } = options;
  const division = options.division ?? wholeNetworkDivision(model, analysis);
  if (division.subnetworks.length !== 1) throw new BaselineError(`global-emo needs a one-piece division, got ${division.subnetworks.length} pieces`);
  const spec = division.subnetworks[0];
  if (features.subnet !== spec.id || features.outputTensor !== spec.outputTensor || features.inputTensor !== spec.inputTensor) {
    throw new BaselineError(
      `global-emo: features are of ${features.subnet} (${features.inputTensor} -> ${features.outputTensor}), the whole network is ${spec.inputTensor} -> ${spec.outputTensor}`,
    );
  }
  const groupIds = baselineGroups(analysis, options.groupIds ?? spec.groupIds).map((g) => g.id);
  const piece = buildSubnetworkModel(model, division, spec.id);
  try {
    // The piece is the whole network re-applied to a fresh input; its own analysis names the
    // groups as the model's does (group ids are producer layer names, and the layers are shared).
    const pieceAnalysis = analyzeChannels(piece, { pruneResidual: analysis.pruneResidual });
    const slots = genomeSlots(pieceAnalysis, groupIds);
    const evaluator = createCandidateEvaluator({
      originalSubnet: piece,
      tail: null,
      features,
      analysis: pieceAnalysis,
      slots,
      settings: options.recovery,
    });
    return { evaluator, slots, piece };
  } catch (error) {
    piece.dispose();
    throw error;
  }
}

/**
 * global-emo: one NSGA-II over every pruned group of the whole network, at most
 * `budget.evaluations` candidates, each recovered as a whole network (see the module comment).
 * Returns the front and the whole archive; `pickNearTarget` chooses the point the benchmark fine-tunes.
 */
export async function globalEmoSearch(options: GlobalEmoOptions): Promise<GlobalEmoResult> {
  const { budget } = options;
  if (!Number.isInteger(budget.evaluations) || budget.evaluations < 1) throw new BaselineError(`budget.evaluations must be a positive integer, got ${budget.evaluations}`);
  if (!Number.isInteger(budget.population) || budget.population < 2) throw new BaselineError(`budget.population must be an integer >= 2, got ${budget.population}`);
  const log = options.log ?? (() => undefined);
  const objective = options.objective ?? 'flops';
  const started = performance.now();
  const whole = buildWholeNetwork(options);
  try {
    const { evaluator, slots } = whole;
    const importance = channelImportance(options.model, options.analysis, { groups: slots.map((s) => s.group) });
    const groups: EmoGroup[] = slots.map((slot) => ({ offset: slot.start, length: slot.channels, importance: importance[slot.group] }));
    let evaluated = 0;
    const problem: Problem = {
      genomeLength: evaluator.genomeLength,
      groups,
      objectiveCount: 2,
      async evaluate(genomes): Promise<Evaluation[]> {
        const out: Evaluation[] = [];
        for (const genome of genomes) {
          const r = evaluator.evaluate(genome);
          evaluated++;
          out.push({
            objectives: [objective === 'flops' ? r.flops : r.paramsRatio, r.impairment],
            extras: { macs: r.macs, params: r.params, accuracy: r.accuracy, paramsRatio: r.paramsRatio, flops: r.flops },
          });
          // Let timers and signals run between (seconds-long) evaluations.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        log(`global-emo: ${evaluated}/${budget.evaluations} evaluations`);
        return out;
      },
    };
    const config: Nsga2Config = {
      seed: options.seed,
      populationSize: budget.population,
      // The evaluation budget is what stops the search; generations only bound it when duplicates
      // are dropped so often that a generation adds nothing.
      generations: 4 * Math.ceil(budget.evaluations / budget.population) + 1,
      maxEvaluations: budget.evaluations,
      minKeep: options.minKeep ?? 0.1,
      roundTo: options.roundTo ?? 1,
      importanceBias: options.importanceBias ?? 0,
    };
    const result = await runNsga2(problem, config);
    const toPoint = (p: (typeof result.state.archive)[number]): GlobalEmoPoint => ({
      genome: p.genome,
      flops: p.extras.flops,
      paramsRatio: p.extras.paramsRatio,
      macs: p.extras.macs,
      params: p.extras.params,
      impairment: p.objectives[1],
      accuracy: p.extras.accuracy,
    });
    const points = paretoArchiveFront(result.state.archive).map(toPoint);
    const seconds = (performance.now() - started) / 1000;
    log(`global-emo: ${result.state.evaluations} evaluations in ${result.state.generation} generations, ${points.length} front points, ${seconds.toFixed(1)} s`);
    return {
      front: points,
      archive: result.state.archive.map(toPoint),
      evaluations: result.state.evaluations,
      generations: result.state.generation,
      stopReason: result.stopReason,
      seconds,
      slots,
      original: evaluator.original,
    };
  } finally {
    whole.piece.dispose();
  }
}

/**
 * The archive point that meets `target` and overshoots it by at most `tolerance` (a cut within
 * [target, target + tolerance]; for budgets, the same window on the cost fraction), with the
 * least impairment; undefined when no evaluated point lands there. The front alone often has no
 * point near a given cut (its points are spread over the whole range), so comparing methods at
 * one cut needs the archive: a dominated point at 70.3% says more about 70% than a front point
 * at 75.6%. `tolerance` Infinity picks among every point that meets the target.
 */
export function pickNearTarget(
  result: Pick<GlobalEmoResult, 'archive' | 'original'>,
  target: BaselineTarget,
  tolerance = 0.01,
): GlobalEmoPoint | undefined {
  const budget = targetBudget(target, result.original);
  const total = budget.kind === 'flops' ? result.original.macs : result.original.params;
  const floor = budget.value - tolerance * total;
  let best: GlobalEmoPoint | undefined;
  for (const point of result.archive) {
    const cost = costFor(budget, point);
    if (cost > budget.value || cost < floor) continue;
    if (!best || point.impairment < best.impairment || (point.impairment === best.impairment && cost > costFor(budget, best))) best = point;
  }
  return best;
}

/** The whole-network masks of a global-emo genome (copies). */
export function globalEmoMasks(result: Pick<GlobalEmoResult, 'slots'>, genome: string): Record<string, Uint8Array> {
  const length = result.slots.reduce((n, s) => n + s.channels, 0);
  const view = masksFromGenome(result.slots, decodeGenome(genome, length));
  return Object.fromEntries(Object.entries(view).map(([id, mask]) => [id, mask.slice()]));
}

/**
 * The recovered pruned network of a global-emo genome, exactly as the search scored it (same
 * deterministic recovery): the counterpart of EMO-DIR's assembled recovered sub-networks, for a
 * like-for-like "accuracy straight after pruning". The caller owns the model.
 */
export function recoverGlobalEmoCandidate(options: GlobalEmoOptions, genome: string): tf.LayersModel {
  const whole = buildWholeNetwork(options);
  try {
    return whole.evaluator.recoverCandidate(decodeGenome(genome, whole.evaluator.genomeLength));
  } finally {
    whole.piece.dispose();
  }
}
