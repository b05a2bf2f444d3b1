/**
 * MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
 *
 * Explicit pads of a max pool are -Infinity in ONNX: they become NegInfPadding2D + a 'valid'
 * pool, or ZeroPadding2D when the input is provably >= 0 (a max pool after a ReLU, as in every
 * ResNet stem), where zeros change nothing. ceil_mode adds end padding the same way.
 * Average pools: with count_include_pad the padding counts as zeros (ZeroPadding2D + 'valid');
 * without it, only pads equal to TF 'same' can be expressed (tfjs excludes 'same' padding).
 * Global pools give tfjs [N, C]; the ONNX [N, C, 1, 1] is restored only for consumers that need
 * a map (values.ts `squeezed`).
 */
import { tf } from '../../../engine/backend.ts';
import { NegInfPadding2D } from '../../custom-layers.ts';
import type { NodeContext } from '../context.ts';
import { equalPads, isZero, nodePads, samePads2D, type Pads2D } from '../padding.ts';
import { zeroPad } from './conv.ts';

function pair(values: readonly number[] | undefined, fallback: [number, number], what: string, ctx: NodeContext): [number, number] {
  if (values === undefined) return fallback;
  if (values.length !== 2) ctx.fail(`${what} has ${values.length} values; only 2-D pooling is supported`);
  return [values[0], values[1]];
}

/** PyTorch/ONNX ceil_mode output length, and the end padding it needs beyond `pads`. */
function ceilExtra(size: number, kernel: number, stride: number, before: number, after: number): number {
  let out = Math.ceil((size + before + after - kernel) / stride) + 1;
  // The last window must start inside the input or the begin padding.
  if ((out - 1) * stride >= size + before) out -= 1;
  return Math.max(0, (out - 1) * stride + kernel - (size + before + after));
}

export function convertPool(ctx: NodeContext): void {
  const max = ctx.node.op_type === 'MaxPool';
  const x = ctx.map(0);
  if (max && ctx.node.output.length > 1 && ctx.node.output[1] !== '') ctx.fail('the Indices output of MaxPool is not supported');
  const kernel = pair(ctx.attrs.ints('kernel_shape'), [0, 0], 'kernel_shape', ctx);
  if (kernel[0] < 1) ctx.fail('kernel_shape is missing');
  const strides = pair(ctx.attrs.ints('strides'), [1, 1], 'strides', ctx);
  const dilations = pair(ctx.attrs.ints('dilations'), [1, 1], 'dilations', ctx);
  if (dilations[0] !== 1 || dilations[1] !== 1) ctx.fail('dilated pooling is not supported by tfjs');
  if (max && ctx.attrs.int('storage_order', 0) !== 0) ctx.fail('storage_order 1 is not supported');
  const size: [number, number] = [x.shape[1], x.shape[2]];
  let pads: Pads2D;
  try {
    pads = nodePads(ctx.attrs.string('auto_pad', 'NOTSET'), ctx.attrs.ints('pads'), size, kernel, strides, dilations);
  } catch (error) {
    return ctx.fail((error as Error).message);
  }
  if (ctx.attrs.int('ceil_mode', 0) === 1) {
    const extra = [0, 1].map((a) => ceilExtra(size[a], kernel[a], strides[a], pads[a][0], pads[a][1]));
    if (!max && (extra[0] > 0 || extra[1] > 0)) ctx.fail('ceil_mode on an average pool whose last window overhangs the input is not supported');
    pads = [
      [pads[0][0], pads[0][1] + extra[0]],
      [pads[1][0], pads[1][1] + extra[1]],
    ];
  }
  const same = equalPads(pads, samePads2D(size, kernel, strides, dilations));
  const countIncludePad = !max && ctx.attrs.int('count_include_pad', 0) === 1;
  let input = x;
  let padding: 'same' | 'valid' = 'valid';
  if (!isZero(pads)) {
    if (max && same) {
      padding = 'same';
    } else if (max) {
      input = x.nonNegative
        ? zeroPad(ctx, x, pads)
        : ctx.layer((name) => new NegInfPadding2D({ name, padding: pads }), [x], { suffix: 'pad' });
    } else if (countIncludePad) {
      input = zeroPad(ctx, x, pads);
    } else if (same) {
      padding = 'same';
    } else {
      ctx.fail(`pads [${ctx.attrs.ints('pads')?.join(', ')}] without count_include_pad cannot be expressed in tfjs (only TF 'same' pads can)`);
    }
  }
  const config = { poolSize: kernel, strides, padding };
  const out = ctx.layer((name) => (max ? tf.layers.maxPooling2d({ name, ...config }) : tf.layers.averagePooling2d({ name, ...config })), [input], {
    nonNegative: x.nonNegative,
  });
  ctx.output(out);
}

export function convertGlobalPool(ctx: NodeContext): void {
  const x = ctx.map(0);
  const max = ctx.node.op_type === 'GlobalMaxPool';
  const out = ctx.layer((name) => (max ? tf.layers.globalMaxPooling2d({ name }) : tf.layers.globalAveragePooling2d({ name })), [x], {
    squeezed: true,
    shape: [x.shape[0], 1, 1],
    nonNegative: x.nonNegative,
  });
  ctx.output(out);
}
