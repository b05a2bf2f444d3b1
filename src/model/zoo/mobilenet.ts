/**
 * MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Small (Howard et al. 2019), as torchvision
 * builds them: inverted residual blocks (1x1 expand, depthwise, 1x1 linear projection, identity
 * add where the shape allows), ReLU6 in V2; hard-swish and squeeze-and-excitation gates with a
 * hard sigmoid in V3. Names: `stem`, `block{i}_{expand|dw|se|project}`, `block{i}_add`, `last`,
 * `pool`, `head_dense` (V3 adds `head_hidden`).
 */
import { tf } from '../../engine/backend.ts';
import { channelsOf, makeDivisible } from './builder.ts';
import type { ActivationName, Builder, ST } from './builder.ts';

interface InvertedResidual {
  readonly kernel: number;
  /** Expanded width (absolute, before the width multiplier). */
  readonly expanded: number;
  readonly out: number;
  readonly se: boolean;
  readonly activation: ActivationName;
  readonly stride: number;
}

function invertedResidual(b: Builder, x: ST, name: string, block: InvertedResidual, seGate: ActivationName): ST {
  const inChannels = channelsOf(x);
  const expanded = makeDivisible(block.expanded * b.widthMultiplier);
  const out = makeDivisible(block.out * b.widthMultiplier);
  let y = x;
  if (expanded !== inChannels) y = b.convBnAct(y, `${name}_expand`, expanded, 1, block.activation);
  y = b.act(b.bn(b.depthwise(y, `${name}_dw_conv`, block.kernel, block.stride), `${name}_dw_bn`), `${name}_dw_act`, block.activation);
  if (block.se) y = b.squeezeExcite(y, `${name}_se`, makeDivisible(expanded / 4), 'relu', seGate);
  y = b.convBnAct(y, `${name}_project`, out, 1, null);
  return block.stride === 1 && inChannels === out ? b.add([x, y], `${name}_add`) : y;
}

const V2_SETTINGS: readonly [number, number, number, number][] = [
  // expansion t, output c, repeats n, first stride s
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

export function buildMobileNetV2(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'stem', makeDivisible(32 * b.widthMultiplier), 3, 'relu6', { strides: 2 });
  let index = 0;
  for (const [t, c, n, s] of V2_SETTINGS) {
    for (let i = 0; i < n; i++) {
      const expanded = channelsOf(x) * t / b.widthMultiplier;
      x = invertedResidual(b, x, `block${index++}`, { kernel: 3, expanded, out: c, se: false, activation: 'relu6', stride: i === 0 ? s : 1 }, 'hsigmoid');
    }
  }
  x = b.convBnAct(x, 'last', makeDivisible(1280 * Math.max(1, b.widthMultiplier)), 1, 'relu6');
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'mobilenetv2' });
}

const V3_SMALL: readonly InvertedResidual[] = [
  { kernel: 3, expanded: 16, out: 16, se: true, activation: 'relu', stride: 2 },
  { kernel: 3, expanded: 72, out: 24, se: false, activation: 'relu', stride: 2 },
  { kernel: 3, expanded: 88, out: 24, se: false, activation: 'relu', stride: 1 },
  { kernel: 5, expanded: 96, out: 40, se: true, activation: 'hswish', stride: 2 },
  { kernel: 5, expanded: 240, out: 40, se: true, activation: 'hswish', stride: 1 },
  { kernel: 5, expanded: 240, out: 40, se: true, activation: 'hswish', stride: 1 },
  { kernel: 5, expanded: 120, out: 48, se: true, activation: 'hswish', stride: 1 },
  { kernel: 5, expanded: 144, out: 48, se: true, activation: 'hswish', stride: 1 },
  { kernel: 5, expanded: 288, out: 96, se: true, activation: 'hswish', stride: 2 },
  { kernel: 5, expanded: 576, out: 96, se: true, activation: 'hswish', stride: 1 },
  { kernel: 5, expanded: 576, out: 96, se: true, activation: 'hswish', stride: 1 },
];

export function buildMobileNetV3Small(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'stem', makeDivisible(16 * b.widthMultiplier), 3, 'hswish', { strides: 2 });
  V3_SMALL.forEach((block, i) => {
    x = invertedResidual(b, x, `block${i}`, block, 'hsigmoid');
  });
  x = b.convBnAct(x, 'last', makeDivisible(576 * b.widthMultiplier), 1, 'hswish');
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as ST;
  const hidden = b.act(b.dense(pooled, 'head_hidden', makeDivisible(1024 * b.widthMultiplier)), 'head_hidden_act', 'hswish');
  const dropped = tf.layers.dropout({ name: 'head_dropout', rate: 0.2 }).apply(hidden) as ST;
  return tf.model({ inputs: input, outputs: b.dense(dropped, 'head_dense', classes), name: 'mobilenetv3-small' });
}
