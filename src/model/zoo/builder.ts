/**
 * The layer vocabulary the zoo's architectures are written in: convolutions with deterministic
 * per-layer seeds, batch norm with PyTorch's constants, the activations the corpus uses, and the
 * blocks several architectures share (squeeze-and-excitation). One Builder per model holds the
 * options every layer needs (seed, width multiplier).
 */
import { tf } from '../../engine/backend.ts';
import { HardSigmoid, HardSwish, Scale } from '../custom-layers.ts';

export type ST = tf.SymbolicTensor;

/** The activations the corpus uses; `relu6` is ReLU capped at 6, `hswish` MobileNetV3's hard swish. */
export type ActivationName = 'relu' | 'relu6' | 'hswish' | 'swish' | 'sigmoid' | 'hsigmoid' | 'prelu';

const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;

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

/** `value` rounded to a multiple of `divisor` (at least `divisor`), not below 90% of it: MobileNet's make_divisible. */
export function makeDivisible(value: number, divisor = 8): number {
  const rounded = Math.max(divisor, Math.floor((value + divisor / 2) / divisor) * divisor);
  return rounded < 0.9 * value ? rounded + divisor : rounded;
}

export function channelsOf(x: ST): number {
  return x.shape[x.shape.length - 1] as number;
}

export interface ConvOptions {
  readonly strides?: number;
  readonly useBias?: boolean;
  readonly padding?: 'same' | 'valid';
  /** [kh, kw] for asymmetric kernels (Inception's 1x7 / 7x1). */
  readonly kernel?: [number, number];
}

export class Builder {
  constructor(
    readonly seed: number,
    readonly widthMultiplier: number,
  ) {}

  width(base: number): number {
    return Math.max(1, Math.round(base * this.widthMultiplier));
  }

  conv(x: ST, name: string, filters: number, kernelSize: number, options: ConvOptions = {}): ST {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize: options.kernel ?? kernelSize,
        strides: options.strides ?? 1,
        padding: options.padding ?? 'same',
        useBias: options.useBias ?? false,
        kernelInitializer: tf.initializers.heNormal({ seed: layerSeed(this.seed, name) }),
      })
      .apply(x) as ST;
  }

  depthwise(x: ST, name: string, kernelSize: number, strides = 1, depthMultiplier = 1): ST {
    return tf.layers
      .depthwiseConv2d({
        name,
        kernelSize,
        strides,
        depthMultiplier,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: tf.initializers.heNormal({ seed: layerSeed(this.seed, name) }),
      })
      .apply(x) as ST;
  }

  separable(x: ST, name: string, filters: number, kernelSize: number): ST {
    return tf.layers
      .separableConv2d({
        name,
        filters,
        kernelSize,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: tf.initializers.heNormal({ seed: layerSeed(this.seed, `${name}/depthwise`) }),
        pointwiseInitializer: tf.initializers.heNormal({ seed: layerSeed(this.seed, `${name}/pointwise`) }),
      })
      .apply(x) as ST;
  }

  dense(x: ST, name: string, units: number, useBias = true): ST {
    return tf.layers
      .dense({
        name,
        units,
        useBias,
        kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed(this.seed, name) }),
        biasInitializer: 'zeros',
      })
      .apply(x) as ST;
  }

  bn(x: ST, name: string): ST {
    return tf.layers.batchNormalization({ name, momentum: BN_MOMENTUM, epsilon: BN_EPSILON }).apply(x) as ST;
  }

  act(x: ST, name: string, activation: ActivationName): ST {
    switch (activation) {
      case 'relu':
      case 'swish':
      case 'sigmoid':
        return tf.layers.activation({ name, activation }).apply(x) as ST;
      case 'relu6':
        return tf.layers.reLU({ name, maxValue: 6 }).apply(x) as ST;
      case 'hswish':
        return new HardSwish({ name }).apply(x) as ST;
      case 'hsigmoid':
        return new HardSigmoid({ name }).apply(x) as ST;
      case 'prelu':
        return tf.layers.prelu({ name, sharedAxes: [1, 2] }).apply(x) as ST;
    }
  }

  add(inputs: ST[], name: string): ST {
    return tf.layers.add({ name }).apply(inputs) as ST;
  }

  concat(inputs: ST[], name: string): ST {
    return tf.layers.concatenate({ name }).apply(inputs) as ST;
  }

  scale(x: ST, name: string, factor: number): ST {
    return new Scale({ name, scale: factor }).apply(x) as ST;
  }

  /** conv -> bn -> activation (none: stop after bn), named `${name}_conv`, `_bn`, `_act`. */
  convBnAct(x: ST, name: string, filters: number, kernelSize: number, activation: ActivationName | null, options: ConvOptions = {}): ST {
    const y = this.bn(this.conv(x, `${name}_conv`, filters, kernelSize, options), `${name}_bn`);
    return activation === null ? y : this.act(y, `${name}_act`, activation);
  }

  /**
   * Squeeze-and-excitation: global pool, a 1x1 squeeze with `squeezeAct`, a 1x1 excitation
   * back to C channels with `gate`, and the gate multiplied into x ([N,1,1,C] x [N,H,W,C]).
   */
  squeezeExcite(x: ST, name: string, squeeze: number, squeezeAct: ActivationName, gate: ActivationName): ST {
    const channels = channelsOf(x);
    let s = tf.layers.globalAveragePooling2d({ name: `${name}_pool` }).apply(x) as ST;
    s = tf.layers.reshape({ name: `${name}_reshape`, targetShape: [1, 1, channels] }).apply(s) as ST;
    s = this.act(this.conv(s, `${name}_squeeze`, squeeze, 1, { useBias: true }), `${name}_squeeze_act`, squeezeAct);
    s = this.act(this.conv(s, `${name}_excite`, channels, 1, { useBias: true }), `${name}_gate`, gate);
    return tf.layers.multiply({ name: `${name}_scale` }).apply([x, s]) as ST;
  }

  /** Global average pooling and a dense classifier (logits), named `pool` and `head_dense`. */
  head(x: ST, classes: number): ST {
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as ST;
    return this.dense(pooled, 'head_dense', classes);
  }
}
