/**
 * eagleeye: EagleEye-style search (Li et al. 2020) as a baseline. Draw random layer-wise
 * pruning ratios at the target, prune each group by L1 magnitude within it, re-estimate the BN
 * statistics on search-train (adaptive BN, adaptive-bn.ts), score on search-val, keep the best.
 * It spends the same number of candidate evaluations as EMO-DIR's searches (the benchmark passes
 * that count), each far cheaper than an EMO-DIR candidate (no recovery training): the question it
 * answers is whether a cheap, wide random search of allocations does as well as evolution with
 * recovery.
 *
 * LANDING AT THE TARGET. A candidate is a random vector u (one u_g ~ U(0, 1) per group) scaled by
 * a common factor s: group g drops the fraction min(1 - minKeep, s * u_g) of its channels. Cost
 * never rises with s, so bisection on s finds the smallest s that meets the budget; every
 * candidate lands on the target (overshooting by at most one channel step), and the random part
 * is the SHAPE of the allocation, as in EagleEye's sampling under a FLOPs constraint.
 */
import type { tf } from '../../engine/backend.ts';
import { Rng } from '../../emo/rng.ts';
import { countTotals } from '../../model/cost.ts';
import type { ChannelAnalysis } from '../../model/groups.ts';
import { channelImportance } from '../../model/importance.ts';
import { pruneModel } from '../../model/prune.ts';
import { summarizePruned } from '../finalize.ts';
import type { PrunedSummary } from '../finalize.ts';
import { BaselineError, baselineGroups, byScore, costFor, keepFirst, keepRuleOf, targetBudget } from '../baselines.ts';
import type { BaselineTarget, MaskBaselineOptions } from '../baselines.ts';
import { adaptBatchNorm, scoreOnSearchVal } from './adaptive-bn.ts';
import type { AdaptiveBnData } from './adaptive-bn.ts';

export interface EagleEyeOptions extends MaskBaselineOptions {
  /** Candidates drawn and scored (the benchmark: EMO-DIR's evaluation count). */
  readonly candidates: number;
  readonly seed: number;
  readonly log?: (message: string) => void;
}

export interface EagleEyeCandidate {
  readonly masks: Record<string, Uint8Array>;
  /** Search-val top-1 and CE after adaptive BN. */
  readonly accuracy: number;
  readonly loss: number;
  readonly summary: PrunedSummary;
}

export interface EagleEyeResult {
  readonly best: EagleEyeCandidate;
  readonly evaluations: number;
  /** Search-val top-1 of every candidate, in draw order (how wide the spread is). */
  readonly accuracies: readonly number[];
}

/** Random allocations at `target`, their masks (the sampling half of EagleEye). */
export function eagleEyeMaskSampler(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  options: MaskBaselineOptions,
): (rng: Rng) => Record<string, Uint8Array> {
  const rule = keepRuleOf(options);
  const chosen = baselineGroups(analysis, options.groupIds);
  const importance = channelImportance(model, analysis, { criterion: 'l1', groups: chosen.map((g) => g.id) });
  const groups = chosen.map((g) => ({ ...g, order: byScore(importance[g.id]) }));
  const budget = targetBudget(target, countTotals(analysis));
  const maxDrop = 1 - rule.minKeep;
  return (rng) => {
    const shape = groups.map(() => rng.next());
    const masksAt = (scale: number): Record<string, Uint8Array> => {
      const masks: Record<string, Uint8Array> = {};
      groups.forEach((g, i) => {
        const drop = Math.min(maxDrop, scale * shape[i]);
        masks[g.id] = keepFirst(g, rule, Math.round((1 - drop) * g.channels));
      });
      return masks;
    };
    const costAt = (scale: number): number => costFor(budget, countTotals(analysis, masksAt(scale)));
    // Large enough that every group is at its minimum (u_g > 0 almost surely; 1e6 covers u_g >= 1e-6).
    let high = 1e6;
    if (costAt(high) > budget.value) {
      throw new BaselineError(`eagleeye: target ${target.kind} ${target.value} of '${analysis.graph.name}' is out of reach at minKeep ${rule.minKeep}`);
    }
    let low = 0;
    for (let i = 0; i < 60; i++) {
      const middle = (low + high) / 2;
      if (costAt(middle) <= budget.value) high = middle;
      else low = middle;
    }
    return masksAt(high);
  };
}

/** The EagleEye search at one target: `candidates` random allocations, adaptive BN, best search-val accuracy. */
export function eagleEyeSearch(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  data: AdaptiveBnData,
  options: EagleEyeOptions,
): EagleEyeResult {
  if (!Number.isInteger(options.candidates) || options.candidates < 1) throw new BaselineError(`eagleeye: candidates must be a positive integer, got ${options.candidates}`);
  const sample = eagleEyeMaskSampler(model, analysis, target, options);
  const rng = Rng.fromSeed(options.seed);
  const accuracies: number[] = [];
  let best: EagleEyeCandidate | undefined;
  for (let i = 0; i < options.candidates; i++) {
    const masks = sample(rng);
    const pruned = pruneModel(model, masks, { analysis });
    try {
      adaptBatchNorm(pruned, data);
      const score = scoreOnSearchVal(pruned, data);
      accuracies.push(score.top1);
      // Highest accuracy (EagleEye's criterion); ties by the lower loss.
      if (!best || score.top1 > best.accuracy || (score.top1 === best.accuracy && score.loss < best.loss)) {
        best = { masks, accuracy: score.top1, loss: score.loss, summary: summarizePruned(analysis, masks) };
      }
    } finally {
      pruned.dispose();
    }
    if ((i + 1) % 25 === 0) options.log?.(`eagleeye: ${i + 1}/${options.candidates} candidates, best search-val top-1 ${((best?.accuracy ?? 0) * 100).toFixed(2)}%`);
  }
  return { best: best!, evaluations: options.candidates, accuracies };
}
