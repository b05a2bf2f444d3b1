/**
 * The NSGA-II problem of one sub-network search (DESIGN §2 "Encoding", "Objectives"): the adapter
 * between the EMO engine, which knows genomes and objective vectors, and the candidate
 * evaluator, which knows networks. Kept apart from the search task so the baselines
 * (`global-emo`) and tests can plug a different evaluator into the same encoding.
 *
 *   genome     one bit per channel of the sub-network's searched groups, groups in order
 *              (the `GenomeSlot` layout of model/groups.ts = the engine's group tiling)
 *   importance L1 norm of each channel's filters (repair, sampling and biased mutation use it)
 *   objectives [cost ratio (`flops` or `params`, per the spec), impairment], both minimised
 *   extras     flops, paramsRatio, macs, params, accuracy, loss: everything front.json reports,
 *              so the front is written from the archive alone (a resumed search has no other
 *              memory of the points evaluated before the restart)
 */
import type { ChannelGroup as SearchGroup, Evaluation, Problem } from '../emo/index.ts';
import type { GenomeSlot } from '../model/groups.ts';
import type { CandidateEvaluator, CandidateResult } from './candidate.ts';

export type CostObjective = 'flops' | 'params';

/** The archive extras of a pruning problem (all finite numbers, deterministic). */
export const EXTRA_KEYS = ['flops', 'paramsRatio', 'macs', 'params', 'accuracy', 'loss'] as const;
export type ExtraKey = (typeof EXTRA_KEYS)[number];

export interface PruningProblemOptions {
  readonly evaluator: CandidateEvaluator;
  readonly slots: readonly GenomeSlot[];
  /** Per group id, one importance score per channel (e.g. channelImportance, L1). */
  readonly importance: Readonly<Record<string, ArrayLike<number>>>;
  readonly objective: CostObjective;
  /**
   * Called after every evaluation with the full result (wall time, recovery report), which does
   * not go into the archive: it is not deterministic, and the archive must be.
   */
  readonly onEvaluation?: (genome: Uint8Array, result: CandidateResult) => void;
  /**
   * Lets the event loop run between evaluations (evaluation itself is synchronous), so a
   * progress printer or a signal handler is not starved for a whole generation. Default true.
   */
  readonly yieldBetween?: boolean;
}

/** Search groups (offset/length/importance) from a genome layout; throws on a missing score. */
export function searchGroups(slots: readonly GenomeSlot[], importance: Readonly<Record<string, ArrayLike<number>>>): SearchGroup[] {
  return slots.map((slot) => {
    const scores = importance[slot.group];
    if (!scores) throw new Error(`search problem: no importance scores for group '${slot.group}'`);
    if (scores.length !== slot.channels) {
      throw new Error(`search problem: group '${slot.group}' has ${slot.channels} channels but ${scores.length} importance scores`);
    }
    // Plain numbers: the engine hashes importances into the checkpoint's config hash.
    return { offset: slot.start, length: slot.channels, importance: Array.from(scores, Number) };
  });
}

/** The objective vector and extras of one candidate result. */
export function evaluationOf(result: CandidateResult, objective: CostObjective): Evaluation {
  const costRatio = objective === 'flops' ? result.flops : result.paramsRatio;
  return {
    objectives: [costRatio, result.impairment],
    extras: {
      flops: result.flops,
      paramsRatio: result.paramsRatio,
      macs: result.macs,
      params: result.params,
      accuracy: result.accuracy,
      loss: result.loss,
    },
  };
}

export function createPruningProblem(options: PruningProblemOptions): Problem {
  const { evaluator, slots, objective } = options;
  const groups = searchGroups(slots, options.importance);
  const yieldBetween = options.yieldBetween ?? true;
  return {
    genomeLength: evaluator.genomeLength,
    groups,
    objectiveCount: 2,
    async evaluate(genomes) {
      const evaluations: Evaluation[] = [];
      for (const genome of genomes) {
        const result = evaluator.evaluate(genome);
        options.onEvaluation?.(genome, result);
        evaluations.push(evaluationOf(result, objective));
        if (yieldBetween) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return evaluations;
    },
  };
}
