/**
 * SeparableConv2D (Xception): a depthwise conv whose m channels per input channel follow that
 * input channel, then a pointwise 1x1 conv producing new channels. So it reads its input group
 * (depthwise filters and the matching pointwise rows are cut together) and produces a group.
 * Weights: depthwise kernel [kh, kw, in, m], pointwise kernel [1, 1, in*m, out], bias [out].
 */
import { convolutionFlow, prunedFilters, spatialPositions, withBias } from './kind.ts';
import type { LayerKind } from './kind.ts';

function multiplier(config: { depthMultiplier?: number }): number {
  return config.depthMultiplier ?? 1;
}

export const separableConv2d: LayerKind = {
  classNames: ['SeparableConv2D'],
  role: 'producer',
  flow: convolutionFlow,
  weights(node) {
    const m = multiplier(node.config);
    return withBias(
      node,
      [
        { weight: 0, axis: 2, side: 'input', role: 'depthwise' },
        { weight: 1, axis: 2, side: 'input', expand: m, role: 'kernel-in' },
        { weight: 1, axis: 3, side: 'output', role: 'kernel-out' },
      ],
      2,
    );
  },
  prunedConfig: prunedFilters,
  cost(node, widths) {
    const [kh, kw] = node.config.kernelSize ?? [1, 1];
    const inner = widths.inputs[0] * multiplier(node.config);
    const positions = spatialPositions(node.outputShape);
    const depthwise = kh * kw * inner;
    const pointwise = inner * widths.output;
    return {
      macs: (depthwise + pointwise) * positions,
      params: depthwise + pointwise + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
