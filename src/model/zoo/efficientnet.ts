/**
 * EfficientNet-B0 (Tan & Le 2019): MBConv blocks (1x1 expand, depthwise, squeeze-and-excitation
 * with swish and a sigmoid gate, 1x1 linear projection, identity add) with swish activations.
 * `depth` scales the repeats (B0: 1); names as in mobilenet.ts.
 */
import { tf } from '../../engine/backend.ts';
import { channelsOf, makeDivisible } from './builder.ts';
import type { Builder, ST } from './builder.ts';

const B0: readonly [number, number, number, number, number][] = [
  // expansion, kernel, first stride, output channels, repeats
  [1, 3, 1, 16, 1],
  [6, 3, 2, 24, 2],
  [6, 5, 2, 40, 2],
  [6, 3, 2, 80, 3],
  [6, 5, 1, 112, 3],
  [6, 5, 2, 192, 4],
  [6, 3, 1, 320, 1],
];

function mbConv(b: Builder, x: ST, name: string, expansion: number, kernel: number, stride: number, out: number): ST {
  const inChannels = channelsOf(x);
  let y = x;
  if (expansion !== 1) y = b.convBnAct(y, `${name}_expand`, inChannels * expansion, 1, 'swish');
  y = b.act(b.bn(b.depthwise(y, `${name}_dw_conv`, kernel, stride), `${name}_dw_bn`), `${name}_dw_act`, 'swish');
  // EfficientNet squeezes to a quarter of the block's INPUT width.
  y = b.squeezeExcite(y, `${name}_se`, Math.max(1, Math.floor(inChannels / 4)), 'swish', 'sigmoid');
  y = b.convBnAct(y, `${name}_project`, out, 1, null);
  return stride === 1 && inChannels === out ? b.add([x, y], `${name}_add`) : y;
}

export function buildEfficientNetB0(b: Builder, inputShape: [number, number, number], classes: number, depth = 1): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'stem', makeDivisible(32 * b.widthMultiplier), 3, 'swish', { strides: 2 });
  let index = 0;
  for (const [expansion, kernel, stride, out, repeats] of B0) {
    const count = Math.max(1, Math.ceil(repeats * depth));
    for (let i = 0; i < count; i++) {
      x = mbConv(b, x, `block${index++}`, expansion, kernel, i === 0 ? stride : 1, makeDivisible(out * b.widthMultiplier));
    }
  }
  x = b.convBnAct(x, 'last', makeDivisible(1280 * Math.max(1, b.widthMultiplier)), 1, 'swish');
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as ST;
  const dropped = tf.layers.dropout({ name: 'head_dropout', rate: 0.2 }).apply(pooled) as ST;
  return tf.model({ inputs: input, outputs: b.dense(dropped, 'head_dense', classes), name: 'efficientnet-b0' });
}
