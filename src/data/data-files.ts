/**
 * Where the files of a data set live: a local directory or a key prefix in an ObjectStore
 * (`datasets/<name>/train/` in the run's bucket, DESIGN §3). The shard readers and writer
 * (image-shards.ts, shard-source.ts, shard-writer.ts) and the CIFAR reader go through this, so
 * each works on both and names files the same way in its errors.
 *
 * Large files are read by byte range (`readRange`, an S3 ranged GET or a pread), never as one
 * whole-object download: a random image read fetches one image, a whole shard is fetched in
 * parallel chunks straight into the array that keeps it.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NotFoundError, assertValidKey } from '../store/object-store.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { fileSize, writeFileAtomic } from './fs-util.ts';

/** A failure reading a data file, naming the file (or directory/prefix) it concerns. */
export class DataReadError extends Error {
  constructor(readonly path: string, reason: string, prefix = 'data') {
    super(`${prefix} ${path}: ${reason}`);
    this.name = 'DataReadError';
  }
}

/** A failure reading a shard set (image-shards.ts), naming the file it concerns. */
export class ShardError extends DataReadError {
  constructor(path: string, reason: string) {
    super(path, reason, 'image shards');
    this.name = 'ShardError';
  }
}

export interface DataFiles {
  /** The directory or `<store location>/<prefix>`, for messages. */
  readonly location: string;
  /** True when the files are on local disk already (a cache would only copy them). */
  readonly local: boolean;
  /** How messages name the file `name`. */
  path(name: string): string;
  /** The whole file (index.json, label files); undefined when it does not exist. */
  read(name: string): Promise<Uint8Array | undefined>;
  exists(name: string): Promise<boolean>;
  /**
   * The file's size without reading it, undefined when it does not exist. Only where that is
   * cheap (a directory): the store interface has no metadata read, so store-hosted sets omit it.
   */
  size?(name: string): Promise<number | undefined>;
  /** The files of subdirectory `name` (a nested directory, a longer key prefix). */
  sub(name: string): DataFiles;
  /**
   * Bytes [offset, offset + length): fewer when the file ends sooner. DataReadError naming the
   * file when it does not exist. With `into` (at least `length` long) the bytes land there and the
   * result is a view of it: a local file is read straight into its final place.
   */
  readRange(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** Where the shard writer writes a shard set: a directory or a store prefix. */
export interface DataSink {
  readonly location: string;
  path(name: string): string;
  /** Atomic: a reader sees the old file or the whole new one. */
  write(name: string, bytes: Uint8Array): Promise<void>;
  exists(name: string): Promise<boolean>;
  /** Removing a missing file is not an error. */
  remove(name: string): Promise<void>;
}

/** A file name inside the shard set: no separators, no parent references. */
function checkName(location: string, name: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === '.' || name === '..') throw new DataReadError(location, `bad file name ${JSON.stringify(name)}`);
}

export function directoryFiles(dir: string): DataFiles & DataSink {
  const root = resolve(dir);
  const path = (name: string): string => {
    checkName(root, name);
    return join(root, name);
  };
  return {
    location: root,
    local: true,
    path,
    sub: (name) => directoryFiles(path(name)),
    async read(name) {
      try {
        const bytes = await readFile(path(name));
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new DataReadError(path(name), (error as Error).message);
      }
    },
    async readRange(name, offset, length, into) {
      let handle;
      try {
        handle = await open(path(name), 'r');
      } catch (error) {
        throw new DataReadError(path(name), (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (error as Error).message);
      }
      try {
        const out = into ? into.subarray(0, length) : uninitialized(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(out, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === length ? out : out.subarray(0, done);
      } finally {
        await handle.close();
      }
    },
    async write(name, bytes) {
      await writeFileAtomic(path(name), [bytes]);
    },
    async exists(name) {
      return (await fileSize(path(name))) !== undefined;
    },
    size: (name) => fileSize(path(name)),
    async remove(name) {
      await rm(path(name), { force: true });
    },
  };
}

/** The shard set under `prefix` ('datasets/imagenet/train' or with a trailing '/') of `store`. */
export function storeFiles(store: ObjectStore, prefix: string): DataFiles & DataSink {
  const base = prefix.replace(/\/+$/, '');
  assertValidKey(base);
  const location = `${store.location}/${base}`;
  const key = (name: string): string => {
    checkName(location, name);
    return `${base}/${name}`;
  };
  const path = (name: string): string => `${location}/${name}`;
  return {
    location,
    // A file store is local disk: its objects are files already.
    local: store.location.startsWith('file:'),
    path,
    sub: (name) => storeFiles(store, key(name)),
    async read(name) {
      try {
        return await store.get(key(name));
      } catch (error) {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      }
    },
    async readRange(name, offset, length, into) {
      try {
        const bytes = await store.getRange(key(name), offset, length, into);
        // A store may return its own array even when given one (the interface allows no less).
        if (into === undefined || bytes.buffer === into.buffer) return bytes;
        into.set(bytes);
        return into.subarray(0, bytes.length);
      } catch (error) {
        if (error instanceof NotFoundError) throw new DataReadError(path(name), 'missing');
        throw error;
      }
    },
    async write(name, bytes) {
      await store.put(key(name), bytes);
    },
    async exists(name) {
      return store.exists(key(name));
    },
    async remove(name) {
      await store.delete(key(name));
    },
  };
}

/**
 * A byte array without the zero-fill of `new Uint8Array(n)`, for buffers a read overwrites
 * completely: at 150 MB per shard the fill is one more pass over memory per image.
 */
export function uninitialized(length: number): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
}

export interface ReadWholeOptions {
  /** Bytes per ranged read. Default 8 MiB (S3's recommended part size for parallel GETs). */
  readonly chunkBytes?: number;
  /** Ranged reads in flight. Default 4. */
  readonly concurrency?: number;
  /** Read into this array (exactly `bytes` long) instead of a new one. */
  readonly into?: Uint8Array;
}

/**
 * Reads file `name`, which index.json says is `bytes` long, into one array, in parallel
 * ranged chunks. A file shorter or longer than `bytes` fails with a ShardError naming the file
 * (a one-byte read at `bytes` sees a longer file).
 */
export async function readWhole(files: DataFiles, name: string, bytes: number, options: ReadWholeOptions = {}): Promise<Uint8Array> {
  const chunkBytes = options.chunkBytes ?? 8 * 1024 * 1024;
  const concurrency = options.concurrency ?? 4;
  if (options.into !== undefined && options.into.length !== bytes) throw new RangeError(`readWhole ${name}: target holds ${options.into.length} bytes, not ${bytes}`);
  const out = options.into ?? uninitialized(bytes);
  const chunks = Math.max(1, Math.ceil(bytes / chunkBytes));
  let next = 0;
  let shortAt: number | undefined;
  const worker = async (): Promise<void> => {
    while (next < chunks && shortAt === undefined) {
      const chunk = next++;
      const offset = chunk * chunkBytes;
      const length = Math.min(chunkBytes, bytes - offset);
      const got = await files.readRange(name, offset, length, out.subarray(offset, offset + length));
      if (got.length < length) {
        shortAt = Math.min(shortAt ?? Infinity, offset + got.length);
        return;
      }
    }
  };
  const beyond = files.readRange(name, bytes, 1);
  beyond.catch(() => undefined);
  await Promise.all(Array.from({ length: Math.min(concurrency, chunks) }, worker));
  if (shortAt !== undefined) throw new ShardError(files.path(name), `truncated: ended after ${shortAt} of ${bytes} bytes (index.json says ${bytes})`);
  if ((await beyond).length > 0) throw new ShardError(files.path(name), `is longer than the ${bytes} bytes index.json says`);
  return out;
}
