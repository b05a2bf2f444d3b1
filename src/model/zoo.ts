/**
 * The model zoo: the CNNs emo-dir prunes, built as functional tf.LayersModels (NHWC), with
 * deterministic random weights. Two families:
 * - the benchmark networks (CIFAR ResNets, VGG-16-BN, ImageNet ResNet-18/50, fmnist-resnet),
 *   whose sizes match the published ones;
 * - a corpus of real architectures the channel analysis must handle (`zoo/*.ts`): MobileNetV2,
 *   MobileNetV3-Small (SE + hard-swish), EfficientNet-B0 (SE + swish), a DenseNet-121-style
 *   network (concatenations of concatenations), Xception (separable convolutions),
 *   Inception-ResNet (a concatenation added to a 1x1 projection, scaled), a U-Net-style decoder
 *   (transposed conv, upsampling, skip concatenations, PReLU). Built at small input sizes they
 *   keep the tests fast (`inputShape: [28, 28, 1]` works for all).
 * The heads output LOGITS (linear activation): the trainer and the impairment objective use
 * softmax cross-entropy from logits, which is numerically safer than a softmax layer then log.
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
 * The corpus models name their layers as their modules describe.
 *
 * INITIALISATION is deterministic: every conv/dense kernel gets its own seed derived from
 * (options.seed, layer name), so a model is reproducible and adding a layer does not reseed
 * the others. BN: gamma 1, beta 0, moving mean 0, moving variance 1.
 * BN uses PyTorch's constants (momentum 0.1 in torch terms = 0.9 here, epsilon 1e-5) because
 * the reference accuracies and training recipes for these networks come from PyTorch.
 *
 * PADDING: convs use 'same'. For stride 2 on even sizes TF pads (0 before, 1 after) where
 * PyTorch pads (1, 1); output sizes and MACs are identical, only the window alignment differs.
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
import type { tf } from '../engine/backend.ts';
// The corpus uses the project's own layer classes (HardSwish, Scale, ...).
import './custom-layers.ts';
import { Builder } from './zoo/builder.ts';
import { buildDenseNet } from './zoo/densenet.ts';
import { buildEfficientNetB0 } from './zoo/efficientnet.ts';
import { buildInceptionResNet } from './zoo/inception-resnet.ts';
import { buildMobileNetV2, buildMobileNetV3Small } from './zoo/mobilenet.ts';
import { buildResNet, resnetSpec } from './zoo/resnet.ts';
import type { ResNetName } from './zoo/resnet.ts';
import { buildUNet } from './zoo/unet.ts';
import { buildVgg16 } from './zoo/vgg.ts';
import { buildXception } from './zoo/xception.ts';

export { layerSeed } from './zoo/builder.ts';

export type ZooName =
  | ResNetName
  | 'vgg16'
  | 'mobilenetv2'
  | 'mobilenetv3-small'
  | 'efficientnet-b0'
  | 'densenet'
  | 'xception'
  | 'inception-resnet'
  | 'unet';

export const zooNames: readonly ZooName[] = [
  'resnet20',
  'resnet32',
  'resnet56',
  'resnet110',
  'vgg16',
  'resnet18',
  'resnet50',
  'fmnist-resnet',
  'mobilenetv2',
  'mobilenetv3-small',
  'efficientnet-b0',
  'densenet',
  'xception',
  'inception-resnet',
  'unet',
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
  /** The dataset the model is meant for (the data module's name for it); `segmentation`: per-pixel classes. */
  readonly dataset: 'cifar10' | 'imagenet' | 'fashion-mnist' | 'segmentation';
}

const CIFAR: ZooDefaults = { inputShape: [32, 32, 3], classes: 10, dataset: 'cifar10' };
const IMAGENET: ZooDefaults = { inputShape: [224, 224, 3], classes: 1000, dataset: 'imagenet' };
const FMNIST: ZooDefaults = { inputShape: [28, 28, 1], classes: 10, dataset: 'fashion-mnist' };
const SEGMENTATION: ZooDefaults = { inputShape: [128, 128, 3], classes: 2, dataset: 'segmentation' };

export const zooDefaults: Readonly<Record<ZooName, ZooDefaults>> = {
  resnet20: CIFAR,
  resnet32: CIFAR,
  resnet56: CIFAR,
  resnet110: CIFAR,
  vgg16: CIFAR,
  resnet18: IMAGENET,
  resnet50: IMAGENET,
  'fmnist-resnet': FMNIST,
  mobilenetv2: IMAGENET,
  'mobilenetv3-small': IMAGENET,
  'efficientnet-b0': IMAGENET,
  densenet: IMAGENET,
  xception: IMAGENET,
  'inception-resnet': IMAGENET,
  unet: SEGMENTATION,
};

type Architecture = (b: Builder, inputShape: [number, number, number], classes: number) => tf.LayersModel;

const architectures: Readonly<Record<Exclude<ZooName, ResNetName>, Architecture>> = {
  vgg16: buildVgg16,
  mobilenetv2: buildMobileNetV2,
  'mobilenetv3-small': buildMobileNetV3Small,
  'efficientnet-b0': (b, shape, classes) => buildEfficientNetB0(b, shape, classes),
  densenet: buildDenseNet,
  xception: (b, shape, classes) => buildXception(b, shape, classes),
  'inception-resnet': (b, shape, classes) => buildInceptionResNet(b, shape, classes),
  unet: buildUNet,
};

function isResNet(name: ZooName): name is ResNetName {
  return !(name in architectures);
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
  if (isResNet(name)) return buildResNet(name, resnetSpec(name), builder, shape, classes);
  return architectures[name](builder, shape, classes);
}
