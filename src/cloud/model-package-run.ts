/**
 * SageMaker Model Registry packages become runs (DESIGN §3 "Registry triggers"): the library
 * function behind functions/model-package-trigger.ts. The EventBridge rule (cdk/constructs/
 * model-registry.ts) sends "SageMaker Model Package State Change" events of the configured groups
 * and approval statuses; for each:
 *
 * 1. The package is described again (DescribeModelPackage): the event may be stale, and only the
 *    description carries CustomerMetadataProperties. A package in a group or approval status the
 *    deployment does not watch, or not yet `Completed`, is ignored (a later event comes).
 * 2. `runId = <group>-v<version>-<hash of the package ARN>` (names.modelPackageRunId): one run per
 *    package version, whatever events repeat.
 * 3. The package's one `ModelDataUrl` (a `model.tar.gz`) is extracted into `runs/<runId>/model/`.
 *    The model is the archive's one `model.json` (its directory becomes the spec's model prefix)
 *    or, without one, its one `.onnx` file (its key; ONNX import resolves it). The prune spec is
 *    the JSON in the package's `emo-dir:prune` metadata property or else a `prune.json` at the
 *    archive's root or beside the model; its `model` and `runId` are ignored.
 * 4. A package that cannot run (no model data, an unreadable archive, no or an invalid spec) gets
 *    a `rejected` status.json with why, and the function returns normally: retrying cannot fix it.
 * 5. The spec (`runs/<runId>/spec.json`) and the package record (`runs/<runId>/model-package.json`,
 *    src/schema/model-registry.ts) are written create-only; the execution starts with the record's
 *    key as `modelPackageKey`, so the run registers its pruned models back (model-registration.ts).
 *    A repeated event finds the record and only starts the execution, which Step Functions refuses
 *    to start twice (ExecutionAlreadyExists is success).
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DescribeModelPackageCommand, type DescribeModelPackageCommandOutput, type SageMakerClient } from '@aws-sdk/client-sagemaker';
import type { SFNClient } from '@aws-sdk/client-sfn';
import {
  PRUNE_SPEC_METADATA_KEY,
  modelPackageSourceSchema,
  type ModelApprovalStatus,
  type ModelPackageSource,
  type ModelPackageStateChangeEvent,
} from '../schema/model-registry.ts';
import { runSpecSchema, type RunSpec } from '../schema/spec.ts';
import { parseWith, ValidationError } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { getJson, type ObjectStore } from '../store/object-store.ts';
import { writeOnce } from '../store/write-once.ts';
import { ArchiveError, extractTarGz } from './model-archive.ts';
import { modelPackageRunId } from './names.ts';
import { RequestRejected, recordRejection, type RunLogger } from './registry.ts';
import { startRunExecution, writeRunSpec } from './runs.ts';

export const PRUNE_SPEC_FILE = 'prune.json';

export interface ModelPackageRunOptions {
  readonly event: ModelPackageStateChangeEvent;
  readonly store: ObjectStore;
  readonly sagemaker: SageMakerClient;
  /** Reads the package's ModelDataUrl (another bucket than the store's, as a rule). */
  readonly s3: S3Client;
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  /** Model package groups whose versions start runs. */
  readonly groups: readonly string[];
  /** Approval statuses that start a run (default: Approved). */
  readonly approvalStatuses?: readonly ModelApprovalStatus[];
  readonly maxConcurrency?: number;
  readonly logger?: RunLogger;
  readonly now?: Date;
}

export type ModelPackageRunResult =
  | { readonly outcome: 'ignored'; readonly modelPackageArn: string; readonly reason: string }
  | { readonly outcome: 'rejected'; readonly runId: string; readonly modelPackageArn: string; readonly statusKey: string }
  | {
      readonly outcome: 'started';
      readonly runId: string;
      readonly modelPackageArn: string;
      readonly specKey: string;
      readonly modelPackageKey: string;
      readonly executionArn: string;
      readonly alreadyStarted: boolean;
    };

const silent: RunLogger = { info: () => undefined, warn: () => undefined };

export async function startModelPackageRun(options: ModelPackageRunOptions): Promise<ModelPackageRunResult> {
  const logger = options.logger ?? silent;
  const { ModelPackageArn: arn, ModelPackageGroupName: group, ModelPackageVersion: version } = options.event.detail;
  const ignore = (reason: string): ModelPackageRunResult => {
    logger.info('model package ignored', { modelPackageArn: arn, reason });
    return { outcome: 'ignored', modelPackageArn: arn, reason };
  };
  if (!options.groups.includes(group)) return ignore(`group ${group} is not one this deployment watches (${options.groups.join(', ')})`);

  const runId = modelPackageRunId(group, version, arn);
  logger.setCorrelationId?.(runId);
  const keys = runKeys(runId);
  const described = await options.sagemaker.send(new DescribeModelPackageCommand({ ModelPackageName: arn }));
  const approvalStatuses = options.approvalStatuses ?? ['Approved'];
  const approval = described.ModelApprovalStatus as ModelApprovalStatus | undefined;
  if (approval === undefined || !approvalStatuses.includes(approval)) {
    return ignore(`approval status is ${approval ?? 'unset'}; runs start on ${approvalStatuses.join(', ')}`);
  }
  if (described.ModelPackageStatus !== 'Completed') {
    return ignore(`package status is ${described.ModelPackageStatus ?? 'unknown'}, not Completed (its completion sends another event)`);
  }
  logger.info('model package received', { runId, modelPackageArn: arn, approval });

  let source: ModelPackageSource;
  if (await options.store.exists(keys.modelPackage)) {
    source = parseWith(modelPackageSourceSchema, await getJson(options.store, keys.modelPackage), `${keys.modelPackage} (in ${options.store.location})`);
    logger.info('package already imported (repeated event)', { runId, modelPackageKey: keys.modelPackage });
  } else {
    try {
      source = await importPackage(options, described, runId, approval, logger);
    } catch (error) {
      if (!(error instanceof RequestRejected)) throw error;
      const statusKey = await recordRejection(options.store, runId, error, arn, options.now);
      logger.warn('model package rejected: no run started', { runId, statusKey, error: error.message });
      return { outcome: 'rejected', runId, modelPackageArn: arn, statusKey };
    }
  }

  const execution = await startRunExecution({
    sfn: options.sfn,
    stateMachineArn: options.stateMachineArn,
    runId,
    specKey: keys.spec,
    maxConcurrency: options.maxConcurrency,
    modelPackageKey: keys.modelPackage,
  });
  logger.info(execution.alreadyStarted ? 'run was already started (repeated event)' : 'run started', {
    runId,
    model: source.model,
    executionArn: execution.executionArn,
  });
  return {
    outcome: 'started',
    runId,
    modelPackageArn: arn,
    specKey: keys.spec,
    modelPackageKey: keys.modelPackage,
    executionArn: execution.executionArn,
    alreadyStarted: execution.alreadyStarted,
  };
}

/** Extracts the package's archive, builds its spec, writes spec.json and model-package.json. */
async function importPackage(
  options: ModelPackageRunOptions,
  described: DescribeModelPackageCommandOutput,
  runId: string,
  approval: ModelApprovalStatus,
  logger: RunLogger,
): Promise<ModelPackageSource> {
  const { detail } = options.event;
  const keys = runKeys(runId);
  const urls = [...new Set((described.InferenceSpecification?.Containers ?? []).flatMap((container) => container.ModelDataUrl ?? []))];
  if (urls.length !== 1) {
    throw new RequestRejected(
      urls.length === 0
        ? `${detail.ModelPackageArn} has no ModelDataUrl in its InferenceSpecification (a model.tar.gz is needed; ModelDataSource is not supported)`
        : `${detail.ModelPackageArn} has ${urls.length} different ModelDataUrls (${urls.join(', ')}); emo-dir prunes one model`,
    );
  }
  const modelDataUrl = urls[0];
  const pruneFiles = new Map<string, Uint8Array>();
  const extracted = await extractTarGz(await readObject(options.s3, modelDataUrl), options.store, keys.modelPrefix, {
    source: modelDataUrl,
    store: (path) => basename(path) !== PRUNE_SPEC_FILE,
    onSkippedFile: (path, bytes) => pruneFiles.set(path, bytes),
  }).catch((error: unknown) => {
    if (error instanceof ArchiveError) throw new RequestRejected(error.message);
    throw error;
  });
  logger.info('model archive extracted', { runId, modelDataUrl, files: extracted.files.length, bytes: extracted.bytes, skipped: extracted.skipped });

  const { model, modelDir } = locateModel(extracted.files, keys.modelPrefix, modelDataUrl);
  const metadataSpec = described.CustomerMetadataProperties?.[PRUNE_SPEC_METADATA_KEY];
  let specText: string;
  let specSource: ModelPackageSource['specSource'];
  let specOrigin: string;
  if (metadataSpec !== undefined) {
    specText = metadataSpec;
    specSource = 'metadata';
    specOrigin = `${detail.ModelPackageArn} CustomerMetadataProperties["${PRUNE_SPEC_METADATA_KEY}"]`;
  } else {
    const candidates = [...pruneFiles.keys()].filter((path) => ['', modelDir].includes(dirname(path)));
    if (candidates.length === 0) {
      throw new RequestRejected(
        `${detail.ModelPackageArn} names no prune spec: set its CustomerMetadataProperties["${PRUNE_SPEC_METADATA_KEY}"] to the spec's JSON, ` +
          `or put ${PRUNE_SPEC_FILE} at the root of ${modelDataUrl} or beside the model`,
      );
    }
    if (candidates.length > 1) throw new RequestRejected(`${modelDataUrl} holds ${candidates.join(' and ')}: keep one ${PRUNE_SPEC_FILE}`);
    specText = Buffer.from(pruneFiles.get(candidates[0]) as Uint8Array).toString('utf8');
    specSource = 'archive';
    specOrigin = `${modelDataUrl}:${candidates[0]}`;
  }
  const spec = parseSpec(specText, specOrigin, model, logger);
  const { specKey } = await writeRunSpec(options.store, { ...spec, runId });
  const record: ModelPackageSource = parseWith(
    modelPackageSourceSchema,
    {
      runId,
      modelPackageArn: detail.ModelPackageArn,
      modelPackageGroupName: detail.ModelPackageGroupName,
      modelPackageVersion: detail.ModelPackageVersion,
      approvalStatus: approval,
      modelDataUrl,
      model,
      specSource,
      ...(described.InferenceSpecification === undefined ? {} : { inferenceSpecification: described.InferenceSpecification }),
    },
    'model package record',
  );
  await writeOnce(options.store, keys.modelPackage, `${JSON.stringify(record, null, 2)}\n`, { contentType: 'application/json' });
  logger.info('package imported', { runId, specKey, model, specSource });
  return record;
}

/** The spec's model reference: the directory of the one model.json, else the one .onnx file. */
function locateModel(files: readonly string[], prefix: string, source: string): { model: string; modelDir: string } {
  const layers = files.filter((path) => basename(path) === 'model.json');
  if (layers.length === 1) {
    const dir = dirname(layers[0]);
    return { model: `${prefix}${dir === '' ? '' : `${dir}/`}`, modelDir: dir };
  }
  const onnx = files.filter((path) => path.toLowerCase().endsWith('.onnx'));
  if (layers.length === 0 && onnx.length === 1) return { model: `${prefix}${onnx[0]}`, modelDir: dirname(onnx[0]) };
  const found = [...layers, ...onnx];
  throw new RequestRejected(
    found.length === 0
      ? `${source} holds no model: expected a tfjs model.json (with its weights) or one .onnx file (found ${files.slice(0, 10).join(', ') || 'no files'})`
      : `${source} holds ${found.length} models (${found.join(', ')}): keep one`,
  );
}

function parseSpec(text: string, origin: string, model: string, logger: RunLogger): RunSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (error) {
    throw new RequestRejected(`${origin} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RequestRejected(`${origin} must be a JSON object (a run spec)`);
  const { runId, model: named, ...rest } = raw as Record<string, unknown>;
  if (runId !== undefined || named !== undefined) {
    logger.warn('the prune spec names a runId or model; a package run uses its own', { specRunId: runId, specModel: named });
  }
  try {
    return parseWith(runSpecSchema, { ...rest, model }, origin);
  } catch (error) {
    if (error instanceof ValidationError) throw new RequestRejected(error.message, error.issues);
    throw error;
  }
}

/** Bucket and key of an `s3://bucket/key` or `https://bucket.s3.<region>.amazonaws.com/key` URL. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (s3 !== null) return { bucket: s3[1], key: s3[2] };
  const virtualHosted = /^https:\/\/([^/]+?)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?\/(.+)$/.exec(url);
  if (virtualHosted !== null) return { bucket: virtualHosted[1], key: decodeURIComponent(virtualHosted[2]) };
  const pathStyle = /^https:\/\/s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?\/([^/]+)\/(.+)$/.exec(url);
  if (pathStyle !== null) return { bucket: pathStyle[1], key: decodeURIComponent(pathStyle[2]) };
  throw new RequestRejected(`ModelDataUrl ${url} is not an S3 object URL (s3://bucket/key)`);
}

async function readObject(s3: S3Client, url: string): Promise<Readable> {
  const { bucket, key } = parseS3Url(url);
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (response.Body === undefined) throw new RequestRejected(`${url} is empty`);
    return response.Body as Readable;
  } catch (error) {
    const name = (error as { name?: string }).name;
    // Missing or forbidden will not change on a retry; throttling and network errors may.
    if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'AccessDenied' || name === 'NotFound') {
      throw new RequestRejected(`cannot read ${url}: ${name}: ${(error as Error).message}${name === 'AccessDenied' ? ' (add its bucket to -c emo-dir:modelArtifactBuckets)' : ''}`);
    }
    throw error;
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function dirname(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}
