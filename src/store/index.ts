/**
 * Opens a store from its location string, the one form that travels through specs, CLI flags,
 * environment variables and the state machine:
 *   `s3://bucket` or `s3://bucket/prefix`  -> S3Store
 *   `file:///abs/dir`                      -> FileStore
 *   a plain path (relative or absolute)    -> FileStore
 */
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from './file-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3Store, type S3StoreOptions } from './s3-store.ts';

export * from './object-store.ts';
export { FileStore } from './file-store.ts';
export { S3Store, type S3StoreOptions } from './s3-store.ts';

export interface OpenStoreOptions {
  /** Client options for `s3://` locations (endpoint, forcePathStyle, region, ...). */
  readonly s3?: Omit<S3StoreOptions, 'bucket' | 'prefix'>;
}

export interface ParsedLocation {
  readonly kind: 's3' | 'file';
  /** For s3: the bucket. */
  readonly bucket?: string;
  /** For s3: the key prefix ('' for none). */
  readonly prefix?: string;
  /** For file: the directory. */
  readonly path?: string;
}

export function parseStoreLocation(location: string): ParsedLocation {
  if (location.trim() === '') throw new Error('store location is empty');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(location)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    const rest = location.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    if (bucket === '') throw new Error(`store location ${location} names no bucket`);
    return { kind: 's3', bucket, prefix };
  }
  if (scheme === 'file') {
    let path: string;
    try {
      path = fileURLToPath(location);
    } catch (error) {
      throw new Error(`store location ${location} is not a valid file URL (use file:///absolute/dir)`, {
        cause: error,
      });
    }
    return { kind: 'file', path };
  }
  if (scheme !== undefined) {
    throw new Error(`store location ${location}: unsupported scheme ${scheme}:// (use s3://, file:// or a path)`);
  }
  if (!isAbsolute(location) && /^[A-Za-z0-9+.-]+:/.test(location) && !/^[A-Za-z]:[\\/]/.test(location)) {
    // `s3:bucket` or `s3:/bucket` are typos of s3://, not relative paths named "s3:bucket".
    throw new Error(`store location ${location} looks like a malformed URL (use s3://bucket/prefix or file:///dir)`);
  }
  return { kind: 'file', path: location };
}

export function openStore(location: string, options: OpenStoreOptions = {}): ObjectStore {
  const parsed = parseStoreLocation(location);
  if (parsed.kind === 's3') {
    return new S3Store({ ...options.s3, bucket: parsed.bucket ?? '', prefix: parsed.prefix });
  }
  return new FileStore(parsed.path ?? '');
}
