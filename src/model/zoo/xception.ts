/**
 * Xception (Chollet 2017) at reduced depth: separable convolutions throughout, entry-flow blocks
 * with strided 1x1 projection shortcuts, middle-flow blocks with identity shortcuts (2 instead of
 * 8), the exit flow. Names: `entry_conv{1,2}`, `{entry|middle|exit}{i}_sep{j}` (+ `_bn`,
 * `_relu`), `..._pool`, `..._shortcut`, `..._add`, `pool`, `head_dense`.
 */
import { tf } from '../../engine/backend.ts';
import type { Builder, ST } from './builder.ts';

function sepBn(b: Builder, x: ST, name: string, filters: number, preRelu: boolean): ST {
  const y = preRelu ? b.act(x, `${name}_relu`, 'relu') : x;
  return b.bn(b.separable(y, name, filters, 3), `${name}_bn`);
}

/** Two separable convs, a strided max pool, and a strided 1x1 projection of the input added. */
function downBlock(b: Builder, x: ST, name: string, filters: [number, number], firstRelu: boolean): ST {
  let y = sepBn(b, x, `${name}_sep1`, filters[0], firstRelu);
  y = sepBn(b, y, `${name}_sep2`, filters[1], true);
  y = tf.layers.maxPooling2d({ name: `${name}_pool`, poolSize: 3, strides: 2, padding: 'same' }).apply(y) as ST;
  const shortcut = b.bn(b.conv(x, `${name}_shortcut`, filters[1], 1, { strides: 2 }), `${name}_shortcut_bn`);
  return b.add([y, shortcut], `${name}_add`);
}

export function buildXception(b: Builder, inputShape: [number, number, number], classes: number, middleBlocks = 2): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'entry_conv1', b.width(32), 3, 'relu', { strides: 2 });
  x = b.convBnAct(x, 'entry_conv2', b.width(64), 3, 'relu');
  x = downBlock(b, x, 'entry1', [b.width(128), b.width(128)], false);
  x = downBlock(b, x, 'entry2', [b.width(256), b.width(256)], true);
  x = downBlock(b, x, 'entry3', [b.width(728), b.width(728)], true);
  for (let i = 1; i <= middleBlocks; i++) {
    let y = x;
    for (let j = 1; j <= 3; j++) y = sepBn(b, y, `middle${i}_sep${j}`, b.width(728), true);
    x = b.add([x, y], `middle${i}_add`);
  }
  x = downBlock(b, x, 'exit1', [b.width(728), b.width(1024)], true);
  x = b.act(b.bn(b.separable(x, 'exit2_sep1', b.width(1536), 3), 'exit2_sep1_bn'), 'exit2_sep1_relu', 'relu');
  x = b.act(b.bn(b.separable(x, 'exit2_sep2', b.width(2048), 3), 'exit2_sep2_bn'), 'exit2_sep2_relu', 'relu');
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'xception' });
}
