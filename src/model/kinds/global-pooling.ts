/** Global pooling of an NHWC map to one value per channel: [N, H, W, C] -> [N, C]. */
import { onlyInput, requireChannelsLast, requireFeatureMap } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const globalPooling: LayerKind = {
  classNames: ['GlobalAveragePooling2D', 'GlobalMaxPooling2D'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    requireChannelsLast(node);
    requireFeatureMap(node, inputs);
    return { kind: 'channels', ids: input.ids, spatial: 1 };
  },
};
