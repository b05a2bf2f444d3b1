/**
 * The one storage interface of emo-dir. The file store (local runs) and the S3 store (cloud) are
 * twins behind it and pass one shared test suite (test/store/store-suite.ts).
 *
 * Keys are relative, '/'-separated paths such as `runs/<runId>/manifest.json`. Every backend
 * rejects keys that are absolute, contain `..`/`.` segments, backslashes, empty segments or NUL,
 * so nothing can be written outside the store.
 */
export interface PutOptions {
  /** Create-only: fail with AlreadyExistsError when the key exists (S3 `IfNoneMatch: *`). */
  readonly ifNoneMatch?: boolean;
  readonly contentType?: string;
}

export interface ObjectStore {
  /** Where the store lives, for messages and reports: `file:///abs/dir` or `s3://bucket/prefix`. */
  readonly location: string;
  /** The object's bytes; NotFoundError when missing. */
  get(key: string): Promise<Uint8Array>;
  /**
   * Bytes [offset, offset + length) of the object (an S3 ranged GET): fewer than `length` when the
   * object ends sooner, none when `offset` is at or past its end; NotFoundError when missing.
   * How large data sets are read without fetching whole objects (image shards, DESIGN §3 Scale).
   * With `into` (at least `length` bytes) the bytes are written there and the result is a view of
   * it: a reader streaming gigabytes reuses its buffers instead of leaving one array per request
   * for the garbage collector.
   */
  getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Atomic: readers see the old object or the new one, never a partial write. */
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Every key that starts with `prefix`, sorted lexicographically (byte order). */
  list(prefix: string): Promise<string[]>;
  /** Removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

/** Throws RangeError unless offset and length are non-negative safe integers (and `into` holds length bytes). */
export function assertValidRange(key: string, offset: number, length: number, into?: Uint8Array): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`invalid byte range of ${key}: offset ${offset}, length ${length} (non-negative integers)`);
  }
  if (into !== undefined && into.length < length) throw new RangeError(`byte range of ${key}: target holds ${into.length} bytes, the range ${length}`);
}

export class NotFoundError extends Error {
  constructor(readonly key: string, readonly location: string) {
    super(`object not found: ${key} (in ${location})`);
    this.name = 'NotFoundError';
  }
}

export class AlreadyExistsError extends Error {
  constructor(readonly key: string, readonly location: string) {
    super(`object already exists (create-only write refused): ${key} (in ${location})`);
    this.name = 'AlreadyExistsError';
  }
}

export class InvalidKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid store key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidKeyError';
  }
}

/** Throws InvalidKeyError unless `key` is a safe relative key. `allowEmpty` is for list prefixes. */
export function assertValidKey(key: string, allowEmpty = false): void {
  if (key === '') {
    if (allowEmpty) return;
    throw new InvalidKeyError(key, 'empty');
  }
  if (key.includes('\0')) throw new InvalidKeyError(key, 'contains NUL');
  if (key.includes('\\')) throw new InvalidKeyError(key, 'contains a backslash');
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'absolute (starts with /)');
  const segments = key.split('/');
  // A list prefix may end with '/', which leaves one empty last segment.
  const checked = allowEmpty && key.endsWith('/') ? segments.slice(0, -1) : segments;
  for (const segment of checked) {
    if (segment === '') throw new InvalidKeyError(key, 'empty path segment');
    if (segment === '.' || segment === '..') throw new InvalidKeyError(key, `'${segment}' segment`);
  }
}

/**
 * The order of `list()`: UTF-8 byte order, as S3 returns keys. Plain JS string comparison is
 * UTF-16 order, which differs from it for characters above U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const decoder = new TextDecoder();

export async function getText(store: ObjectStore, key: string): Promise<string> {
  return decoder.decode(await store.get(key));
}

/** Parsed JSON; the error names the key and location when the object is not valid JSON. */
export async function getJson(store: ObjectStore, key: string): Promise<unknown> {
  const text = await getText(store, key);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`${key} (in ${store.location}) is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export async function putJson(
  store: ObjectStore,
  key: string,
  value: unknown,
  options?: PutOptions,
): Promise<void> {
  await store.put(key, `${JSON.stringify(value, null, 2)}\n`, {
    contentType: 'application/json',
    ...options,
  });
}
