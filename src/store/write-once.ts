/**
 * Create-only writes that tolerate their own earlier success, shared by `emo-dir submit`
 * (src/cloud/runs.ts, src/cloud/submit.ts) and `emo-dir run` (src/local/run.ts). AWS-free, so the
 * local path need not load the Step Functions SDK.
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

/**
 * Create-only put that tolerates its own earlier success: `created` when this call wrote the
 * object, `existing` when what was already there is the same (`same`, default: identical bytes);
 * RunIdTakenError otherwise.
 */
export async function writeOnce(
  store: ObjectStore,
  key: string,
  body: Uint8Array | string,
  contentType?: string,
  same: (existing: Uint8Array, fresh: Uint8Array) => boolean = sameBytes,
): Promise<'created' | 'existing'> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  try {
    await store.put(key, bytes, { ifNoneMatch: true, contentType });
    return 'created';
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
  if (same(await store.get(key), bytes)) return 'existing';
  throw new RunIdTakenError(key, store.location);
}
