/**
 * `runs/<runId>/targets/<target>/metrics.json`: what Finalize measured for one target. The one
 * schema of the document: the finalize step writes it (src/dir/finalize.ts), the report, the
 * registration of pruned models and `emo-dir run`'s summary read it.
 */
import { z } from 'zod';
import { targetKindSchema } from './spec.ts';
import { RESULT_FORMAT_VERSION } from './version.ts';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const fraction = finite.refine((v) => v >= 0 && v <= 1, 'must be in [0, 1]');
const nonNegative = finite.refine((v) => v >= 0, 'must be >= 0');

export const verifiedSchemeSchema = z.strictObject({
  rank: z.number().int().min(1),
  /** Sub-network id -> front point id. */
  choice: z.record(z.string(), z.string().min(1)),
  estimatedImpairment: finite,
  /** CE(assembled) - CE(original) on the search-validation subset, before fine-tuning. */
  measuredImpairment: finite,
  /** Top-1 of the assembled scheme on the search-validation subset. */
  accuracy: fraction,
  loss: finite,
  macs: nonNegative,
  params: nonNegative,
});

const testSplitSchema = z.strictObject({ original: finite.optional(), beforeFineTune: finite, afterFineTune: finite });

/**
 * `runs/<id>/targets/<t>/metrics.json`. `target` is the target's NAME (what the report step
 * matches it by, src/report/build.ts `metricsFileSchema`); the full target is `targetSpec`.
 * Accuracies and losses under `accuracy`/`loss` are on the test set; `searchVal` holds the
 * search-validation numbers the impairments are made of.
 */
export const finalizeMetricsSchema = z.strictObject({
  version: z.literal(RESULT_FORMAT_VERSION),
  runId: z.string().min(1),
  target: z.string().min(1),
  targetSpec: z.strictObject({ name: z.string().min(1), kind: targetKindSchema, value: finite }),
  /** Rank (in the plan) of the scheme that was kept; the report looks the scheme up by it. */
  schemeRank: z.number().int().min(1),
  scheme: z.strictObject({ rank: z.number().int().min(1), choice: z.record(z.string(), z.string().min(1)), estimatedImpairment: finite }),
  verified: z.array(verifiedSchemeSchema).min(1),
  achieved: z.strictObject({ macs: nonNegative, params: nonNegative, flopsCut: finite, paramsCut: finite }),
  original: z.strictObject({ macs: nonNegative, params: nonNegative }),
  estimatedImpairment: finite,
  measuredImpairment: finite,
  /** measured - estimated. */
  estimateError: finite,
  accuracy: z.strictObject({ original: fraction.optional(), beforeFineTune: fraction, afterFineTune: fraction }),
  loss: testSplitSchema,
  searchVal: z.strictObject({ baselineLoss: finite, baselineAccuracy: fraction, loss: finite, accuracy: fraction, count: z.number().int().min(1) }),
  testCount: z.number().int().min(1),
  fineTuneEpochs: nonNegative,
  fineTuneSteps: z.number().int().min(0),
  fineTuneSeconds: nonNegative,
  /** Test metrics after whole epochs of a longer fine-tune (after epoch 1 when more than one was asked for). */
  fineTuneCheckpoints: z.array(z.strictObject({ epoch: z.number().int().min(1), accuracy: fraction, loss: finite })),
  /** Wall seconds of the whole finalize (verify + fine-tune + export + evaluate). */
  seconds: nonNegative,
  backend: z.string().min(1).optional(),
  /** Store key prefix of the exported model (model.json + weights.bin). */
  modelKey: z.string().min(1),
  /** Store key of the model as ONNX (src/dir/export-formats.ts), when one was written. */
  onnxModelKey: z.string().min(1).optional(),
  layers: z.array(z.strictObject({ name: z.string().min(1), className: z.string().min(1), channelsBefore: z.number().int().min(0), channelsAfter: z.number().int().min(0) })),
  createdAt: z.iso.datetime({ offset: true }),
});

export type FinalizeMetrics = z.output<typeof finalizeMetricsSchema>;
export type VerifiedScheme = z.output<typeof verifiedSchemeSchema>;
