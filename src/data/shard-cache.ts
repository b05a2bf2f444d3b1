/**
 * A local disk cache of shard data read from a store, so a second epoch, a retried job on the
 * same host or several worker processes on one machine do not fetch the same bytes again.
 *
 * Entries are content-addressed by the sha256 index.json records for the file, so a cache never
 * serves bytes of another data set or an older conversion, and needs no invalidation:
 *   files/<sha256>              a whole file (a label file, or a shard when the set fits the budget)
 *   images/<sha256>/<image>     one image of a shard, fetched by a ranged read (random access)
 * Whole files are written only after their size and checksum were verified. Writes are atomic
 * (temporary file + rename), so processes sharing a cache directory see whole entries or none.
 *
 * Size is bounded by `maxBytes`: past it, the least recently used entries (by mtime, refreshed on
 * every hit) are removed down to 80% of it. The running total is this process' view, re-measured
 * at each eviction, so several processes sharing a directory keep it near the bound. A failure to
 * write the cache (disk full) is logged, never fatal: the data was read already.
 */
import { mkdir, open, readFile, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './fs-util.ts';

export interface ShardCacheOptions {
  /** Default `<os tmpdir>/emo-dir-shard-cache`. */
  readonly dir?: string;
  /** Default 8 GiB. */
  readonly maxBytes?: number;
  readonly log?: (message: string) => void;
}

export const DEFAULT_CACHE_BYTES = 8 * 1024 ** 3;

const SHA256 = /^[0-9a-f]{64}$/;

function checkSha(sha256: string): void {
  if (!SHA256.test(sha256)) throw new Error(`shard cache: ${JSON.stringify(sha256)} is not a sha256 hex digest`);
}

export class ShardCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #log: (message: string) => void;
  #bytes: number | undefined;
  #evicting: Promise<void> | undefined;

  constructor(options: ShardCacheOptions = {}) {
    this.dir = options.dir ?? join(tmpdir(), 'emo-dir-shard-cache');
    this.maxBytes = options.maxBytes ?? DEFAULT_CACHE_BYTES;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 0) throw new Error(`shard cache: maxBytes must be a non-negative integer, got ${this.maxBytes}`);
    this.#log = options.log ?? (() => undefined);
  }

  #filePath(sha256: string): string {
    checkSha(sha256);
    return join(this.dir, 'files', sha256);
  }

  #imagePath(sha256: string, image: number): string {
    checkSha(sha256);
    if (!Number.isSafeInteger(image) || image < 0) throw new Error(`shard cache: image ${image} is not a non-negative integer`);
    return join(this.dir, 'images', sha256, String(image));
  }

  /** The whole file with this sha256 when cached at exactly `bytes` bytes (into `into` when given). */
  async readFile(sha256: string, bytes: number, into?: Uint8Array): Promise<Uint8Array | undefined> {
    if (into === undefined) return this.#read(this.#filePath(sha256), bytes);
    return this.readFileRange(sha256, bytes, 0, bytes, into);
  }

  /** Bytes [offset, offset + length) of a cached whole file, or undefined when it is not cached. */
  async readFileRange(sha256: string, bytes: number, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array | undefined> {
    const path = this.#filePath(sha256);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch {
      return undefined;
    }
    try {
      if ((await handle.stat()).size !== bytes) return undefined;
      const out = into ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) return undefined;
        done += bytesRead;
      }
      await this.#touch(path);
      return out;
    } finally {
      await handle.close();
    }
  }

  async hasFile(sha256: string, bytes: number): Promise<boolean> {
    try {
      return (await stat(this.#filePath(sha256))).size === bytes;
    } catch {
      return false;
    }
  }

  /** Caches a whole, verified file. Skipped (false) when it alone exceeds the budget. */
  async writeFile(sha256: string, data: Uint8Array): Promise<boolean> {
    return this.#write(this.#filePath(sha256), data);
  }

  async readImage(sha256: string, image: number, bytes: number): Promise<Uint8Array | undefined> {
    return this.#read(this.#imagePath(sha256, image), bytes);
  }

  async writeImage(sha256: string, image: number, data: Uint8Array): Promise<boolean> {
    return this.#write(this.#imagePath(sha256, image), data);
  }

  async #read(path: string, bytes: number): Promise<Uint8Array | undefined> {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch {
      return undefined;
    }
    // A wrong size is a damaged entry (the name fixes the content): drop it and read from the source.
    if (data.length !== bytes) {
      await rm(path, { force: true });
      return undefined;
    }
    await this.#touch(path);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  async #touch(path: string): Promise<void> {
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
  }

  async #write(path: string, data: Uint8Array): Promise<boolean> {
    if (data.length > this.maxBytes) return false;
    // Measured before the first write, so the new entry is counted once.
    this.#bytes ??= await this.#measure();
    try {
      await writeFileAtomic(path, [data]);
    } catch (error) {
      this.#log(`shard cache ${this.dir}: not cached (${(error as Error).message})`);
      return false;
    }
    this.#bytes += data.length;
    if (this.#bytes > this.maxBytes) {
      this.#evicting ??= this.#evict().finally(() => {
        this.#evicting = undefined;
      });
      await this.#evicting;
    }
    return true;
  }

  async #entries(): Promise<{ path: string; bytes: number; used: number }[]> {
    const entries: { path: string; bytes: number; used: number }[] = [];
    const visit = async (dir: string): Promise<void> => {
      let names;
      try {
        names = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of names) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await visit(path);
        else if (entry.isFile() && !entry.name.includes('.tmp-')) {
          try {
            const info = await stat(path);
            entries.push({ path, bytes: info.size, used: info.mtimeMs });
          } catch {
            // Removed by another process meanwhile.
          }
        }
      }
    };
    await visit(join(this.dir, 'files'));
    await visit(join(this.dir, 'images'));
    return entries;
  }

  async #measure(): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    return (await this.#entries()).reduce((sum, entry) => sum + entry.bytes, 0);
  }

  /** Removes least recently used entries until the cache holds at most 80% of maxBytes. */
  async #evict(): Promise<void> {
    const entries = (await this.#entries()).sort((a, b) => a.used - b.used);
    let total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    const goal = Math.floor(this.maxBytes * 0.8);
    let removed = 0;
    for (const entry of entries) {
      if (total <= goal) break;
      await rm(entry.path, { force: true });
      total -= entry.bytes;
      removed++;
    }
    this.#bytes = total;
    if (removed > 0) this.#log(`shard cache ${this.dir}: evicted ${removed} least recently used entries (${(total / 2 ** 20).toFixed(0)} MiB kept)`);
  }
}
