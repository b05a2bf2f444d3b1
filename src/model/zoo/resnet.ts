/**
 * ResNets: the CIFAR family (He et al. 2016, depth 6n+2, option-B projection shortcuts),
 * torchvision's ImageNet ResNet-18/50 (v1.5: the stride on the 3x3 conv), and fmnist-resnet.
 * Layer names follow the zoo's naming contract (src/model/zoo.ts).
 */
import { tf } from '../../engine/backend.ts';
import { channelsOf } from './builder.ts';
import type { Builder, ST } from './builder.ts';

const BOTTLENECK_EXPANSION = 4;

interface StageSpec {
  readonly width: number;
  readonly blocks: number;
  /** Stride of the stage's first block (on its 3x3 conv, torchvision v1.5 style). */
  readonly stride: number;
}

export interface ResNetSpec {
  readonly stem: 'cifar' | 'imagenet';
  readonly block: 'basic' | 'bottleneck';
  readonly stemWidth: number;
  readonly stages: readonly StageSpec[];
}

export function cifarResNet(depth: number): ResNetSpec {
  // He et al. 2016 §4.2: depth = 6n + 2, three stages of n basic blocks, widths 16/32/64.
  const n = (depth - 2) / 6;
  return {
    stem: 'cifar',
    block: 'basic',
    stemWidth: 16,
    stages: [
      { width: 16, blocks: n, stride: 1 },
      { width: 32, blocks: n, stride: 2 },
      { width: 64, blocks: n, stride: 2 },
    ],
  };
}

export function imagenetResNet(block: 'basic' | 'bottleneck', blocks: readonly number[]): ResNetSpec {
  const widths = [64, 128, 256, 512];
  return {
    stem: 'imagenet',
    block,
    stemWidth: 64,
    stages: blocks.map((count, i) => ({ width: widths[i], blocks: count, stride: i === 0 ? 1 : 2 })),
  };
}

/**
 * fmnist-resnet: a ResNet small enough to train on Fashion-MNIST on 2 CPU cores through WASM.
 * A 3x3 stem (16 channels) at 28x28, then three stages (16, 32, 64) of two basic blocks, each
 * stage downsampling by 2 (28 -> 14 -> 7 -> 4) with a projection shortcut. Downsampling in the
 * first stage too keeps the expensive full-resolution work to the cheap 1-channel stem:
 * 5.67M MACs and 0.176M params, while keeping 6 prunable in-block groups and 3 stages to divide.
 */
export const FMNIST_RESNET: ResNetSpec = {
  stem: 'cifar',
  block: 'basic',
  stemWidth: 16,
  stages: [
    { width: 16, blocks: 2, stride: 2 },
    { width: 32, blocks: 2, stride: 2 },
    { width: 64, blocks: 2, stride: 2 },
  ],
};

/** conv -> bn -> relu named `${prefix}_conv${suffix}`, `_bn`, `_relu`; `relu: false` stops after bn. */
export function convBn(
  b: Builder,
  x: ST,
  prefix: string,
  suffix: string,
  filters: number,
  kernelSize: number,
  strides: number,
  relu = true,
): ST {
  const y = b.bn(b.conv(x, `${prefix}_conv${suffix}`, filters, kernelSize, { strides }), `${prefix}_bn${suffix}`);
  return relu ? b.act(y, `${prefix}_relu${suffix}`, 'relu') : y;
}

function resnetBlock(
  b: Builder,
  x: ST,
  prefix: string,
  kind: 'basic' | 'bottleneck',
  width: number,
  stride: number,
): ST {
  let y: ST;
  let outChannels: number;
  if (kind === 'basic') {
    outChannels = width;
    y = convBn(b, x, prefix, '1', width, 3, stride);
    y = convBn(b, y, prefix, '2', width, 3, 1, false);
  } else {
    // torchvision v1.5: the stride sits on the 3x3 conv, not on the first 1x1.
    outChannels = width * BOTTLENECK_EXPANSION;
    y = convBn(b, x, prefix, '1', width, 1, 1);
    y = convBn(b, y, prefix, '2', width, 3, stride);
    y = convBn(b, y, prefix, '3', outChannels, 1, 1, false);
  }
  let shortcut = x;
  if (stride !== 1 || channelsOf(x) !== outChannels) {
    // Option B (projection) wherever the shape changes: a 1x1 conv + BN.
    shortcut = b.bn(b.conv(x, `${prefix}_shortcut_conv`, outChannels, 1, { strides: stride }), `${prefix}_shortcut_bn`);
  }
  const sum = tf.layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as ST;
  return b.act(sum, `${prefix}_out`, 'relu');
}

export function buildResNet(
  name: string,
  spec: ResNetSpec,
  b: Builder,
  inputShape: [number, number, number],
  classes: number,
): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x: ST;
  if (spec.stem === 'cifar') {
    x = convBn(b, input, 'stem', '', b.width(spec.stemWidth), 3, 1);
  } else {
    x = convBn(b, input, 'stem', '', b.width(spec.stemWidth), 7, 2);
    // torchvision's MaxPool2d(3, 2, padding=1). Zero padding equals -inf padding here because
    // the input is post-relu (>= 0).
    x = tf.layers.zeroPadding2d({ name: 'stem_pad', padding: 1 }).apply(x) as ST;
    x = tf.layers
      .maxPooling2d({ name: 'stem_pool', poolSize: 3, strides: 2, padding: 'valid' })
      .apply(x) as ST;
  }
  spec.stages.forEach((stage, s) => {
    for (let block = 0; block < stage.blocks; block++) {
      const stride = block === 0 ? stage.stride : 1;
      x = resnetBlock(b, x, `stage${s + 1}_block${block}`, spec.block, b.width(stage.width), stride);
    }
  });
  return tf.model({ inputs: input, outputs: b.head(x, classes), name });
}


export type ResNetName = 'resnet20' | 'resnet32' | 'resnet56' | 'resnet110' | 'resnet18' | 'resnet50' | 'fmnist-resnet';

export function resnetSpec(name: ResNetName): ResNetSpec {
  switch (name) {
    case 'resnet20':
      return cifarResNet(20);
    case 'resnet32':
      return cifarResNet(32);
    case 'resnet56':
      return cifarResNet(56);
    case 'resnet110':
      return cifarResNet(110);
    case 'resnet18':
      return imagenetResNet('basic', [2, 2, 2, 2]);
    case 'resnet50':
      return imagenetResNet('bottleneck', [3, 4, 6, 3]);
    case 'fmnist-resnet':
      return FMNIST_RESNET;
  }
}

