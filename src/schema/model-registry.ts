/**
 * The SageMaker Model Registry side of the pipeline (DESIGN §3 "Registry triggers"), as zod
 * schemas: the EventBridge event a model package's state change sends, the run's record of the
 * package it was started from (`runs/<runId>/model-package.json`) and the record of the pruned
 * models registered back (`runs/<runId>/model-packages.json`). One schema per document, used by
 * its writer (src/cloud/model-package-run.ts, src/cloud/model-registration.ts) and its readers
 * (the same modules, src/report/build.ts).
 */
import { z } from 'zod';
import { finalizeMetricsSchema } from './metrics.ts';
import { nameSchema, targetKindSchema } from './spec.ts';

/** The CustomerMetadataProperties key that may hold a package's prune spec (JSON, 256 characters at most). */
export const PRUNE_SPEC_METADATA_KEY = 'emo-dir:prune';

/** SageMaker's approval statuses (ModelApprovalStatus). */
export const MODEL_APPROVAL_STATUSES = ['Approved', 'Rejected', 'PendingManualApproval'] as const;
export const modelApprovalStatusSchema = z.enum(MODEL_APPROVAL_STATUSES);
export type ModelApprovalStatus = z.infer<typeof modelApprovalStatusSchema>;

/** A model package group name (SageMaker: 1-63 of letters, digits and single hyphens). */
export const MODEL_PACKAGE_GROUP_PATTERN = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
export const modelPackageGroupNameSchema = z
  .string()
  .regex(MODEL_PACKAGE_GROUP_PATTERN, 'must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit');

/** `arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>` (SageMaker lowercases the names in ARNs). */
export const MODEL_PACKAGE_ARN_PATTERN = /^arn:(aws[a-z-]*):sagemaker:([a-z0-9-]+):(\d{12}):model-package\/(\S+)$/;
export const modelPackageArnSchema = z.string().regex(MODEL_PACKAGE_ARN_PATTERN, 'expected arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>');

/** One container of an InferenceSpecification; other fields (Environment, Framework, ...) pass through. */
const inferenceContainerSchema = z.looseObject({
  Image: z.string().min(1).optional(),
  ModelDataUrl: z.string().min(1).optional(),
});
export const inferenceSpecificationSchema = z.looseObject({
  Containers: z.array(inferenceContainerSchema).min(1),
});
export type InferenceSpecificationRecord = z.infer<typeof inferenceSpecificationSchema>;

/**
 * `detail-type: SageMaker Model Package State Change` (SageMaker developer guide, "Events that
 * Amazon SageMaker sends to Amazon EventBridge"). Only what the trigger reads is required; the
 * package itself is read again with DescribeModelPackage, because an event may be stale (several
 * per change) and does not carry CustomerMetadataProperties. `source` is not checked: the
 * documentation's own sample repeats it as an array, and the EventBridge rule filters on it.
 */
export const modelPackageStateChangeEventSchema = z.looseObject({
  id: z.string().min(1),
  'detail-type': z.literal('SageMaker Model Package State Change'),
  time: z.string().optional(),
  detail: z.looseObject({
    ModelPackageGroupName: modelPackageGroupNameSchema,
    ModelPackageVersion: z.number().int().min(1),
    ModelPackageArn: modelPackageArnSchema,
    ModelApprovalStatus: modelApprovalStatusSchema.optional(),
    ModelPackageStatus: z.string().optional(),
  }),
});
export type ModelPackageStateChangeEvent = z.infer<typeof modelPackageStateChangeEventSchema>;

/**
 * `runs/<runId>/model-package.json`: the package a run was started from (written create-only by
 * the trigger before the execution starts; its key travels in the execution input as
 * `modelPackageKey`). The inference specification is kept so the pruned models can be registered
 * with the same containers.
 */
export const modelPackageSourceSchema = z.strictObject({
  runId: nameSchema,
  modelPackageArn: modelPackageArnSchema,
  modelPackageGroupName: modelPackageGroupNameSchema,
  modelPackageVersion: z.number().int().min(1),
  /** The approval status that started the run. */
  approvalStatus: modelApprovalStatusSchema,
  /** Where the archive was read (`s3://bucket/key/model.tar.gz`). */
  modelDataUrl: z.string().min(1),
  /** The store reference the run's spec got: a model directory prefix, or an `.onnx` key. */
  model: z.string().min(1),
  /** Where the prune spec came from: the metadata key or the archive's prune.json. */
  specSource: z.enum(['metadata', 'archive']),
  inferenceSpecification: inferenceSpecificationSchema.optional(),
});
export type ModelPackageSource = z.infer<typeof modelPackageSourceSchema>;

/** The registration of one target's pruned model: its new package version, or why there is none. */
export const targetRegistrationSchema = z.union([
  z.strictObject({
    target: nameSchema,
    modelPackageArn: modelPackageArnSchema,
    /** The pruned model's archive (`s3://.../targets/<target>/model.tar.gz`). */
    modelDataUrl: z.string().min(1),
    /** The metrics report the package's ModelQuality statistics point at. */
    metricsUrl: z.string().min(1),
  }),
  z.strictObject({ target: nameSchema, error: z.string().min(1) }),
]);
export type TargetRegistration = z.infer<typeof targetRegistrationSchema>;

/** `runs/<runId>/model-packages.json`: what RegisterModels did, per target (rewritten by each attempt). */
export const modelRegistrationsSchema = z.strictObject({
  runId: nameSchema,
  sourceModelPackageArn: modelPackageArnSchema,
  modelPackageGroupName: modelPackageGroupNameSchema,
  approvalStatus: z.literal('PendingManualApproval'),
  targets: z.array(targetRegistrationSchema),
  at: z.iso.datetime({ offset: true }),
});
export type ModelRegistrations = z.infer<typeof modelRegistrationsSchema>;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

/**
 * `runs/<runId>/targets/<target>/model-metrics.json`: the report a registered package's
 * ModelQuality statistics point at. Test accuracy in the shape SageMaker Studio shows
 * (`multiclass_classification_metrics.accuracy.value`); emo-dir's own numbers beside it.
 */
export const registryModelMetricsSchema = z.strictObject({
  multiclass_classification_metrics: z.strictObject({ accuracy: z.strictObject({ value: finite }) }),
  emo_dir: z.strictObject({
    runId: nameSchema,
    target: nameSchema,
    targetKind: targetKindSchema,
    targetValue: finite,
    flopsCut: finite,
    paramsCut: finite,
    macs: finite,
    params: finite,
    originalMacs: finite,
    originalParams: finite,
    accuracy: finalizeMetricsSchema.shape.accuracy,
    testImages: z.number().int().min(1),
  }),
});
export type RegistryModelMetrics = z.infer<typeof registryModelMetricsSchema>;
