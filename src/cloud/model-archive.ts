/**
 * SageMaker model archives (`model.tar.gz`) to and from store objects, for the model registry
 * trigger and the registration of pruned models. Archives are streamed through gunzip and a tar
 * parser (tar-stream: ustar with pax and GNU long names, what Python's tarfile and GNU tar
 * write); each file is held in memory only while it is written to the store.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import type { ObjectStore } from '../store/object-store.ts';

/** A file too large for one Lambda's memory; a bigger model belongs in a prefix, not an archive. */
export const DEFAULT_MAX_ENTRY_BYTES = 2 * 1024 ** 3;

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

/**
 * An archive member's path as a store key suffix: `./a/b` -> `a/b`. Absolute paths, `..`,
 * backslashes and empty names are refused: an archive must not write outside its prefix.
 */
export function archiveMemberPath(name: string, source: string): string {
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (name.startsWith('/') || name.includes('\\') || name.includes('\0') || segments.includes('..') || segments.length === 0) {
    throw new ArchiveError(`${source}: member ${JSON.stringify(name)} would leave the archive's directory`);
  }
  return segments.join('/');
}

export interface ExtractedArchive {
  /** Archive paths of the files written, in archive order. */
  readonly files: readonly string[];
  /** Archive paths of members skipped (directories, links, devices), with why. */
  readonly skipped: readonly { path: string; reason: string }[];
  readonly bytes: number;
}

export interface ExtractOptions {
  /** Where the archive came from, for messages. */
  readonly source: string;
  /** Files whose archive path this returns false for are read and handed to `onSkippedFile`, not stored. */
  readonly store?: (path: string) => boolean;
  readonly onSkippedFile?: (path: string, bytes: Uint8Array) => void;
  readonly maxEntryBytes?: number;
}

/** Writes every regular file of the gzipped tar `archive` to `<prefix><path>`. */
export async function extractTarGz(
  archive: Readable | AsyncIterable<Uint8Array>,
  objectStore: ObjectStore,
  prefix: string,
  options: ExtractOptions,
): Promise<ExtractedArchive> {
  const files: string[] = [];
  const skipped: { path: string; reason: string }[] = [];
  let bytes = 0;
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const extract = tar.extract();
  const reading = pipeline(Readable.from(archive), createGunzip(), extract).catch((error: unknown) => {
    throw new ArchiveError(`${options.source} is not a readable .tar.gz: ${(error as Error).message}`);
  });
  const consuming = (async () => {
    for await (const entry of extract) {
      const type = entry.header.type ?? 'file';
      if (type !== 'file' && type !== 'contiguous-file') {
        skipped.push({ path: entry.header.name, reason: type });
        entry.resume();
        continue;
      }
      const path = archiveMemberPath(entry.header.name, options.source);
      const size = entry.header.size ?? 0;
      if (size > maxEntryBytes) throw new ArchiveError(`${options.source}: ${path} is ${size} bytes, over the limit of ${maxEntryBytes}`);
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      bytes += body.byteLength;
      if (options.store === undefined || options.store(path)) {
        await objectStore.put(`${prefix}${path}`, body);
        files.push(path);
      } else {
        options.onSkippedFile?.(path, body);
      }
    }
  })();
  // The parser stops when the consumer throws; report the consumer's error, not the pipe's.
  const [consumed, read] = await Promise.allSettled([consuming, reading]);
  if (consumed.status === 'rejected') {
    extract.destroy();
    throw consumed.reason;
  }
  if (read.status === 'rejected') throw read.reason;
  return { files, skipped, bytes };
}

/**
 * The objects under `prefix` as one gzipped tar, paths relative to the prefix, in key order.
 * Byte-identical for identical objects (fixed times, owner and mode), so a retried registration
 * writes the same archive.
 */
export async function packPrefix(objectStore: ObjectStore, prefix: string): Promise<{ archive: Buffer; files: string[] }> {
  const keys = await objectStore.list(prefix);
  if (keys.length === 0) throw new ArchiveError(`nothing to archive: no objects under ${prefix} in ${objectStore.location}`);
  const pack = tar.pack();
  const collected = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  const files: string[] = [];
  for (const key of keys) {
    const body = Buffer.from(await objectStore.get(key));
    const name = key.slice(prefix.length);
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, size: body.byteLength, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' }, body, (error) =>
        error ? reject(error) : resolve(),
      );
    });
    files.push(name);
  }
  pack.finalize();
  return { archive: gzipSync(await collected, { level: 6 }), files };
}
