/**
 * Mini-batches as Float32Array NHWC + Int32Array labels: seeded epoch order, per-channel
 * normalisation, random crop with zero padding and horizontal flip, all in plain JS loops over
 * the uint8 pixels (no tf ops, so no tensors to leak and no backend dependence).
 * `tensor-batches.ts` wraps these in tf tensors for training.
 *
 * Determinism contract: the batches are a pure function of (data set, options). The epoch order
 * comes from (seed, epoch), the augmentation of batch b from (seed, epoch, b), so a run resumed
 * at `startBatch` sees exactly the batches an uninterrupted one would.
 */
import type { ImageDataset } from './dataset.ts';
import { createRng, permutation } from './prng.ts';
import type { Rng } from './prng.ts';

/** Per-channel mean and standard deviation, on the [0, 1] pixel scale (CIFAR-10: 0.4914, ...). */
export interface ChannelStats {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/**
 * How uint8 pixels become floats: `unit` = p / 255, `raw` = p (0..255), or
 * ChannelStats = (p / 255 - mean[c]) / std[c].
 */
export type Normalization = 'unit' | 'raw' | ChannelStats;

export interface AugmentOptions {
  /**
   * Random crop after zero padding by this many pixels on each side (0 = no crop). Padding is
   * black (raw pixel 0) before normalisation, as torchvision's RandomCrop(padding) does.
   * Typical: 4 for 32x32, 2 for 28x28.
   */
  readonly cropPadding?: number;
  /** Mirror left-right with probability 1/2. Fine for CIFAR, ImageNet and Fashion-MNIST clothes. */
  readonly flip?: boolean;
}

export interface BatchOptions {
  readonly batchSize: number;
  /** Shuffle each epoch with a permutation drawn from (seed, epoch). Default true. */
  readonly shuffle?: boolean;
  readonly seed?: number;
  readonly epoch?: number;
  /** Default: no augmentation (evaluation). */
  readonly augment?: AugmentOptions | false;
  /** Default 'unit'. */
  readonly normalize?: Normalization;
  /** Drop a last partial batch (keeps batch-norm statistics sane for tiny remainders). Default false. */
  readonly dropLast?: boolean;
  /** Iterate only these images (e.g. the search subset) without copying the data set. */
  readonly indices?: ArrayLike<number>;
  /** Skip the first `startBatch` batches of the epoch (resume mid-epoch). Default 0. */
  readonly startBatch?: number;
  /**
   * Where a batch's floats go: a Float32Array of exactly `length` elements that the batch then
   * owns (every element is overwritten). Default: a new array. The tensor iterators pass a pool
   * that takes an array back when its batch is disposed (tensor-batches.ts).
   */
  readonly allocateFloats?: (length: number) => Float32Array;
}

export interface ArrayBatch {
  /** size * height * width * channels floats, NHWC. */
  readonly x: Float32Array;
  readonly y: Int32Array;
  /** Data set indices of the images in this batch, in batch order. */
  readonly indices: Int32Array;
  readonly shape: readonly [number, number, number, number];
  /** Position of this batch in the epoch (0-based, counting skipped batches). */
  readonly batchIndex: number;
}

// Stream tags keep the order RNG and the augmentation RNG independent: turning augmentation on
// or off never changes the epoch order.
const ORDER_STREAM = 0x6f726472; // 'ordr'
const AUGMENT_STREAM = 0x61756700; // 'aug'

/** The generator of batch `batch`'s augmentation: one per (seed, epoch, batch), drawn in batch order. */
export function augmentRng(seed: number, epoch: number, batch: number): Rng {
  return createRng(seed, epoch, batch, AUGMENT_STREAM);
}

export function batchCount(examples: number, batchSize: number, dropLast = false): number {
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  return dropLast ? Math.floor(examples / batchSize) : Math.ceil(examples / batchSize);
}

/**
 * The order in which an epoch visits images: `indices` (or 0..count-1), permuted by a generator
 * seeded from (seed, epoch) when `shuffle` is on. Every index appears exactly once.
 */
export function epochOrder(
  count: number,
  options: { readonly shuffle?: boolean; readonly seed?: number; readonly epoch?: number; readonly indices?: ArrayLike<number> } = {},
): Int32Array {
  const { shuffle = true, seed = 0, epoch = 0, indices } = options;
  let base: Int32Array;
  if (indices === undefined) {
    base = new Int32Array(count);
    for (let i = 0; i < count; i++) base[i] = i;
  } else {
    base = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i];
      if (!Number.isInteger(index) || index < 0 || index >= count) {
        throw new Error(`batch indices: ${index} at position ${i} is outside 0..${count - 1}`);
      }
      base[i] = index;
    }
  }
  if (!shuffle) return base;
  const perm = permutation(base.length, createRng(seed, epoch, ORDER_STREAM));
  const ordered = new Int32Array(base.length);
  for (let i = 0; i < base.length; i++) ordered[i] = base[perm[i]];
  return ordered;
}

/** Per-channel affine map from uint8 to float: out = p * scale[c] + bias[c]. */
export interface PixelMap {
  readonly scale: Float32Array;
  readonly bias: Float32Array;
}

export function pixelMap(normalize: Normalization, channels: number): PixelMap {
  const scale = new Float32Array(channels);
  const bias = new Float32Array(channels);
  if (normalize === 'unit' || normalize === 'raw') {
    scale.fill(normalize === 'unit' ? 1 / 255 : 1);
    return { scale, bias };
  }
  if (normalize.mean.length !== channels || normalize.std.length !== channels) {
    throw new Error(
      `normalisation has ${normalize.mean.length} means and ${normalize.std.length} stds for ${channels}-channel images`,
    );
  }
  for (let c = 0; c < channels; c++) {
    const std = normalize.std[c];
    if (!(std > 0) || !Number.isFinite(normalize.mean[c])) {
      throw new Error(`normalisation channel ${c}: std must be > 0 and mean finite, got mean ${normalize.mean[c]} std ${std}`);
    }
    scale[c] = 1 / (255 * std);
    bias[c] = -normalize.mean[c] / std;
  }
  return { scale, bias };
}

/** One image's augmentation: output(y, x) = source(y + dy, flip ? w-1-x+dx : x+dx), 0 outside. */
export interface ImageTransform {
  readonly dy: number;
  readonly dx: number;
  readonly flip: boolean;
}

export const IDENTITY_TRANSFORM: ImageTransform = { dy: 0, dx: 0, flip: false };

/** Draws one transform: offsets uniform in [-pad, pad] (a crop of the padded image), then a coin for the flip. */
export function drawTransform(rng: Rng, augment: AugmentOptions): ImageTransform {
  const pad = augment.cropPadding ?? 0;
  const dy = pad > 0 ? rng.nextInt(2 * pad + 1) - pad : 0;
  const dx = pad > 0 ? rng.nextInt(2 * pad + 1) - pad : 0;
  const flip = augment.flip === true ? rng.nextUint32() >= 0x80000000 : false;
  return { dy, dx, flip };
}

/**
 * Writes one transformed, normalised image: `source` holds height*width*channels uint8 NHWC at
 * `sourceOffset`; the floats go to `out` at `outOffset`. Crop-then-flip, as torchvision applies
 * RandomCrop then RandomHorizontalFlip.
 */
export function transformImage(
  source: Uint8Array,
  sourceOffset: number,
  height: number,
  width: number,
  channels: number,
  transform: ImageTransform,
  map: PixelMap,
  out: Float32Array,
  outOffset: number,
): void {
  const { dy, dx, flip } = transform;
  const { scale, bias } = map;
  const rowLength = width * channels;
  for (let y = 0; y < height; y++) {
    const sy = y + dy;
    const outRow = outOffset + y * rowLength;
    if (sy < 0 || sy >= height) {
      // A padded row: every pixel is raw 0, i.e. the bias after normalisation.
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) out[outRow + x * channels + c] = bias[c];
      }
      continue;
    }
    const sourceRow = sourceOffset + sy * rowLength;
    for (let x = 0; x < width; x++) {
      const sx = (flip ? width - 1 - x : x) + dx;
      const o = outRow + x * channels;
      if (sx < 0 || sx >= width) {
        for (let c = 0; c < channels; c++) out[o + c] = bias[c];
      } else {
        const s = sourceRow + sx * channels;
        for (let c = 0; c < channels; c++) out[o + c] = source[s + c] * scale[c] + bias[c];
      }
    }
  }
}

/** Throws unless the crop padding fits images of this size. */
export function validateAugment(augment: AugmentOptions, images: { readonly name: string; readonly height: number; readonly width: number }): void {
  const pad = augment.cropPadding ?? 0;
  if (!Number.isInteger(pad) || pad < 0 || pad >= Math.min(images.height, images.width)) {
    throw new Error(
      `augment.cropPadding must be an integer in 0..${Math.min(images.height, images.width) - 1} for ${images.name}, got ${pad}`,
    );
  }
}

/**
 * Yields the batches of one epoch as fresh arrays (the consumer may keep them). Batch b holds
 * epochOrder(...)[b*batchSize .. (b+1)*batchSize).
 */
export function* arrayBatches(dataset: ImageDataset, options: BatchOptions): Generator<ArrayBatch> {
  const { batchSize, dropLast = false, normalize = 'unit', seed = 0, epoch = 0, startBatch = 0 } = options;
  const augment = options.augment === false || options.augment === undefined ? undefined : options.augment;
  if (augment) validateAugment(augment, dataset);
  if (!Number.isInteger(startBatch) || startBatch < 0) throw new Error(`startBatch must be a non-negative integer, got ${startBatch}`);
  const order = epochOrder(dataset.count, options);
  const total = batchCount(order.length, batchSize, dropLast);
  const map = pixelMap(normalize, dataset.channels);
  const { height, width, channels } = dataset;
  const perImage = height * width * channels;
  for (let b = startBatch; b < total; b++) {
    const start = b * batchSize;
    const size = Math.min(batchSize, order.length - start);
    const indices = order.slice(start, start + size);
    const x = options.allocateFloats ? options.allocateFloats(size * perImage) : new Float32Array(size * perImage);
    const y = new Int32Array(size);
    const rng = augment ? augmentRng(seed, epoch, b) : undefined;
    for (let i = 0; i < size; i++) {
      const index = indices[i];
      y[i] = dataset.labels[index];
      const transform = rng && augment ? drawTransform(rng, augment) : IDENTITY_TRANSFORM;
      transformImage(dataset.images, index * perImage, height, width, channels, transform, map, x, i * perImage);
    }
    yield { x, y, indices, shape: [size, height, width, channels], batchIndex: b };
  }
}

/**
 * Per-channel mean and std on the [0, 1] scale over the whole data set (or `indices`), in float64
 * so 1.28M images do not lose precision. Use the training split's stats for every split.
 */
export function computeChannelStats(dataset: ImageDataset, indices?: ArrayLike<number>): ChannelStats {
  const { channels } = dataset;
  const perImage = dataset.height * dataset.width * channels;
  const sum = new Float64Array(channels);
  const sumSq = new Float64Array(channels);
  const n = indices === undefined ? dataset.count : indices.length;
  if (n === 0) throw new Error(`computeChannelStats(${dataset.name}): no images`);
  // Integer sums per image are exact in float64 (at most 255^2 * 50k per channel), then accumulated.
  const imageSum = new Float64Array(channels);
  const imageSumSq = new Float64Array(channels);
  for (let k = 0; k < n; k++) {
    const index = indices === undefined ? k : indices[k];
    const offset = index * perImage;
    imageSum.fill(0);
    imageSumSq.fill(0);
    for (let p = 0; p < perImage; p += channels) {
      for (let c = 0; c < channels; c++) {
        const v = dataset.images[offset + p + c];
        imageSum[c] += v;
        imageSumSq[c] += v * v;
      }
    }
    for (let c = 0; c < channels; c++) {
      sum[c] += imageSum[c];
      sumSq[c] += imageSumSq[c];
    }
  }
  const pixels = n * dataset.height * dataset.width;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    const m = sum[c] / pixels;
    const variance = Math.max(0, sumSq[c] / pixels - m * m);
    mean.push(m / 255);
    std.push(Math.sqrt(variance) / 255);
  }
  return { mean, std };
}
