/**
 * LayerNormalization over the channel (last) axis only: gamma and beta are per channel and are
 * cut with them. Unlike BN, the statistics are taken across the channels, so removing channels
 * changes the normalisation of the others: pruning stays well defined (and recovery re-trains
 * it) but is not output-exact the way it is for per-channel layers.
 */
import { affineRoles, channelAxisNormalizationFlow } from './kind.ts';
import type { GraphNode, LayerKind, WeightAxis, WeightRole } from './kind.ts';

function roles(node: GraphNode): WeightRole[] {
  return affineRoles(node);
}

export const layerNormalization: LayerKind = {
  classNames: ['LayerNormalization'],
  role: 'passThrough',
  flow: channelAxisNormalizationFlow,
  weights(node) {
    return roles(node).map((role, weight): WeightAxis => ({ weight, axis: 0, side: 'output', role }));
  },
  cost(node, widths) {
    return { macs: 0, params: roles(node).length * widths.output };
  },
};
