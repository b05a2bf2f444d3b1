/**
 * The model zoo: the CNNs emo-dir prunes, built as functional tf.LayersModels (NHWC).
 *
 * Every model is made of the same few layer kinds so the graph/group analysis stays small:
 * conv2d (no bias) -> batchNormalization -> activation('relu'), `add` for residuals,
 * zeroPadding2d + maxPooling2d (valid) for the ImageNet stem pool, maxPooling2d for VGG,
 * globalAveragePooling2d and one dense head. The head outputs LOGITS (linear activation):
 * the trainer and the impairment objective use softmax cross-entropy from logits, which is
 * numerically safer than a softmax layer followed by log.
 *
 * LAYER NAMING (a contract: the pruning code divides a model into sub-networks by these names)
 *   input                             the model input
 *   ResNets:
 *     stem_conv, stem_bn, stem_relu   stem (ImageNet ResNets add stem_pad, stem_pool)
 *     stage{s}_block{b}_conv{i}       i-th conv of a block (i = 1..2 basic, 1..3 bottleneck)
 *     stage{s}_block{b}_bn{i}         its batch norm
 *     stage{s}_block{b}_relu{i}       its relu (not after the last conv: that one feeds `add`)
 *     stage{s}_block{b}_shortcut_conv 1x1 projection, only where the shape changes
 *     stage{s}_block{b}_shortcut_bn
 *     stage{s}_block{b}_add           residual sum
 *     stage{s}_block{b}_out           relu after the add = the block's output tensor
 *     pool                            globalAveragePooling2d
 *     head_dense                      classifier (logits)
 *   VGG-16:
 *     block{k}_conv{i}, block{k}_bn{i}, block{k}_relu{i}, block{k}_pool   (k = 1..5)
 *     pool, head_dense
 * Stages, blocks and convs are numbered as written: s and k from 1, b from 0, i from 1.
 * The output of a stage is `stage{s}_block{last}_out`; of a VGG block, `block{k}_pool`.
 *
 * INITIALISATION is deterministic: every conv/dense kernel gets its own seed derived from
 * (options.seed, layer name), so a model is reproducible and adding a layer does not reseed
 * the others. BN: gamma 1, beta 0, moving mean 0, moving variance 1.
 * BN uses PyTorch's constants (momentum 0.1 in torch terms = 0.9 here, epsilon 1e-5) because
 * the reference accuracies and training recipes for these networks come from PyTorch.
 *
 * PADDING: convs use 'same'. For stride 2 on even sizes TF pads (0 before, 1 after) where
 * PyTorch pads (1, 1); output sizes and MACs are identical, only the window alignment differs
 * (which matters only if someone imports torchvision weights, which we do not).
 *
 * Reference sizes (MACs = multiply-accumulates of conv + dense; params = model.countParams(),
 * which includes the BN moving statistics; default options):
 *   resnet20  40.8M MACs  0.274M params      resnet56  125.8M MACs  0.860M params
 *   resnet32  69.1M       0.469M             resnet110 253.2M       1.739M
 *   vgg16     313.2M      14.73M             fmnist-resnet 5.67M    0.176M (see below)
 *   resnet18  1.814G      11.70M             resnet50  4.089G       25.61M
 * (the CIFAR ResNets use option-B projection shortcuts, hence slightly above the paper's
 * option-A 125.5M/0.85M for ResNet-56.) test/model/zoo.test.ts checks these counts.
 */
import { tf } from '../engine/backend.ts';

export type ZooName =
  | 'resnet20'
  | 'resnet32'
  | 'resnet56'
  | 'resnet110'
  | 'vgg16'
  | 'resnet18'
  | 'resnet50'
  | 'fmnist-resnet';

export const zooNames: readonly ZooName[] = [
  'resnet20',
  'resnet32',
  'resnet56',
  'resnet110',
  'vgg16',
  'resnet18',
  'resnet50',
  'fmnist-resnet',
];

export function isZooName(name: string): name is ZooName {
  return (zooNames as readonly string[]).includes(name);
}

export interface BuildOptions {
  /** [height, width, channels]; default: the dataset the model was designed for. */
  readonly inputShape?: [number, number, number];
  readonly classes?: number;
  /** Scales every conv width (rounded, at least 1). Default 1. */
  readonly widthMultiplier?: number;
  /** Seed of the weight initialisation. Default 0. */
  readonly seed?: number;
}

export interface ZooDefaults {
  readonly inputShape: [number, number, number];
  readonly classes: number;
  /** The dataset the model is meant for (the data module's name for it). */
  readonly dataset: 'cifar10' | 'imagenet' | 'fashion-mnist';
}

const CIFAR: ZooDefaults = { inputShape: [32, 32, 3], classes: 10, dataset: 'cifar10' };
const IMAGENET: ZooDefaults = { inputShape: [224, 224, 3], classes: 1000, dataset: 'imagenet' };
const FMNIST: ZooDefaults = { inputShape: [28, 28, 1], classes: 10, dataset: 'fashion-mnist' };

export const zooDefaults: Readonly<Record<ZooName, ZooDefaults>> = {
  resnet20: CIFAR,
  resnet32: CIFAR,
  resnet56: CIFAR,
  resnet110: CIFAR,
  vgg16: CIFAR,
  resnet18: IMAGENET,
  resnet50: IMAGENET,
  'fmnist-resnet': FMNIST,
};

interface StageSpec {
  readonly width: number;
  readonly blocks: number;
  /** Stride of the stage's first block (on its 3x3 conv, torchvision v1.5 style). */
  readonly stride: number;
}

interface ResNetSpec {
  readonly stem: 'cifar' | 'imagenet';
  readonly block: 'basic' | 'bottleneck';
  readonly stemWidth: number;
  readonly stages: readonly StageSpec[];
}

function cifarResNet(depth: number): ResNetSpec {
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

function imagenetResNet(block: 'basic' | 'bottleneck', blocks: readonly number[]): ResNetSpec {
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
const FMNIST_RESNET: ResNetSpec = {
  stem: 'cifar',
  block: 'basic',
  stemWidth: 16,
  stages: [
    { width: 16, blocks: 2, stride: 2 },
    { width: 32, blocks: 2, stride: 2 },
    { width: 64, blocks: 2, stride: 2 },
  ],
};

const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;
const BOTTLENECK_EXPANSION = 4;

/** FNV-1a over `${seed}/${name}`: a per-layer seed independent of build order. */
export function layerSeed(seed: number, layerName: string): number {
  let hash = 0x811c9dc5;
  const text = `${seed}/${layerName}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Builds the layers of one model; holds the options every layer needs. */
class Builder {
  constructor(
    private readonly seed: number,
    private readonly widthMultiplier: number,
  ) {}

  width(base: number): number {
    return Math.max(1, Math.round(base * this.widthMultiplier));
  }

  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides: number): tf.SymbolicTensor {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: layerSeed(this.seed, name) }),
      })
      .apply(x) as tf.SymbolicTensor;
  }

  bn(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.batchNormalization({ name, momentum: BN_MOMENTUM, epsilon: BN_EPSILON }).apply(x) as tf.SymbolicTensor;
  }

  relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.activation({ name, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  }

  /** conv -> bn -> relu, named `${prefix}_conv${suffix}` etc.; `relu: false` stops after bn. */
  convBn(
    x: tf.SymbolicTensor,
    prefix: string,
    suffix: string,
    filters: number,
    kernelSize: number,
    strides: number,
    relu = true,
  ): tf.SymbolicTensor {
    const y = this.bn(this.conv(x, `${prefix}_conv${suffix}`, filters, kernelSize, strides), `${prefix}_bn${suffix}`);
    return relu ? this.relu(y, `${prefix}_relu${suffix}`) : y;
  }

  head(x: tf.SymbolicTensor, classes: number): tf.SymbolicTensor {
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
    return tf.layers
      .dense({
        name: 'head_dense',
        units: classes,
        kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed(this.seed, 'head_dense') }),
        biasInitializer: 'zeros',
      })
      .apply(pooled) as tf.SymbolicTensor;
  }
}

function channelsOf(x: tf.SymbolicTensor): number {
  return x.shape[x.shape.length - 1] as number;
}

function resnetBlock(
  b: Builder,
  x: tf.SymbolicTensor,
  prefix: string,
  kind: 'basic' | 'bottleneck',
  width: number,
  stride: number,
): tf.SymbolicTensor {
  let y: tf.SymbolicTensor;
  let outChannels: number;
  if (kind === 'basic') {
    outChannels = width;
    y = b.convBn(x, prefix, '1', width, 3, stride);
    y = b.convBn(y, prefix, '2', width, 3, 1, false);
  } else {
    // torchvision v1.5: the stride sits on the 3x3 conv, not on the first 1x1.
    outChannels = width * BOTTLENECK_EXPANSION;
    y = b.convBn(x, prefix, '1', width, 1, 1);
    y = b.convBn(y, prefix, '2', width, 3, stride);
    y = b.convBn(y, prefix, '3', outChannels, 1, 1, false);
  }
  let shortcut = x;
  if (stride !== 1 || channelsOf(x) !== outChannels) {
    // Option B (projection) wherever the shape changes: a 1x1 conv + BN.
    shortcut = b.bn(b.conv(x, `${prefix}_shortcut_conv`, outChannels, 1, stride), `${prefix}_shortcut_bn`);
  }
  const sum = tf.layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return b.relu(sum, `${prefix}_out`);
}

function buildResNet(
  name: string,
  spec: ResNetSpec,
  b: Builder,
  inputShape: [number, number, number],
  classes: number,
): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x: tf.SymbolicTensor;
  if (spec.stem === 'cifar') {
    x = b.convBn(input, 'stem', '', b.width(spec.stemWidth), 3, 1);
  } else {
    x = b.convBn(input, 'stem', '', b.width(spec.stemWidth), 7, 2);
    // torchvision's MaxPool2d(3, 2, padding=1). Zero padding equals -inf padding here because
    // the input is post-relu (>= 0).
    x = tf.layers.zeroPadding2d({ name: 'stem_pad', padding: 1 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .maxPooling2d({ name: 'stem_pool', poolSize: 3, strides: 2, padding: 'valid' })
      .apply(x) as tf.SymbolicTensor;
  }
  spec.stages.forEach((stage, s) => {
    for (let block = 0; block < stage.blocks; block++) {
      const stride = block === 0 ? stage.stride : 1;
      x = resnetBlock(b, x, `stage${s + 1}_block${block}`, spec.block, b.width(stage.width), stride);
    }
  });
  return tf.model({ inputs: input, outputs: b.head(x, classes), name });
}

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
function buildVgg16(b: Builder, inputShape: [number, number, number], classes: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input' });
  let x: tf.SymbolicTensor = input;
  VGG16_BLOCKS.forEach((widths, k) => {
    const prefix = `block${k + 1}`;
    widths.forEach((width, i) => {
      x = b.convBn(x, prefix, String(i + 1), b.width(width), 3, 1);
    });
    x = tf.layers
      .maxPooling2d({ name: `${prefix}_pool`, poolSize: 2, strides: 2, padding: 'valid' })
      .apply(x) as tf.SymbolicTensor;
  });
  return tf.model({ inputs: input, outputs: b.head(x, classes), name: 'vgg16' });
}

function resnetSpec(name: Exclude<ZooName, 'vgg16'>): ResNetSpec {
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

/**
 * Builds a fresh, randomly initialised zoo model. The model's `name` is the zoo name.
 * Throws on an unknown name or invalid options (naming the option and the value).
 */
export function buildModel(name: ZooName, options: BuildOptions = {}): tf.LayersModel {
  if (!isZooName(name)) {
    throw new Error(`unknown zoo model '${String(name)}' (known: ${zooNames.join(', ')})`);
  }
  const defaults = zooDefaults[name];
  const inputShape = options.inputShape ?? defaults.inputShape;
  const classes = options.classes ?? defaults.classes;
  const widthMultiplier = options.widthMultiplier ?? 1;
  const seed = options.seed ?? 0;
  if (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`buildModel(${name}): inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(inputShape)}`);
  }
  if (!Number.isInteger(classes) || classes < 1) {
    throw new Error(`buildModel(${name}): classes must be a positive integer, got ${classes}`);
  }
  if (!Number.isFinite(widthMultiplier) || widthMultiplier <= 0) {
    throw new Error(`buildModel(${name}): widthMultiplier must be > 0, got ${widthMultiplier}`);
  }
  if (!Number.isInteger(seed)) {
    throw new Error(`buildModel(${name}): seed must be an integer, got ${seed}`);
  }
  const builder = new Builder(seed, widthMultiplier);
  const shape: [number, number, number] = [inputShape[0], inputShape[1], inputShape[2]];
  if (name === 'vgg16') return buildVgg16(builder, shape, classes);
  return buildResNet(name, resnetSpec(name), builder, shape, classes);
}
