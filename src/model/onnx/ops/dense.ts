/**
 * Gemm and MatMul (+ a following Add of a constant bias) on [N, K] tensors -> Dense.
 *
 * After an NCHW flatten ONNX orders features c*H*W + h*W + w, tfjs' NHWC flatten (h*W + w)*C + c:
 * when the input carries `flattenedFrom`, the kernel's rows are permuted into tfjs order.
 */
import { tf } from '../../../engine/backend.ts';
import { floatValues, type NodeContext } from '../context.ts';
import type { Activation } from '../values.ts';

/**
 * Rows of a [K, M] kernel (row-major) between NCHW-flatten order (c*H*W + h*W + w) and
 * NHWC-flatten order ((h*W + w)*C + c): the import permutes `toNhwc`, the export back.
 */
export function permuteFlattenedRows(kernel: Float32Array, units: number, [channels, height, width]: readonly [number, number, number], toNhwc: boolean): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let c = 0; c < channels; c++) {
    for (let h = 0; h < height; h++) {
      for (let w = 0; w < width; w++) {
        const nchw = (c * height * width + h * width + w) * units;
        const nhwc = ((h * width + w) * channels + c) * units;
        const [from, to] = toNhwc ? [nchw, nhwc] : [nhwc, nchw];
        out.set(kernel.subarray(from, from + units), to);
      }
    }
  }
  return out;
}

/** The [N, K] input of a dense layer: a vector, a squeezed [K, 1, 1], or a flattened map. */
function vectorInput(ctx: NodeContext): Activation {
  const x = ctx.activation(0);
  if (x.shape.length !== 1 && !x.squeezed) ctx.fail(`input has shape [N, ${x.shape.join(', ')}]; only [N, K] inputs are supported (flatten first)`);
  return x;
}

function dense(ctx: NodeContext, x: Activation, kernel: Float32Array, units: number, bias: Float32Array | undefined, names: readonly string[]): void {
  const rows = kernel.length / units;
  if (rows !== x.shape[0]) ctx.fail(`weight has ${rows} input features, the input has ${x.shape[0]}`);
  const ordered = x.flattenedFrom === undefined ? kernel : permuteFlattenedRows(kernel, units, x.flattenedFrom, true);
  const tensors = [tf.tensor2d(ordered, [rows, units]), ...(bias ? [tf.tensor1d(bias)] : [])];
  const out = ctx.layer((name) => tf.layers.dense({ name, units, useBias: bias !== undefined }), [x], {
    weights: { tensors, names: names.slice(0, tensors.length) },
  });
  ctx.output(out);
}

/** A [M] bias from a constant broadcastable to [N, M] (scalar, [M] or [1, M]). */
function biasValues(ctx: NodeContext, values: Float32Array, dims: readonly number[], units: number, scale: number): Float32Array {
  const count = values.length;
  if (!(count === 1 || (count === units && dims[dims.length - 1] === units && dims.slice(0, -1).every((d) => d === 1)))) {
    ctx.fail(`bias of shape [${dims.join(', ')}] does not broadcast to [N, ${units}]`);
  }
  const out = new Float32Array(units);
  for (let i = 0; i < units; i++) out[i] = values[count === 1 ? 0 : i] * scale;
  return out;
}

export function convertGemm(ctx: NodeContext): void {
  const x = vectorInput(ctx);
  if (ctx.attrs.int('transA', 0) !== 0) ctx.fail('transA = 1 is not supported');
  const b = ctx.constant(1, 'B (input 1)');
  const dims = b.constant.dims;
  if (dims.length !== 2) ctx.fail(`B has shape [${dims.join(', ')}], expected 2-D`);
  const transB = ctx.attrs.int('transB', 0) === 1;
  const alpha = ctx.attrs.float('alpha', 1);
  const beta = ctx.attrs.float('beta', 1);
  const [rows, units] = transB ? [dims[1], dims[0]] : [dims[0], dims[1]];
  const source = floatValues(b.constant);
  const kernel = new Float32Array(rows * units);
  for (let k = 0; k < rows; k++) {
    for (let m = 0; m < units; m++) kernel[k * units + m] = alpha * source[transB ? m * rows + k : k * units + m];
  }
  const c = ctx.input(2);
  if (c !== undefined && c.kind !== 'constant') ctx.fail('C (input 2) must be a constant');
  const bias = c === undefined ? undefined : biasValues(ctx, floatValues(c.constant), c.constant.dims, units, beta);
  // A kernel scaled by alpha is no longer the initializer; a bias scaled by beta neither.
  dense(ctx, x, kernel, units, bias, [alpha === 1 ? b.name : '', c !== undefined && beta === 1 ? c.name : '']);
}

export function convertMatMul(ctx: NodeContext): void {
  const x = vectorInput(ctx);
  const b = ctx.constant(1, 'B (input 1)');
  const dims = b.constant.dims;
  if (dims.length !== 2) ctx.fail(`B has shape [${dims.join(', ')}], expected 2-D`);
  const units = dims[1];
  const kernel = floatValues(b.constant);
  // MatMul + Add(constant bias) is PyTorch's Linear at some opsets: one Dense with a bias.
  const consumers = ctx.consumers(0);
  let bias: Float32Array | undefined;
  let biasName = '';
  if (consumers.length === 1 && consumers[0].op_type === 'Add') {
    const add = consumers[0];
    const other = add.input[0] === ctx.node.output[0] ? add.input[1] : add.input[0];
    const constant = ctx.constantNamed(other);
    if (constant !== undefined) {
      bias = biasValues(ctx, floatValues(constant.constant), constant.constant.dims, units, 1);
      biasName = constant.name;
      ctx.absorb(add);
    }
  }
  dense(ctx, x, kernel, units, bias, [b.name, biasName]);
}
