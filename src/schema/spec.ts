import { z } from 'zod';
import { IMPORTANCE_CRITERIA } from '../model/importance-criteria.ts';
import type { FieldIssue } from './messages.ts';

/**
 * The run spec (`spec.json`, or `prune.json` in a registry package): what to prune, on what data,
 * towards which targets, with which search settings. Every field but `model`, `dataset` and
 * `targets` has a default, so a minimal spec is three lines. Defaults are the ones measured to
 * work on the example model; DESIGN.md §2 names each setting.
 */

/** Run ids, model names and target names become store key segments: keep them boring. */
export const nameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'use letters, digits, ".", "_" or "-" (max 128), starting with a letter or digit')
  .refine((name) => !name.includes('..'), 'must not contain ".."');

/** Every kind of target, in one place (reports, metrics, plans and baselines use this list). */
export const TARGET_KINDS = ['flopsCut', 'paramsCut', 'flopsBudget', 'paramsBudget'] as const;
export const targetKindSchema = z.enum(TARGET_KINDS);
export type TargetKind = z.infer<typeof targetKindSchema>;

export const targetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('flopsCut'), value: z.number().gt(0).lt(1), name: nameSchema.optional() }),
  z.object({ kind: z.literal('paramsCut'), value: z.number().gt(0).lt(1), name: nameSchema.optional() }),
  z.object({ kind: z.literal('flopsBudget'), value: z.number().positive(), name: nameSchema.optional() }),
  z.object({ kind: z.literal('paramsBudget'), value: z.number().positive(), name: nameSchema.optional() }),
]);
export type Target = z.infer<typeof targetSchema>;
// The union above must cover exactly TARGET_KINDS (a compile error otherwise).
const everyKindHasATarget: Record<TargetKind, Target['kind']> & Record<Target['kind'], TargetKind> = {
  flopsCut: 'flopsCut',
  paramsCut: 'paramsCut',
  flopsBudget: 'flopsBudget',
  paramsBudget: 'paramsBudget',
};
void everyKindHasATarget;

/** A stable, key-safe name for a target: `flops-50` for a 50% FLOPs cut unless the spec names it. */
export function targetName(target: Target): string {
  if (target.name) return target.name;
  switch (target.kind) {
    case 'flopsCut':
      return `flops-${Math.round(target.value * 1000) / 10}`;
    case 'paramsCut':
      return `params-${Math.round(target.value * 1000) / 10}`;
    case 'flopsBudget':
      return `flops-max-${target.value}`;
    case 'paramsBudget':
      return `params-max-${target.value}`;
  }
}

export const datasetSpecSchema = z.object({
  /** `fashion-mnist`, `cifar10:<dir or store prefix>`, `cifar100:<...>`, `imagenet:<...>`. */
  name: z.string().min(1),
  /** Training images the boundary features are computed on (the search-train subset). */
  searchTrain: z.number().int().positive().default(2048),
  /** Held-out training images for impairment (the search-validation subset). */
  searchVal: z.number().int().positive().default(1024),
  /** Cap on the fine-tune training set (undefined: the whole training split). */
  fineTuneLimit: z.number().int().positive().optional(),
  /** Cap on the test set used for final metrics (undefined: the whole test split). */
  testLimit: z.number().int().positive().optional(),
});

export const divideSpecSchema = z.object({
  /** Number of sub-networks K (default: one per stage). */
  subnetworks: z.number().int().min(1).optional(),
  pruneResidual: z.boolean().default(false),
  /** Every group keeps at least this fraction of its channels (and at least one). */
  minKeep: z.number().gt(0).max(1).default(0.1),
  /** Kept channel counts are multiples of this (hardware-friendly widths). */
  roundTo: z.number().int().min(1).default(1),
});

export const searchSpecSchema = z.object({
  population: z.number().int().min(4).default(16),
  generations: z.number().int().min(1).default(8),
  /** Stop early after this many evaluations per sub-network (undefined: no limit). */
  maxEvaluations: z.number().int().positive().optional(),
  /** Stop early after this many seconds per sub-network (checked between generations). */
  timeBudgetSeconds: z.number().positive().optional(),
  /** The cost objective; the other is always the global performance impairment. */
  objective: z.enum(['flops', 'params']).default('flops'),
  seed: z.number().int().min(0).default(1),
  /** Mini-batches of recovery training per candidate under the cross-network constraints. */
  recoverySteps: z.number().int().min(0).default(20),
  recoveryBatchSize: z.number().int().positive().default(64),
  recoveryLearningRate: z.number().positive().default(0.05),
  /** Weight of the feature-reconstruction term MSE(S_k'(X_{k-1}), X_k) / Var(X_k). */
  alpha: z.number().min(0).default(1),
  /** Weight of the output term CE(T_k(S_k'(X_{k-1})), y). */
  beta: z.number().min(0).default(1),
  /** Bias bit-flip mutation towards dropping low-importance channels. */
  importanceBiasedMutation: z.boolean().default(true),
  /**
   * How channels are ranked (repair, initial population, biased mutation): group magnitude
   * `l1`/`l2` over every coupled layer, BN `bn-scale`, or first-order `taylor` on search-train.
   */
  importance: z.enum(IMPORTANCE_CRITERIA).default('l1'),
  /** Batches used to re-estimate batch-norm statistics after recovery. */
  bnRecalibrationBatches: z.number().int().min(0).default(4),
  /** Lifts BUDGET_LIMITS (population, generations, evaluations, recovery steps, subset sizes): a large run on purpose. */
  allowLargeBudget: z.boolean().default(false),
  /**
   * Storage of the cached boundary features X_{k-1}/X_k: float32 (exact) or float16 (half the
   * disk, I/O and page cache; values rounded to 11 significant bits, README "Bounded memory").
   */
  featureDtype: z.enum(['float32', 'float16']).default('float32'),
  /**
   * Images per inference pass when boundary features are computed, and per pass when a candidate
   * is scored on the search-validation subset: with the recovery batch, what sets a search
   * worker's peak memory (lower them for large inputs on small devices).
   */
  featureBatchSize: z.number().int().positive().default(64),
  evalBatchSize: z.number().int().positive().default(256),
});

export const mergeSpecSchema = z.object({
  /** Joint schemes per target that are assembled and measured before the best is fine-tuned. */
  verifyTop: z.number().int().min(1).default(3),
  /** Cost buckets of the multiple-choice knapsack. */
  resolution: z.number().int().min(10).default(10_000),
  /**
   * How far past a target the verified schemes may land, as a fraction of the original network's
   * cost: 0.01 makes a 50% FLOPs cut land at 50-51% whenever the fronts can. Only when no scheme
   * lies in that band are the least-impaired schemes anywhere under the budget verified (the
   * plan's `band.met` says which happened).
   */
  targetTolerance: z.number().min(0).lt(1).default(0.01),
});

export const finalizeSpecSchema = z.object({
  epochs: z.number().min(0).default(2),
  batchSize: z.number().int().positive().default(128),
  learningRate: z.number().positive().default(0.02),
  weightDecay: z.number().min(0).default(5e-4),
  /** Distil from the original network during fine-tuning (weight of the KL term; 0 = off). */
  distillWeight: z.number().min(0).max(1).default(0.5),
  distillTemperature: z.number().positive().default(4),
  augment: z.boolean().default(true),
  /**
   * Formats each target's pruned model is written in. The tfjs model (the pipeline's own format)
   * always is; 'onnx' adds `model.onnx` (NCHW, in the input's opset and names when the input was
   * ONNX, else opset 13). Default: 'onnx' exactly when the spec's model is an ONNX file.
   */
  export: z
    .array(z.enum(['tfjs', 'onnx']))
    .min(1)
    .refine((formats) => formats.includes('tfjs'), 'must include "tfjs" (the pipeline\'s own format is always written)')
    .refine((formats) => new Set(formats).size === formats.length, 'lists a format twice')
    .optional(),
  /**
   * Mini-batches of joint recovery of each assembled scheme (the whole pruned network, towards the
   * original's logits and the labels) before it is verified; 0 = off (src/dir/joint-recovery.ts).
   * The default 40 was chosen on search-val (bench/README.md, "Method change, chosen on
   * search-val"): each sub-network was recovered with the others original, and 40 steps repair
   * most of their interaction.
   */
  jointRecoverySteps: z.number().int().min(0).default(40),
});

export const runSpecSchema = z
  .object({
    /** Optional fixed run id; default: `<model name>-<UTC timestamp>`. */
    runId: nameSchema.optional(),
    /** `zoo:<name>`, a local model directory, or a store prefix holding model.json. */
    model: z.string().min(1),
    dataset: datasetSpecSchema,
    targets: z.array(targetSchema).min(1),
    divide: divideSpecSchema.default(divideSpecSchema.parse({})),
    search: searchSpecSchema.default(searchSpecSchema.parse({})),
    merge: mergeSpecSchema.default(mergeSpecSchema.parse({})),
    finalize: finalizeSpecSchema.default(finalizeSpecSchema.parse({})),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const names = spec.targets.map(targetName);
    names.forEach((name, index) => {
      if (names.indexOf(name) !== index) {
        ctx.addIssue({ code: 'custom', path: ['targets', index], message: `duplicate target name '${name}'` });
      }
    });
    if (spec.search.alpha === 0 && spec.search.beta === 0 && spec.search.recoverySteps > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['search', 'alpha'],
        message: 'alpha and beta are both 0: recovery would train on a zero loss (set recoverySteps to 0 instead)',
      });
    }
  });

export type RunSpec = z.output<typeof runSpecSchema>;
export type RunSpecInput = z.input<typeof runSpecSchema>;

/**
 * Past these a budget is far beyond any run this project has measured (the example spends 120
 * evaluations per run; the paper-scale setting is population 50 x 100 generations) and is much
 * likelier a typo (`population: 1000000000`) than a plan: Plan refuses it before any GPU job is
 * billed, unless the spec says `search.allowLargeBudget: true`. Evaluations are per sub-network,
 * `population x (generations + 1)` capped by `search.maxEvaluations`.
 */
export const BUDGET_LIMITS = {
  population: 512,
  generations: 1000,
  evaluations: 20_000,
  recoverySteps: 2000,
  searchTrain: 65_536,
  searchVal: 65_536,
} as const;

/** Evaluations one sub-network's search may spend (an upper bound: the fitness cache skips repeats). */
export function evaluationBudget(search: RunSpec['search']): number {
  const byGenerations = search.population * (search.generations + 1);
  return search.maxEvaluations === undefined ? byGenerations : Math.min(search.maxEvaluations, byGenerations);
}

/** The spec's fields over BUDGET_LIMITS (none when `search.allowLargeBudget` is set). */
export function budgetIssues(spec: RunSpec): FieldIssue[] {
  if (spec.search.allowLargeBudget) return [];
  const hint = 'a typo? set search.allowLargeBudget: true to run it on purpose';
  const over = (path: string, value: number, limit: number): FieldIssue[] =>
    value > limit ? [{ path, message: `${value} is above the limit of ${limit} (${hint})` }] : [];
  const issues = [
    ...over('search.population', spec.search.population, BUDGET_LIMITS.population),
    ...over('search.generations', spec.search.generations, BUDGET_LIMITS.generations),
  ];
  // A population or generation count over its limit already explains the evaluations.
  const evaluations = evaluationBudget(spec.search);
  if (issues.length === 0 && evaluations > BUDGET_LIMITS.evaluations) {
    issues.push({
      path: 'search.maxEvaluations',
      message:
        `population ${spec.search.population} x (generations ${spec.search.generations} + 1) = ${evaluations} evaluations per sub-network ` +
        `is above the limit of ${BUDGET_LIMITS.evaluations} (set search.maxEvaluations, or ${hint.replace('a typo? ', '')})`,
    });
  }
  issues.push(
    ...over('search.recoverySteps', spec.search.recoverySteps, BUDGET_LIMITS.recoverySteps),
    ...over('dataset.searchTrain', spec.dataset.searchTrain, BUDGET_LIMITS.searchTrain),
    ...over('dataset.searchVal', spec.dataset.searchVal, BUDGET_LIMITS.searchVal),
  );
  return issues;
}
