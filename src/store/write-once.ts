/**
 * Create-only writes that tolerate their own earlier success, shared by `emo-dir submit`
 * (src/cloud/runs.ts, src/cloud/submit.ts), `emo-dir run` (src/local/run.ts) and the pipeline's
 * result files (manifest, fronts). AWS-free, so the local path need not load the Step Functions SDK.
 */
import { AlreadyExistsError, type ObjectStore } from './object-store.ts';

export class RunIdTakenError extends Error {
  constructor(readonly key: string, readonly location: string) {
    super(
      `${key} (in ${location}) already exists with different content: that run id is taken by another run ` +
        '(choose another runId, or omit it to get a fresh one)',
    );
    this.name = 'RunIdTakenError';
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

export interface WriteOnceOptions {
  readonly contentType?: string;
  /** Whether an existing object counts as this write's earlier success. Default: identical bytes. */
  readonly same?: (existing: Uint8Array, fresh: Uint8Array) => boolean;
  /** The error for an existing object that is not the same. Default: RunIdTakenError. */
  readonly conflict?: (existing: Uint8Array, fresh: Uint8Array) => Error;
}

/**
 * Create-only put that tolerates its own earlier success (a retried step, a resubmitted run):
 * `created` when this call wrote the object, `existing` when what was already there is the same;
 * the `conflict` error otherwise. Results are never overwritten.
 */
export async function writeOnce(
  store: ObjectStore,
  key: string,
  body: Uint8Array | string,
  options: WriteOnceOptions = {},
): Promise<'created' | 'existing'> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  try {
    await store.put(key, bytes, { ifNoneMatch: true, contentType: options.contentType });
    return 'created';
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
  const existing = await store.get(key);
  if ((options.same ?? sameBytes)(existing, bytes)) return 'existing';
  throw options.conflict ? options.conflict(existing, bytes) : new RunIdTakenError(key, store.location);
}
