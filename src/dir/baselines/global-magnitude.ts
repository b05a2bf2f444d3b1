/**
 * global-l2: Torch-Pruning's default pruner, as a baseline. Group-normalised L2 magnitude
 * (`GroupMagnitudeImportance(p=2)`: the squared weights of every coupled layer that carries the
 * channel, producer filters, BN gamma and consumer input rows, averaged per channel and divided
 * by the group's mean) ranked over the whole network by one threshold (global-threshold.ts).
 */
import type { tf } from '../../engine/backend.ts';
import type { ChannelAnalysis } from '../../model/groups.ts';
import { channelImportance } from '../../model/importance.ts';
import { baselineGroups } from '../baselines.ts';
import type { BaselineTarget, MaskBaselineOptions } from '../baselines.ts';
import { globalThresholdMasks } from './global-threshold.ts';
import type { GlobalThresholdMasks } from './global-threshold.ts';

export function globalMagnitudeMasks(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  options: MaskBaselineOptions = {},
): GlobalThresholdMasks {
  const groups = baselineGroups(analysis, options.groupIds).map((g) => g.id);
  const scores = channelImportance(model, analysis, { criterion: 'l2', groups });
  return globalThresholdMasks(analysis, scores, target, options);
}
