/** A model input: its channels are a dimension of their own and are never pruned. */
import { channelsLayout, lastDim } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const inputLayer: LayerKind = {
  classNames: ['InputLayer'],
  role: 'input',
  flow(node, _inputs, context) {
    return channelsLayout(context.newChannels(lastDim(node, node.outputShape)));
  },
};
