/**
 * `runs/<runId>/subnets/<k>/front.json`: a sub-network search's Pareto front. Its one schema:
 * the search writes it (src/dir/search-task.ts validates what it writes), the merge, the report
 * and the status read it.
 */
import { z } from 'zod';
import { nameSchema } from './spec.ts';

/** What the search writes as the file's `format`. */
export const FRONT_FORMAT = 'emo-dir/subnet-front';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.number().int().min(0);

export const frontFilePointSchema = z.object({
  id: z.string().min(1),
  /** encodeGenome (src/emo/genome.ts): packed bits, base64; 1 = keep the channel. */
  genome: z.string(),
  /** Pruned sub-network MACs over its original MACs (the search's cost objective). */
  flops: finite.refine((v) => v >= 0, 'must be >= 0'),
  /** Absolute MACs and params of the pruned sub-network (same scope as `original`). */
  macs: finite.refine((v) => v >= 0, 'must be >= 0'),
  params: finite.refine((v) => v >= 0, 'must be >= 0'),
  /** Global performance impairment; may be slightly negative. */
  impairment: finite,
  /** Whole-network accuracy on the search-validation subset with this sub-network pruned. */
  accuracy: finite.refine((v) => v >= 0 && v <= 1, 'must be in [0, 1]').optional(),
  /** Params of the pruned sub-network over its original params. */
  paramsRatio: finite.refine((v) => v >= 0, 'must be >= 0').optional(),
  /** Whole-network CE loss on the search-validation subset with this sub-network pruned. */
  loss: finite.optional(),
});

/**
 * Loose on purpose: the search may add diagnostics (hypervolume, seconds, backend) that the
 * merge does not need; the report picks up the ones it knows.
 */
export const frontFileSchema = z
  .looseObject({
    /** `emo-dir/subnet-front` and 1, as the search writes them (older or hand-made fronts may lack them). */
    format: z.string().min(1).optional(),
    version: z.literal(1).optional(),
    runId: nameSchema,
    subnet: nameSchema,
    objective: z.enum(['flops', 'params']),
    /** Bits of the sub-network's genome (one per prunable channel). */
    genomeLength: count.optional(),
    /** The original network on search-val: impairment = loss - baseline.loss. */
    baseline: z.object({ loss: finite, accuracy: finite }).optional(),
    /** Id of the all-ones point when it is on the front (else a pruned point dominates it). */
    unprunedId: z.string().min(1).optional(),
    /** The sub-network's cost unpruned: its whole piece or its prunable part (see merge-run.ts). */
    original: z.object({ macs: finite.refine((v) => v >= 0, 'must be >= 0'), params: finite.refine((v) => v >= 0, 'must be >= 0') }),
    points: z.array(frontFilePointSchema).min(1),
    evaluations: count.optional(),
    generations: count.optional(),
    stopReason: z.enum(['generations', 'evaluations', 'time']).optional(),
    searchSeconds: finite.refine((v) => v >= 0, 'must be >= 0').optional(),
    hypervolume: finite.refine((v) => v >= 0, 'must be >= 0').optional(),
  })
  .superRefine((front, ctx) => {
    const ids = new Set<string>();
    front.points.forEach((point, index) => {
      if (ids.has(point.id)) ctx.addIssue({ code: 'custom', path: ['points', index, 'id'], message: `point id '${point.id}' repeats` });
      ids.add(point.id);
    });
  });

export type FrontFile = z.output<typeof frontFileSchema>;
export type FrontFilePoint = z.output<typeof frontFilePointSchema>;
