/** Conv2D: a producer. Kernel [kh, kw, in, out] (rows read the input channels), bias [out]. */
import { convolutionFlow, prunedFilters, refuse, spatialPositions, withBias } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const conv2d: LayerKind = {
  classNames: ['Conv2D'],
  role: 'producer',
  flow(node, inputs, context) {
    const groups = (node.config as { groups?: number }).groups;
    if (groups !== undefined && groups !== 1) refuse(node, `grouped convolution (groups ${groups}) is not supported`);
    return convolutionFlow(node, inputs, context);
  },
  weights(node) {
    return withBias(
      node,
      [
        { weight: 0, axis: 2, side: 'input', role: 'kernel-in' },
        { weight: 0, axis: 3, side: 'output', role: 'kernel-out' },
      ],
      1,
    );
  },
  prunedConfig: prunedFilters,
  cost(node, widths) {
    const [kh, kw] = node.config.kernelSize ?? [1, 1];
    const kernel = kh * kw * widths.inputs[0] * widths.output;
    return {
      macs: kernel * spatialPositions(node.outputShape),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
