/**
 * Evaluation of a classifier: mean cross-entropy, top-1 and top-5 accuracy over a stream of
 * batches, in inference mode (BN moving statistics, no dropout).
 *
 * Sums (not means of batch means) are accumulated on the device and read once at the end, so
 * a last, smaller batch is weighted correctly and there is one host sync per evaluation. The
 * same running sums serve a batch list (`evaluate`), an async stream (`evaluateStream`) and an
 * ImageSource read as needed (`evaluateSource`: ImageNet's validation split is never held whole),
 * so the three agree exactly on the same batches.
 */
import { tf } from '../engine/backend.ts';
import type { ImageDataset } from '../data/dataset.ts';
import type { Normalization } from '../data/batches.ts';
import type { ImageSource } from '../data/image-source.ts';
import { batches as tensorBatches, sourceTensorBatches } from '../data/tensor-batches.ts';
import { perExampleCrossEntropy } from './losses.ts';
import { disposeBatch, logitsFn } from './step.ts';
import type { Batch, LogitsFn } from './step.ts';

export interface EvaluationResult {
  /** Mean cross-entropy (no label smoothing) over all examples. */
  readonly loss: number;
  /** Fraction of examples whose label is the arg-max logit. */
  readonly top1: number;
  /** Fraction whose label is among the 5 largest logits (among all logits when there are fewer than 5 classes). */
  readonly top5: number;
  readonly count: number;
}

export interface EvaluateOptions {
  /** When evaluating an ImageDataset: batch size (default 256), normalisation (default 'unit', must match training), subset. */
  readonly batchSize?: number;
  readonly normalize?: Normalization;
  readonly indices?: ArrayLike<number>;
  /**
   * Dispose each batch after use (default true: batch iterators hand out fresh tensors and
   * the consumer frees them). Pass false to evaluate tensors you keep, e.g. cached features.
   */
  readonly disposeBatches?: boolean;
}

/**
 * Batches of `dataset` for evaluation (no shuffle, no augmentation), normalised like training.
 * The consumer disposes each one (evaluate does).
 */
export function evaluationBatches(
  dataset: ImageDataset,
  options: { readonly batchSize?: number; readonly normalize?: Normalization; readonly indices?: ArrayLike<number> } = {},
): Iterable<Batch> {
  return tensorBatches(dataset, { batchSize: options.batchSize ?? 256, shuffle: false, normalize: options.normalize, indices: options.indices });
}

function isDataset(data: Iterable<Batch> | ImageDataset | ImageSource): data is ImageDataset {
  return (data as ImageDataset).images instanceof Uint8Array;
}

/** Labels as class indices [batch] (arg-max of one-hot/soft targets). */
function labelIndices(labels: tf.Tensor): tf.Tensor1D {
  return (labels.rank === 2 ? tf.argMax(labels, 1) : tf.cast(labels, 'int32')) as tf.Tensor1D;
}

/** Running loss/top-1/top-5 sums on the device; read once by `result`. */
class RunningEvaluation {
  #lossSum: tf.Scalar = tf.scalar(0);
  #top1Sum: tf.Scalar = tf.scalar(0);
  #top5Sum: tf.Scalar = tf.scalar(0);
  #count = 0;
  readonly #forward: LogitsFn;

  constructor(
    model: tf.LayersModel | LogitsFn,
    private readonly disposeBatches: boolean,
  ) {
    this.#forward = typeof model === 'function' ? model : logitsFn(model);
  }

  /** Adds one batch to the sums (and disposes it, unless told not to). */
  add(batch: Batch): void {
    try {
      this.#add(batch);
    } finally {
      if (this.disposeBatches) disposeBatch(batch);
    }
  }

  #add(batch: Batch): void {
    const next = tf.tidy(() => {
      const logits = this.#forward(batch.x, false);
      if (logits.rank !== 2) throw new Error(`evaluate: logits must be [batch, classes], got [${logits.shape}]`);
      const labels = labelIndices(batch.y);
      const k = Math.min(5, logits.shape[1] as number);
      const { indices } = tf.topk(logits, k);
      // hits[i, j] = 1 when the j-th best class of example i is its label.
      const hits = tf.cast(tf.equal(indices, tf.expandDims(labels, 1)), 'float32');
      return {
        loss: tf.add(this.#lossSum, tf.sum(perExampleCrossEntropy(logits, batch.y))) as tf.Scalar,
        top1: tf.add(this.#top1Sum, tf.sum(tf.slice(hits, [0, 0], [-1, 1]))) as tf.Scalar,
        top5: tf.add(this.#top5Sum, tf.sum(hits)) as tf.Scalar,
      };
    });
    this.dispose();
    this.#lossSum = next.loss;
    this.#top1Sum = next.top1;
    this.#top5Sum = next.top5;
    this.#count += batch.x.shape[0] as number;
  }

  result(): EvaluationResult {
    if (this.#count === 0) throw new Error('evaluate: no examples (empty batch stream)');
    const [loss, top1, top5] = [this.#lossSum.dataSync()[0], this.#top1Sum.dataSync()[0], this.#top5Sum.dataSync()[0]];
    return { loss: loss / this.#count, top1: top1 / this.#count, top5: top5 / this.#count, count: this.#count };
  }

  dispose(): void {
    this.#lossSum.dispose();
    this.#top1Sum.dispose();
    this.#top5Sum.dispose();
  }
}

/**
 * Evaluates `model` (a LayersModel or a LogitsFn) on every batch of `data` (a batch stream, or
 * an ImageDataset batched with `options.batchSize`/`normalize`/`indices`).
 */
export function evaluate(model: tf.LayersModel | LogitsFn, data: Iterable<Batch> | ImageDataset, options: EvaluateOptions = {}): EvaluationResult {
  const running = new RunningEvaluation(model, options.disposeBatches ?? true);
  try {
    for (const batch of isDataset(data) ? evaluationBatches(data, options) : data) running.add(batch);
    return running.result();
  } finally {
    running.dispose();
  }
}

/** `evaluate` over batches that arrive asynchronously (a stream read while it is consumed). */
export async function evaluateStream(
  model: tf.LayersModel | LogitsFn,
  batches: AsyncIterable<Batch> | Iterable<Batch>,
  options: Pick<EvaluateOptions, 'disposeBatches'> = {},
): Promise<EvaluationResult> {
  const running = new RunningEvaluation(model, options.disposeBatches ?? true);
  try {
    for await (const batch of batches) running.add(batch);
    return running.result();
  } finally {
    running.dispose();
  }
}

export interface EvaluateSourceOptions {
  /** Default 256. */
  readonly batchSize?: number;
  /** Must match training. Default 'unit'. */
  readonly normalize?: Normalization;
  readonly indices?: ArrayLike<number>;
  /** Shards (or batches) read ahead. Default: stream-batches.ts' default. */
  readonly prefetch?: number;
}

/**
 * Evaluates on an ImageSource (or an in-memory set) read as needed, in index order (no shuffle,
 * no augmentation): a sharded set is streamed shard by shard, so memory does not grow with the
 * split. On an in-memory set the batches, and so the result, are exactly `evaluate`'s.
 */
export async function evaluateSource(model: tf.LayersModel | LogitsFn, data: ImageSource | ImageDataset, options: EvaluateSourceOptions = {}): Promise<EvaluationResult> {
  if (isDataset(data)) return evaluate(model, data, options);
  return evaluateStream(
    model,
    sourceTensorBatches(data, {
      batchSize: options.batchSize ?? 256,
      shuffle: false,
      ...(options.normalize !== undefined ? { normalize: options.normalize } : {}),
      ...(options.indices !== undefined ? { indices: options.indices } : {}),
      ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {}),
    }),
  );
}
