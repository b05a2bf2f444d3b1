/**
 * fmnist-resnet56: the deeper benchmark model, a ResNet-56 (He et al. 2016, depth 6n + 2 with
 * n = 9: three stages of nine basic blocks, option-B projection shortcuts) for 28x28x1
 * Fashion-MNIST. Built with the zoo's ResNet builder (src/model/zoo/resnet.ts), so its layer
 * names follow the zoo's naming contract and the division cuts it at the stage outputs.
 *
 * Widths 8/16/32 (half the CIFAR ResNet-56's) and a stride of 2 in every stage (28 -> 14 -> 7
 * -> 4, as fmnist-resnet) keep it at 6.7M MACs, about fmnist-resnet's 5.7M: the benchmark runs
 * hundreds of recovered candidates on one CPU core per search, and what this model adds is the
 * allocation problem (27 blocks, 3 x 9 groups to share a budget), not width.
 */
import { Builder } from '../../src/model/zoo/builder.ts';
import { buildResNet } from '../../src/model/zoo/resnet.ts';
import type { ResNetSpec } from '../../src/model/zoo/resnet.ts';
import type { tf } from '../../src/engine/backend.ts';

export const MODEL_NAME = 'fmnist-resnet56';

export const FMNIST_RESNET56: ResNetSpec = {
  stem: 'cifar',
  block: 'basic',
  stemWidth: 8,
  stages: [
    { width: 8, blocks: 9, stride: 2 },
    { width: 16, blocks: 9, stride: 2 },
    { width: 32, blocks: 9, stride: 2 },
  ],
};

/** A freshly initialised fmnist-resnet56 (deterministic in `seed`). */
export function buildFmnistResNet56(seed = 0): tf.LayersModel {
  return buildResNet(MODEL_NAME, FMNIST_RESNET56, new Builder(seed, 1), [28, 28, 1], 10);
}
