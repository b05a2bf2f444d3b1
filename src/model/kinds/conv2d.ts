/** Conv2D: a producer. Kernel [kh, kw, in, out] (rows read the input channels), bias [out]. */
import {
  checkDeclaredWidth,
  channelsLayout,
  onlyInput,
  refuse,
  requireChannelsLast,
  requireFeatureMap,
  spatialPositions,
} from './kind.ts';
import type { LayerKind, WeightAxis } from './kind.ts';

export const conv2d: LayerKind = {
  classNames: ['Conv2D'],
  role: 'producer',
  flow(node, inputs, context) {
    onlyInput(node, inputs);
    requireChannelsLast(node);
    requireFeatureMap(node, inputs);
    const groups = (node.config as { groups?: number }).groups;
    if (groups !== undefined && groups !== 1) refuse(node, `grouped convolution (groups ${groups}) is not supported`);
    return channelsLayout(context.newChannels(checkDeclaredWidth(node, node.config.filters)));
  },
  weights(node) {
    const axes: WeightAxis[] = [
      { weight: 0, axis: 2, side: 'input', role: 'kernel-in' },
      { weight: 0, axis: 3, side: 'output', role: 'kernel-out' },
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
      macs: kernel * spatialPositions(node.outputShape),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
