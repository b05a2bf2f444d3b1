/**
 * The training-facing iterators: arrayBatches (batches.ts, in-memory sets) and sourceBatches
 * (stream-batches.ts, any ImageSource, read as needed) wrapped in tf tensors.
 *
 * Ownership is explicit: every yielded batch owns two tensors and the caller must call
 * `batch.dispose()` (or use forEachBatch, which does it). The iterator never disposes a batch
 * behind the caller's back, so holding on to one (e.g. for a boundary-feature cache) is safe.
 */
import { tf } from '../engine/backend.ts';
import type { ImageDataset } from './dataset.ts';
import { arrayBatches } from './batches.ts';
import type { ArrayBatch, BatchOptions } from './batches.ts';
import type { ImageSource } from './image-source.ts';
import { sourceBatches } from './stream-batches.ts';
import type { SourceBatchOptions } from './stream-batches.ts';

export interface TensorBatch {
  /** [size, height, width, channels] float32. */
  readonly x: tf.Tensor4D;
  /** [size] int32 class labels. */
  readonly y: tf.Tensor1D;
  readonly indices: Int32Array;
  readonly batchIndex: number;
  /** Disposes x and y. Idempotent. */
  dispose(): void;
}

/**
 * Float arrays of disposed batches, handed to the next batches. A 224x224 batch of 32 is 19 MB
 * (of 256, for evaluation, 154 MB): allocated fresh every step, such arrays are page-faulted in
 * each time and pile up until a garbage collection, which makes a worker's peak memory depend
 * on GC timing. An array is taken back only after its tensor is disposed, when no backend reads
 * it any more (the cpu backend keeps the array itself as the tensor's data), so a batch the
 * caller keeps (not disposed) keeps its array.
 */
class FloatPool {
  readonly #free: Float32Array[] = [];

  constructor(private readonly maxFree: number) {}

  readonly acquire = (length: number): Float32Array => {
    let best = -1;
    this.#free.forEach((array, i) => {
      if (array.length >= length && (best < 0 || array.length < this.#free[best].length)) best = i;
    });
    return best >= 0 ? this.#free.splice(best, 1)[0].subarray(0, length) : new Float32Array(length);
  };

  release(view: Float32Array): void {
    if (this.#free.length < this.maxFree) this.#free.push(new Float32Array(view.buffer));
  }
}

/** One training and one evaluation batch in use, and the next of each being built. */
const floats = new FloatPool(4);

/**
 * One array batch as tensors (the caller disposes them). With `recycle`, the batch's float
 * array goes back to the pool it came from once the batch is disposed.
 */
export function toTensorBatch(batch: ArrayBatch, recycle?: (x: Float32Array) => void): TensorBatch {
  const x = tf.tensor4d(batch.x, [...batch.shape], 'float32');
  const y = tf.tensor1d(batch.y, 'int32');
  let disposed = false;
  return {
    x,
    y,
    indices: batch.indices,
    batchIndex: batch.batchIndex,
    dispose(): void {
      if (disposed) return;
      disposed = true;
      x.dispose();
      y.dispose();
      recycle?.(batch.x);
    },
  };
}

const recycleFloats = (x: Float32Array): void => floats.release(x);

/** Yields tensor batches; the caller disposes each one. Call `await initEngine()` first. */
export function* batches(dataset: ImageDataset, options: BatchOptions): Generator<TensorBatch> {
  for (const batch of arrayBatches(dataset, { ...options, allocateFloats: floats.acquire })) yield toTensorBatch(batch, recycleFloats);
}

/**
 * Tensor batches of any ImageSource, read as needed (stream-batches.ts): a batch's tensors are
 * created when it is pulled, so the memory held is the stream's, not the data set's.
 */
export async function* sourceTensorBatches(source: ImageSource, options: SourceBatchOptions): AsyncGenerator<TensorBatch> {
  for await (const batch of sourceBatches(source, { ...options, allocateFloats: floats.acquire })) yield toTensorBatch(batch, recycleFloats);
}

/**
 * Runs `step` on every batch of one epoch and disposes each batch afterwards, even when `step`
 * throws. Returns the number of batches seen.
 */
export async function forEachBatch(
  dataset: ImageDataset,
  options: BatchOptions,
  step: (batch: TensorBatch) => void | Promise<void>,
): Promise<number> {
  let seen = 0;
  for (const batch of batches(dataset, options)) {
    try {
      await step(batch);
    } finally {
      batch.dispose();
    }
    seen++;
  }
  return seen;
}
