/**
 * The S3 ObjectStore: the cloud twin of FileStore (both pass test/store/store-suite.ts).
 *
 * - Keys live under an optional key prefix inside the bucket (`s3://bucket/prefix`).
 * - Create-only puts send `If-None-Match: *`; S3 answers 412 PreconditionFailed when the key
 *   exists, which becomes AlreadyExistsError. Bodies above `multipartThreshold` go through
 *   lib-storage's Upload (multipart; the condition travels on CompleteMultipartUpload, so the
 *   object still appears atomically and only once).
 * - Throttling (503 SlowDown), 5xx and network errors are retried by the SDK's standard retry
 *   strategy (exponential backoff with jitter), with more attempts than the SDK's default 3
 *   because dozens of Batch jobs write checkpoints to one prefix at the same time.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  AlreadyExistsError,
  InvalidKeyError,
  NotFoundError,
  assertValidKey,
  assertValidRange,
  compareKeys,
  type ObjectStore,
  type PutOptions,
} from './object-store.ts';

export const DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024;
/** S3's minimum part size (every part but the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const DEFAULT_MAX_ATTEMPTS = 8;
/** How often a create-only put is re-sent after 409 ConditionalRequestConflict. */
const CONFLICT_ATTEMPTS = 3;

export interface S3StoreOptions {
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'; '' for the bucket root. */
  readonly prefix?: string;
  /** A ready client (tests, or callers sharing one); the options below then are ignored. */
  readonly client?: S3Client;
  readonly region?: string;
  /** For LocalStack or s3rver, e.g. `http://127.0.0.1:4566`. */
  readonly endpoint?: string;
  /** Path-style URLs (`host/bucket/key`); LocalStack and s3rver need them. */
  readonly forcePathStyle?: boolean;
  readonly credentials?: S3ClientConfig['credentials'];
  /** Total attempts per request, for throttling/5xx/network errors. Default 8. */
  readonly maxAttempts?: number;
  /** Bodies larger than this use multipart upload. Default 8 MiB. */
  readonly multipartThreshold?: number;
  /** Multipart part size, at least 5 MiB. Default 8 MiB. */
  readonly partSize?: number;
  /** Parts uploaded in parallel. Default 4. */
  readonly uploadConcurrency?: number;
}

interface ServiceErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

function serviceError(error: unknown): ServiceErrorShape {
  return typeof error === 'object' && error !== null ? (error as ServiceErrorShape) : {};
}

function hasStatus(error: unknown, status: number, ...names: string[]): boolean {
  const shape = serviceError(error);
  return (
    shape.$metadata?.httpStatusCode === status ||
    names.includes(shape.name ?? '') ||
    names.includes(shape.Code ?? '')
  );
}

const isNotFound = (error: unknown): boolean => hasStatus(error, 404, 'NoSuchKey', 'NotFound');
/** 416: the range starts at or past the object's end (S3 answers so even for an empty object). */
const isRangeNotSatisfiable = (error: unknown): boolean => hasStatus(error, 416, 'InvalidRange');
const isPreconditionFailed = (error: unknown): boolean => hasStatus(error, 412, 'PreconditionFailed');
const isConditionalConflict = (error: unknown): boolean =>
  hasStatus(error, 409, 'ConditionalRequestConflict');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

export class S3Store implements ObjectStore {
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly keyPrefix: string;
  readonly location: string;
  readonly client: S3Client;
  readonly #multipartThreshold: number;
  readonly #partSize: number;
  readonly #uploadConcurrency: number;

  constructor(options: S3StoreOptions) {
    // Bucket naming rules (3-63 chars, lower case, digits, dots, hyphens) – checked here so a typo
    // fails with a clear message instead of a signature or DNS error.
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new Error(`invalid S3 bucket name ${JSON.stringify(options.bucket)}`);
    }
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (prefix !== '') assertValidKey(prefix);
    this.bucket = options.bucket;
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    this.location = prefix === '' ? `s3://${this.bucket}` : `s3://${this.bucket}/${prefix}`;
    this.#multipartThreshold = options.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
    this.#partSize = Math.max(MIN_PART_SIZE, options.partSize ?? DEFAULT_MULTIPART_THRESHOLD);
    this.#uploadConcurrency = options.uploadConcurrency ?? 4;
    this.client =
      options.client ??
      new S3Client({
        region: options.region,
        endpoint: options.endpoint,
        forcePathStyle: options.forcePathStyle,
        credentials: options.credentials,
        maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
        retryMode: 'standard',
        // A bucket in another region answers 301; follow it rather than fail.
        followRegionRedirects: true,
        // Emulators (s3rver, older LocalStack) reject the SDK's default trailing checksums.
        ...(options.endpoint === undefined
          ? {}
          : { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }),
      });
  }

  #fullKey(key: string): string {
    assertValidKey(key);
    return this.keyPrefix + key;
  }

  async get(key: string): Promise<Uint8Array> {
    const fullKey = this.#fullKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      if (response.Body === undefined) return new Uint8Array();
      return await response.Body.transformToByteArray();
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError(key, this.location);
      throw error;
    }
  }

  async getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const fullKey = this.#fullKey(key);
    assertValidRange(key, offset, length, into);
    if (length === 0) {
      // HTTP has no empty range; a HEAD still tells a missing key from an existing one.
      if (!(await this.exists(key))) throw new NotFoundError(key, this.location);
      return new Uint8Array();
    }
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: fullKey, Range: `bytes=${offset}-${offset + length - 1}` }),
      );
      if (response.Body === undefined) return new Uint8Array();
      const body = response.Body as unknown as Partial<AsyncIterable<Uint8Array>>;
      if (into !== undefined && response.ContentRange !== undefined && typeof body[Symbol.asyncIterator] === 'function') {
        // Copy the body's chunks into the caller's buffer as they arrive: no whole-range array.
        let done = 0;
        for await (const chunk of body as AsyncIterable<Uint8Array>) {
          const take = Math.min(chunk.length, length - done);
          into.set(chunk.subarray(0, take), done);
          done += take;
        }
        return into.subarray(0, done);
      }
      const bytes = await response.Body.transformToByteArray();
      // A server that ignores Range answers 200 with the whole object: cut the range out of it.
      const range = response.ContentRange === undefined ? bytes.subarray(offset, offset + length) : bytes;
      if (into === undefined) return response.ContentRange === undefined ? range.slice() : range;
      into.set(range);
      return into.subarray(0, range.length);
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError(key, this.location);
      if (isRangeNotSatisfiable(error)) return new Uint8Array();
      throw error;
    }
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const fullKey = this.#fullKey(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const createOnly = options.ifNoneMatch === true;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#send(fullKey, bytes, options.contentType, createOnly);
        return;
      } catch (error) {
        if (createOnly && isPreconditionFailed(error)) {
          // A 412 on a retried request may answer our own earlier attempt, whose response was lost
          // (timeout, 5xx after commit). If the stored object is byte-identical, the write is ours.
          if ((serviceError(error).$metadata?.attempts ?? 1) > 1 && (await this.#holds(fullKey, bytes))) return;
          throw new AlreadyExistsError(key, this.location);
        }
        if (createOnly && isConditionalConflict(error)) {
          // 409: a concurrent write or delete of the key was in flight. S3 asks callers to retry;
          // the retry then gets 412 (the other writer won) or succeeds (its write failed).
          if (attempt < CONFLICT_ATTEMPTS) {
            await sleep(50 * 2 ** attempt * (0.5 + Math.random()));
            continue;
          }
          throw new AlreadyExistsError(key, this.location);
        }
        throw error;
      }
    }
  }

  async #send(fullKey: string, bytes: Uint8Array, contentType: string | undefined, createOnly: boolean): Promise<void> {
    const params = {
      Bucket: this.bucket,
      Key: fullKey,
      Body: bytes,
      ContentType: contentType,
      ...(createOnly ? { IfNoneMatch: '*' } : {}),
    };
    if (bytes.byteLength <= this.#multipartThreshold) {
      await this.client.send(new PutObjectCommand(params));
      return;
    }
    // Upload aborts the multipart upload on failure, so no orphaned parts are left to bill for.
    await new Upload({
      client: this.client,
      params,
      partSize: this.#partSize,
      queueSize: this.#uploadConcurrency,
      leavePartsOnError: false,
    }).done();
  }

  async #holds(fullKey: string, bytes: Uint8Array): Promise<boolean> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return response.Body !== undefined && sameBytes(await response.Body.transformToByteArray(), bytes);
    } catch {
      return false;
    }
  }

  async exists(key: string): Promise<boolean> {
    const fullKey = this.#fullKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertValidKey(prefix, true);
    const keys: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.keyPrefix + prefix,
          ContinuationToken: continuationToken,
        }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.keyPrefix)) continue;
        const key = object.Key.slice(this.keyPrefix.length);
        // Objects written by other tools may not be valid keys (e.g. console "folder/" markers);
        // they could not be read through this interface, so they are not listed either.
        if (isValidKey(key)) keys.push(key);
      }
      continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    // S3 already returns UTF-8 byte order; sorting anyway covers emulators that do not.
    return keys.sort(compareKeys);
  }

  async delete(key: string): Promise<void> {
    const fullKey = this.#fullKey(key);
    // S3 answers 204 for a missing key too; some emulators say 404, which is also "gone".
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
}

function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch (error) {
    if (error instanceof InvalidKeyError) return false;
    throw error;
  }
}
