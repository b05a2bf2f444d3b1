/**
 * The shard format for large image sets (ImageNet), written by image-folder-convert.ts and read
 * here (whole, into memory) and by shard-source.ts (random access and streaming). A shard set is
 * a directory or a store prefix (data-files.ts) holding:
 *
 *   index.json            ShardIndex (zod-validated): geometry, preprocessing, classes, shards
 *   shard-00000.bin       uint8 NHWC pixels (RGB or grey), count * height * width * channels bytes, no header
 *   shard-00000.labels    uint16 little-endian class index per image, count * 2 bytes
 *   ...
 *
 * Raw, headerless shards so a reader (or an S3 ranged GET) can address image i of a shard at
 * i * height * width * channels without parsing anything; all metadata and integrity data (byte
 * sizes, sha256) live in index.json, which the converter writes last: a shard set with an
 * index.json is complete. Labels are uint16 because ImageNet-21k has more than 255 classes.
 */
import { z } from 'zod';
import { createDataset } from './dataset.ts';
import type { ImageDataset } from './dataset.ts';
import { assertLittleEndian, sha256Hex } from './fs-util.ts';
import { DataReadError, ShardError, directoryFiles, readWhole } from './data-files.ts';
import { sha256HexShared } from './hash-thread.ts';
import type { ReadWholeOptions, DataFiles } from './data-files.ts';

export { ShardError } from './data-files.ts';

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
    /** 3: RGB, 1: grey. */
    channels: z.union([z.literal(1), z.literal(3)]),
    labelEncoding: z.literal('uint16le'),
    /** How the source images were turned into height x width pixels (absent: stored as they came). */
    preprocessing: z.object({
      resizeShorterSide: z.number().int().positive(),
      /** The side of a square crop, or its height and width. */
      centreCrop: z.union([z.number().int().positive(), z.object({ height: z.number().int().positive(), width: z.number().int().positive() })]),
      /** 'srgb' for 3 channels, 'b-w' (libvips' name for grey) for 1. */
      colourspace: z.enum(['srgb', 'b-w']),
    }).optional(),
    /** Class ids in label order (ImageNet: sorted wnids, so label = index of the wnid). */
    classes: z.array(z.string().min(1)).min(1),
    classNames: z.array(z.string()).optional(),
    count: z.number().int().nonnegative(),
    /**
     * Image order across shards: 'shuffled' (seeded, class-mixed shards), 'sorted' (class, file
     * name) or 'source' (the order of the in-memory set it was written from).
     */
    order: z.enum(['shuffled', 'sorted', 'source']),
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
    if (index.preprocessing) {
      const crop = index.preprocessing.centreCrop;
      const [cropHeight, cropWidth] = typeof crop === 'number' ? [crop, crop] : [crop.height, crop.width];
      if (cropHeight !== index.height || cropWidth !== index.width) {
        ctx.addIssue({ code: 'custom', path: ['preprocessing', 'centreCrop'], message: `is ${cropHeight}x${cropWidth}, the images are ${index.height}x${index.width}` });
      }
      if ((index.channels === 3) !== (index.preprocessing.colourspace === 'srgb')) {
        ctx.addIssue({ code: 'custom', path: ['preprocessing', 'colourspace'], message: `is ${index.preprocessing.colourspace} for ${index.channels}-channel images` });
      }
    }
    if (total !== index.count) ctx.addIssue({ code: 'custom', path: ['count'], message: `is ${index.count}, shard counts sum to ${total}` });
    if (new Set(index.classes).size !== index.classes.length) ctx.addIssue({ code: 'custom', path: ['classes'], message: 'has duplicates' });
    if (index.classes.length > 65536) ctx.addIssue({ code: 'custom', path: ['classes'], message: 'more than 65536 classes do not fit uint16 labels' });
    if (index.classNames && index.classNames.length !== index.classes.length) {
      ctx.addIssue({ code: 'custom', path: ['classNames'], message: `has ${index.classNames.length} entries for ${index.classes.length} classes` });
    }
  });
export type ShardIndex = z.infer<typeof ShardIndexSchema>;

export function shardFileNames(shard: number): { images: string; labels: string } {
  const stem = `shard-${String(shard).padStart(5, '0')}`;
  return { images: `${stem}.bin`, labels: `${stem}.labels` };
}

function filesOf(where: string | DataFiles): DataFiles {
  return typeof where === 'string' ? directoryFiles(where) : where;
}

/** Reads and validates the index.json of a shard set (a directory or a store prefix). */
export async function readShardIndex(where: string | DataFiles): Promise<ShardIndex> {
  const files = filesOf(where);
  const path = files.path(SHARD_INDEX_FILE);
  const bytes = await files.read(SHARD_INDEX_FILE);
  if (bytes === undefined) throw new ShardError(path, 'missing (not a converted shard set, or conversion unfinished)');
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ShardError(path, `not JSON (${(error as Error).message})`);
  }
  const parsed = ShardIndexSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ShardError(path, `invalid: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'} ${issue.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Bytes of one image of the set. */
export function shardImageBytes(index: Pick<ShardIndex, 'height' | 'width' | 'channels'>): number {
  return index.height * index.width * index.channels;
}

/**
 * Reads shard `shard`'s images whole (parallel ranged reads), checking the size and, with
 * `verify: 'sha256'`, the checksum of index.json (on a helper thread when read into shared
 * memory); any mismatch throws a ShardError naming the file.
 */
export async function readShardImages(
  files: DataFiles,
  entry: ShardEntry,
  verify: 'sha256' | 'size',
  options: ReadWholeOptions = {},
): Promise<Uint8Array> {
  const images = await readWhole(files, entry.images, entry.imageBytes, options);
  if (verify === 'sha256' && (await sha256HexShared(images)) !== entry.imagesSha256) {
    throw new ShardError(files.path(entry.images), 'sha256 does not match index.json (corrupt or replaced)');
  }
  return images;
}

/**
 * Decodes one shard's label file `bytes` (always sha256-checked: it is small) into `out` from
 * `at`. Throws naming the file on a size or checksum mismatch or a label outside the class list.
 */
export function decodeShardLabels(path: string, entry: ShardEntry, bytes: Uint8Array, classes: number, out: Int32Array, at: number): void {
  if (bytes.length !== entry.labelBytes) throw new ShardError(path, `is ${bytes.length} bytes, index.json says ${entry.labelBytes}`);
  if (sha256Hex(bytes) !== entry.labelsSha256) throw new ShardError(path, 'sha256 does not match index.json (corrupt or replaced)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < entry.count; i++) {
    const label = view.getUint16(i * 2, true);
    if (label >= classes) throw new ShardError(path, `image ${i} has label ${label}, index.json lists ${classes} classes`);
    out[at + i] = label;
  }
}

/** Reads one shard's label file; undefined-safe: a missing file is a ShardError naming it. */
export async function readShardLabelFile(files: DataFiles, entry: ShardEntry): Promise<Uint8Array> {
  const bytes = await files.read(entry.labels);
  if (bytes === undefined) throw new ShardError(files.path(entry.labels), 'missing');
  return bytes;
}

export interface ReadShardsOptions {
  /** Shards [start, end) of index.shards; default all. */
  readonly start?: number;
  readonly end?: number;
  /** 'sha256' (default): sizes and checksums; 'size': byte sizes only (faster, catches truncation). */
  readonly verify?: 'sha256' | 'size';
  /** Data set name; default `<location>[start:end]`. */
  readonly name?: string;
}

/** Files whose size checkShardFiles asks about at once (ranged GETs to S3 in flight). */
const SIZE_CHECKS_IN_FLIGHT = 16;

/**
 * Every file of `shards` is present with the size index.json gives it, without reading it (a
 * one-byte ranged read at the last byte sees a short file as empty and a long one as two bytes):
 * the cheap check a reader does before loading and Plan does before any job starts. ImageNet's
 * 2,600 files are asked about 16 at a time; the first bad file in index order is reported.
 */
export async function checkShardFiles(files: DataFiles, shards: readonly ShardEntry[]): Promise<void> {
  const checks = shards.flatMap((shard) => [
    [shard.images, shard.imageBytes],
    [shard.labels, shard.labelBytes],
  ] as const);
  const failures: (Error | undefined)[] = new Array(checks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < checks.length) {
      const at = next++;
      try {
        await checkFileSize(files, checks[at][0], checks[at][1]);
      } catch (error) {
        failures[at] = error as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SIZE_CHECKS_IN_FLIGHT, checks.length) }, worker));
  const first = failures.find((failure) => failure !== undefined);
  if (first) throw first;
}

async function checkFileSize(files: DataFiles, name: string, bytes: number): Promise<void> {
  let seen: number;
  try {
    seen = (await files.readRange(name, Math.max(0, bytes - 1), bytes === 0 ? 1 : 2)).length;
  } catch (error) {
    // The same failure, in the shard set's words ('image shards <file>: missing').
    if (error instanceof DataReadError && !(error instanceof ShardError)) {
      throw new ShardError(error.path, error.message.slice(`data ${error.path}: `.length));
    }
    throw error;
  }
  const expected = bytes === 0 ? 0 : 1;
  if (seen < expected) throw new ShardError(files.path(name), `truncated: shorter than the ${bytes} bytes index.json says`);
  if (seen > expected) throw new ShardError(files.path(name), `is longer than the ${bytes} bytes index.json says`);
}

/**
 * Loads shards [start, end) of a shard set (directory or store prefix) into one in-memory
 * ImageDataset. For sets that fit in memory; shard-source.ts reads the others. Every file's size
 * is checked against index.json and, by default, its sha256; any mismatch throws a ShardError
 * naming the file.
 */
export async function readImageShards(where: string | DataFiles, options: ReadShardsOptions = {}): Promise<ImageDataset> {
  assertLittleEndian();
  const files = filesOf(where);
  const index = await readShardIndex(files);
  const start = options.start ?? 0;
  const end = options.end ?? index.shards.length;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > index.shards.length || start > end) {
    throw new ShardError(files.location, `shard range ${start}..${end} is outside 0..${index.shards.length}`);
  }
  const selected = index.shards.slice(start, end);
  const verify = options.verify ?? 'sha256';
  await checkShardFiles(files, selected);
  const perImage = shardImageBytes(index);
  const count = selected.reduce((sum, shard) => sum + shard.count, 0);
  const images = new Uint8Array(count * perImage);
  const labels = new Int32Array(count);
  let at = 0;
  for (const shard of selected) {
    decodeShardLabels(files.path(shard.labels), shard, await readShardLabelFile(files, shard), index.classes.length, labels, at);
    await readShardImages(files, shard, verify, { into: images.subarray(at * perImage, (at + shard.count) * perImage) });
    at += shard.count;
  }
  return createDataset({
    name: options.name ?? `${files.location}[${start}:${end}]`,
    images,
    labels,
    height: index.height,
    width: index.width,
    channels: index.channels,
    classes: index.classes.length,
    classNames: index.classNames ?? index.classes,
  });
}
