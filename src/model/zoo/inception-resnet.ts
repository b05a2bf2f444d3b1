/**
 * Inception-ResNet (Szegedy et al. 2017, Keras' InceptionResNetV2 layout) at reduced depth: a
 * stem ending in a four-branch concatenation ("mixed_5b"); residual blocks whose branches are
 * concatenated, projected by a 1x1 conv and added, scaled, to the block input, which is itself a
 * concatenation (the concat-feeding-add case of the channel analysis); a reduction block of
 * strided branches concatenated with a max pool. Names: `stem{i}`, `mixed_b{j}`, `mixed`,
 * `{a|b}{i}_b{j}`, `{a|b}{i}_cat`, `{a|b}{i}_up`, `{a|b}{i}_scale`, `{a|b}{i}_add`,
 * `{a|b}{i}_out`, `reduce_*`, `pool`, `head_dense`.
 */
import { tf } from '../../engine/backend.ts';
import { channelsOf } from './builder.ts';
import type { Builder, ST } from './builder.ts';

/** A residual Inception block: branches -> concat -> 1x1 up (linear, bias) -> x scale -> add -> relu. */
function residualBlock(b: Builder, x: ST, name: string, branches: ((x: ST) => ST)[], scale: number): ST {
  const outs = branches.map((branch) => branch(x));
  const mixed = b.concat(outs, `${name}_cat`);
  const up = b.conv(mixed, `${name}_up`, channelsOf(x), 1, { useBias: true });
  const scaled = b.scale(up, `${name}_scale`, scale);
  return b.act(b.add([x, scaled], `${name}_add`), `${name}_out`, 'relu');
}

export function buildInceptionResNet(b: Builder, inputShape: [number, number, number], classes: number, blocks = 2): tf.LayersModel {
  const w = (n: number): number => b.width(n);
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x = b.convBnAct(input, 'stem1', w(32), 3, 'relu', { strides: 2 });
  x = b.convBnAct(x, 'stem2', w(64), 3, 'relu', { strides: 2 });
  // mixed_5b: four branches side by side.
  const m0 = b.convBnAct(x, 'mixed_b0', w(96), 1, 'relu');
  const m1 = b.convBnAct(b.convBnAct(x, 'mixed_b1a', w(48), 1, 'relu'), 'mixed_b1b', w(64), 5, 'relu');
  let m2 = b.convBnAct(x, 'mixed_b2a', w(64), 1, 'relu');
  m2 = b.convBnAct(b.convBnAct(m2, 'mixed_b2b', w(96), 3, 'relu'), 'mixed_b2c', w(96), 3, 'relu');
  const pooled = tf.layers.averagePooling2d({ name: 'mixed_b3_pool', poolSize: 3, strides: 1, padding: 'same' }).apply(x) as ST;
  const m3 = b.convBnAct(pooled, 'mixed_b3', w(64), 1, 'relu');
  x = b.concat([m0, m1, m2, m3], 'mixed');
  for (let i = 1; i <= blocks; i++) {
    const n = `a${i}`;
    x = residualBlock(b, x, n, [
      (y) => b.convBnAct(y, `${n}_b0`, w(32), 1, 'relu'),
      (y) => b.convBnAct(b.convBnAct(y, `${n}_b1a`, w(32), 1, 'relu'), `${n}_b1b`, w(32), 3, 'relu'),
      (y) => b.convBnAct(b.convBnAct(b.convBnAct(y, `${n}_b2a`, w(32), 1, 'relu'), `${n}_b2b`, w(48), 3, 'relu'), `${n}_b2c`, w(64), 3, 'relu'),
    ], 0.17);
  }
  // Reduction: a strided conv, a strided two-conv branch and a strided max pool, concatenated.
  const r0 = b.convBnAct(x, 'reduce_b0', w(96), 3, 'relu', { strides: 2 });
  const r1 = b.convBnAct(b.convBnAct(x, 'reduce_b1a', w(64), 1, 'relu'), 'reduce_b1b', w(96), 3, 'relu', { strides: 2 });
  const r2 = tf.layers.maxPooling2d({ name: 'reduce_pool', poolSize: 3, strides: 2, padding: 'same' }).apply(x) as ST;
  x = b.concat([r0, r1, r2], 'reduce_cat');
  for (let i = 1; i <= blocks; i++) {
    const n = `b${i}`;
    x = residualBlock(b, x, n, [
      (y) => b.convBnAct(y, `${n}_b0`, w(64), 1, 'relu'),
      (y) => {
        const a = b.convBnAct(y, `${n}_b1a`, w(48), 1, 'relu');
        const c = b.convBnAct(a, `${n}_b1b`, w(56), 7, 'relu', { kernel: [1, 7] });
        return b.convBnAct(c, `${n}_b1c`, w(64), 7, 'relu', { kernel: [7, 1] });
      },
    ], 0.1);
  }
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'inception-resnet' });
}
