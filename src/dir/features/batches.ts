/**
 * Mini-batches of (X_{k-1}, X_k, y) from stored boundary features, for recovery training and
 * scoring: the hot path of every candidate evaluation. A batch reads its rows from storage on
 * first use of each tensor (a spool file read is a page-cache copy once the rows were read
 * before; every candidate replays the same seeded batches), so nothing but the current batch
 * is in memory.
 */
import { tf } from '../../engine/backend.ts';
import { epochOrder } from '../../data/batches.ts';
import { outputMetrics } from './metrics.ts';
import type { BoundaryFeatures, Metrics } from './types.ts';

export interface FeatureBatch {
  /** X_{k-1} rows [n, ...inputShape]. */
  readonly input: tf.Tensor;
  /** X_k rows [n, ...outputShape]. */
  readonly output: tf.Tensor;
  /** [n] int32. */
  readonly labels: tf.Tensor1D;
  /** Row numbers of the split in this batch. */
  readonly rows: Int32Array;
  dispose(): void;
}

export interface FeatureBatchOptions {
  readonly batchSize: number;
  /** Seeded order per (seed, epoch). Default false (row order). */
  readonly shuffle?: boolean;
  readonly seed?: number;
  readonly epoch?: number;
  readonly dropLast?: boolean;
}

/** Mini-batches of (X_{k-1}, X_k, y) from a cached split; the caller disposes each batch. */
export function* featureBatches(features: BoundaryFeatures, split: 'train' | 'val', options: FeatureBatchOptions): Generator<FeatureBatch> {
  const data = features[split];
  const order = epochOrder(data.count, { shuffle: options.shuffle ?? false, seed: options.seed ?? 0, epoch: options.epoch ?? 0 });
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`featureBatches: batchSize must be a positive integer, got ${batchSize}`);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.subarray(start, Math.min(order.length, start + batchSize));
    if (options.dropLast && rows.length < batchSize) break;
    // Tensors are made on first use: scoring reads only the inputs, BN re-estimation only the
    // inputs, and reading and uploading the unused X_k rows would double their cost.
    // tf.keep: a first use inside a tidy (a loss closure) must not end the batch's tensor there.
    const made: tf.Tensor[] = [];
    let disposed = false;
    const once = <T extends tf.Tensor>(make: () => T): (() => T) => {
      let tensor: T | undefined;
      return () => {
        if (disposed) throw new Error(`featureBatches(${features.subnet}): batch used after dispose()`);
        if (tensor === undefined) {
          tensor = tf.keep(make());
          made.push(tensor);
        }
        return tensor;
      };
    };
    const input = once(() => tf.tensor(data.input.gather(rows), [rows.length, ...features.inputShape], 'float32'));
    const output = once(() => tf.tensor(data.output.gather(rows), [rows.length, ...features.outputShape], 'float32'));
    const labels = once(() => tf.tensor1d(Int32Array.from(rows, (r) => data.labels[r]), 'int32'));
    yield {
      get input() {
        return input();
      },
      get output() {
        return output();
      },
      get labels() {
        return labels();
      },
      rows,
      dispose(): void {
        if (disposed) return;
        disposed = true;
        tf.dispose(made);
      },
    };
  }
}

/**
 * `steps` recovery mini-batches of search-train: epochs `epochBase`, `epochBase + 1`, ... of the
 * seeded order, whole batches when the split has one (the candidate recovery's and the joint
 * recovery's batch stream; the caller disposes each batch).
 */
export function* recoveryBatches(features: BoundaryFeatures, options: { readonly batchSize: number; readonly seed: number; readonly steps: number; readonly epochBase: number }): Generator<FeatureBatch> {
  const dropLast = features.train.count >= options.batchSize;
  let produced = 0;
  for (let epoch = options.epochBase; produced < options.steps; epoch++) {
    for (const batch of featureBatches(features, 'train', { batchSize: options.batchSize, shuffle: true, seed: options.seed, epoch, dropLast })) {
      if (produced >= options.steps) {
        batch.dispose();
        return;
      }
      produced++;
      yield batch;
    }
  }
}

/** X_{k-1} batches of search-train in the seeded order of `epoch`, for BN re-estimation; disposes each batch's other tensors itself. */
export function* bnInputBatches(features: BoundaryFeatures, options: { readonly batchSize: number; readonly seed: number; readonly epoch: number }): Generator<tf.Tensor> {
  for (const batch of featureBatches(features, 'train', { batchSize: options.batchSize, shuffle: true, seed: options.seed, epoch: options.epoch })) {
    try {
      yield batch.input;
    } finally {
      batch.dispose();
    }
  }
}

/**
 * CE and accuracy of `forward` (e.g. T_k, or T_k after S_k') applied to the split's X_{k-1}
 * (`from: 'input'`) or X_k (`from: 'output'`), in inference mode. The impairment of a candidate
 * is `metrics.loss - features.baseline.loss`.
 */
export function evaluateOnFeatures(
  forward: tf.LayersModel | ((x: tf.Tensor) => tf.Tensor),
  features: BoundaryFeatures,
  split: 'train' | 'val',
  from: 'input' | 'output',
  batchSize = 128,
): Metrics {
  const apply = typeof forward === 'function' ? forward : (x: tf.Tensor) => forward.apply(x, { training: false }) as tf.Tensor;
  const data = features[split];
  const outputs = new Float32Array(data.count * features.classes);
  for (const batch of featureBatches(features, split, { batchSize })) {
    try {
      const logits = tf.tidy(() => apply(from === 'input' ? batch.input : batch.output));
      try {
        if (logits.size !== batch.rows.length * features.classes) {
          throw new Error(`evaluateOnFeatures(${features.subnet}): model output [${logits.shape.join(', ')}] is not [batch, ${features.classes}]`);
        }
        outputs.set(logits.dataSync() as Float32Array, batch.rows[0] * features.classes);
      } finally {
        logits.dispose();
      }
    } finally {
      batch.dispose();
    }
  }
  return outputMetrics(outputs, data.labels, features.classes, features.outputKind);
}
