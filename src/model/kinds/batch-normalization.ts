/**
 * BatchNormalization over the channel (last) axis: channels pass through; gamma, beta and the
 * moving statistics (those present, in that order) are per channel.
 */
import { affineRoles, channelAxisNormalizationFlow } from './kind.ts';
import type { GraphNode, LayerKind, WeightAxis, WeightRole } from './kind.ts';

function roles(node: GraphNode): WeightRole[] {
  return [...affineRoles(node), 'statistics', 'statistics'];
}

export const batchNormalization: LayerKind = {
  classNames: ['BatchNormalization'],
  role: 'passThrough',
  flow: channelAxisNormalizationFlow,
  weights(node) {
    return roles(node).map((role, weight): WeightAxis => ({ weight, axis: 0, side: 'output', role }));
  },
  cost(node, widths) {
    return { macs: 0, params: roles(node).length * widths.output };
  },
};
