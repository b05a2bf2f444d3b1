/** VGG-16-BN for CIFAR-size inputs. Layer names follow the zoo's naming contract (src/model/zoo.ts). */
import { tf } from '../../engine/backend.ts';
import type { Builder, ST } from './builder.ts';
import { convBn } from './resnet.ts';

/** VGG-16 configuration "D" (Simonyan & Zisserman 2015) with BN after every conv. */
const VGG16_BLOCKS: readonly (readonly number[])[] = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];

/**
 * VGG-16-BN, the common CIFAR variant (as in kuangliu/pytorch-cifar and most pruning papers):
 * the 13 convs with 5 max-pools, then global average pooling and a single dense layer
 * 512 -> classes (no 4096-wide FC layers: at 32x32 the features are 1x1x512 after the last
 * pool, and the big FC head would be 90% of the params for no accuracy). Global pooling rather
 * than flatten keeps the head valid for other input sizes.
 */
export function buildVgg16(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x: ST = input;
  VGG16_BLOCKS.forEach((widths, k) => {
    const prefix = `block${k + 1}`;
    widths.forEach((width, i) => {
      x = convBn(b, x, prefix, String(i + 1), b.width(width), 3, 1);
    });
    x = tf.layers
      .maxPooling2d({ name: `${prefix}_pool`, poolSize: 2, strides: 2, padding: 'valid' })
      .apply(x) as ST;
  });
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'vgg16' });
}

