/**
 * A run started from a SageMaker model package registers its pruned models back (DESIGN §3
 * "Registry triggers"): the library function behind functions/register-models.ts, the
 * RegisterModels state that runs after Finalize when the execution input has `modelPackageKey`.
 *
 * For every target whose finalize wrote metrics.json:
 * - the exported model (`targets/<t>/model/`) is packed as `targets/<t>/model.tar.gz` and a
 *   metrics report `targets/<t>/model-metrics.json` is written (test accuracy in SageMaker's
 *   `multiclass_classification_metrics` form, plus the cuts and accuracies emo-dir measured);
 * - a new model package version is created in the output group with status
 *   PendingManualApproval, the report as its ModelQuality statistics, the key numbers as
 *   CustomerMetadataProperties, and the source package's inference containers pointed at the
 *   pruned archive (when the source had an InferenceSpecification).
 * `runs/<runId>/model-packages.json` records each target's package ARN or the error that
 * prevented it; the report links them. A retry skips targets already registered, and
 * CreateModelPackage gets a ClientToken derived from run and target, so a retry after a crash
 * between the call and the record returns the same package instead of a second one. SageMaker
 * refusing one target (validation, permissions, limits) is recorded, not thrown: the pruned
 * models and the report are still worth having.
 */
import { createHash } from 'node:crypto';
import { CreateModelPackageCommand, type CreateModelPackageCommandInput, type SageMakerClient } from '@aws-sdk/client-sagemaker';
import { finalizeMetricsSchema, type FinalizeMetrics } from '../schema/metrics.ts';
import {
  modelPackageSourceSchema,
  modelRegistrationsSchema,
  registryModelMetricsSchema,
  type ModelPackageSource,
  type ModelRegistrations,
  type RegistryModelMetrics,
  type TargetRegistration,
} from '../schema/model-registry.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { getJson, NotFoundError, putJson, type ObjectStore } from '../store/object-store.ts';
import { packPrefix } from './model-archive.ts';
import type { RunLogger } from './registry.ts';

export interface RegisterRunModelsOptions {
  readonly store: ObjectStore;
  readonly sagemaker: SageMakerClient;
  readonly runId: string;
  /** `runs/<runId>/model-package.json`, from the execution input. */
  readonly modelPackageKey: string;
  /** The targets Finalize ran (the Merge step's list). */
  readonly targets: readonly string[];
  /** Where the pruned models are registered. */
  readonly modelPackageGroupName: string;
  readonly logger?: RunLogger;
  readonly now?: Date;
}

export interface RegisterRunModelsResult {
  readonly runId: string;
  readonly registrationKey: string;
  readonly registered: number;
  readonly failed: number;
}

const silent: RunLogger = { info: () => undefined, warn: () => undefined };

/** An S3 URL of a store object (the store must be an S3 one for SageMaker to read it). */
function objectUrl(store: ObjectStore, key: string): string {
  return `${store.location}/${key}`;
}

export async function registerRunModels(options: RegisterRunModelsOptions): Promise<RegisterRunModelsResult> {
  const logger = options.logger ?? silent;
  const { store, runId } = options;
  const keys = runKeys(runId);
  if (options.modelPackageKey !== keys.modelPackage) {
    throw new Error(`modelPackageKey ${options.modelPackageKey} is not run ${runId}'s package record (${keys.modelPackage})`);
  }
  const source = parseWith(modelPackageSourceSchema, await getJson(store, keys.modelPackage), `${keys.modelPackage} (in ${store.location})`);
  const previous = await readRegistrations(store, keys.modelPackages);
  const done = new Map((previous?.targets ?? []).filter((entry) => 'modelPackageArn' in entry).map((entry) => [entry.target, entry]));

  const registrations: TargetRegistration[] = [];
  for (const target of options.targets) {
    const earlier = done.get(target);
    if (earlier !== undefined) {
      registrations.push(earlier);
      continue;
    }
    registrations.push(await registerTarget(options, source, target, logger));
  }
  const record: ModelRegistrations = {
    runId,
    sourceModelPackageArn: source.modelPackageArn,
    modelPackageGroupName: options.modelPackageGroupName,
    approvalStatus: 'PendingManualApproval',
    targets: registrations,
    at: (options.now ?? new Date()).toISOString(),
  };
  await putJson(store, keys.modelPackages, parseWith(modelRegistrationsSchema, record, 'model registrations'));
  const failed = registrations.filter((entry) => 'error' in entry).length;
  return { runId, registrationKey: keys.modelPackages, registered: registrations.length - failed, failed };
}

async function readRegistrations(store: ObjectStore, key: string): Promise<ModelRegistrations | undefined> {
  try {
    return parseWith(modelRegistrationsSchema, await getJson(store, key), `${key} (in ${store.location})`);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

async function registerTarget(
  options: RegisterRunModelsOptions,
  source: ModelPackageSource,
  target: string,
  logger: RunLogger,
): Promise<TargetRegistration> {
  const { store, runId } = options;
  const targetKeys = runKeys(runId).target(target);
  const metrics = parseWith(finalizeMetricsSchema, await getJson(store, targetKeys.metrics), `${targetKeys.metrics} (in ${store.location})`);
  const { archive, files } = await packPrefix(store, targetKeys.modelPrefix);
  await store.put(targetKeys.modelArchive, archive, { contentType: 'application/gzip' });
  await putJson(store, targetKeys.registryMetrics, registryMetrics(metrics));
  const modelDataUrl = objectUrl(store, targetKeys.modelArchive);
  const metricsUrl = objectUrl(store, targetKeys.registryMetrics);
  const input = createModelPackageInput(options, source, metrics, modelDataUrl, metricsUrl);
  try {
    const created = await options.sagemaker.send(new CreateModelPackageCommand(input));
    if (created.ModelPackageArn === undefined) throw new Error('CreateModelPackage returned no ModelPackageArn');
    logger.info('pruned model registered', { target, modelPackageArn: created.ModelPackageArn, files: files.length });
    return { target, modelPackageArn: created.ModelPackageArn, modelDataUrl, metricsUrl };
  } catch (error) {
    const message = `${(error as Error).name}: ${(error as Error).message}`;
    logger.warn('pruned model not registered', { target, error: message });
    return { target, error: `CreateModelPackage in ${options.modelPackageGroupName} failed: ${message}` };
  }
}

/** The report SageMaker shows as the package's model quality: test accuracy plus emo-dir's own numbers. */
export function registryMetrics(metrics: FinalizeMetrics): RegistryModelMetrics {
  return parseWith(registryModelMetricsSchema, {
    multiclass_classification_metrics: { accuracy: { value: metrics.accuracy.afterFineTune } },
    emo_dir: {
      runId: metrics.runId,
      target: metrics.target,
      targetKind: metrics.targetSpec.kind,
      targetValue: metrics.targetSpec.value,
      flopsCut: metrics.achieved.flopsCut,
      paramsCut: metrics.achieved.paramsCut,
      macs: metrics.achieved.macs,
      params: metrics.achieved.params,
      originalMacs: metrics.original.macs,
      originalParams: metrics.original.params,
      accuracy: metrics.accuracy,
      testImages: metrics.testCount,
    },
  }, 'model registry metrics');
}

function percent(value: number): string {
  return `${(100 * value).toFixed(1)}%`;
}

/** Deterministic for one run and target, so a retried call is the same call (ClientToken). */
export function createModelPackageInput(
  options: Pick<RegisterRunModelsOptions, 'runId' | 'modelPackageGroupName'>,
  source: ModelPackageSource,
  metrics: FinalizeMetrics,
  modelDataUrl: string,
  metricsUrl: string,
): CreateModelPackageCommandInput {
  const { accuracy, achieved } = metrics;
  const before = accuracy.original === undefined ? '' : ` (unpruned ${percent(accuracy.original)})`;
  return {
    ModelPackageGroupName: options.modelPackageGroupName,
    ModelPackageDescription:
      `emo-dir ${metrics.target}: ${source.modelPackageArn} pruned by run ${options.runId}; FLOPs cut ${percent(achieved.flopsCut)}, ` +
      `params cut ${percent(achieved.paramsCut)}, test accuracy ${percent(accuracy.afterFineTune)}${before}`.slice(0, 1024),
    ModelApprovalStatus: 'PendingManualApproval',
    ClientToken: createHash('sha256').update(`${options.runId}\n${metrics.target}`).digest('hex').slice(0, 36),
    ModelMetrics: { ModelQuality: { Statistics: { ContentType: 'application/json', S3Uri: metricsUrl } } },
    CustomerMetadataProperties: {
      'emo-dir:run-id': options.runId,
      'emo-dir:target': metrics.target,
      'emo-dir:source-model-package': source.modelPackageArn,
      'emo-dir:flops-cut': achieved.flopsCut.toFixed(4),
      'emo-dir:params-cut': achieved.paramsCut.toFixed(4),
      'emo-dir:accuracy': accuracy.afterFineTune.toFixed(4),
      'emo-dir:accuracy-before-fine-tune': accuracy.beforeFineTune.toFixed(4),
      ...(accuracy.original === undefined ? {} : { 'emo-dir:accuracy-unpruned': accuracy.original.toFixed(4) }),
    },
    ...(source.inferenceSpecification === undefined ? {} : { InferenceSpecification: prunedInferenceSpecification(source.inferenceSpecification, modelDataUrl) }),
  };
}

const CONTAINER_FIELDS = ['ContainerHostname', 'Image', 'ImageDigest', 'Environment', 'ModelInput', 'Framework', 'FrameworkVersion', 'NearestModelName'] as const;
const SPECIFICATION_FIELDS = [
  'SupportedTransformInstanceTypes',
  'SupportedRealtimeInferenceInstanceTypes',
  'SupportedContentTypes',
  'SupportedResponseMIMETypes',
] as const;

/** The source's containers, the one that held the model now holding the pruned archive. */
function prunedInferenceSpecification(
  specification: NonNullable<ModelPackageSource['inferenceSpecification']>,
  modelDataUrl: string,
): NonNullable<CreateModelPackageCommandInput['InferenceSpecification']> {
  const pick = (from: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> =>
    Object.fromEntries(fields.filter((field) => from[field] !== undefined).map((field) => [field, from[field]]));
  return {
    ...pick(specification, SPECIFICATION_FIELDS),
    Containers: specification.Containers.map((container) => ({
      ...pick(container, CONTAINER_FIELDS),
      ...(container.ModelDataUrl === undefined ? {} : { ModelDataUrl: modelDataUrl }),
    })),
  } as NonNullable<CreateModelPackageCommandInput['InferenceSpecification']>;
}
