/**
 * The example models' last training step: keep the BN moving statistics the training loop's EMA
 * left, or replace them by statistics pooled over 2048 training images ("precise BN",
 * src/train/bn-recalibrate.ts), whichever scores better on a HELD-OUT part of the training split.
 * The choice is a hyper-parameter, so it is never made on the test split (whose accuracy is then
 * reported as is).
 */
import { tf } from '../../src/engine/backend.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { batches as tensorBatches } from '../../src/data/tensor-batches.ts';
import { recalibrateBatchNorm } from '../../src/train/bn-recalibrate.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import type { EvaluationResult } from '../../src/train/evaluate.ts';

export interface BnChoice {
  readonly recalibrated: boolean;
  /** Held-out metrics with the EMA statistics and with the recalibrated ones. */
  readonly heldOutEma: EvaluationResult;
  readonly heldOutRecalibrated: EvaluationResult;
}

/** Chooses (in place) between EMA and recalibrated BN statistics on `heldOut`; `train` provides the recalibration images. */
export function chooseBatchNormStatistics(model: tf.LayersModel, train: ImageDataset, heldOut: ImageDataset, seed: number): BnChoice {
  const heldOutEma = evaluate(model, heldOut, { batchSize: 500 });
  const original = model.getWeights().map((w) => w.clone());
  try {
    recalibrateBatchNorm(model, tensorBatches(train, { batchSize: 256, seed, epoch: 10_000, shuffle: true }), { maxBatches: 8 });
    const heldOutRecalibrated = evaluate(model, heldOut, { batchSize: 500 });
    // By held-out cross-entropy (finer than top-1 on a few thousand images); a tie keeps the EMA.
    const recalibrated = heldOutRecalibrated.loss < heldOutEma.loss;
    if (!recalibrated) model.setWeights(original);
    return { recalibrated, heldOutEma, heldOutRecalibrated };
  } finally {
    tf.dispose(original);
  }
}
