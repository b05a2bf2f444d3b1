/**
 * What an ONNX value is while a graph is being imported: a tensor computed from the model input
 * (an `Activation`, held as a tfjs symbolic tensor in NHWC) or a constant (an initializer, a
 * Constant node, or a folded shape computation).
 *
 * Layouts. ONNX activations are NCHW `[N, C, H, W]` or `[N, F]`; the tfjs tensor of a map is NHWC.
 * `shape` is always the ONNX shape without the batch axis. Two cases keep a tensor in a form that
 * differs from a plain transpose of its ONNX value, to avoid layers the model does not need:
 * - `squeezed`: a global pool's `[C, 1, 1]` output held as tfjs `[N, C]`; a consumer that needs the
 *   map gets a Reshape([1, 1, C]) made once (`toMap`), a Flatten needs nothing.
 * - `flattenedFrom`: the output of flattening a `[C, H, W]` map with H*W > 1. tfjs flattens NHWC,
 *   so its features are in (h, w, c) order, not ONNX's (c, h, w): a Gemm/MatMul consumer permutes
 *   its weight rows; any other consumer is refused.
 */
import type { tf } from '../../engine/backend.ts';
import type { Constant } from './fold.ts';

export interface Activation {
  readonly kind: 'activation';
  readonly tensor: tf.SymbolicTensor;
  /** ONNX shape without the batch axis: [C, H, W] or [F]. */
  readonly shape: readonly number[];
  readonly squeezed?: boolean;
  readonly flattenedFrom?: readonly [number, number, number];
  /** Provably >= 0 (a ReLU's output, a sigmoid's...): a max pool may pad it with zeros instead of -inf. */
  readonly nonNegative: boolean;
}

export interface ConstantValue {
  readonly kind: 'constant';
  readonly constant: Constant;
  /** The initializer's name ('' for folded values), for the original-name record. */
  readonly name: string;
}

export type Value = Activation | ConstantValue;

/** The ONNX shape [C, H, W] or [F] of an NHWC / NC symbolic tensor. */
export function onnxShapeOf(tensor: tf.SymbolicTensor): number[] {
  const dims = tensor.shape.slice(1);
  if (dims.some((d) => d === null)) throw new Error(`tensor ${tensor.name} has an unknown dimension: [${tensor.shape.join(', ')}]`);
  const known = dims as number[];
  return known.length === 3 ? [known[2], known[0], known[1]] : known;
}
