/**
 * A U-Net-style encoder-decoder (Ronneberger et al. 2015) for per-pixel classification: two
 * downsampling levels, a bottleneck, then a transposed-convolution upsampling and a nearest
 * upsampling, each followed by a skip concatenation with the encoder's features at that scale.
 * The decoder uses PReLU and a pad/crop pair, so the corpus covers Conv2DTranspose,
 * UpSampling2D, Cropping2D, ZeroPadding2D and PReLU. Output: [N, H, W, classes] logits.
 * Names: `enc{l}_{1,2}`, `enc{l}_pool`, `mid_{1,2}`, `up2_transpose`, `up1_resize`,
 * `up{l}_cat`, `dec{l}_{1,2}`, `logits`.
 */
import { tf } from '../../engine/backend.ts';
import { layerSeed } from './builder.ts';
import type { Builder, ST } from './builder.ts';

function doubleConv(b: Builder, x: ST, name: string, filters: number, activation: 'relu' | 'prelu'): ST {
  const y = b.convBnAct(x, `${name}_1`, filters, 3, activation);
  return b.convBnAct(y, `${name}_2`, filters, 3, activation);
}

export function buildUNet(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  const enc1 = doubleConv(b, input, 'enc1', b.width(16), 'relu');
  let x = tf.layers.maxPooling2d({ name: 'enc1_pool', poolSize: 2, strides: 2, padding: 'same' }).apply(enc1) as ST;
  const enc2 = doubleConv(b, x, 'enc2', b.width(32), 'relu');
  x = tf.layers.maxPooling2d({ name: 'enc2_pool', poolSize: 2, strides: 2, padding: 'same' }).apply(enc2) as ST;
  x = doubleConv(b, x, 'mid', b.width(64), 'relu');
  x = tf.layers
    .conv2dTranspose({
      name: 'up2_transpose',
      filters: b.width(32),
      kernelSize: 2,
      strides: 2,
      padding: 'same',
      kernelInitializer: tf.initializers.heNormal({ seed: layerSeed(b.seed, 'up2_transpose') }),
    })
    .apply(x) as ST;
  // Align with the skip when the encoder rounded odd sizes up: pad by one, crop back.
  x = cropTo(x, enc2, 'up2');
  x = doubleConv(b, b.concat([x, enc2], 'up2_cat'), 'dec2', b.width(32), 'prelu');
  x = tf.layers.upSampling2d({ name: 'up1_resize', size: [2, 2] }).apply(x) as ST;
  x = cropTo(x, enc1, 'up1');
  x = b.conv(x, 'up1_reduce', b.width(16), 1);
  x = doubleConv(b, b.concat([x, enc1], 'up1_cat'), 'dec1', b.width(16), 'prelu');
  x = b.conv(x, 'logits', classes, 1, { useBias: true });
  return tf.model({ inputs: input, outputs: x, name: 'unet' });
}

/** Pads x by one pixel on every side, then crops it to `like`'s spatial size. */
function cropTo(x: ST, like: ST, name: string): ST {
  const padded = tf.layers.zeroPadding2d({ name: `${name}_pad`, padding: 1 }).apply(x) as ST;
  const [, h, w] = padded.shape as number[];
  const [, th, tw] = like.shape as number[];
  const top = Math.floor((h - th) / 2);
  const left = Math.floor((w - tw) / 2);
  return tf.layers
    .cropping2D({ name: `${name}_crop`, cropping: [[top, h - th - top], [left, w - tw - left]] })
    .apply(padded) as ST;
}
