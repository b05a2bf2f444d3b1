/**
 * Ops that move or copy values without weights: Flatten, Reshape (to [N, -1] and the
 * channels-only [N, C] <-> [N, C, 1, 1]), Concat (channel axis), Pad (constant 0), Resize /
 * Upsample (nearest, integer factors), Dropout and Identity (pass-through at inference).
 */
import { tf } from '../../../engine/backend.ts';
import type { NodeContext } from '../context.ts';
import { BATCH, numbers, type Dim } from '../fold.ts';
import { elementCount } from '../tensor.ts';
import type { Activation } from '../values.ts';
import { zeroPad } from './conv.ts';

/** [N, C, H, W] -> [N, C*H*W]: a Flatten layer, or nothing for a squeezed or 1x1 map. */
function flatten(ctx: NodeContext, x: Activation): void {
  if (x.shape.length === 1) {
    ctx.output(x);
    return;
  }
  if (x.squeezed) {
    ctx.output({ ...x, squeezed: false, shape: [x.shape[0]] });
    return;
  }
  const [c, h, w] = x.shape as [number, number, number];
  const out = ctx.layer((name) => tf.layers.flatten({ name }), [x], {
    nonNegative: x.nonNegative,
    ...(h * w > 1 ? { flattenedFrom: [c, h, w] as const } : {}),
  });
  ctx.output(out);
}

export function convertFlatten(ctx: NodeContext): void {
  const x = ctx.activation(0);
  const axis = ctx.attrs.int('axis', 1);
  if (axis !== 1 && axis !== -x.shape.length) ctx.fail(`axis ${axis}: only flattening everything after the batch axis (axis 1) is supported`);
  flatten(ctx, x);
}

/** The target of a Reshape without its batch entry, or undefined when the target does not keep the batch first. */
function targetAfterBatch(ctx: NodeContext, target: readonly Dim[], features: number): number[] | undefined {
  const [first, ...rest] = target;
  if (rest.some((d) => d === BATCH)) return undefined;
  const numeric = rest as number[];
  const resolvedRest = (): number[] => {
    const unknown = numeric.indexOf(-1);
    if (unknown < 0) return numeric;
    const known = numeric.filter((_, i) => i !== unknown).reduce((p, d) => p * d, 1);
    const out = [...numeric];
    out[unknown] = known === 0 ? 0 : features / known;
    return out;
  };
  // [batch, ...], [0, ...] (copy the batch), or [-1, rest] with the rest fully known; [1, ...]
  // when the model was exported with a fixed batch of 1 (the trace's batch).
  if (first === BATCH || first === 0) return resolvedRest();
  if (first === -1 && !numeric.includes(-1) && elementCount(numeric) === features) return numeric;
  if (first === 1 && ctx.declaredBatch === 1) return resolvedRest();
  return undefined;
}

export function convertReshape(ctx: NodeContext): void {
  const x = ctx.activation(0);
  if (ctx.attrs.int('allowzero', 0) === 1) ctx.fail('allowzero = 1 is not supported');
  const shapeValue = ctx.constant(1, 'the target shape (input 1)').constant;
  const target = Array.from(shapeValue.values as ArrayLike<Dim>);
  const features = elementCount(x.shape);
  const rest = targetAfterBatch(ctx, target, features);
  const describe = `[${target.map((d) => (d === BATCH ? 'N' : d)).join(', ')}]`;
  if (rest === undefined) ctx.fail(`target shape ${describe} of an [N, ${x.shape.join(', ')}] tensor does not keep the batch axis first`);
  if (elementCount(rest) !== features || rest.some((d) => !Number.isInteger(d) || d < 0)) {
    ctx.fail(`target shape ${describe} does not hold the ${features} features of [N, ${x.shape.join(', ')}]`);
  }
  if (rest.length === x.shape.length && rest.every((d, i) => d === x.shape[i])) {
    ctx.output(x);
    return;
  }
  if (rest.length === 1) {
    flatten(ctx, x);
    return;
  }
  if (rest.length === 3 && x.shape.length === 1 && rest[1] === 1 && rest[2] === 1) {
    // [N, C] -> [N, C, 1, 1]: a Reshape([1, 1, C]) in NHWC.
    const channels = rest[0];
    ctx.output(ctx.layer((name) => tf.layers.reshape({ name, targetShape: [1, 1, channels] }), [x], { nonNegative: x.nonNegative }));
    return;
  }
  ctx.fail(`reshaping [N, ${x.shape.join(', ')}] to ${describe} is not supported (only to [N, -1] and between [N, C] and [N, C, 1, 1])`);
}

export function convertConcat(ctx: NodeContext): void {
  const inputs = ctx.node.input.map((_, i) => ctx.activation(i));
  const rank = inputs[0].shape.length + 1;
  const axis = ctx.attrs.int('axis', 1);
  if (axis !== 1 && axis !== 1 - rank) ctx.fail(`axis ${axis}: only concatenation along channels (axis 1) is supported`);
  if (inputs.some((x) => x.flattenedFrom !== undefined)) ctx.fail('an input is a flattened [C, H, W] map');
  if (inputs.length === 1) {
    ctx.output(inputs[0]);
    return;
  }
  const allSqueezed = inputs.every((x) => x.squeezed);
  const operands = rank === 4 && !allSqueezed ? inputs.map((_, i) => ctx.map(i)) : inputs;
  for (const x of operands) {
    if (x.shape.length !== inputs[0].shape.length || x.shape.slice(1).some((d, i) => d !== inputs[0].shape[i + 1])) {
      ctx.fail(`inputs of shapes ${operands.map((o) => `[${o.shape.join(', ')}]`).join(', ')} differ outside the channel axis`);
    }
  }
  const channels = operands.reduce((sum, x) => sum + x.shape[0], 0);
  const out = ctx.layer((name) => tf.layers.concatenate({ name, axis: -1 }), operands, {
    nonNegative: operands.every((x) => x.nonNegative),
    ...(allSqueezed ? { squeezed: true, shape: [channels, 1, 1] } : {}),
  });
  ctx.output(out);
}

export function convertPassThrough(ctx: NodeContext): void {
  if (ctx.node.op_type === 'Dropout' && ctx.node.output.length > 1 && ctx.node.output[1] !== '' && ctx.consumers(1).length > 0) {
    ctx.fail('the mask output of Dropout is used; only inference graphs are supported');
  }
  const x = ctx.input(0);
  if (x === undefined) ctx.fail('has no input');
  ctx.output(x);
}

/** Pad: constant mode with 0, on H and W only; negative pads crop. */
export function convertPad(ctx: NodeContext): void {
  const x = ctx.map(0);
  const mode = ctx.attrs.string('mode', 'constant');
  if (mode !== 'constant') ctx.fail(`mode '${mode}' is not supported (only constant zero padding)`);
  let pads: number[];
  let value = 0;
  if (ctx.opset < 11) {
    pads = ctx.attrs.ints('pads') ?? ctx.fail('pads attribute is missing');
    value = ctx.attrs.float('value', 0);
  } else {
    pads = numbers(ctx.constant(1, 'pads (input 1)').constant, 'pads');
    if (ctx.input(2) !== undefined) value = numbers(ctx.constant(2, 'constant_value (input 2)').constant, 'constant_value')[0] ?? 0;
    if (ctx.input(3) !== undefined) ctx.fail('the axes input is not supported');
  }
  if (value !== 0) ctx.fail(`constant_value ${value}: only zero padding is supported`);
  if (pads.length !== 8) ctx.fail(`pads has ${pads.length} values, expected 8 for an NCHW map`);
  const [n0, c0, top, left, n1, c1, bottom, right] = pads;
  if (n0 !== 0 || c0 !== 0 || n1 !== 0 || c1 !== 0) ctx.fail('padding of the batch or channel axis is not supported');
  const grow: [[number, number], [number, number]] = [
    [Math.max(top, 0), Math.max(bottom, 0)],
    [Math.max(left, 0), Math.max(right, 0)],
  ];
  let out = zeroPad(ctx, x, grow, '');
  const crop: [[number, number], [number, number]] = [
    [Math.max(-top, 0), Math.max(-bottom, 0)],
    [Math.max(-left, 0), Math.max(-right, 0)],
  ];
  if (crop.flat().some((p) => p > 0)) {
    out = ctx.layer((name) => tf.layers.cropping2D({ name, cropping: crop }), [out], { suffix: out === x ? undefined : 'crop', nonNegative: x.nonNegative });
  }
  ctx.output(out);
}

/** Source index of output index `x` along one axis under ONNX Resize's nearest rules. */
function nearestSource(x: number, inSize: number, outSize: number, scale: number, transform: string, rounding: string): number {
  let original: number;
  switch (transform) {
    case 'half_pixel':
      original = (x + 0.5) / scale - 0.5;
      break;
    case 'pytorch_half_pixel':
      original = outSize > 1 ? (x + 0.5) / scale - 0.5 : 0;
      break;
    case 'align_corners':
      original = outSize === 1 ? 0 : (x * (inSize - 1)) / (outSize - 1);
      break;
    case 'tf_half_pixel_for_nn':
      original = (x + 0.5) / scale;
      break;
    case 'asymmetric':
      original = x / scale;
      break;
    default:
      throw new Error(`coordinate_transformation_mode '${transform}' is not supported`);
  }
  let index: number;
  switch (rounding) {
    case 'floor':
      index = Math.floor(original);
      break;
    case 'ceil':
      index = Math.ceil(original);
      break;
    case 'round_prefer_ceil':
      index = Math.round(original);
      break;
    case 'round_prefer_floor':
      index = original % 1 === 0.5 || original % 1 === -0.5 ? Math.floor(original) : Math.round(original);
      break;
    default:
      throw new Error(`nearest_mode '${rounding}' is not supported`);
  }
  return Math.min(Math.max(index, 0), inSize - 1);
}

/** Resize / Upsample with mode nearest and integer factors on H and W -> UpSampling2D. */
export function convertResize(ctx: NodeContext): void {
  const x = ctx.map(0);
  const upsample = ctx.node.op_type === 'Upsample';
  const mode = ctx.attrs.string('mode', 'nearest');
  if (mode !== 'nearest') ctx.fail(`mode '${mode}' is not supported (only nearest)`);
  const [channels, height, width] = x.shape;
  let scales: number[] | undefined;
  if (upsample && ctx.opset < 9) {
    scales = ctx.attrs.floats('scales');
  } else {
    // Upsample-9 and Resize-10: scales is input 1; Resize-11+: X, roi, scales, sizes.
    const scalesIndex = upsample || ctx.opset < 11 ? 1 : 2;
    const scalesInput = ctx.input(scalesIndex);
    if (scalesInput !== undefined) {
      const values = numbers(ctx.constant(scalesIndex, 'scales').constant, 'scales');
      if (values.length > 0) scales = values;
    }
    if (scales === undefined && !upsample && ctx.opset >= 11 && ctx.input(3) !== undefined) {
      const sizes = numbers(ctx.constant(3, 'sizes (input 3)').constant, 'sizes');
      if (sizes.length !== 4) ctx.fail(`sizes has ${sizes.length} values, expected 4`);
      scales = [sizes[0] === 1 ? 1 : NaN, sizes[1] / channels, sizes[2] / height, sizes[3] / width];
    }
  }
  if (scales === undefined || scales.length !== 4) ctx.fail('needs 4 scales (or sizes) for an NCHW map');
  if (!(scales[0] === 1 && scales[1] === 1)) ctx.fail(`scales [${scales.join(', ')}]: only H and W may be resized`);
  const factors = [scales[2], scales[3]];
  if (!factors.every((f) => Number.isInteger(f) && f >= 1)) ctx.fail(`scales [${scales.join(', ')}]: only integer upsampling factors are supported`);
  if (!upsample && ctx.opset >= 11) {
    const transform = ctx.attrs.string('coordinate_transformation_mode', 'half_pixel');
    const rounding = ctx.attrs.string('nearest_mode', 'round_prefer_floor');
    // tfjs' nearest upsampling reads input floor(x / factor): accept the modes that agree on these sizes.
    [height, width].forEach((size, a) => {
      for (let out = 0; out < size * factors[a]; out++) {
        let source: number;
        try {
          source = nearestSource(out, size, size * factors[a], factors[a], transform, rounding);
        } catch (error) {
          return ctx.fail((error as Error).message);
        }
        if (source !== Math.floor(out / factors[a])) {
          ctx.fail(`coordinate_transformation_mode '${transform}' with nearest_mode '${rounding}' does not map output ${out} to input ${Math.floor(out / factors[a])}`);
        }
      }
    });
  }
  const size = [factors[0], factors[1]];
  ctx.output(ctx.layer((name) => tf.layers.upSampling2d({ name, size, interpolation: 'nearest' }), [x], { nonNegative: x.nonNegative }));
}
