/**
 * Converts a class-subfolder image tree (ImageNet layout: `root/<wnid>/*.JPEG`) into the shard
 * format of image-shards.ts, with sharp (libvips) for decoding and resizing.
 *
 * Per image: EXIF auto-orient, resize so the shorter side is `resize` (Lanczos3, aspect kept),
 * centre crop `crop` (a side, or height x width), convert to sRGB (greyscale and CMYK JPEGs
 * exist in ImageNet) or, with `channels: 1`, to grey; drop alpha. That is the standard ImageNet
 * evaluation transform (256 -> 224); store with crop = resize (e.g. 144/128 for fast
 * experiments) when random crops are wanted later.
 *
 * The output is a directory or a store prefix (`out: storeFiles(store, 'datasets/x/train')`), so a
 * data set can be converted straight into the bucket the workers read from.
 *
 * Images are ordered by (class, file name) and then, by default, shuffled with a seeded
 * permutation so every shard mixes classes and loading a shard range gives a usable sample.
 * The output is a pure function of the tree and the options: rerunning gives identical shards.
 */
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { createRng, permutation } from './prng.ts';
import { SHARD_INDEX_FILE } from './image-shards.ts';
import type { ShardIndex } from './image-shards.ts';
import { directoryFiles } from './data-files.ts';
import type { DataSink } from './data-files.ts';
import { ShardWriter } from './shard-writer.ts';

/** A crop: its side (square) or its height and width. */
export type CropSize = number | { readonly height: number; readonly width: number };

export interface ConvertImageFolderOptions {
  /** Tree with one subdirectory per class. */
  readonly root: string;
  /**
   * Output: a directory (created) or a DataSink such as `storeFiles(store, prefix)`. Refuses to
   * overwrite an existing index.json unless `overwrite`.
   */
  readonly out: string | DataSink;
  /** Shorter side after resizing. Default 256. */
  readonly resize?: number;
  /** Centre crop, each side <= resize. Default 224. */
  readonly crop?: CropSize;
  /** 3 (sRGB, default) or 1 (grey). */
  readonly channels?: 1 | 3;
  /** Images per shard. Default 1000 (~150 MB at 224x224). */
  readonly shardSize?: number;
  readonly order?: 'shuffled' | 'sorted';
  readonly seed?: number;
  /**
   * The class list in label order. Default: the sorted subdirectory names. Pass the training
   * set's `classes` when converting validation data so labels agree even if a class is missing.
   */
  readonly classes?: readonly string[];
  readonly classNames?: readonly string[];
  /** File extensions taken as images (case-insensitive). Default .jpeg .jpg .png. */
  readonly extensions?: readonly string[];
  /** Images decoded at once. Default 4 (sharp also threads inside each decode). */
  readonly concurrency?: number;
  /** 'throw' (default): an undecodable file stops the conversion; 'skip': listed in index.skipped. */
  readonly onUnreadable?: 'throw' | 'skip';
  readonly overwrite?: boolean;
  readonly log?: (message: string) => void;
}

interface SourceImage {
  readonly path: string;
  readonly label: number;
}

function cropSides(crop: CropSize): { height: number; width: number } {
  return typeof crop === 'number' ? { height: crop, width: crop } : { height: crop.height, width: crop.width };
}

/**
 * Decodes one image file to crop height x width x `channels` uint8 (RGB or grey; see the module
 * comment for the transform). Throws naming the file on anything sharp cannot decode.
 */
export async function preprocessImage(path: string, resize: number, crop: CropSize, channels: 1 | 3 = 3): Promise<Uint8Array> {
  const { height: cropHeight, width: cropWidth } = cropSides(crop);
  try {
    // failOn 'error': tolerate libvips *warnings* (ImageNet has JPEGs with bad EXIF or extra
    // bytes that decode fine) but not real decode errors.
    const meta = await sharp(path, { failOn: 'error' }).metadata();
    if (!meta.width || !meta.height) throw new Error('no image dimensions');
    // EXIF orientations 5..8 rotate by 90 degrees: width and height swap after auto-orient.
    const swap = (meta.orientation ?? 1) >= 5;
    const width = swap ? meta.height : meta.width;
    const height = swap ? meta.width : meta.height;
    const scale = resize / Math.min(width, height);
    const scaledWidth = Math.max(cropWidth, Math.round(width * scale));
    const scaledHeight = Math.max(cropHeight, Math.round(height * scale));
    const { data, info } = await sharp(path, { failOn: 'error' })
      .rotate()
      .resize(scaledWidth, scaledHeight, { fit: 'fill' })
      .extract({ left: Math.floor((scaledWidth - cropWidth) / 2), top: Math.floor((scaledHeight - cropHeight) / 2), width: cropWidth, height: cropHeight })
      .toColourspace(channels === 3 ? 'srgb' : 'b-w')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== cropWidth || info.height !== cropHeight || info.channels !== channels) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${cropWidth}x${cropHeight}x${channels}`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (error) {
    throw new Error(`image ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function listSources(root: string, options: ConvertImageFolderOptions): Promise<{ classes: string[]; sources: SourceImage[] }> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    throw new Error(`image folder ${root}: cannot list (${(error as Error).message})`, { cause: error });
  }
  const dirs = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (dirs.length === 0) throw new Error(`image folder ${root}: no class subdirectories (expected root/<class>/<image>)`);
  const classes = options.classes ? [...options.classes] : dirs;
  const labelOf = new Map(classes.map((name, i) => [name, i]));
  if (labelOf.size !== classes.length) throw new Error(`image folder ${root}: the given class list has duplicates`);
  const extensions = new Set((options.extensions ?? ['.jpeg', '.jpg', '.png']).map((e) => e.toLowerCase()));
  const sources: SourceImage[] = [];
  for (const dir of dirs) {
    const label = labelOf.get(dir);
    if (label === undefined) throw new Error(`image folder ${root}: subdirectory ${dir} is not in the given class list`);
    const files = (await readdir(join(root, dir), { withFileTypes: true }))
      .filter((e) => e.isFile() && extensions.has(extname(e.name).toLowerCase()))
      .map((e) => e.name)
      .sort();
    for (const file of files) sources.push({ path: join(root, dir, file), label });
  }
  if (sources.length === 0) throw new Error(`image folder ${root}: no images with extensions ${[...extensions].join(' ')}`);
  return { classes, sources };
}

/** Runs `work(i)` for i in 0..n-1 with at most `limit` in flight; rejects on the first failure. */
async function runPool(n: number, limit: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** Converts the tree, writes shards then index.json (last, atomically), and returns the index. */
export async function convertImageFolder(options: ConvertImageFolderOptions): Promise<ShardIndex> {
  const resize = options.resize ?? 256;
  const crop = options.crop ?? 224;
  const { height: cropHeight, width: cropWidth } = cropSides(crop);
  const channels = options.channels ?? 3;
  const shardSize = options.shardSize ?? 1000;
  const order = options.order ?? 'shuffled';
  const seed = options.seed ?? 0;
  const concurrency = options.concurrency ?? 4;
  const log = options.log ?? (() => {});
  for (const [name, value] of [
    ['resize', resize],
    ['crop height', cropHeight],
    ['crop width', cropWidth],
    ['shardSize', shardSize],
    ['concurrency', concurrency],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`convertImageFolder: ${name} must be a positive integer, got ${value}`);
  }
  if (channels !== 1 && channels !== 3) throw new Error(`convertImageFolder: channels must be 1 or 3, got ${String(channels)}`);
  // The shorter side is `resize`, so a crop side up to `resize` fits whatever the orientation.
  if (Math.max(cropHeight, cropWidth) > resize) {
    const side = cropHeight === cropWidth ? `${cropHeight}` : `${cropHeight}x${cropWidth}`;
    throw new Error(`convertImageFolder: crop ${side} is larger than the resized shorter side ${resize}`);
  }
  const out = typeof options.out === 'string' ? directoryFiles(options.out) : options.out;
  // Checked before listing the tree (seconds for ImageNet) so a forgotten --overwrite fails at once.
  if (!options.overwrite && (await out.exists(SHARD_INDEX_FILE))) {
    throw new Error(`convertImageFolder: ${out.path(SHARD_INDEX_FILE)} exists (pass overwrite to replace it)`);
  }
  const { classes, sources: sorted } = await listSources(options.root, options);
  if (options.classNames && options.classNames.length !== classes.length) {
    throw new Error(`convertImageFolder: ${options.classNames.length} class names for ${classes.length} classes`);
  }
  const writer = new ShardWriter(out, {
    height: cropHeight,
    width: cropWidth,
    channels,
    classes,
    ...(options.classNames ? { classNames: options.classNames } : {}),
    preprocessing: {
      resizeShorterSide: resize,
      centreCrop: cropHeight === cropWidth ? cropHeight : { height: cropHeight, width: cropWidth },
      colourspace: channels === 3 ? 'srgb' : 'b-w',
    },
    order,
    seed,
  });
  await writer.begin(true);
  const sources = order === 'shuffled' ? Array.from(permutation(sorted.length, createRng(seed)), (i) => sorted[i]) : sorted;
  const perImage = cropHeight * cropWidth * channels;
  const skipped: { file: string; reason: string }[] = [];
  const started = performance.now();
  for (let first = 0; first < sources.length; first += shardSize) {
    const batch = sources.slice(first, first + shardSize);
    const pixels: (Uint8Array | undefined)[] = new Array(batch.length);
    await runPool(batch.length, concurrency, async (i) => {
      try {
        pixels[i] = await preprocessImage(batch[i].path, resize, crop, channels);
      } catch (error) {
        if (options.onUnreadable !== 'skip') throw error;
        skipped.push({ file: batch[i].path, reason: (error as Error).message });
      }
    });
    // Pack in source order (not completion order) so the output is deterministic.
    const kept = batch.flatMap((source, i) => (pixels[i] ? [{ source, data: pixels[i] }] : []));
    if (kept.length === 0) continue;
    const images = new Uint8Array(kept.length * perImage);
    kept.forEach(({ data }, i) => images.set(data, i * perImage));
    await writer.writeShard(images, kept.map(({ source }) => source.label));
    const done = Math.min(first + shardSize, sources.length);
    const seconds = (performance.now() - started) / 1000;
    log(`convert ${options.root}: ${done}/${sources.length} images, ${writer.shards.length} shards, ${(done / seconds).toFixed(1)} img/s`);
  }
  skipped.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return writer.finish(skipped);
}
