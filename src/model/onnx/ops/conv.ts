/**
 * Conv and ConvTranspose. Weight layouts (ONNX -> tfjs):
 *   Conv, group 1          [O, I, kH, kW]        -> Conv2D kernel [kH, kW, I, O]
 *   Conv, group = C        [C*m, 1, kH, kW]      -> DepthwiseConv2D kernel [kH, kW, C, m]
 *                          (output channel c*m + j in both)
 *   ConvTranspose, group 1 [I, O, kH, kW]        -> Conv2DTranspose kernel [kH, kW, O, I]
 * Both frameworks compute cross-correlation and define the transposed conv as its input
 * gradient, so no kernel is flipped. Other group counts are refused.
 */
import { tf } from '../../../engine/backend.ts';
import { floatValues, weightTensor, type NodeContext } from '../context.ts';
import { equalPads, isZero, nodePads, samePads2D, type Pads2D } from '../padding.ts';
import type { Activation } from '../values.ts';

interface ConvGeometry {
  readonly kernel: [number, number];
  readonly strides: [number, number];
  readonly dilations: [number, number];
}

function pair(values: readonly number[] | undefined, fallback: [number, number], what: string, ctx: NodeContext): [number, number] {
  if (values === undefined) return fallback;
  if (values.length !== 2) ctx.fail(`${what} has ${values.length} values; only 2-D convolutions are supported`);
  return [values[0], values[1]];
}

function geometry(ctx: NodeContext, weightDims: readonly number[]): ConvGeometry {
  if (weightDims.length !== 4) ctx.fail(`weight has shape [${weightDims.join(', ')}]; only 2-D convolutions (4-D weights) are supported`);
  return {
    kernel: pair(ctx.attrs.ints('kernel_shape'), [weightDims[2], weightDims[3]], 'kernel_shape', ctx),
    strides: pair(ctx.attrs.ints('strides'), [1, 1], 'strides', ctx),
    dilations: pair(ctx.attrs.ints('dilations'), [1, 1], 'dilations', ctx),
  };
}

/** A zero-padding layer for explicit pads (none when they are zero). */
export function zeroPad(ctx: NodeContext, x: Activation, pads: Pads2D, suffix = 'pad'): Activation {
  if (isZero(pads)) return x;
  return ctx.layer((name) => tf.layers.zeroPadding2d({ name, padding: pads }), [x], { suffix, nonNegative: x.nonNegative });
}

/** 'same' when the pads are TF's, 'valid' otherwise, after an explicit padding layer when needed. */
function padForConv(ctx: NodeContext, x: Activation, g: ConvGeometry): { input: Activation; padding: 'same' | 'valid' } {
  const size: [number, number] = [x.shape[1], x.shape[2]];
  let pads: Pads2D;
  try {
    pads = nodePads(ctx.attrs.string('auto_pad', 'NOTSET'), ctx.attrs.ints('pads'), size, g.kernel, g.strides, g.dilations);
  } catch (error) {
    return ctx.fail((error as Error).message);
  }
  if (isZero(pads)) return { input: x, padding: 'valid' };
  if (equalPads(pads, samePads2D(size, g.kernel, g.strides, g.dilations))) return { input: x, padding: 'same' };
  return { input: zeroPad(ctx, x, pads), padding: 'valid' };
}

function biasOf(ctx: NodeContext, index: number, channels: number): { tensor: tf.Tensor; name: string } | undefined {
  const bias = ctx.input(index);
  if (bias === undefined) return undefined;
  if (bias.kind !== 'constant') return ctx.fail(`bias (input ${index}) must be an initializer, not a computed tensor`);
  const values = floatValues(bias.constant);
  if (values.length !== channels) ctx.fail(`bias has ${values.length} values for ${channels} output channels`);
  return { tensor: weightTensor(values, [channels]), name: bias.name };
}

export function convertConv(ctx: NodeContext): void {
  const x = ctx.map(0);
  const weight = ctx.constant(1, 'the weight (input 1)');
  const dims = weight.constant.dims;
  const g = geometry(ctx, dims);
  if (g.kernel[0] !== dims[2] || g.kernel[1] !== dims[3]) ctx.fail(`kernel_shape [${g.kernel.join(', ')}] differs from the weight's [${dims.slice(2).join(', ')}]`);
  if ((g.dilations[0] > 1 || g.dilations[1] > 1) && (g.strides[0] > 1 || g.strides[1] > 1)) {
    ctx.fail('dilation together with a stride above 1 is not supported by tfjs convolutions');
  }
  const channels = x.shape[0];
  const outChannels = dims[0];
  const group = ctx.attrs.int('group', 1);
  const depthwise = group > 1;
  if (depthwise && (group !== channels || dims[1] !== 1 || outChannels % channels !== 0)) {
    ctx.fail(
      `group ${group} on ${channels} input channels (weight [${dims.join(', ')}]): only group 1 and depthwise convolutions ` +
        '(group = input channels) are supported',
    );
  }
  if (!depthwise && dims[1] !== channels) ctx.fail(`weight has ${dims[1]} input channels, the input has ${channels}`);
  const { input, padding } = padForConv(ctx, x, g);
  const bias = biasOf(ctx, 2, outChannels);
  const values = floatValues(weight.constant);
  const multiplier = outChannels / channels;
  const kernel = depthwise
    ? weightTensor(values, [channels, multiplier, dims[2], dims[3]], [2, 3, 0, 1])
    : weightTensor(values, dims, [2, 3, 1, 0]);
  const common = { kernelSize: g.kernel, strides: g.strides, dilationRate: g.dilations, padding, useBias: bias !== undefined };
  const out = ctx.layer(
    (name) =>
      depthwise
        ? tf.layers.depthwiseConv2d({ name, ...common, depthMultiplier: multiplier })
        : tf.layers.conv2d({ name, ...common, filters: outChannels }),
    [input],
    { weights: { tensors: bias ? [kernel, bias.tensor] : [kernel], names: bias ? [weight.name, bias.name] : [weight.name] } },
  );
  ctx.output(out);
}

/** Output length of tfjs' transposed conv (tfjs-layers deconvLength). */
function tfjsTransposeLength(size: number, kernel: number, stride: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? size * stride : size * stride + Math.max(kernel - stride, 0);
}

export function convertConvTranspose(ctx: NodeContext): void {
  const x = ctx.map(0);
  const weight = ctx.constant(1, 'the weight (input 1)');
  const dims = weight.constant.dims;
  const g = geometry(ctx, dims);
  if (ctx.attrs.int('group', 1) !== 1) ctx.fail(`group ${ctx.attrs.int('group', 1)}: only group 1 transposed convolutions are supported`);
  if (g.dilations[0] !== 1 || g.dilations[1] !== 1) ctx.fail('dilated transposed convolutions are not supported by tfjs');
  if (ctx.attrs.has('output_shape')) ctx.fail('output_shape is not supported; export with explicit pads and output_padding');
  const autoPad = ctx.attrs.string('auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') ctx.fail(`auto_pad ${autoPad} is not supported for ConvTranspose`);
  const channels = x.shape[0];
  if (dims[0] !== channels) ctx.fail(`weight has ${dims[0]} input channels, the input has ${channels}`);
  const outChannels = dims[1];
  const pads = autoPad === 'VALID' ? [0, 0, 0, 0] : (ctx.attrs.ints('pads') ?? [0, 0, 0, 0]);
  const outputPadding = ctx.attrs.ints('output_padding') ?? [0, 0];
  const size = [x.shape[1], x.shape[2]];
  // The ONNX output length, and how tfjs' 'same' or 'valid' output must be cropped to match it.
  const wanted = [0, 1].map((a) => (size[a] - 1) * g.strides[a] + g.kernel[a] + outputPadding[a] - pads[a] - pads[a + 2]);
  const sameMatches = [0, 1].every((a) => {
    const before = Math.floor(Math.max(g.kernel[a] - g.strides[a], 0) / 2);
    return pads[a] === before && tfjsTransposeLength(size[a], g.kernel[a], g.strides[a], 'same') === wanted[a];
  });
  const padding = sameMatches ? 'same' : 'valid';
  const crop: [[number, number], [number, number]] = [
    [0, 0],
    [0, 0],
  ];
  if (!sameMatches) {
    for (const a of [0, 1]) {
      const end = tfjsTransposeLength(size[a], g.kernel[a], g.strides[a], 'valid') - pads[a] - wanted[a];
      if (end < 0) ctx.fail(`output_padding ${outputPadding[a]} beyond the end pad ${pads[a + 2]} is not supported`);
      crop[a] = [pads[a], end];
    }
  }
  const bias = biasOf(ctx, 2, outChannels);
  const kernel = weightTensor(floatValues(weight.constant), dims, [2, 3, 1, 0]);
  let out = ctx.layer(
    (name) => tf.layers.conv2dTranspose({ name, filters: outChannels, kernelSize: g.kernel, strides: g.strides, padding, useBias: bias !== undefined }),
    [x],
    { weights: { tensors: bias ? [kernel, bias.tensor] : [kernel], names: bias ? [weight.name, bias.name] : [weight.name] } },
  );
  if (!isZero(crop)) out = ctx.layer((name) => tf.layers.cropping2D({ name, cropping: crop }), [out], { suffix: 'crop' });
  ctx.output(out);
}
