/**
 * global-taylor: first-order Taylor importance (Molchanov et al. 2019; Torch-Pruning's
 * `GroupTaylorImportance`), |w * dL/dw| summed over every trained weight of the channel's
 * coupled layers, group-normalised, ranked globally by one threshold (global-threshold.ts). The
 * gradients are of the whole network's cross-entropy on search-train images, in inference mode
 * (model/importance.ts, train/weight-gradients.ts).
 */
import type { tf } from '../../engine/backend.ts';
import type { Normalization } from '../../data/batches.ts';
import type { ImageDataset } from '../../data/dataset.ts';
import { batches as tensorBatches } from '../../data/tensor-batches.ts';
import type { ChannelAnalysis } from '../../model/groups.ts';
import { channelImportance } from '../../model/importance.ts';
import { softmaxCrossEntropy, toLogits, outputKind } from '../../train/losses.ts';
import { disposeGradients, weightGradients } from '../../train/weight-gradients.ts';
import { BaselineError, baselineGroups } from '../baselines.ts';
import type { BaselineTarget, MaskBaselineOptions } from '../baselines.ts';
import { globalThresholdMasks } from './global-threshold.ts';
import type { GlobalThresholdMasks } from './global-threshold.ts';

export interface TaylorData {
  readonly trainSet: ImageDataset;
  /** The images the gradients average over (the search-train subset). */
  readonly indices: ArrayLike<number>;
  readonly batchSize: number;
  /** At most this many batches. */
  readonly maxBatches: number;
  readonly normalize?: Normalization;
}

export function globalTaylorMasks(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  data: TaylorData,
  options: MaskBaselineOptions = {},
): GlobalThresholdMasks {
  if (data.indices.length === 0) throw new BaselineError('global-taylor: no images to measure gradients on');
  const groups = baselineGroups(analysis, options.groupIds).map((g) => g.id);
  const kind = outputKind(model);
  function* losses(): Generator<() => tf.Scalar> {
    let used = 0;
    for (const batch of tensorBatches(data.trainSet, { batchSize: data.batchSize, shuffle: false, indices: data.indices, normalize: data.normalize })) {
      try {
        yield () => softmaxCrossEntropy(toLogits(model.apply(batch.x, { training: false }) as tf.Tensor, kind), batch.y);
      } finally {
        batch.dispose();
      }
      if (++used === data.maxBatches) return;
    }
  }
  const gradients = weightGradients(model, losses());
  try {
    const scores = channelImportance(model, analysis, { criterion: 'taylor', groups, gradients });
    return globalThresholdMasks(analysis, scores, target, options);
  } finally {
    disposeGradients(gradients);
  }
}
