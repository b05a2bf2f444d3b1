/**
 * LayerNormalization over the channel (last) axis only: gamma and beta are per channel and are
 * cut with them. Unlike BN, the statistics are taken across the channels, so removing channels
 * changes the normalisation of the others: pruning stays well defined (and recovery re-trains
 * it) but is not output-exact the way it is for per-channel layers.
 */
import { isLastAxis, onlyInput, refuse } from './kind.ts';
import type { GraphNode, LayerKind, WeightAxis, WeightRole } from './kind.ts';

function roles(node: GraphNode): WeightRole[] {
  const out: WeightRole[] = [];
  if (node.config.scale !== false) out.push('scale');
  if (node.config.center !== false) out.push('shift');
  return out;
}

export const layerNormalization: LayerKind = {
  classNames: ['LayerNormalization'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    if (input.kind !== 'channels' || !isLastAxis(node.config.axis, node.inputShapes[0].length)) {
      refuse(
        node,
        `only normalisation over the channel (last) axis alone is supported ` +
          `(axis ${JSON.stringify(node.config.axis)}, input shape [${node.inputShapes[0].join(', ')}])`,
      );
    }
    return input;
  },
  weights(node) {
    return roles(node).map((role, weight): WeightAxis => ({ weight, axis: 0, side: 'output', role }));
  },
  cost(node, widths) {
    return { macs: 0, params: roles(node).length * widths.output };
  },
};
