/**
 * Conv2DTranspose (decoders): a producer. Kernel [kh, kw, out, in] (tfjs' layout: the output
 * channels come first), bias [out]. Each input pixel scatters a kh x kw x out patch, so its
 * MACs are kh*kw*in*out per INPUT position.
 */
import {
  checkDeclaredWidth,
  channelsLayout,
  onlyInput,
  requireChannelsLast,
  requireFeatureMap,
  spatialPositions,
} from './kind.ts';
import type { LayerKind, WeightAxis } from './kind.ts';

export const conv2dTranspose: LayerKind = {
  classNames: ['Conv2DTranspose'],
  role: 'producer',
  flow(node, inputs, context) {
    onlyInput(node, inputs);
    requireChannelsLast(node);
    requireFeatureMap(node, inputs);
    return channelsLayout(context.newChannels(checkDeclaredWidth(node, node.config.filters)));
  },
  weights(node) {
    const axes: WeightAxis[] = [
      { weight: 0, axis: 3, side: 'input', role: 'kernel-in' },
      { weight: 0, axis: 2, side: 'output', role: 'kernel-out' },
    ];
    if (node.config.useBias !== false) axes.push({ weight: 1, axis: 0, side: 'output', role: 'bias' });
    return axes;
  },
  prunedConfig(config, _node, kept) {
    return { ...config, filters: kept.output.length };
  },
  cost(node, widths) {
    const [kh, kw] = node.config.kernelSize ?? [1, 1];
    const kernel = kh * kw * widths.inputs[0] * widths.output;
    return {
      macs: kernel * spatialPositions(node.inputShapes[0]),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
