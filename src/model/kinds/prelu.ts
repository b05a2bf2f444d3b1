/**
 * PReLU: channels pass through; its slopes alpha have the input's shape (batch axis dropped)
 * with the `sharedAxes` set to 1. Unless the channel axis is shared, alpha's last axis is per
 * channel (per feature behind a Flatten) and is cut with the channels.
 */
import { onlyInput } from './kind.ts';
import type { GraphNode, LayerKind } from './kind.ts';

/** alpha's shape without the batch axis; null entries (unknown sizes) count as 1. */
function alphaShape(node: GraphNode): number[] {
  const shape = node.inputShapes[0].slice(1).map((d) => d ?? 1);
  const shared = node.config.sharedAxes ?? [];
  for (const axis of shared) {
    // Keras counts sharedAxes from 1 (the batch axis is 0).
    const index = (axis < 0 ? node.inputShapes[0].length + axis : axis) - 1;
    if (index >= 0 && index < shape.length) shape[index] = 1;
  }
  return shape;
}

function channelAxisShared(node: GraphNode): boolean {
  const shape = alphaShape(node);
  return shape[shape.length - 1] === 1 && (node.inputShapes[0].at(-1) ?? 1) !== 1;
}

export const prelu: LayerKind = {
  classNames: ['PReLU'],
  role: 'passThrough',
  flow(node, inputs) {
    return onlyInput(node, inputs);
  },
  weights(node) {
    if (channelAxisShared(node)) return [];
    return [{ weight: 0, axis: alphaShape(node).length - 1, side: 'output', role: 'alpha' }];
  },
  cost(node, widths) {
    const shape = alphaShape(node);
    const perChannel = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    return { macs: 0, params: channelAxisShared(node) ? perChannel : perChannel * widths.output };
  },
};
