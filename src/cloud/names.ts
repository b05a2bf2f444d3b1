/**
 * Names the cloud pipeline derives, in one place so every adapter derives them the same way:
 * run ids (`<model>-<UTC stamp>` for submissions, `<model>-<hash>` for registry uploads), the
 * Step Functions execution name of a run, and execution ARNs.
 *
 * The execution name is a pure function of the run id, so `emo-dir status <runId>` can find the
 * execution without any lookup table, and the execution name of a registry upload is a pure
 * function of the object's key and version: one upload can never start two executions.
 */
import { createHash } from 'node:crypto';
import { STATE_MACHINE_ARN_PATTERN, EXECUTION_NAME_PATTERN } from '../schema/messages.ts';
import { compactUtc, modelNameOf } from '../schema/sweep.ts';
import { NAME_PATTERN } from '../store/keys.ts';

/** Hex digits of the upload hash in a registry run id (48 bits: collisions need ~16M uploads of one model). */
export const UPLOAD_HASH_LENGTH = 12;
const MAX_NAME = 128;
const MAX_EXECUTION_NAME = 80;

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The execution name of a run: the run id itself when it already fits Step Functions' rule
 * (1-80 of A-Z a-z 0-9 - _), else the id with other characters as '_', cut to fit, plus a hash of
 * the full id, so two run ids never share an execution name (`resnet20.v2-...` and
 * `resnet20_v2-...` differ by their hash).
 */
export function executionNameFor(runId: string): string {
  if (EXECUTION_NAME_PATTERN.test(runId)) return runId;
  const hash = sha256Hex(runId).slice(0, 10);
  const base = runId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, MAX_EXECUTION_NAME - hash.length - 1);
  return `${base}-${hash}`;
}

export interface StateMachineArnParts {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  readonly name: string;
  /** Version number or alias name of a qualified ARN. */
  readonly qualifier?: string;
}

export function parseStateMachineArn(arn: string): StateMachineArnParts {
  const match = STATE_MACHINE_ARN_PATTERN.exec(arn);
  if (match === null) {
    throw new Error(
      `invalid state machine ARN ${JSON.stringify(arn)}: expected arn:aws:states:<region>:<account>:stateMachine:<name>`,
    );
  }
  return { partition: match[1], region: match[2], account: match[3], name: match[4], qualifier: match[5] };
}

/**
 * `arn:aws:states:<region>:<account>:execution:<stateMachine>:<name>`, the ARN Step Functions
 * gives the execution `name` of the state machine (a version/alias qualifier is not part of it).
 */
export function executionArnFor(stateMachineArn: string, executionName: string): string {
  const parts = parseStateMachineArn(stateMachineArn);
  if (!EXECUTION_NAME_PATTERN.test(executionName)) {
    throw new Error(`invalid execution name ${JSON.stringify(executionName)}: use 1-80 characters of A-Z a-z 0-9 - _`);
  }
  return `arn:${parts.partition}:states:${parts.region}:${parts.account}:execution:${parts.name}:${executionName}`;
}

function cutName(name: string, room: number): string {
  // The cut must not leave a trailing '.', '_' or '-' before the separator, nor '..'.
  return name.slice(0, room).replace(/[._-]+$/, '') || 'model';
}

/** `<model name>-<yyyymmddThhmmss>` (UTC): the run id of a submission whose spec names none. */
export function timestampRunId(modelRef: string, now: Date): string {
  const stamp = compactUtc(now);
  return `${cutName(modelNameOf(modelRef), MAX_NAME - stamp.length - 1)}-${stamp}`;
}

/** What identifies one upload of a registry object. */
export interface UploadIdentity {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly etag?: string;
}

/**
 * The run id of a registry upload: `<model>-<12 hex of sha256(bucket, key, version id or etag)>`.
 * A retried event yields the same id; a new version of `prune.json` yields a new one. Without
 * a version id (an unversioned bucket) the etag stands in, so re-uploading identical bytes is
 * the same upload and does not start a second run.
 */
export function registryRunId(model: string, upload: UploadIdentity): string {
  const identity = upload.versionId !== undefined ? `version:${upload.versionId}` : `etag:${normaliseEtag(upload.etag ?? '')}`;
  const hash = sha256Hex(`${upload.bucket}\n${upload.key}\n${identity}`).slice(0, UPLOAD_HASH_LENGTH);
  const runId = `${cutName(model, MAX_NAME - UPLOAD_HASH_LENGTH - 1)}-${hash}`;
  if (!NAME_PATTERN.test(runId)) throw new Error(`cannot derive a run id from model name ${JSON.stringify(model)}`);
  return runId;
}

/** S3 reports etags with or without quotes depending on the API; they name the same bytes. */
function normaliseEtag(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

/**
 * The run id of a SageMaker model package version: `<group>-v<version>-<8 hex of sha256(ARN)>`.
 * Every state change of one version (Approved again after a rejection, a repeated event) maps to
 * the same run, so one version starts one run; the hash keeps equal group names of other
 * accounts or regions apart.
 */
export function modelPackageRunId(group: string, version: number, modelPackageArn: string): string {
  const suffix = `-v${version}-${sha256Hex(modelPackageArn).slice(0, 8)}`;
  const runId = `${cutName(group, MAX_NAME - suffix.length)}${suffix}`;
  if (!NAME_PATTERN.test(runId)) throw new Error(`cannot derive a run id from model package group ${JSON.stringify(group)}`);
  return runId;
}
