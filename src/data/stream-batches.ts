/**
 * The batches of one epoch over any ImageSource, read as they are needed: what fine-tuning,
 * evaluation and BN re-estimation consume when a data set does not fit in memory.
 *
 * - A sharded source (ImageNet shards in a directory or a store) is STREAMED: whole shards in the
 *   order of stream-order.ts, the next `prefetch` shards read while the current one is consumed,
 *   pixels decoded (normalised, augmented) straight from the shuffle buffer into the batch array.
 *   Memory: the shuffle buffer, the shards in flight and one batch, whatever the data set size.
 * - Any other source (in-memory Fashion-MNIST/CIFAR, or a sharded source asked for an order a
 *   stream cannot give) is read by RANDOM ACCESS, batch by batch, in epochOrder (batches.ts) with
 *   the next batch's read in flight. For an in-memory set these are exactly arrayBatches' batches.
 *
 * Either way: same (seed, epoch, options) -> same batches; augmentation of batch b comes from
 * (seed, epoch, b) as in batches.ts; `startBatch` resumes an epoch with the batches an
 * uninterrupted run would have seen from there on.
 */
import { augmentRng, batchCount, drawTransform, epochOrder, IDENTITY_TRANSFORM, pixelMap, transformImage, validateAugment } from './batches.ts';
import type { ArrayBatch, AugmentOptions, BatchOptions, PixelMap } from './batches.ts';
import { isShardedSource } from './image-source.ts';
import type { ImageSource, ShardedImageSource } from './image-source.ts';
import { prefaultShared, sharedBytes } from './hash-thread.ts';
import type { Rng } from './prng.ts';
import { StreamPlan } from './stream-order.ts';
import type { StreamOrderOptions } from './stream-order.ts';

export interface SourceBatchOptions extends BatchOptions {
  /** Shuffle-buffer slots (images) of a streamed, shuffled epoch. Default DEFAULT_SHUFFLE_BUFFER. */
  readonly shuffleBuffer?: number;
  /** Shards (streaming) or batches (random access) read ahead. Default 2 shards / 1 batch. */
  readonly prefetch?: number;
}

/**
 * 1024 images: 150 MB at 224x224x3. Enough to mix the ~1000-image shards the converter writes
 * (whose classes are already shuffled across shards), small next to a GPU worker's memory.
 */
export const DEFAULT_SHUFFLE_BUFFER = 1024;

/** Collects images into batch arrays, drawing each image's augmentation in batch order. */
class BatchAssembler {
  readonly #perImage: number;
  readonly #map: PixelMap;
  #x: Float32Array = new Float32Array(0);
  #y = new Int32Array(0);
  #indices = new Int32Array(0);
  #size = 0;
  #filled = 0;
  #batch = 0;
  #rng: Rng | undefined;

  constructor(
    private readonly source: ImageSource,
    private readonly options: {
      readonly batchSize: number;
      readonly total: number;
      readonly seed: number;
      readonly epoch: number;
      readonly augment: AugmentOptions | undefined;
      readonly allocateFloats: ((length: number) => Float32Array) | undefined;
    },
    map: PixelMap,
  ) {
    this.#perImage = source.height * source.width * source.channels;
    this.#map = map;
  }

  /** Starts batch `batch` (its size follows from the epoch's total). */
  start(batch: number): void {
    const { batchSize, total, seed, epoch, augment } = this.options;
    this.#batch = batch;
    this.#size = Math.min(batchSize, total - batch * batchSize);
    const floats = this.#size * this.#perImage;
    this.#x = this.options.allocateFloats ? this.options.allocateFloats(floats) : new Float32Array(floats);
    this.#y = new Int32Array(this.#size);
    this.#indices = new Int32Array(this.#size);
    this.#filled = 0;
    this.#rng = augment ? augmentRng(seed, epoch, batch) : undefined;
  }

  /** Adds image `global` whose pixels start at `pixels[offset]`; true when the batch is full. */
  add(global: number, pixels: Uint8Array, offset: number): boolean {
    const { height, width, channels } = this.source;
    const i = this.#filled++;
    const transform = this.#rng && this.options.augment ? drawTransform(this.#rng, this.options.augment) : IDENTITY_TRANSFORM;
    transformImage(pixels, offset, height, width, channels, transform, this.#map, this.#x, i * this.#perImage);
    this.#y[i] = this.source.labels[global];
    this.#indices[i] = global;
    return this.#filled === this.#size;
  }

  take(): ArrayBatch {
    const { height, width, channels } = this.source;
    return { x: this.#x, y: this.#y, indices: this.#indices, shape: [this.#size, height, width, channels], batchIndex: this.#batch };
  }
}

/**
 * Byte buffers recycled across shards, epochs and streams (a training epoch's, then the test
 * split's). A fresh 150 MB shard buffer is faulted in page by page, which costs more than
 * reading the shard into a buffer already mapped (measured on this project's dev VM: ~450 ms
 * against ~10 ms of system time per 150 MB); and one pool for all streams keeps a worker's peak
 * at one stream's buffers. Buffers are handed out exclusively: concurrent streams never share one.
 */
class BufferPool {
  readonly #free: Uint8Array[] = [];

  constructor(private readonly maxFree: number) {}

  /** The smallest free buffer of at least `bytes`, or a new one. */
  acquire(bytes: number): Uint8Array {
    let best = -1;
    this.#free.forEach((buffer, i) => {
      if (buffer.length >= bytes && (best < 0 || buffer.length < this.#free[best].length)) best = i;
    });
    // Shared memory, so the helper thread can check a shard's sha256 in place (hash-thread.ts).
    return best >= 0 ? this.#free.splice(best, 1)[0] : sharedBytes(bytes);
  }

  release(buffer: Uint8Array): void {
    if (this.#free.length < this.maxFree) this.#free.push(buffer);
  }

  /**
   * Makes free buffers of (at least) `sizes` bytes ready: the free ones that fit are kept, the
   * missing ones allocated (up to the pool's bound) and faulted in on the helper thread, largest
   * first. Resolves when they are; they may be acquired and used before.
   */
  async reserve(sizes: readonly number[]): Promise<void> {
    const unmatched = [...this.#free];
    const fresh: Uint8Array[] = [];
    for (const bytes of [...sizes].sort((a, b) => b - a)) {
      let best = -1;
      unmatched.forEach((buffer, i) => {
        if (buffer.length >= bytes && (best < 0 || buffer.length < unmatched[best].length)) best = i;
      });
      if (best >= 0) unmatched.splice(best, 1);
      else if (this.#free.length < this.maxFree) {
        const buffer = sharedBytes(bytes);
        this.#free.push(buffer);
        fresh.push(buffer);
      }
    }
    for (const buffer of fresh) await prefaultShared(buffer);
  }
}

/** Enough free buffers for one stream's shuffle buffer and its shards in flight at the default prefetch. */
const pool = new BufferPool(6);

/**
 * The shards of one streamed epoch: reads them in the plan's order, the `depth` shards after the
 * current one in flight, each into a recycled buffer. A read that fails is reported when its
 * shard is reached (never as an unhandled rejection).
 */
class ShardReader {
  readonly #pending = new Map<number, { read: Promise<Uint8Array>; buffer: Uint8Array }>();
  readonly #position = new Map<number, number>();
  #started = 0;
  #current: { shard: number; pixels: Uint8Array; buffer: Uint8Array } | undefined;

  constructor(
    private readonly source: ShardedImageSource,
    private readonly order: Int32Array,
    private readonly depth: number,
    private readonly pool: BufferPool,
  ) {
    order.forEach((shard, i) => this.#position.set(shard, i));
  }

  /** The pixels of `shard`; moving to a new shard frees the previous one and reads ahead. */
  async pixels(shard: number): Promise<Uint8Array> {
    if (this.#current?.shard === shard) return this.#current.pixels;
    const at = this.#position.get(shard);
    if (at === undefined) throw new Error(`stream of ${this.source.name}: shard ${shard} is not in the epoch's shard order`);
    if (this.#current) this.pool.release(this.#current.buffer);
    this.#current = undefined;
    // Shards before `at` that were read ahead but not used (a resumed epoch skips them) are dropped
    // once their reads settle (a buffer being read into cannot be reused).
    for (const [pending, { read, buffer }] of this.#pending) {
      if ((this.#position.get(pending) ?? 0) < at) {
        this.#pending.delete(pending);
        void read.then(() => this.pool.release(buffer), () => undefined);
      }
    }
    this.#started = Math.max(this.#started, at);
    while (this.#started <= Math.min(at + this.depth, this.order.length - 1)) this.#start(this.order[this.#started++]);
    const entry = this.#pending.get(shard);
    this.#pending.delete(shard);
    if (!entry) throw new Error(`stream of ${this.source.name}: shard ${shard} was not read`);
    const pixels = await entry.read;
    this.#current = { shard, pixels, buffer: entry.buffer };
    return pixels;
  }

  /** Returns the current shard's buffer to the pool (the stream is done with it). */
  close(): void {
    if (this.#current) this.pool.release(this.#current.buffer);
    this.#current = undefined;
  }

  #start(shard: number): void {
    if (this.#pending.has(shard)) return;
    const perImage = this.source.height * this.source.width * this.source.channels;
    const buffer = this.pool.acquire(this.source.shardCounts[shard] * perImage);
    const read = this.source.readShard(shard, buffer);
    read.catch(() => undefined);
    this.#pending.set(shard, { read, buffer });
  }
}

/** Flags of the selected images, or undefined when an index repeats (a stream visits each image once). */
function selectionFlags(count: number, indices: ArrayLike<number>): Uint8Array | undefined {
  const flags = new Uint8Array(count);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`batch indices: ${index} at position ${i} is outside 0..${count - 1}`);
    if (flags[index] === 1) return undefined;
    flags[index] = 1;
  }
  return flags;
}

function isAscending(indices: ArrayLike<number>): boolean {
  for (let i = 1; i < indices.length; i++) if (indices[i] <= indices[i - 1]) return false;
  return true;
}

function checkOptions(source: ImageSource, options: SourceBatchOptions): void {
  const startBatch = options.startBatch ?? 0;
  if (!Number.isInteger(startBatch) || startBatch < 0) throw new Error(`startBatch must be a non-negative integer, got ${startBatch}`);
  const prefetch = options.prefetch ?? 1;
  if (!Number.isInteger(prefetch) || prefetch < 0) throw new Error(`prefetch must be a non-negative integer, got ${prefetch}`);
  if (options.augment) validateAugment(options.augment, source);
}

/** Whether an epoch of `source` with `options` is streamed, and which images it selects then. */
function streamSelection(source: ImageSource, options: SourceBatchOptions): { readonly source: ShardedImageSource; readonly selected: Uint8Array | undefined } | undefined {
  if (!isShardedSource(source)) return undefined;
  const indices = options.indices;
  if (indices === undefined) return { source, selected: undefined };
  // Without shuffling a stream gives index order, so only an ascending subset can be streamed.
  const selected = (options.shuffle ?? true) || isAscending(indices) ? selectionFlags(source.count, indices) : undefined;
  return selected === undefined ? undefined : { source, selected };
}

/** The batches of one epoch of `source` (see the module comment for which reader is used). */
export async function* sourceBatches(source: ImageSource, options: SourceBatchOptions): AsyncGenerator<ArrayBatch> {
  checkOptions(source, options);
  const stream = streamSelection(source, options);
  if (stream) yield* streamedBatches(stream.source, options, stream.selected);
  else yield* randomAccessBatches(source, options);
}

/**
 * Readies the memory a streamed epoch of `source` with `options` will hold (its shuffle buffer
 * and the shards it has in flight), faulted in on the helper thread, so that the epoch's first
 * pass over fresh buffers does not run on the training thread. Call it well before the epoch
 * (finalize calls it before its "before" evaluation); resolves when the memory is ready. Nothing
 * to do for an epoch read by random access.
 */
export async function prepareSourceBatches(source: ImageSource, options: SourceBatchOptions): Promise<void> {
  checkOptions(source, options);
  const stream = streamSelection(source, options);
  if (!stream) return;
  const plan = new StreamPlan(planOptions(stream.source, options, stream.selected));
  const perImage = source.height * source.width * source.channels;
  const largestShard = Math.max(0, ...plan.shardOrder.map((shard) => stream.source.shardCounts[shard]));
  // The current shard and `prefetch` read ahead (ShardReader), and the buffer's slots.
  const sizes = Array.from({ length: Math.min(plan.shardOrder.length, (options.prefetch ?? 2) + 1) }, () => largestShard * perImage);
  if (plan.capacity > 0) sizes.push(plan.capacity * perImage);
  await pool.reserve(sizes);
}

function planOptions(source: ShardedImageSource, options: SourceBatchOptions, selected: Uint8Array | undefined): StreamOrderOptions {
  return {
    shardCounts: source.shardCounts,
    shuffle: options.shuffle ?? true,
    seed: options.seed ?? 0,
    epoch: options.epoch ?? 0,
    shuffleBuffer: options.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
    ...(selected ? { selected } : {}),
  };
}

async function* randomAccessBatches(source: ImageSource, options: SourceBatchOptions): AsyncGenerator<ArrayBatch> {
  const { batchSize, dropLast = false, seed = 0, epoch = 0, startBatch = 0, prefetch = 1 } = options;
  const augment = options.augment || undefined;
  const order = epochOrder(source.count, options);
  const total = batchCount(order.length, batchSize, dropLast);
  const assembler = new BatchAssembler(
    source,
    { batchSize, total: order.length, seed, epoch, augment, allocateFloats: options.allocateFloats },
    pixelMap(options.normalize ?? 'unit', source.channels),
  );
  const perImage = source.height * source.width * source.channels;
  const pending = new Map<number, Promise<Uint8Array>>();
  const read = (b: number): void => {
    if (b >= total || pending.has(b)) return;
    const indices = order.subarray(b * batchSize, Math.min(order.length, (b + 1) * batchSize));
    const pixels = source.readImages(indices);
    pixels.catch(() => undefined);
    pending.set(b, pixels);
  };
  for (let b = startBatch; b < total; b++) {
    for (let ahead = b; ahead <= b + prefetch; ahead++) read(ahead);
    const pixels = await (pending.get(b) as Promise<Uint8Array>);
    pending.delete(b);
    assembler.start(b);
    const first = b * batchSize;
    const size = Math.min(batchSize, order.length - first);
    for (let i = 0; i < size; i++) assembler.add(order[first + i], pixels, i * perImage);
    yield assembler.take();
  }
}

async function* streamedBatches(source: ShardedImageSource, options: SourceBatchOptions, selected: Uint8Array | undefined): AsyncGenerator<ArrayBatch> {
  const { batchSize, dropLast = false, seed = 0, epoch = 0, startBatch = 0 } = options;
  const augment = options.augment || undefined;
  const plan = new StreamPlan(planOptions(source, options, selected));
  const batches = batchCount(plan.total, batchSize, dropLast);
  if (startBatch >= batches) return;
  const emitLimit = Math.min(plan.total, batches * batchSize);
  const skip = startBatch * batchSize;
  const perImage = source.height * source.width * source.channels;
  const assembler = new BatchAssembler(
    source,
    { batchSize, total: plan.total, seed, epoch, augment, allocateFloats: options.allocateFloats },
    pixelMap(options.normalize ?? 'unit', source.channels),
  );
  const prefetch = options.prefetch ?? 2;
  const shards = new ShardReader(source, plan.shardOrder, prefetch, pool);
  // Pixels of the buffer's slots. A resumed epoch replays its skipped part without pixels and
  // fills the slots by random access when it reaches `skip`.
  const slotBuffer = plan.capacity > 0 ? pool.acquire(plan.capacity * perImage) : undefined;
  let slotPixels = skip === 0 ? slotBuffer : undefined;
  let emitted = 0;
  try {
    for (const event of plan.events()) {
      if (event.kind === 'push') {
        if (slotPixels) slotPixels.set((await shards.pixels(event.shard)).subarray(event.local * perImage, (event.local + 1) * perImage), event.slot * perImage);
        continue;
      }
      if (event.kind === 'move') {
        slotPixels?.copyWithin(event.to * perImage, event.from * perImage, (event.from + 1) * perImage);
        continue;
      }
      if (emitted === emitLimit) break;
      if (emitted >= skip) {
        if (emitted % batchSize === 0) assembler.start(emitted / batchSize);
        let full: boolean;
        if (event.kind === 'pass') {
          full = assembler.add(event.global, await shards.pixels(event.shard), event.local * perImage);
        } else {
          if (slotPixels === undefined && slotBuffer) {
            slotBuffer.set(await source.readImages(plan.slots.subarray(0, plan.filled)));
            slotPixels = slotBuffer;
          }
          full = assembler.add(event.global, slotPixels as Uint8Array, event.slot * perImage);
        }
        if (full) yield assembler.take();
      }
      emitted++;
    }
    if (emitted !== emitLimit) throw new Error(`stream of ${source.name}: emitted ${emitted} images, expected ${emitLimit}`);
  } finally {
    shards.close();
    if (slotBuffer) pool.release(slotBuffer);
  }
}
