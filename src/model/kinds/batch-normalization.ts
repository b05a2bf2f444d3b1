/**
 * BatchNormalization over the channel (last) axis: channels pass through; gamma, beta and the
 * moving statistics (those present, in that order) are per channel.
 */
import { isLastAxis, onlyInput, refuse } from './kind.ts';
import type { GraphNode, LayerKind, WeightAxis, WeightRole } from './kind.ts';

function roles(node: GraphNode): WeightRole[] {
  const out: WeightRole[] = [];
  if (node.config.scale !== false) out.push('scale');
  if (node.config.center !== false) out.push('shift');
  out.push('statistics', 'statistics');
  return out;
}

export const batchNormalization: LayerKind = {
  classNames: ['BatchNormalization'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    if (input.kind !== 'channels' || !isLastAxis(node.config.axis, node.inputShapes[0].length)) {
      refuse(
        node,
        `only normalisation over the last (channel) axis of a non-flattened tensor is supported ` +
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
