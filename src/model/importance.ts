/**
 * Channel importance: *what to remove*. Per group, one score per channel: the L1 norm of the
 * weights that produce that channel, summed over every coupled producer (a residual group has
 * several convolutions writing into the same channels; a channel is only worth removing when it
 * is weak in all of them). Depthwise kernels carried by the group count too, as they filter the
 * channel. Scores of different groups are not normalised: compare channels within a group.
 */
import { tf } from '../engine/backend.ts';
import type { ChannelAnalysis, ChannelGroup } from './groups.ts';

export type ImportanceNorm = 'l1' | 'l2';

export interface ImportanceOptions {
  /** `l1` (default): sum of |w|; `l2`: sqrt of the sum of w^2, over each channel's filter. */
  readonly norm?: ImportanceNorm;
  /** Only these groups (default: every group that has a producer). */
  readonly groups?: readonly string[];
}

/** One score per channel for each group. Groups without producers (model inputs) get zeros. */
export function channelImportance(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  options: ImportanceOptions = {},
): Record<string, Float32Array> {
  const norm = options.norm ?? 'l1';
  const wanted = options.groups ? new Set(options.groups) : undefined;
  const scores: Record<string, Float32Array> = {};
  for (const group of analysis.groups) {
    if (wanted && !wanted.has(group.id)) continue;
    scores[group.id] = groupImportance(model, group, norm);
  }
  if (wanted) {
    for (const id of wanted) if (!(id in scores)) throw new Error(`no channel group '${id}' in model '${model.name}'`);
  }
  return scores;
}

function groupImportance(model: tf.LayersModel, group: ChannelGroup, norm: ImportanceNorm): Float32Array {
  const total = new Float32Array(group.channels);
  const accumulate = (kernel: tf.Tensor, channelAxis: number, offset: number): void => {
    const perChannel = tf.tidy(() => {
      const axes = kernel.shape.map((_, i) => i).filter((i) => i !== channelAxis);
      const reduced = norm === 'l1' ? tf.sum(tf.abs(kernel), axes) : tf.sum(tf.square(kernel), axes);
      return reduced.slice([offset], [group.channels]);
    });
    const values = perChannel.dataSync();
    perChannel.dispose();
    for (let c = 0; c < group.channels; c++) total[c] += values[c];
  };
  for (const producer of group.producers) {
    const kernel = kernelOf(model, producer.layer, producer.className);
    // Conv2D kernel [kh, kw, in, out], Dense kernel [in, out]: the output axis is the last one.
    accumulate(kernel, kernel.rank - 1, producer.offset);
  }
  for (const member of group.passThrough) {
    if (member.className !== 'DepthwiseConv2D') continue;
    // Depthwise kernel [kh, kw, channels, multiplier]: the channel axis is 2.
    accumulate(kernelOf(model, member.layer, member.className), 2, member.offset);
  }
  if (norm === 'l2') for (let c = 0; c < total.length; c++) total[c] = Math.sqrt(total[c]);
  return total;
}

function kernelOf(model: tf.LayersModel, name: string, className: string): tf.Tensor {
  const layer = model.getLayer(name);
  const weights = layer.getWeights();
  if (weights.length === 0) throw new Error(`layer '${name}' (${className}) has no weights to score`);
  // getWeights() returns the variables' values without copying, so no dispose here.
  return weights[0];
}
