/**
 * Registry uploads become runs (DESIGN §1 "Registry trigger"): the library function behind
 * functions/trigger.ts. A model package is uploaded as
 *
 *   registry/<model>/prune.json       the run spec (starts the run)
 *   registry/<model>/model/...        the model (model.json + weights), by convention
 *
 * and the upload's EventBridge event is turned into a run:
 *
 * 1. The key must be `registry/<model>/prune.json` (keys.parsePruneRequestKey); any other key is
 *    ignored with a log line (the EventBridge pattern's `*` also spans '/').
 * 2. `runId = <model>-<hash of bucket, key, version id (or etag)>` (names.registryRunId): a
 *    retried event gets the same run, a new version of prune.json a new one. The spec's own
 *    `runId`, if any, is ignored (logged): it would make every re-upload collide.
 * 3. The spec's `model` is resolved against the package: omitted -> `registry/<model>/model/`;
 *    a relative reference (`./model`, `weights/v2`) -> under `registry/<model>/`; `zoo:<name>`
 *    and keys under `registry/`, `datasets/` or `runs/` are used as they are; other URLs are
 *    refused (the pipeline reads models from its own store). A store model must hold model.json, so a package without its model is
 *    rejected now, not in the Plan step.
 * 4. An invalid spec is not started: `runs/<runId>/status.json` records the rejection with every
 *    bad field's path, and the function returns normally (retrying cannot fix an upload).
 * 5. Otherwise `runs/<runId>/spec.json` is written create-only (a retry finds it and carries on)
 *    and the execution is started under a name derived from the run id; ExecutionAlreadyExists
 *    means an earlier delivery of this event started it, which is success.
 *
 * The object is read at its current version: if prune.json is overwritten before the event is
 * handled, the newer bytes are read under the older version's run id (the newer upload's own
 * event then finds that run already started). The ObjectStore interface has no versioned reads.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { S3ObjectCreatedEvent, RunStatusRecord } from '../schema/messages.ts';
import { runSpecSchema, type RunSpec } from '../schema/spec.ts';
import { parseWith, ValidationError } from '../schema/validate.ts';
import { parseStoreLocation } from '../store/index.ts';
import { DATASETS_PREFIX, REGISTRY_PREFIX, RUNS_PREFIX, parsePruneRequestKey, registryPrefix, runKeys } from '../store/keys.ts';
import { NotFoundError, getText, putJson, type ObjectStore } from '../store/object-store.ts';
import { registryRunId } from './names.ts';
import { startRunExecution, writeRunSpec } from './runs.ts';

/** The model folder of a registry package, used when prune.json names no model. */
export const PACKAGE_MODEL_DIR = 'model/';

/** The slice of a logger the trigger uses (Powertools' Logger fits it). */
export interface RunLogger {
  info(message: string, ...attributes: Record<string, unknown>[]): void;
  warn(message: string, ...attributes: Record<string, unknown>[]): void;
  /** Called once the run id is known, so every later log line carries it. */
  setCorrelationId?(id: string): void;
}

export interface RegistryRunOptions {
  readonly event: S3ObjectCreatedEvent;
  readonly store: ObjectStore;
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly maxConcurrency?: number;
  readonly logger?: RunLogger;
  /** Time stamp of a rejection record (default: now). */
  readonly now?: Date;
}

export type RegistryRunResult =
  | { readonly outcome: 'ignored'; readonly key: string; readonly reason: string }
  | {
      readonly outcome: 'rejected';
      readonly runId: string;
      readonly requestKey: string;
      readonly statusKey: string;
    }
  | {
      readonly outcome: 'started';
      readonly runId: string;
      readonly requestKey: string;
      readonly specKey: string;
      readonly executionName: string;
      readonly executionArn: string;
      /** An earlier delivery of this event had started it already. */
      readonly alreadyStarted: boolean;
    };

const silent: RunLogger = { info: () => undefined, warn: () => undefined };

/** The store key of an uploaded object, or why the object is not in this store. */
export function storeKeyOfObject(
  storeLocation: string,
  bucket: string,
  objectKey: string,
): { key: string } | { reason: string } {
  const location = parseStoreLocation(storeLocation);
  // A file store (embedded mode, tests) has no bucket: the event's key is the store key.
  if (location.kind !== 's3') return { key: objectKey };
  if (location.bucket !== bucket) return { reason: `bucket ${bucket} is not the store's bucket (${storeLocation})` };
  const prefix = location.prefix === '' || location.prefix === undefined ? '' : `${location.prefix}/`;
  if (!objectKey.startsWith(prefix)) return { reason: `key is outside the store prefix ${prefix}` };
  return { key: objectKey.slice(prefix.length) };
}

export async function startRegistryRun(options: RegistryRunOptions): Promise<RegistryRunResult> {
  const logger = options.logger ?? silent;
  const { bucket, object } = { bucket: options.event.detail.bucket.name, object: options.event.detail.object };
  const located = storeKeyOfObject(options.store.location, bucket, object.key);
  if ('reason' in located) {
    logger.info('ignored upload: not in the store', { bucket, key: object.key, reason: located.reason });
    return { outcome: 'ignored', key: object.key, reason: located.reason };
  }
  const requestKey = located.key;
  const model = parsePruneRequestKey(requestKey);
  if (model === undefined) {
    const reason = `not a prune request (expected ${REGISTRY_PREFIX}<model>/prune.json with a valid model name)`;
    logger.info('ignored upload: not a prune request', { bucket, key: object.key, reason });
    return { outcome: 'ignored', key: object.key, reason };
  }

  const runId = registryRunId(model, {
    bucket,
    key: object.key,
    versionId: object['version-id'],
    etag: object.etag,
  });
  logger.setCorrelationId?.(runId);
  const source = `${options.store.location}/${requestKey}`;
  logger.info('prune request received', { runId, model, source, versionId: object['version-id'], etag: object.etag });

  let spec: RunSpec;
  try {
    spec = await readRequest(options.store, requestKey, model, source, logger);
  } catch (error) {
    if (!(error instanceof RequestRejected)) throw error;
    const statusKey = await recordRejection(options.store, runId, error, source, options.now);
    logger.warn('prune request rejected: no run started', { runId, statusKey, error: error.message });
    return { outcome: 'rejected', runId, requestKey, statusKey };
  }

  const { specKey, write } = await writeRunSpec(options.store, { ...spec, runId });
  const execution = await startRunExecution({
    sfn: options.sfn,
    stateMachineArn: options.stateMachineArn,
    runId,
    specKey,
    maxConcurrency: options.maxConcurrency,
  });
  logger.info(execution.alreadyStarted ? 'run was already started (repeated event)' : 'run started', {
    runId,
    specKey,
    specWrite: write,
    executionArn: execution.executionArn,
  });
  return {
    outcome: 'started',
    runId,
    requestKey,
    specKey,
    executionName: execution.executionName,
    executionArn: execution.executionArn,
    alreadyStarted: execution.alreadyStarted,
  };
}

/** Why a prune request cannot run; recorded in status.json (retrying cannot fix it). */
export class RequestRejected extends Error {
  constructor(message: string, readonly issues?: readonly { path: string; message: string }[]) {
    super(message);
    this.name = 'RequestRejected';
  }
}

/** `runs/<runId>/status.json` of a run that was never started, with why; returns its key. */
export async function recordRejection(store: ObjectStore, runId: string, rejection: RequestRejected, source: string, now?: Date): Promise<string> {
  const statusKey = runKeys(runId).status;
  const record: RunStatusRecord = {
    runId,
    state: 'rejected',
    at: (now ?? new Date()).toISOString(),
    message: rejection.message,
    source,
    ...(rejection.issues === undefined ? {} : { issues: [...rejection.issues] }),
  };
  await putJson(store, statusKey, record);
  return statusKey;
}

async function readRequest(
  store: ObjectStore,
  requestKey: string,
  model: string,
  source: string,
  logger: RunLogger,
): Promise<RunSpec> {
  let text: string;
  try {
    text = await getText(store, requestKey);
  } catch (error) {
    // Deleted between upload and event: nothing to run, and retrying will not bring it back.
    if (error instanceof NotFoundError) throw new RequestRejected(`${source} no longer exists`);
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (error) {
    throw new RequestRejected(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const request = raw as Record<string, unknown>;
    if (request.runId !== undefined) {
      logger.warn('prune.json names a runId; registry runs are named by their upload, so it is ignored', {
        specRunId: request.runId,
      });
    }
    const { runId: _ignored, ...rest } = request;
    raw = rest;
    if (request.model === undefined || typeof request.model === 'string') {
      const resolved = resolvePackageModel(request.model, model);
      if ('issue' in resolved) {
        throw new RequestRejected(`invalid ${source}:\n  - model: ${resolved.issue}`, [
          { path: 'model', message: resolved.issue },
        ]);
      }
      raw = { ...rest, model: resolved.model };
    }
  }
  let spec: RunSpec;
  try {
    spec = parseWith(runSpecSchema, raw, source);
  } catch (error) {
    if (error instanceof ValidationError) throw new RequestRejected(error.message, error.issues);
    throw error;
  }
  if (!spec.model.startsWith('zoo:') && !(await modelMayExist(store, spec.model, logger))) {
    const issue = `no model at ${spec.model} (${spec.model}model.json is missing in ${store.location})`;
    throw new RequestRejected(`invalid ${source}:\n  - model: ${issue}`, [{ path: 'model', message: issue }]);
  }
  return spec;
}

/**
 * False only when the store says model.json is missing. A model outside the trigger's read
 * access (e.g. under `datasets/`) cannot be checked here; the Plan step checks it then.
 */
async function modelMayExist(store: ObjectStore, prefix: string, logger: RunLogger): Promise<boolean> {
  try {
    return await store.exists(`${prefix}model.json`);
  } catch (error) {
    logger.warn('cannot check the model; the Plan step will', { model: prefix, error: (error as Error).message });
    return true;
  }
}

/**
 * The store prefix (ending in '/') or `zoo:` reference a registry package's `model` means; see
 * the module comment. Relative references may not leave the package.
 */
export function resolvePackageModel(ref: string | undefined, model: string): { model: string } | { issue: string } {
  const packagePrefix = registryPrefix(model);
  if (ref === undefined) return { model: `${packagePrefix}${PACKAGE_MODEL_DIR}` };
  if (ref.startsWith('zoo:')) return { model: ref };
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(ref)) {
    return { issue: `${JSON.stringify(ref)}: in a registry package use zoo:<name>, a path inside the package, or a store key` };
  }
  const absolute = [REGISTRY_PREFIX, DATASETS_PREFIX, RUNS_PREFIX].some((prefix) => ref.startsWith(prefix));
  const segments = ref.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (ref.startsWith('/') || segments.includes('..') || ref.includes('\\')) {
    return { issue: `${JSON.stringify(ref)} must stay inside the package ${packagePrefix} (no '..', no leading '/')` };
  }
  if (segments.length === 0) return { issue: `${JSON.stringify(ref)} names no model directory` };
  return { model: `${absolute ? '' : packagePrefix}${segments.join('/')}/` };
}
