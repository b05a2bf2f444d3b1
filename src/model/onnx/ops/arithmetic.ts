/**
 * Add, Sub, Mul, Div where at least one operand is computed from the model input (all-constant
 * ones are folded). Two tensors: Add / Multiply / Subtract layers, including the squeeze-
 * excitation broadcast [C, H, W] * [C, 1, 1]. A tensor and a scalar constant: Scale (Mul, Div)
 * or Shift (Add, Sub). Per-channel or per-pixel constants are refused.
 */
import { tf } from '../../../engine/backend.ts';
import { Scale, Shift, Subtract } from '../../custom-layers.ts';
import type { NodeContext } from '../context.ts';
import { numbers } from '../fold.ts';
import type { Activation, ConstantValue } from '../values.ts';

type Op = 'Add' | 'Sub' | 'Mul' | 'Div';

function sameOrBroadcast(a: Activation, b: Activation): boolean {
  if (a.shape.length !== b.shape.length) return false;
  return a.shape.every((d, i) => d === b.shape[i] || (a.shape.length === 3 && i > 0 && (d === 1 || b.shape[i] === 1) && a.shape[0] === b.shape[0]));
}

function twoTensors(ctx: NodeContext, op: Op, a: Activation, b: Activation): void {
  if (op === 'Div') ctx.fail('division of two computed tensors is not supported');
  if (a.flattenedFrom !== undefined || b.flattenedFrom !== undefined) ctx.fail('an operand is a flattened [C, H, W] map');
  if (!sameOrBroadcast(a, b)) ctx.fail(`operands of shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] (batch axis omitted) do not match`);
  const bothSqueezed = a.squeezed === true && b.squeezed === true;
  // A squeezed [C,1,1] operand against a map needs its map form for the broadcast.
  const left = bothSqueezed ? a : a.shape.length === 3 ? ctx.map(0) : a;
  const right = bothSqueezed ? b : b.shape.length === 3 ? ctx.map(1) : b;
  const form = bothSqueezed ? { squeezed: true, shape: a.shape } : {};
  const nonNegative = op === 'Mul' ? a.nonNegative && b.nonNegative : op === 'Add' ? a.nonNegative && b.nonNegative : false;
  const make = (name: string): tf.layers.Layer =>
    op === 'Add' ? tf.layers.add({ name }) : op === 'Mul' ? tf.layers.multiply({ name }) : new Subtract({ name });
  ctx.output(ctx.layer(make, [left, right], { nonNegative, ...form }));
}

function scalarOf(ctx: NodeContext, value: ConstantValue): number {
  const values = numbers(value.constant, 'the constant operand');
  if (values.length !== 1) {
    ctx.fail(`a constant operand of shape [${value.constant.dims.join(', ')}] is not supported (only scalars; per-channel constants are not)`);
  }
  return values[0];
}

function tensorAndScalar(ctx: NodeContext, op: Op, x: Activation, c: number, constantFirst: boolean): void {
  if (x.flattenedFrom !== undefined) ctx.fail('the operand is a flattened [C, H, W] map');
  const form = x.squeezed ? { squeezed: true, shape: x.shape } : {};
  const scale = (factor: number, suffix?: string): ((input: Activation) => Activation) => (input) =>
    ctx.layer((name) => new Scale({ name, scale: factor }), [input], { nonNegative: input.nonNegative && factor >= 0, ...form, ...(suffix ? { suffix } : {}) });
  const shift = (offset: number): ((input: Activation) => Activation) => (input) =>
    ctx.layer((name) => new Shift({ name, offset }), [input], { nonNegative: input.nonNegative && offset >= 0, ...form });
  switch (op) {
    case 'Mul':
      ctx.output(scale(c)(x));
      return;
    case 'Div':
      if (constantFirst) ctx.fail('division of a constant by a computed tensor is not supported');
      if (c === 0) ctx.fail('division by the constant 0');
      ctx.output(scale(1 / c)(x));
      return;
    case 'Add':
      ctx.output(shift(c)(x));
      return;
    case 'Sub':
      // c - x = Shift(c)(Scale(-1)(x)); x - c = Shift(-c)(x).
      ctx.output(constantFirst ? shift(c)(scale(-1, 'negate')(x)) : shift(-c)(x));
      return;
  }
}

export function convertArithmetic(ctx: NodeContext): void {
  const op = ctx.node.op_type as Op;
  const a = ctx.input(0);
  const b = ctx.input(1);
  if (a === undefined || b === undefined) ctx.fail('needs two inputs');
  if (a.kind === 'activation' && b.kind === 'activation') return twoTensors(ctx, op, a, b);
  if (a.kind === 'activation' && b.kind === 'constant') return tensorAndScalar(ctx, op, a, scalarOf(ctx, b), false);
  if (a.kind === 'constant' && b.kind === 'activation') return tensorAndScalar(ctx, op, b, scalarOf(ctx, a), true);
  ctx.fail('internal: an all-constant node reached the converter');
}
