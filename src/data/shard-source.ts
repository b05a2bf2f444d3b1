/**
 * A shard set (image-shards.ts) in a directory or a store prefix as an ImageSource: labels in
 * memory (2 bytes per image on disk, 4 in memory), pixels read when asked for.
 *
 * - `readImages(indices)` (random access: the search subsets, a resumed stream's buffer) reads
 *   only those images: per shard, runs of consecutive images become one ranged read each, served
 *   from the local cache when there (shard-cache.ts).
 * - `readShard(shard)` (streaming: fine-tune epochs, evaluation) reads a whole shard in parallel
 *   ranged chunks and checks it against index.json (size; sha256 unless `verify: 'size'`) before
 *   any of its images is used, so a truncated or corrupt shard met mid-stream fails naming the
 *   file. Whole shards are cached only when the whole set fits the cache budget: caching a set
 *   larger than the cache would rewrite the cache every epoch and never hit.
 *
 * Ranged reads of single images are checked for length only: index.json has one checksum per
 * file, and fetching a 150 MB shard to check one 150 KB image would defeat random access.
 */
import { decodeShardLabels, readShardIndex, readShardImages, readShardLabelFile, shardImageBytes } from './image-shards.ts';
import type { ShardEntry, ShardIndex } from './image-shards.ts';
import type { ShardedImageSource } from './image-source.ts';
import { ShardCache } from './shard-cache.ts';
import { ShardError, directoryFiles } from './data-files.ts';
import type { DataFiles } from './data-files.ts';
import { assertLittleEndian } from './fs-util.ts';

export interface ShardSourceOptions {
  /** For logs and errors; default the location. */
  readonly name?: string;
  /** Whole-shard check: 'sha256' (default) or 'size'. */
  readonly verify?: 'sha256' | 'size';
  /**
   * Local cache of what is read: a ShardCache, or false for none. Default: none for files on
   * local disk (a directory, a file store), a ShardCache with its defaults otherwise.
   */
  readonly cache?: ShardCache | false;
  /** Ranged reads in flight. Default 8. */
  readonly concurrency?: number;
  /** Only shards [start, end) of the set (default all): global index 0 is image 0 of shard `start`. */
  readonly shards?: { readonly start: number; readonly end?: number };
  readonly log?: (message: string) => void;
}

export interface ShardSource extends ShardedImageSource {
  /** The set's whole index.json (a `shards` range selects part of it). */
  readonly index: ShardIndex;
  readonly files: DataFiles;
}

/** Runs `work(i)` for i in 0..n-1 with at most `limit` in flight; rejects on the first failure. */
async function pool(n: number, limit: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** Opens a shard set: reads index.json and every label file (checked), nothing else. */
export async function openShardSource(where: string | DataFiles, options: ShardSourceOptions = {}): Promise<ShardSource> {
  assertLittleEndian();
  const files = typeof where === 'string' ? directoryFiles(where) : where;
  const index = await readShardIndex(files);
  const start = options.shards?.start ?? 0;
  const end = options.shards?.end ?? index.shards.length;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > index.shards.length || start >= end) {
    throw new ShardError(files.location, `shard range ${start}..${end} is outside 0..${index.shards.length} or empty`);
  }
  const entries = index.shards.slice(start, end);
  const verify = options.verify ?? 'sha256';
  const concurrency = options.concurrency ?? 8;
  const cache = options.cache === undefined ? (files.local ? undefined : new ShardCache(options.log ? { log: options.log } : {})) : options.cache || undefined;
  const perImage = shardImageBytes(index);
  const starts: number[] = [];
  let total = 0;
  for (const shard of entries) {
    starts.push(total);
    total += shard.count;
  }
  // Whole shards go to the cache only if every shard fits it (see the module comment).
  const cacheShards = cache !== undefined && entries.reduce((sum, shard) => sum + shard.imageBytes, 0) <= cache.maxBytes * 0.8;

  const labels = new Int32Array(total);
  await pool(entries.length, concurrency, async (s) => {
    const entry = entries[s];
    const cached = cache ? await cache.readFile(entry.labelsSha256, entry.labelBytes) : undefined;
    const bytes = cached ?? (await readShardLabelFile(files, entry));
    decodeShardLabels(files.path(entry.labels), entry, bytes, index.classes.length, labels, starts[s]);
    if (cache && !cached) await cache.writeFile(entry.labelsSha256, bytes);
  });

  const shardOf = (global: number): number => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (starts[mid] <= global) low = mid;
      else high = mid - 1;
    }
    return low;
  };

  /** Reads images `locals` (ascending, distinct) of one shard into `out` at `positions`. */
  const readFromShard = async (entry: ShardEntry, locals: number[], positions: number[], out: Uint8Array): Promise<void> => {
    const place = (k: number, pixels: Uint8Array): void => out.set(pixels, positions[k] * perImage);
    if (cache && (await cache.hasFile(entry.imagesSha256, entry.imageBytes))) {
      let ok = true;
      for (let k = 0; k < locals.length && ok; k++) {
        const pixels = await cache.readFileRange(entry.imagesSha256, entry.imageBytes, locals[k] * perImage, perImage);
        if (pixels) place(k, pixels);
        else ok = false;
      }
      if (ok) return;
    }
    const missing: number[] = [];
    for (let k = 0; k < locals.length; k++) {
      const pixels = cache ? await cache.readImage(entry.imagesSha256, locals[k], perImage) : undefined;
      if (pixels) place(k, pixels);
      else missing.push(k);
    }
    // Runs of consecutive images: one ranged read each.
    for (let first = 0; first < missing.length; ) {
      let last = first;
      while (last + 1 < missing.length && locals[missing[last + 1]] === locals[missing[last]] + 1) last++;
      const from = locals[missing[first]];
      const count = last - first + 1;
      const bytes = await files.readRange(entry.images, from * perImage, count * perImage);
      if (bytes.length !== count * perImage) {
        throw new ShardError(files.path(entry.images), `truncated: images ${from}..${from + count - 1} end at byte ${from * perImage + bytes.length}, index.json says ${entry.imageBytes}`);
      }
      for (let j = 0; j < count; j++) {
        const pixels = bytes.subarray(j * perImage, (j + 1) * perImage);
        place(missing[first + j], pixels);
        if (cache) await cache.writeImage(entry.imagesSha256, from + j, pixels);
      }
      first = last + 1;
    }
  };

  const source: ShardSource = {
    name: options.name ?? files.location,
    count: total,
    height: index.height,
    width: index.width,
    channels: index.channels,
    classes: index.classes.length,
    classNames: index.classNames ?? index.classes,
    labels,
    index,
    files,
    shardCounts: entries.map((shard) => shard.count),

    async readImages(indices: Int32Array): Promise<Uint8Array> {
      const out = new Uint8Array(indices.length * perImage);
      // Per shard: the requested images in ascending order, and where each goes in `out`.
      const byShard = new Map<number, { local: number; position: number }[]>();
      for (let i = 0; i < indices.length; i++) {
        const global = indices[i];
        if (!Number.isInteger(global) || global < 0 || global >= total) {
          throw new RangeError(`${source.name}: image index ${global} is out of range (0..${total - 1})`);
        }
        const shard = shardOf(global);
        let wanted = byShard.get(shard);
        if (!wanted) byShard.set(shard, (wanted = []));
        wanted.push({ local: global - starts[shard], position: i });
      }
      const shards = [...byShard.keys()].sort((a, b) => a - b);
      await pool(shards.length, concurrency, async (k) => {
        const wanted = (byShard.get(shards[k]) ?? []).sort((a, b) => a.local - b.local);
        // A repeated index is read once and copied to each position.
        const locals: number[] = [];
        const positions: number[] = [];
        const repeats: { from: number; to: number }[] = [];
        for (const { local, position } of wanted) {
          if (locals.length > 0 && locals[locals.length - 1] === local) repeats.push({ from: positions[positions.length - 1], to: position });
          else {
            locals.push(local);
            positions.push(position);
          }
        }
        await readFromShard(entries[shards[k]], locals, positions, out);
        for (const { from, to } of repeats) out.copyWithin(to * perImage, from * perImage, (from + 1) * perImage);
      });
      return out;
    },

    async readShard(shard: number, into?: Uint8Array): Promise<Uint8Array> {
      const entry = entries[shard];
      if (!entry) throw new RangeError(`${source.name}: shard ${shard} is out of range (0..${entries.length - 1})`);
      if (into !== undefined && into.length < entry.imageBytes) throw new RangeError(`${source.name}: shard ${shard} needs ${entry.imageBytes} bytes, the target holds ${into.length}`);
      const target = into?.subarray(0, entry.imageBytes);
      if (cacheShards && cache) {
        const cached = await cache.readFile(entry.imagesSha256, entry.imageBytes, target);
        if (cached) return cached;
      }
      const pixels = await readShardImages(files, entry, verify, target ? { into: target } : {});
      // Only a checksum-verified shard may be stored under its checksum.
      if (cacheShards && cache && verify === 'sha256') await cache.writeFile(entry.imagesSha256, pixels);
      return pixels;
    },
  };
  return source;
}
