/**
 * DenseNet-BC (Huang et al. 2017) in DenseNet-121's shape at reduced depth: dense blocks of
 * pre-activation bottleneck layers (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k) whose outputs
 * are concatenated onto the block's running features, transitions halving channels (BN-ReLU-1x1
 * conv, 2x2 average pool). Every layer reads the concatenation of all earlier ones: the channel
 * analysis' concat-of-concats case. Names: `stem`, `block{b}_layer{l}_{bn1,conv1,bn2,conv2,cat}`,
 * `transition{b}_{bn,conv,pool}`, `final_bn`, `pool`, `head_dense`.
 */
import { tf } from '../../engine/backend.ts';
import { channelsOf } from './builder.ts';
import type { Builder, ST } from './builder.ts';

/** DenseNet-121 has [6, 12, 24, 16]; this corpus model halves it. */
const BLOCKS = [3, 6, 12, 8];
const GROWTH = 32;

export function buildDenseNet(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const growth = b.width(GROWTH);
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'stem', 2 * growth, 3, 'relu', { strides: 2 });
  BLOCKS.forEach((layers, blockIndex) => {
    const block = `block${blockIndex + 1}`;
    for (let l = 0; l < layers; l++) {
      const name = `${block}_layer${l + 1}`;
      let y = b.act(b.bn(x, `${name}_bn1`), `${name}_relu1`, 'relu');
      y = b.conv(y, `${name}_conv1`, 4 * growth, 1);
      y = b.act(b.bn(y, `${name}_bn2`), `${name}_relu2`, 'relu');
      y = b.conv(y, `${name}_conv2`, growth, 3);
      x = b.concat([x, y], `${name}_cat`);
    }
    if (blockIndex < BLOCKS.length - 1) {
      const name = `transition${blockIndex + 1}`;
      let y = b.act(b.bn(x, `${name}_bn`), `${name}_relu`, 'relu');
      y = b.conv(y, `${name}_conv`, Math.floor(channelsOf(x) / 2), 1);
      x = tf.layers.averagePooling2d({ name: `${name}_pool`, poolSize: 2, strides: 2, padding: 'same' }).apply(y) as ST;
    }
  });
  x = b.act(b.bn(x, 'final_bn'), 'final_relu', 'relu');
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'densenet' });
}
