/**
 * DepthwiseConv2D: channels pass through, `depthMultiplier` m output channels per input channel
 * (output channel c*m + j filters input channel c), so the m outputs of channel c are one
 * channel of the group: pruning c removes its filter and all m outputs. Kernel [kh, kw, C, m],
 * bias [C*m].
 */
import { onlyInput, requireChannelsLast, requireFeatureMap, spatialPositions, lastDim, refuse, withBias } from './kind.ts';
import type { FlowLayout, LayerKind } from './kind.ts';

export function repeatEach(ids: Int32Array, times: number): Int32Array {
  if (times === 1) return ids;
  const out = new Int32Array(ids.length * times);
  for (let p = 0; p < ids.length; p++) out.fill(ids[p], p * times, (p + 1) * times);
  return out;
}

export const depthwiseConv2d: LayerKind = {
  classNames: ['DepthwiseConv2D'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    requireChannelsLast(node);
    requireFeatureMap(node, inputs);
    const multiplier = node.config.depthMultiplier ?? 1;
    if (!Number.isInteger(multiplier) || multiplier < 1) refuse(node, `depthMultiplier ${multiplier} is not a positive integer`);
    const out: FlowLayout = { kind: 'channels', ids: repeatEach(input.ids, multiplier), spatial: 1 };
    if (lastDim(node, node.outputShape) !== out.ids.length) {
      refuse(node, `output has ${lastDim(node, node.outputShape)} channels, expected ${input.ids.length} x ${multiplier}`);
    }
    return out;
  },
  weights(node) {
    return withBias(node, [{ weight: 0, axis: 2, side: 'input', role: 'depthwise' }], 1);
  },
  cost(node, widths) {
    const [kh, kw] = node.config.kernelSize ?? [1, 1];
    const kernel = kh * kw * widths.output;
    return {
      macs: kernel * spatialPositions(node.outputShape),
      params: kernel + (node.config.useBias === false ? 0 : widths.output),
    };
  },
};
