/**
 * Channel importance for a sub-network search (repair, the initial population and the biased
 * mutation rank channels by it), by the spec's criterion. Taylor importance needs the gradient of
 * the global loss with respect to S_k's weights: it is measured through the frozen rest of the
 * network T_k on cached search-train features (X_{k-1}, y), as the candidates' recovery sees
 * the network, with every layer in inference mode.
 */
import { tf } from '../engine/backend.ts';
import type { ChannelAnalysis } from '../model/groups.ts';
import { channelImportance } from '../model/importance.ts';
import type { ImportanceCriterion } from '../model/importance.ts';
import { softmaxCrossEntropy, toLogits } from '../train/losses.ts';
import { disposeGradients, weightGradients } from '../train/weight-gradients.ts';
import { featureBatches } from './features.ts';
import type { BoundaryFeatures } from './features.ts';

/** Search-train batches the Taylor gradients average over (at most). */
export const TAYLOR_BATCHES = 8;

export interface SubnetworkImportanceOptions {
  readonly subnetModel: tf.LayersModel;
  /** T_k (null for the last sub-network, whose output is the network's). */
  readonly tail: tf.LayersModel | null;
  readonly analysis: ChannelAnalysis;
  readonly groups: readonly string[];
  readonly features: BoundaryFeatures;
  readonly criterion: ImportanceCriterion;
  readonly batchSize: number;
}

export function subnetworkImportance(options: SubnetworkImportanceOptions): Record<string, Float32Array> {
  const { subnetModel, tail, analysis, groups, features, criterion } = options;
  if (criterion !== 'taylor') return channelImportance(subnetModel, analysis, { groups, criterion });
  function* losses(): Generator<() => tf.Scalar> {
    let used = 0;
    for (const batch of featureBatches(features, 'train', { batchSize: options.batchSize })) {
      try {
        yield () => {
          const out = subnetModel.apply(batch.input, { training: false }) as tf.Tensor;
          const logits = toLogits(tail ? (tail.apply(out, { training: false }) as tf.Tensor) : out, features.outputKind);
          return softmaxCrossEntropy(logits, batch.labels);
        };
      } finally {
        batch.dispose();
      }
      if (++used === TAYLOR_BATCHES) return;
    }
  }
  const gradients = weightGradients(subnetModel, losses());
  try {
    return channelImportance(subnetModel, analysis, { groups, criterion, gradients });
  } finally {
    disposeGradients(gradients);
  }
}
