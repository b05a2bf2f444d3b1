/**
 * BN re-estimation of a whole pruned network on search-train images ("adaptive BN", EagleEye's
 * name for it) and its score on search-val: what every mask baseline gets before any accuracy is
 * read, and what EagleEye ranks its candidates by. A pruned network with inherited weights
 * carries the original BN moving statistics, which no longer describe its activations (removing
 * input channels shifts every downstream mean and variance); read without re-estimation, its
 * accuracy mostly measures that collapse. EMO-DIR's candidates get the same re-estimation after
 * recovery (candidate.ts), with the same images and batch counts when the settings agree.
 */
import type { tf } from '../../engine/backend.ts';
import type { Normalization } from '../../data/batches.ts';
import type { ImageDataset } from '../../data/dataset.ts';
import { batches as tensorBatches } from '../../data/tensor-batches.ts';
import { recalibrateBatchNorm } from '../../train/bn-recalibrate.ts';
import { evaluate } from '../../train/evaluate.ts';
import type { EvaluationResult } from '../../train/evaluate.ts';

export interface AdaptiveBnData {
  readonly trainSet: ImageDataset;
  /** Search-train indices: the images the statistics are pooled over. */
  readonly bnIndices: ArrayLike<number>;
  /** Search-val indices: the images a candidate is scored on. */
  readonly valIndices: ArrayLike<number>;
  readonly batchSize: number;
  /** At most this many batches of `bnIndices` (seeded order). */
  readonly maxBatches: number;
  readonly seed: number;
  readonly normalize?: Normalization;
}

/** Epoch tag of the BN batch order (independent of the fine-tune's epochs, which start at 0). */
const ADAPTIVE_BN_EPOCH = 0x61626e; // 'abn'

/** Replaces every BN layer's moving statistics of `model` by its pooled statistics on search-train. */
export function adaptBatchNorm(model: tf.LayersModel, data: AdaptiveBnData): void {
  if (data.bnIndices.length === 0) return;
  recalibrateBatchNorm(
    model,
    tensorBatches(data.trainSet, {
      batchSize: data.batchSize,
      shuffle: true,
      seed: data.seed,
      epoch: ADAPTIVE_BN_EPOCH,
      indices: data.bnIndices,
      normalize: data.normalize,
    }),
    { maxBatches: data.maxBatches },
  );
}

/** Loss and top-1 of `model` on search-val (inference mode). */
export function scoreOnSearchVal(model: tf.LayersModel, data: AdaptiveBnData): EvaluationResult {
  return evaluate(model, data.trainSet, { batchSize: 256, normalize: data.normalize, indices: data.valIndices });
}
