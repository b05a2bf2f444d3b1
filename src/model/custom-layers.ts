/**
 * Layer classes tfjs-layers lacks but real CNNs use, registered with tfjs serialization so a
 * model holding them saves, loads and rebuilds (physical pruning rebuilds every layer from its
 * config) like any built-in layer. Importing this module registers them; `model/io.ts` and the
 * zoo import it, so any code that loads or builds a model has them.
 *
 * - `HardSigmoid`: clip(alpha*x + beta, 0, 1). PyTorch's and ONNX's hard sigmoid (alpha 1/6,
 *   beta 0.5 by default); tfjs' `hardSigmoid` activation is Keras' (0.2x + 0.5), a different curve.
 * - `HardSwish`: x * clip(x/6 + 1/2, 0, 1), as in MobileNetV3, PyTorch and ONNX.
 * - `Clip`: clip(x, min, max) for any bounds (ONNX Clip; ReLU6 is `ReLU` with maxValue 6).
 * - `Scale`: x * scale, the constant scaling of Inception-ResNet's residual branches (Keras
 *   builds it with a Lambda, which tfjs cannot load).
 * - `Subtract`: x0 - x1 with broadcasting (Keras has it; tfjs-layers does not).
 * All are channel-preserving and weightless, so the channel analysis treats the first four as
 * element-wise layers and `Subtract` as an element-wise merge.
 */
import { tf } from '../engine/backend.ts';

type Kwargs = Record<string, unknown>;
/** The base layer arguments these layers accept (tfjs' LayerArgs is not exported by its index). */
interface LayerArgs {
  readonly name?: string;
  readonly trainable?: boolean;
  readonly dtype?: tf.DataType;
  readonly inputShape?: tf.Shape;
  readonly batchInputShape?: tf.Shape;
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

export interface HardSigmoidArgs extends LayerArgs {
  readonly alpha?: number;
  readonly beta?: number;
}

export class HardSigmoid extends tf.layers.Layer {
  static readonly className = 'HardSigmoid';
  readonly alpha: number;
  readonly beta: number;

  constructor(args: HardSigmoidArgs = {}) {
    super(args);
    this.alpha = args.alpha ?? 1 / 6;
    this.beta = args.beta ?? 0.5;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(single(inputs), this.alpha), this.beta), 0, 1));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), alpha: this.alpha, beta: this.beta };
  }
}

export class HardSwish extends tf.layers.Layer {
  static readonly className = 'HardSwish';

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      return tf.mul(x, tf.clipByValue(tf.add(tf.mul(x, 1 / 6), 0.5), 0, 1));
    });
  }
}

export interface ClipArgs extends LayerArgs {
  readonly min: number;
  readonly max: number;
}

export class Clip extends tf.layers.Layer {
  static readonly className = 'Clip';
  readonly min: number;
  readonly max: number;

  constructor(args: ClipArgs) {
    super(args);
    if (!(args.min <= args.max)) throw new Error(`Clip layer '${args.name ?? ''}': min ${args.min} is above max ${args.max}`);
    this.min = args.min;
    this.max = args.max;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.clipByValue(single(inputs), this.min, this.max);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), min: this.min, max: this.max };
  }
}

export interface ScaleArgs extends LayerArgs {
  readonly scale: number;
}

export class Scale extends tf.layers.Layer {
  static readonly className = 'Scale';
  readonly scale: number;

  constructor(args: ScaleArgs) {
    super(args);
    if (!Number.isFinite(args.scale)) throw new Error(`Scale layer '${args.name ?? ''}': scale must be a finite number`);
    this.scale = args.scale;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.mul(single(inputs), this.scale);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), scale: this.scale };
  }
}

/** Output shape of an element-wise op over broadcastable shapes (numpy rules, batch axis null). */
export function broadcastShapes(shapes: readonly (readonly (number | null)[])[], layerName: string): (number | null)[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: (number | null)[] = [];
  for (let i = 0; i < rank; i++) {
    // An unknown size (null: the batch axis) wins over 1 and loses to a known size.
    let dim: number | null = 1;
    for (const shape of shapes) {
      const at = shape.length - rank + i;
      const d = at < 0 ? 1 : shape[at];
      if (d === 1) continue;
      if (d === null) {
        if (dim === 1) dim = null;
      } else if (dim === 1 || dim === null) {
        dim = d;
      } else if (d !== dim) {
        throw new Error(`layer '${layerName}': shapes ${shapes.map((s) => `[${s.join(', ')}]`).join(' and ')} do not broadcast`);
      }
    }
    out.push(dim);
  }
  return out;
}

export class Subtract extends tf.layers.Layer {
  static readonly className = 'Subtract';

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shapes = inputShape as tf.Shape[];
    if (!Array.isArray(shapes[0]) || shapes.length !== 2) {
      throw new Error(`Subtract layer '${this.name}' needs exactly two inputs`);
    }
    return broadcastShapes(shapes, this.name);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) throw new Error(`Subtract layer '${this.name}' needs exactly two inputs`);
    return tf.sub(inputs[0], inputs[1]);
  }
}

for (const cls of [HardSigmoid, HardSwish, Clip, Scale, Subtract]) tf.serialization.registerClass(cls);

/** Class names of the layers above (for the channel analysis and the ONNX import/export). */
export const CUSTOM_LAYER_CLASSES: readonly string[] = ['HardSigmoid', 'HardSwish', 'Clip', 'Scale', 'Subtract'];

/**
 * tfjs-layers 4.22 leaves `depthMultiplier` out of SeparableConv2D's config, so such a layer with
 * a multiplier above 1 neither survives save/load nor a rebuild from its config (the pruner
 * rebuilds every layer that way). Put it back.
 */
function patchSeparableConfig(): void {
  const probe = tf.layers.separableConv2d({ filters: 1, kernelSize: 1 });
  const prototype = Object.getPrototypeOf(Object.getPrototypeOf(probe)) as { getConfig(this: { depthMultiplier: number }): tf.serialization.ConfigDict };
  if ('depthMultiplier' in probe.getConfig()) return;
  const original = prototype.getConfig;
  prototype.getConfig = function (this: { depthMultiplier: number }) {
    return { ...original.call(this), depthMultiplier: this.depthMultiplier };
  };
}
patchSeparableConfig();

// ---------------------------------------------------------------------------------------------
// Appended for the ONNX import (src/model/onnx/): layers PyTorch graphs need that the classes
// above do not express. Both are weightless and channel-preserving.

export interface NegInfPadding2DArgs extends LayerArgs {
  /** [[top, bottom], [left, right]] rows/columns added around each NHWC map. */
  readonly padding: readonly [readonly [number, number], readonly [number, number]];
}

/**
 * Pads H and W with -Infinity: the explicit padding of a PyTorch/ONNX MaxPool (`pads` that TF
 * 'same' cannot express, e.g. 3x3 stride 2 pad 1 on an even size), followed by a 'valid'
 * MaxPooling2D. Padding with zeros would be wrong wherever the input can be negative. Channel
 * rule: that of ZeroPadding2D.
 */
export class NegInfPadding2D extends tf.layers.Layer {
  static readonly className = 'NegInfPadding2D';
  readonly padding: [[number, number], [number, number]];

  constructor(args: NegInfPadding2DArgs) {
    super(args);
    const [[top, bottom], [left, right]] = args.padding;
    if (![top, bottom, left, right].every((p) => Number.isInteger(p) && p >= 0)) {
      throw new Error(`NegInfPadding2D layer '${args.name ?? ''}': padding must be non-negative integers, got ${JSON.stringify(args.padding)}`);
    }
    this.padding = [[top, bottom], [left, right]];
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const grow = (dim: number | null, [a, b]: [number, number]): number | null => (dim === null ? null : dim + a + b);
    return [shape[0], grow(shape[1], this.padding[0]), grow(shape[2], this.padding[1]), shape[3]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const [[top, bottom], [left, right]] = this.padding;
    return tf.pad(single(inputs), [[0, 0], [top, bottom], [left, right], [0, 0]], -Infinity);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), padding: this.padding };
  }
}

export interface ShiftArgs extends LayerArgs {
  readonly offset: number;
}

/** x + offset (ONNX Add/Sub of a scalar constant, e.g. `x - 0.5`). Channel rule: element-wise. */
export class Shift extends tf.layers.Layer {
  static readonly className = 'Shift';
  readonly offset: number;

  constructor(args: ShiftArgs) {
    super(args);
    if (!Number.isFinite(args.offset)) throw new Error(`Shift layer '${args.name ?? ''}': offset must be a finite number`);
    this.offset = args.offset;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.add(single(inputs), this.offset);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), offset: this.offset };
  }
}

for (const cls of [NegInfPadding2D, Shift]) tf.serialization.registerClass(cls);

/** Class names of the layers appended for the ONNX import (the channel analysis needs a rule for each). */
export const ONNX_IMPORT_LAYER_CLASSES: readonly string[] = ['NegInfPadding2D', 'Shift'];
