/**
 * The shard format for large image sets (ImageNet), written by image-folder-convert.ts and read
 * here. A shard directory holds:
 *
 *   index.json            ShardIndex (zod-validated): geometry, preprocessing, classes, shards
 *   shard-00000.bin       uint8 RGB NHWC pixels, count * height * width * 3 bytes, no header
 *   shard-00000.labels    uint16 little-endian class index per image, count * 2 bytes
 *   ...
 *
 * Raw, headerless shards so a reader (or an S3 ranged GET) can address image i of a shard at
 * i * height * width * 3 without parsing anything; all metadata and integrity data (byte sizes,
 * sha256) live in index.json, which the converter writes last: a directory with an index.json
 * is complete. Labels are uint16 because ImageNet-21k has more than 255 classes.
 */
import { open, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { createDataset } from './dataset.ts';
import type { ImageDataset } from './dataset.ts';
import { assertLittleEndian, fileSize } from './fs-util.ts';

export const SHARD_INDEX_FILE = 'index.json';

/** A file name inside the shard directory: no separators, no parent references. */
const ShardFileName = z.string().regex(/^[A-Za-z0-9._-]+$/).refine((name) => name !== '.' && name !== '..', 'must be a plain file name');
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const ShardEntrySchema = z.object({
  images: ShardFileName,
  labels: ShardFileName,
  count: z.number().int().positive(),
  imageBytes: z.number().int().positive(),
  labelBytes: z.number().int().positive(),
  imagesSha256: Sha256,
  labelsSha256: Sha256,
});
export type ShardEntry = z.infer<typeof ShardEntrySchema>;

export const ShardIndexSchema = z
  .object({
    format: z.literal('emo-dir-image-shards'),
    version: z.literal(1),
    height: z.number().int().positive(),
    width: z.number().int().positive(),
    channels: z.literal(3),
    labelEncoding: z.literal('uint16le'),
    /** How the source images were turned into height x width pixels. */
    preprocessing: z.object({
      resizeShorterSide: z.number().int().positive(),
      centreCrop: z.number().int().positive(),
      colourspace: z.literal('srgb'),
    }),
    /** Class ids in label order (ImageNet: sorted wnids, so label = index of the wnid). */
    classes: z.array(z.string().min(1)).min(1),
    classNames: z.array(z.string()).optional(),
    count: z.number().int().nonnegative(),
    /** Image order across shards: 'shuffled' (seeded, class-mixed shards) or 'sorted' (class, file name). */
    order: z.enum(['shuffled', 'sorted']),
    seed: z.number().int(),
    shards: z.array(ShardEntrySchema),
    /** Source files left out because they could not be decoded (converter option onUnreadable: 'skip'). */
    skipped: z.array(z.object({ file: z.string(), reason: z.string() })).default([]),
  })
  .superRefine((index, ctx) => {
    const perImage = index.height * index.width * index.channels;
    let total = 0;
    index.shards.forEach((shard, i) => {
      total += shard.count;
      if (shard.imageBytes !== shard.count * perImage) {
        ctx.addIssue({ code: 'custom', path: ['shards', i, 'imageBytes'], message: `is ${shard.imageBytes}, expected count ${shard.count} x ${perImage}` });
      }
      if (shard.labelBytes !== shard.count * 2) {
        ctx.addIssue({ code: 'custom', path: ['shards', i, 'labelBytes'], message: `is ${shard.labelBytes}, expected count ${shard.count} x 2` });
      }
    });
    if (total !== index.count) ctx.addIssue({ code: 'custom', path: ['count'], message: `is ${index.count}, shard counts sum to ${total}` });
    if (new Set(index.classes).size !== index.classes.length) ctx.addIssue({ code: 'custom', path: ['classes'], message: 'has duplicates' });
    if (index.classes.length > 65536) ctx.addIssue({ code: 'custom', path: ['classes'], message: 'more than 65536 classes do not fit uint16 labels' });
    if (index.classNames && index.classNames.length !== index.classes.length) {
      ctx.addIssue({ code: 'custom', path: ['classNames'], message: `has ${index.classNames.length} entries for ${index.classes.length} classes` });
    }
  });
export type ShardIndex = z.infer<typeof ShardIndexSchema>;

export class ShardError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`image shards ${path}: ${reason}`);
    this.name = 'ShardError';
  }
}

export function shardFileNames(shard: number): { images: string; labels: string } {
  const stem = `shard-${String(shard).padStart(5, '0')}`;
  return { images: `${stem}.bin`, labels: `${stem}.labels` };
}

/** Reads and validates `<dir>/index.json`. */
export async function readShardIndex(dir: string): Promise<ShardIndex> {
  const path = join(dir, SHARD_INDEX_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ShardError(path, code === 'ENOENT' ? 'missing (not a converted shard directory, or conversion unfinished)' : (error as Error).message);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ShardError(path, `not JSON (${(error as Error).message})`);
  }
  const parsed = ShardIndexSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ShardError(path, `invalid: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'} ${issue.message}`).join('; ')}`);
  }
  return parsed.data;
}

export interface ReadShardsOptions {
  /** Shards [start, end) of index.shards; default all. */
  readonly start?: number;
  readonly end?: number;
  /** 'sha256' (default): sizes and checksums; 'size': byte sizes only (faster, catches truncation). */
  readonly verify?: 'sha256' | 'size';
  /** Data set name; default `<dir>[start:end]`. */
  readonly name?: string;
}

/**
 * Every file of `shards` is present with the size index.json gives it (a stat per file, no read):
 * the cheap check a reader does before loading and Plan does before any job starts.
 */
export async function checkShardFiles(dir: string, shards: readonly ShardEntry[]): Promise<void> {
  for (const shard of shards) {
    for (const [file, bytes] of [
      [shard.images, shard.imageBytes],
      [shard.labels, shard.labelBytes],
    ] as const) {
      const path = join(dir, file);
      const size = await fileSize(path);
      if (size === undefined) throw new ShardError(path, 'missing');
      if (size !== bytes) throw new ShardError(path, `is ${size} bytes, index.json says ${bytes}`);
    }
  }
}

/** Reads exactly `length` bytes of `path` into `target` (a view into the data set's array). */
async function readInto(path: string, target: Uint8Array, hash: ReturnType<typeof createHash> | undefined): Promise<void> {
  const handle = await open(path, 'r');
  try {
    let done = 0;
    while (done < target.length) {
      const { bytesRead } = await handle.read(target, done, Math.min(target.length - done, 1 << 24), done);
      if (bytesRead === 0) throw new ShardError(path, `ended after ${done} of ${target.length} bytes`);
      if (hash) hash.update(target.subarray(done, done + bytesRead));
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Loads shards [start, end) into one ImageDataset (pixels read straight into the final array, no
 * second copy). Every file's size is checked against index.json before reading and, by default,
 * its sha256 after; any mismatch throws a ShardError naming the file.
 */
export async function readImageShards(dir: string, options: ReadShardsOptions = {}): Promise<ImageDataset> {
  assertLittleEndian();
  const index = await readShardIndex(dir);
  const start = options.start ?? 0;
  const end = options.end ?? index.shards.length;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > index.shards.length || start > end) {
    throw new ShardError(dir, `shard range ${start}..${end} is outside 0..${index.shards.length}`);
  }
  const selected = index.shards.slice(start, end);
  const verify = options.verify ?? 'sha256';
  await checkShardFiles(dir, selected);
  const perImage = index.height * index.width * index.channels;
  const count = selected.reduce((sum, shard) => sum + shard.count, 0);
  const images = new Uint8Array(count * perImage);
  const labels = new Int32Array(count);
  let at = 0;
  for (const shard of selected) {
    const imagesPath = join(dir, shard.images);
    const labelsPath = join(dir, shard.labels);
    const imageHash = verify === 'sha256' ? createHash('sha256') : undefined;
    await readInto(imagesPath, images.subarray(at * perImage, (at + shard.count) * perImage), imageHash);
    const labelBuffer = new Uint8Array(shard.labelBytes);
    const labelHash = verify === 'sha256' ? createHash('sha256') : undefined;
    await readInto(labelsPath, labelBuffer, labelHash);
    if (imageHash && imageHash.digest('hex') !== shard.imagesSha256) throw new ShardError(imagesPath, 'sha256 does not match index.json (corrupt or replaced)');
    if (labelHash && labelHash.digest('hex') !== shard.labelsSha256) throw new ShardError(labelsPath, 'sha256 does not match index.json (corrupt or replaced)');
    const view = new DataView(labelBuffer.buffer);
    for (let i = 0; i < shard.count; i++) {
      const label = view.getUint16(i * 2, true);
      if (label >= index.classes.length) throw new ShardError(labelsPath, `image ${i} has label ${label}, index.json lists ${index.classes.length} classes`);
      labels[at + i] = label;
    }
    at += shard.count;
  }
  return createDataset({
    name: options.name ?? `${dir}[${start}:${end}]`,
    images,
    labels,
    height: index.height,
    width: index.width,
    channels: index.channels,
    classes: index.classes.length,
    classNames: index.classNames ?? index.classes,
  });
}
