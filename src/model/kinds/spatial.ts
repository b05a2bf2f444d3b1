/**
 * Layers that move or combine values within each channel of an NHWC map (pooling, padding,
 * cropping, upsampling): channels pass through; only the spatial size changes.
 */
import { onlyInput, requireChannelsLast, requireFeatureMap } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const spatial: LayerKind = {
  classNames: ['MaxPooling2D', 'AveragePooling2D', 'ZeroPadding2D', 'NegInfPadding2D', 'Cropping2D', 'UpSampling2D', 'SpatialDropout2D'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    requireChannelsLast(node);
    requireFeatureMap(node, inputs);
    return input;
  },
};
