/**
 * Dense: a producer on the last axis. Kernel [in, out] (rows are input features: behind a
 * Flatten, every position's channels), bias [out]. Applied to a map it runs per position.
 */
import { checkDeclaredWidth, channelsLayout, onlyInput, refuse, spatialPositions, withBias } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const dense: LayerKind = {
  classNames: ['Dense'],
  role: 'producer',
  flow(node, inputs, context) {
    const input = onlyInput(node, inputs);
    if (input.kind === 'flatten' && node.inputShapes[0].length !== 2) {
      refuse(node, `reads a flattened tensor of rank ${node.inputShapes[0].length}; only [N, features] is supported`);
    }
    return channelsLayout(context.newChannels(checkDeclaredWidth(node, node.config.units)));
  },
  weights(node) {
    return withBias(
      node,
      [
        { weight: 0, axis: 0, side: 'input', role: 'kernel-in' },
        { weight: 0, axis: 1, side: 'output', role: 'kernel-out' },
      ],
      1,
    );
  },
  prunedConfig(config, _node, kept) {
    return { ...config, units: kept.output.length };
  },
  cost(node, widths) {
    const kernel = widths.inputs[0] * widths.output;
    return {
      macs: kernel * spatialPositions(node.outputShape),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
