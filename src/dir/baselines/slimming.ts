/**
 * slimming: network slimming's criterion (Liu et al. 2017), BN |gamma| of every normalisation
 * layer carrying the channel, ranked globally by one threshold (global-threshold.ts). The paper
 * first trains with an L1 penalty on gamma so the scales separate; this baseline prunes the
 * trained model as it is (no sparsity training), which is how the criterion is used on a model
 * someone else trained. A group with no BN is scored by L1 magnitude (model/importance.ts).
 */
import type { tf } from '../../engine/backend.ts';
import type { ChannelAnalysis } from '../../model/groups.ts';
import { channelImportance } from '../../model/importance.ts';
import { baselineGroups } from '../baselines.ts';
import type { BaselineTarget, MaskBaselineOptions } from '../baselines.ts';
import { globalThresholdMasks } from './global-threshold.ts';
import type { GlobalThresholdMasks } from './global-threshold.ts';

export function slimmingMasks(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  target: BaselineTarget,
  options: MaskBaselineOptions = {},
): GlobalThresholdMasks {
  const groups = baselineGroups(analysis, options.groupIds).map((g) => g.id);
  const scores = channelImportance(model, analysis, { criterion: 'bn-scale', groups });
  return globalThresholdMasks(analysis, scores, target, options);
}
