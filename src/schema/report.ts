/**
 * `runs/<runId>/report.json`: everything the Report step knows about a finished (or failed, or
 * partial) run, and the only input of `report.html` (src/report/html.ts renders from this and
 * nothing else, so the HTML can always be rebuilt from the JSON).
 *
 * What a run may lack is optional: a run whose search failed has no joint front, a target whose
 * fine-tune crashed has no `accuracy.afterFineTune`, a local run has no dollar cost. Objects are
 * strict, so a misspelt field (`measuredImpairement`) is an error with its path instead of a
 * number that silently never shows up; the one exception is a front point, which strips unknown
 * keys on purpose so a `front.json` point (with its genome, kilobytes of bits) can be passed
 * straight in and come out without it.
 *
 * Units: `macs`/`flops` are multiply-accumulates of one image (the same count
 * `emo-dir inspect` prints); fractions and accuracies are in [0, 1]; impairments are CE-loss
 * differences in nats; times are seconds; ISO times are UTC with an offset.
 */
import { z } from 'zod';
import { nameSchema, targetKindSchema } from './spec.ts';
import { parseWith } from './validate.ts';

/** Bumped when a field changes meaning; readers refuse versions they do not know. */
export const REPORT_SCHEMA_VERSION = 1;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const nonNegative = finite.refine((v) => v >= 0, 'must be >= 0');
const count = z.number().int().min(0);
const fraction = finite.refine((v) => v >= 0 && v <= 1, 'must be in [0, 1]');
/** A cut (1 - pruned/original) may be slightly negative if a "pruned" model grew; never above 1. */
const cut = finite.refine((v) => v <= 1, 'must be <= 1');
const isoTime = z.iso.datetime({ offset: true });

export const reportTargetKindSchema = targetKindSchema;

/** A measured accuracy or loss on the two splits the pipeline evaluates. */
const splitAccuracySchema = z.strictObject({
  /** On the search-validation subset (what the search optimised against). */
  searchVal: fraction.optional(),
  /** On the test set (what the final numbers are). */
  test: fraction.optional(),
});
const splitLossSchema = z.strictObject({
  searchVal: nonNegative.optional(),
  test: nonNegative.optional(),
});

export const reportRunSchema = z.strictObject({
  runId: nameSchema,
  /** As the spec names it (`zoo:resnet20`, a directory, a store prefix): free text, escaped on render. */
  model: z.string().min(1),
  /** The spec's dataset name (`fashion-mnist`, `cifar10:<prefix>`). */
  dataset: z.string().min(1),
  startedAt: isoTime,
  finishedAt: isoTime.optional(),
  /** Wall-clock seconds from the start of Plan to the end of Report. */
  wallSeconds: nonNegative.optional(),
  /** Seconds spent inside search and finalize workers, summed over workers (parallel ones add up). */
  workerSeconds: nonNegative.optional(),
  /**
   * Embedded runs: wall-clock seconds in which neither a worker nor a handler was running, i.e.
   * what the local runner itself (state machine interpreter, process start-up gaps) cost.
   */
  overheadSeconds: nonNegative.optional(),
  /** The tfjs backend the workers ran on (`tensorflow`, `wasm`, ...). */
  backend: z.string().min(1).optional(),
  /** Where the run's objects live (`s3://bucket`, `file:///...`), as ObjectStore.location says. */
  storeLocation: z.string().min(1).optional(),
  /** The resolved run spec, shown verbatim in the report's footer. */
  spec: z.json().optional(),
});

export const reportOriginalSchema = z.strictObject({
  macs: nonNegative,
  params: nonNegative,
  accuracy: splitAccuracySchema.optional(),
  loss: splitLossSchema.optional(),
});

/** One point of a sub-network's Pareto front (the genome of front.json is stripped). */
export const reportFrontPointSchema = z.object({
  id: z.string().min(1),
  /** Pruned sub-network FLOPs over original sub-network FLOPs (objective 1). */
  flopsRatio: finite.refine((v) => v >= 0, 'must be >= 0'),
  flops: nonNegative,
  params: nonNegative,
  /** Global performance impairment (objective 2); may be slightly negative. */
  impairment: finite,
  /** Whole-network accuracy on the search-validation subset with this sub-network pruned. */
  accuracy: fraction.optional(),
});

export const reportSubnetworkSchema = z.strictObject({
  id: z.string().min(1),
  /** Layers of the model inside this sub-network. */
  layers: count,
  /** Channel groups searched in this sub-network. */
  groupIds: z.array(z.string().min(1)),
  /** Original MACs and params of this sub-network. */
  macs: nonNegative,
  params: nonNegative,
  /** The front (missing when the search failed); sorted by the renderer, any order here. */
  front: z.array(reportFrontPointSchema).optional(),
  evaluations: count.optional(),
  generations: count.optional(),
  searchSeconds: nonNegative.optional(),
  /** Hypervolume of the front in (flopsRatio, impairment) space; its reference point is the search's. */
  hypervolume: nonNegative.optional(),
  /** Target name -> id of the front point the target's final scheme uses for this sub-network. */
  chosen: z.record(z.string(), z.string().min(1)).optional(),
});

export const reportJointPointSchema = z.strictObject({
  /** Whole-network FLOPs (MACs) of the joint scheme. */
  flops: nonNegative,
  params: nonNegative,
  /** Sum of the chosen points' impairments (the GPIR estimate). */
  estimatedImpairment: finite,
});

export const reportLayerSchema = z
  .strictObject({
    name: z.string().min(1),
    /** tfjs class name (`Conv2D`, `DepthwiseConv2D`, `Dense`, ...). */
    className: z.string().min(1),
    /** Output channels (units for Dense) before and after pruning. */
    channelsBefore: count,
    channelsAfter: count,
  })
  .refine((layer) => layer.channelsAfter <= layer.channelsBefore, {
    message: 'channelsAfter must not exceed channelsBefore',
    path: ['channelsAfter'],
  });

export const reportTargetSchema = z.strictObject({
  /** The target's name (spec.ts targetName): `flops-50`, or the spec's own name. */
  name: nameSchema,
  kind: reportTargetKindSchema,
  /** A fraction for *Cut kinds, an absolute count for *Budget kinds. */
  value: finite.refine((v) => v > 0, 'must be > 0'),
  /** What the exported model achieved. */
  achieved: z
    .strictObject({ macs: nonNegative, params: nonNegative, flopsCut: cut, paramsCut: cut })
    .optional(),
  /** GPIR's estimate for the chosen scheme (sum of sub-network impairments). */
  estimatedImpairment: finite.optional(),
  /** The assembled scheme's real impairment on the search-validation subset, before fine-tuning. */
  measuredImpairment: finite.optional(),
  /** measured - estimated. */
  estimateError: finite.optional(),
  /** Test-set accuracies. */
  accuracy: z
    .strictObject({
      /** The pruned model straight after assembly (recovered weights, no fine-tune). */
      beforeFineTune: fraction.optional(),
      afterFineTune: fraction.optional(),
      /** The unpruned model (repeated here so a target row is self-contained). */
      original: fraction.optional(),
    })
    .optional(),
  fineTuneEpochs: nonNegative.optional(),
  fineTuneSeconds: nonNegative.optional(),
  /** Channels of every prunable layer before/after, in model order. */
  layers: z.array(reportLayerSchema).optional(),
  /** Store key of the exported model (`runs/<runId>/targets/<target>/model/`). */
  modelKey: z.string().min(1).optional(),
  /** The SageMaker model package version the pruned model was registered as (model registry runs). */
  modelPackageArn: z.string().min(1).optional(),
  /** Why this target has no result (its finalize task failed). */
  error: z.string().min(1).optional(),
});

export const reportCostSchema = z
  .strictObject({
    workerSeconds: nonNegative,
    /** Only for cloud runs: workerSeconds / 3600 * usdPerGpuHour. */
    estimatedUsd: nonNegative.optional(),
    /** The price the estimate used; present exactly when estimatedUsd is. */
    usdPerGpuHour: nonNegative.optional(),
  })
  .refine((c) => (c.estimatedUsd === undefined) === (c.usdPerGpuHour === undefined), {
    message: 'estimatedUsd and usdPerGpuHour come together (the estimate must say its price)',
    path: ['usdPerGpuHour'],
  });

/** Something that went wrong, shown at the top of the report. */
export const reportProblemSchema = z.strictObject({
  /** Pipeline step: plan, search, merge, finalize, report. */
  stage: z.string().min(1),
  /** The sub-network id or target name it concerns, if any. */
  subject: z.string().min(1).optional(),
  message: z.string().min(1),
});

export const reportSchema = z
  .strictObject({
    schemaVersion: z.literal(REPORT_SCHEMA_VERSION),
    /** When report.json was written; the renderer shows it instead of reading the clock. */
    generatedAt: isoTime,
    /** `partial`: some sub-networks or targets failed but others have results. */
    status: z.enum(['succeeded', 'partial', 'failed']),
    run: reportRunSchema,
    original: reportOriginalSchema.optional(),
    subnetworks: z.array(reportSubnetworkSchema),
    jointFront: z.array(reportJointPointSchema).optional(),
    targets: z.array(reportTargetSchema),
    cost: reportCostSchema.optional(),
    problems: z.array(reportProblemSchema).optional(),
  })
  .superRefine((report, ctx) => {
    // Cross-references the renderer relies on: unique ids, and every `chosen` entry naming a
    // real target and a real point of that sub-network's front.
    const targetNames = new Set<string>();
    report.targets.forEach((target, index) => {
      if (targetNames.has(target.name)) {
        ctx.addIssue({ code: 'custom', path: ['targets', index, 'name'], message: `duplicate target name '${target.name}'` });
      }
      targetNames.add(target.name);
    });
    const subnetIds = new Set<string>();
    report.subnetworks.forEach((subnet, index) => {
      if (subnetIds.has(subnet.id)) {
        ctx.addIssue({ code: 'custom', path: ['subnetworks', index, 'id'], message: `duplicate sub-network id '${subnet.id}'` });
      }
      subnetIds.add(subnet.id);
      const pointIds = new Set<string>();
      subnet.front?.forEach((point, pointIndex) => {
        if (pointIds.has(point.id)) {
          ctx.addIssue({
            code: 'custom',
            path: ['subnetworks', index, 'front', pointIndex, 'id'],
            message: `point id '${point.id}' repeats in sub-network '${subnet.id}'`,
          });
        }
        pointIds.add(point.id);
      });
      for (const [targetName, pointId] of Object.entries(subnet.chosen ?? {})) {
        if (!targetNames.has(targetName)) {
          ctx.addIssue({ code: 'custom', path: ['subnetworks', index, 'chosen', targetName], message: `no target named '${targetName}'` });
        } else if (!pointIds.has(pointId)) {
          ctx.addIssue({
            code: 'custom',
            path: ['subnetworks', index, 'chosen', targetName],
            message: `point '${pointId}' is not on the front of sub-network '${subnet.id}'`,
          });
        }
      }
    });
  });

export type Report = z.output<typeof reportSchema>;
export type ReportRun = z.output<typeof reportRunSchema>;
export type ReportSubnetwork = z.output<typeof reportSubnetworkSchema>;
export type ReportFrontPoint = z.output<typeof reportFrontPointSchema>;
export type ReportJointPoint = z.output<typeof reportJointPointSchema>;
export type ReportTarget = z.output<typeof reportTargetSchema>;
export type ReportLayer = z.output<typeof reportLayerSchema>;
export type ReportCost = z.output<typeof reportCostSchema>;
export type ReportProblem = z.output<typeof reportProblemSchema>;

/** Parses a report.json read from `source` (a store key, a file); errors name every bad field's path. */
export function parseReport(value: unknown, source: string): Report {
  return parseWith(reportSchema, value, source);
}
