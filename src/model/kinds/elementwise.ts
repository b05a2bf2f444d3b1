/**
 * Layers that act on each value alone (activations, dropout and noise, the project's own
 * HardSigmoid/HardSwish/Clip/Scale): channels pass through unchanged, whatever the tensor's
 * layout. A softmax over the channel axis is accepted too, though like LayerNormalization it
 * mixes channels, so pruning before it is not output-exact (it is usually the model's output).
 */
import { onlyInput } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const elementwise: LayerKind = {
  classNames: [
    'Activation', 'ReLU', 'LeakyReLU', 'ELU', 'ThresholdedReLU', 'Softmax',
    'Dropout', 'AlphaDropout', 'GaussianDropout', 'GaussianNoise',
    'HardSigmoid', 'HardSwish', 'Clip', 'Scale', 'Shift',
  ],
  role: 'passThrough',
  flow(node, inputs) {
    return onlyInput(node, inputs);
  },
};
