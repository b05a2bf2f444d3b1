/**
 * Global pruning by one threshold over group-normalised channel scores (Torch-Pruning's
 * `global_pruning=True`): every channel of every pruned group is ranked on one list by its
 * score, and the lowest-scored channels are removed, wherever they are, until the whole network
 * meets the target. The scores are comparable across groups because `channelImportance`
 * divides each group's scores by their mean (Torch-Pruning's `normalizer='mean'`); the criterion
 * (magnitude, Taylor, BN scale) is the caller's: see global-magnitude.ts, taylor.ts, slimming.ts.
 *
 * The threshold is found by bisection on the number p of channels removed from the bottom of the
 * list: a group keeps its highest-scored channels, as many as the list leaves it, raised to the
 * nearest legal count (minKeep, roundTo). Cost never rises with p, so the smallest p whose
 * network meets the budget is the least pruning that reaches the target; it overshoots the
 * target by at most one channel step of one group (a fraction of a percent on these models).
 */
import { countTotals } from '../../model/cost.ts';
import type { ChannelAnalysis } from '../../model/groups.ts';
import { summarizePruned } from '../finalize.ts';
import { BaselineError, baselineGroups, byScore, costFor, keepFirst, keepRuleOf, targetBudget } from '../baselines.ts';
import type { BaselineTarget, Budget, MaskBaselineOptions } from '../baselines.ts';
import type { PrunedSummary } from '../finalize.ts';

export interface GlobalThresholdMasks {
  /** One mask per pruned group (1 = keep). */
  readonly masks: Record<string, Uint8Array>;
  /** The score of the last channel the list removed (channels scored above it are kept). */
  readonly threshold: number;
  /** Channels removed from the bottom of the global list (before minKeep/roundTo put some back). */
  readonly removed: number;
  readonly budget: Budget;
  readonly summary: PrunedSummary;
}

interface RankedChannel {
  readonly group: number;
  readonly score: number;
}

/**
 * Masks at `target` from per-group channel scores (one list over the groups of
 * `options.groupIds`, default every prunable group); higher score = more important.
 */
export function globalThresholdMasks(
  analysis: ChannelAnalysis,
  scores: Readonly<Record<string, ArrayLike<number>>>,
  target: BaselineTarget,
  options: MaskBaselineOptions = {},
): GlobalThresholdMasks {
  const rule = keepRuleOf(options);
  const groups = baselineGroups(analysis, options.groupIds).map((g) => {
    const groupScores = scores[g.id];
    if (!groupScores || groupScores.length !== g.channels) {
      throw new BaselineError(`global threshold: group '${g.id}' has ${g.channels} channels but ${groupScores?.length ?? 0} scores`);
    }
    for (let c = 0; c < g.channels; c++) {
      if (!Number.isFinite(groupScores[c])) throw new BaselineError(`global threshold: score of channel ${c} of group '${g.id}' is ${groupScores[c]}`);
    }
    return { ...g, order: byScore(groupScores) };
  });
  const ranked: RankedChannel[] = [];
  groups.forEach((g, index) => {
    for (let c = 0; c < g.channels; c++) ranked.push({ group: index, score: scores[g.id][c] });
  });
  // Least important first; ties by group order, so the list is reproducible.
  ranked.sort((a, b) => a.score - b.score || a.group - b.group);

  const original = countTotals(analysis);
  const budget = targetBudget(target, original);
  const masksAt = (removed: number): Record<string, Uint8Array> => {
    const removedPerGroup = new Int32Array(groups.length);
    for (let i = 0; i < removed; i++) removedPerGroup[ranked[i].group]++;
    const masks: Record<string, Uint8Array> = {};
    groups.forEach((g, index) => {
      masks[g.id] = keepFirst(g, rule, g.channels - removedPerGroup[index]);
    });
    return masks;
  };
  const costAt = (removed: number): number => costFor(budget, countTotals(analysis, masksAt(removed)));
  const most = ranked.length;
  if (costAt(most) > budget.value) {
    throw new BaselineError(
      `target ${target.kind} ${target.value} of '${analysis.graph.name}' needs ${budget.kind} <= ${Math.round(budget.value)}, ` +
        `but keeping minKeep ${rule.minKeep} of every pruned group still costs ${costAt(most)}`,
    );
  }
  // Smallest `removed` within budget: cost(low) > budget >= cost(high) throughout.
  let low = -1;
  let high = most;
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (costAt(middle) <= budget.value) high = middle;
    else low = middle;
  }
  const masks = masksAt(high);
  return {
    masks,
    threshold: high > 0 ? ranked[high - 1].score : Number.NEGATIVE_INFINITY,
    removed: high,
    budget,
    summary: summarizePruned(analysis, masks),
  };
}
