/**
 * Element-wise activations: Relu, Clip (ReLU6 and others), LeakyRelu, PRelu, Elu, Sigmoid, Tanh,
 * HardSigmoid, HardSwish, Softmax. Each keeps the input's form (map, vector, squeezed).
 */
import { tf } from '../../../engine/backend.ts';
import { Clip, HardSigmoid, HardSwish } from '../../custom-layers.ts';
import { floatValues, weightTensor, type NodeContext } from '../context.ts';
import { numbers } from '../fold.ts';
import type { Activation } from '../values.ts';

function keepForm(x: Activation): { squeezed?: boolean; shape?: readonly number[] } {
  return x.squeezed ? { squeezed: true, shape: x.shape } : {};
}

function refuseFlattened(ctx: NodeContext, x: Activation): void {
  if (x.flattenedFrom !== undefined) ctx.fail('applies to a flattened [C, H, W] map (only a Gemm/MatMul may consume one)');
}

function simple(ctx: NodeContext, make: (name: string) => tf.layers.Layer, nonNegative: boolean): void {
  const x = ctx.activation(0);
  refuseFlattened(ctx, x);
  ctx.output(ctx.layer(make, [x], { nonNegative, ...keepForm(x) }));
}

export function convertRelu(ctx: NodeContext): void {
  simple(ctx, (name) => tf.layers.reLU({ name }), true);
}

export function convertSigmoid(ctx: NodeContext): void {
  simple(ctx, (name) => tf.layers.activation({ name, activation: 'sigmoid' }), true);
}

export function convertTanh(ctx: NodeContext): void {
  simple(ctx, (name) => tf.layers.activation({ name, activation: 'tanh' }), false);
}

export function convertLeakyRelu(ctx: NodeContext): void {
  const alpha = ctx.attrs.float('alpha', 0.01);
  simple(ctx, (name) => tf.layers.leakyReLU({ name, alpha }), false);
}

export function convertElu(ctx: NodeContext): void {
  const alpha = ctx.attrs.float('alpha', 1);
  simple(ctx, (name) => tf.layers.elu({ name, alpha }), false);
}

export function convertHardSigmoid(ctx: NodeContext): void {
  // ONNX's defaults (alpha 0.2) differ from PyTorch's 1/6, which exports write explicitly.
  const alpha = ctx.attrs.float('alpha', 0.2);
  const beta = ctx.attrs.float('beta', 0.5);
  simple(ctx, (name) => new HardSigmoid({ name, alpha, beta }), true);
}

export function convertHardSwish(ctx: NodeContext): void {
  simple(ctx, (name) => new HardSwish({ name }), false);
}

/** Clip bounds: attributes before opset 11, optional constant inputs from 11 on. */
function clipBounds(ctx: NodeContext): { min: number | undefined; max: number | undefined } {
  if (ctx.opset < 11) {
    return {
      min: ctx.attrs.has('min') ? ctx.attrs.float('min', 0) : undefined,
      max: ctx.attrs.has('max') ? ctx.attrs.float('max', 0) : undefined,
    };
  }
  const bound = (i: number, what: string): number | undefined => {
    if (ctx.input(i) === undefined) return undefined;
    const values = numbers(ctx.constant(i, what).constant, what);
    if (values.length !== 1) ctx.fail(`${what} must be a scalar`);
    return values[0];
  };
  return { min: bound(1, 'min (input 1)'), max: bound(2, 'max (input 2)') };
}

export function convertClip(ctx: NodeContext): void {
  const { min, max } = clipBounds(ctx);
  if (min === 0) {
    // ReLU / ReLU6: the layer classes every pruning rule knows.
    simple(ctx, (name) => tf.layers.reLU({ name, ...(max === undefined ? {} : { maxValue: max }) }), true);
    return;
  }
  const low = min ?? -3.4e38;
  const high = max ?? 3.4e38;
  simple(ctx, (name) => new Clip({ name, min: low, max: high }), low >= 0);
}

export function convertPRelu(ctx: NodeContext): void {
  const x = ctx.activation(0);
  refuseFlattened(ctx, x);
  const slope = ctx.constant(1, 'the slope (input 1)');
  const values = floatValues(slope.constant);
  const channels = x.shape[0];
  const rank = x.squeezed ? 1 : x.shape.length;
  // Per-channel slopes come as [C, 1, 1] (maps) or [C]; one shared slope as [1] or a scalar.
  const shared = values.length === 1;
  if (!shared && values.length !== channels) ctx.fail(`slope has ${values.length} values for ${channels} channels`);
  const sharedAxes = rank === 3 ? (shared ? [1, 2, 3] : [1, 2]) : shared ? [1] : undefined;
  const alphaShape = rank === 3 ? [1, 1, shared ? 1 : channels] : [shared ? 1 : channels];
  const alpha = weightTensor(values, alphaShape);
  const out = ctx.layer((name) => tf.layers.prelu({ name, ...(sharedAxes ? { sharedAxes } : {}) }), [x], {
    weights: { tensors: [alpha], names: [slope.name] },
    ...keepForm(x),
  });
  ctx.output(out);
}

export function convertSoftmax(ctx: NodeContext): void {
  const x = ctx.activation(0);
  refuseFlattened(ctx, x);
  const rank = x.shape.length + 1;
  const axis = ctx.attrs.int('axis', ctx.opset >= 13 ? -1 : 1);
  const channelAxis = axis === 1 || axis === 1 - rank;
  if (rank === 2 && !(axis === 1 || axis === -1)) ctx.fail(`axis ${axis} of a [N, F] tensor`);
  if (rank === 4 && (!channelAxis || ctx.opset < 13)) {
    ctx.fail(`softmax over axis ${axis} of an NCHW map (opset ${ctx.opset}) is not supported; only over channels from opset 13 on`);
  }
  simple(ctx, (name) => tf.layers.softmax({ name, axis: -1 }), true);
}
