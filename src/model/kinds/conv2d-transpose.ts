/**
 * Conv2DTranspose (decoders): a producer. Kernel [kh, kw, out, in] (tfjs' layout: the output
 * channels come first), bias [out]. Each input pixel scatters a kh x kw x out patch, so its
 * MACs are kh*kw*in*out per INPUT position.
 */
import { convolutionFlow, prunedFilters, spatialPositions, withBias } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const conv2dTranspose: LayerKind = {
  classNames: ['Conv2DTranspose'],
  role: 'producer',
  flow: convolutionFlow,
  weights(node) {
    return withBias(
      node,
      [
        { weight: 0, axis: 3, side: 'input', role: 'kernel-in' },
        { weight: 0, axis: 2, side: 'output', role: 'kernel-out' },
      ],
      1,
    );
  },
  prunedConfig: prunedFilters,
  cost(node, widths) {
    const [kh, kw] = node.config.kernelSize ?? [1, 1];
    const kernel = kh * kw * widths.inputs[0] * widths.output;
    return {
      macs: kernel * spatialPositions(node.inputShapes[0]),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
