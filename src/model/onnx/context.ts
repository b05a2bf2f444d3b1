/**
 * The interface between the importer's graph walk (import.ts) and the op converters (ops/*.ts):
 * a converter reads its node's attributes and inputs through a `NodeContext`, makes layers with
 * `ctx.layer(...)` and sets its outputs. Errors raised through `ctx.fail` name the file, the
 * node, its op type and the opset.
 */
import { tf } from '../../engine/backend.ts';
import type { Constant } from './fold.ts';
import type { AttributeProto, NodeProto, TensorProto } from './proto.ts';
import type { Activation, ConstantValue, Value } from './values.ts';

export class OnnxImportError extends Error {
  constructor(
    readonly file: string,
    readonly node: string,
    readonly op: string,
    readonly opset: number,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: node '${node}' (op ${op}, opset ${opset}): ${problem}`, options);
    this.name = 'OnnxImportError';
  }
}

/** Typed access to a node's attributes, with ONNX's defaults supplied by the caller. */
export class Attributes {
  private readonly byName: ReadonlyMap<string, AttributeProto>;

  constructor(node: NodeProto) {
    this.byName = new Map(node.attribute.map((a) => [a.name, a]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  int(name: string, fallback: number): number {
    return this.byName.get(name)?.i ?? fallback;
  }

  float(name: string, fallback: number): number {
    return this.byName.get(name)?.f ?? fallback;
  }

  /** A list attribute; `fallback` when absent. */
  ints(name: string): number[] | undefined {
    return this.byName.has(name) ? this.byName.get(name)!.ints : undefined;
  }

  floats(name: string): number[] | undefined {
    return this.byName.has(name) ? this.byName.get(name)!.floats : undefined;
  }

  string(name: string, fallback: string): string {
    const bytes = this.byName.get(name)?.s;
    return bytes === undefined ? fallback : new TextDecoder().decode(bytes);
  }

  tensor(name: string): TensorProto | undefined {
    return this.byName.get(name)?.t;
  }
}

/** Weights for a new layer: tensors in the layer's weight order, with the initializer each came from. */
export interface LayerWeights {
  readonly tensors: readonly tf.Tensor[];
  /** Initializer names ('' for a weight computed from several or none). */
  readonly names: readonly string[];
}

export interface LayerOptions {
  /** Distinguishes a node's helper layers (`pad` -> `<node>_pad`); the main layer has none. */
  readonly suffix?: string;
  readonly weights?: LayerWeights;
  readonly nonNegative?: boolean;
  readonly flattenedFrom?: readonly [number, number, number];
  readonly squeezed?: boolean;
  /** ONNX shape of the result when it is not the plain transpose of the tfjs shape (squeezed). */
  readonly shape?: readonly number[];
}

export interface NodeContext {
  readonly node: NodeProto;
  /** The node's name, or `<op>_<index>` when it has none (for messages and layer names). */
  readonly nodeName: string;
  readonly opset: number;
  readonly attrs: Attributes;
  /** The model's declared batch size when it is a fixed number (1 for most fixed-shape exports). */
  readonly declaredBatch: number | undefined;
  /** Input `i`, or undefined when the node has no such input or it is the empty name. */
  input(i: number): Value | undefined;
  /** Input `i` that must be an activation. */
  activation(i: number): Activation;
  /** Input `i` as an NHWC map (a squeezed [C,1,1] gets its Reshape); refuses vectors. */
  map(i: number): Activation;
  /** Input `i` that must be a constant. */
  constant(i: number, what: string): ConstantValue;
  /** The constant value of that name, if it is one (for looking at a consumer's other input). */
  constantNamed(valueName: string): ConstantValue | undefined;
  /** Makes the layer (named after the node), applies it to `inputs`, sets its weights. */
  layer(make: (name: string) => tf.layers.Layer, inputs: readonly Activation[], options?: LayerOptions): Activation;
  /** Output `i` of the node is `value`. */
  output(value: Value, i?: number): void;
  /** The nodes that read output `i` of this node (for fusing MatMul + Add). */
  consumers(i: number): readonly NodeProto[];
  /** Marks a later node as handled by this one: it is not converted on its own, and its outputs are this node's. */
  absorb(node: NodeProto): void;
  fail(problem: string): never;
}

export type Converter = (ctx: NodeContext) => void;

/** A constant's float values (weights), refusing integer constants that carry the symbolic batch. */
export function floatValues(constant: Constant): Float32Array {
  if (constant.values instanceof Float32Array) return constant.values;
  return Float32Array.from(constant.values as readonly number[]);
}

/** A float tfjs tensor of a constant, with an optional transposition of its dims. */
export function weightTensor(values: Float32Array, dims: readonly number[], perm?: readonly number[]): tf.Tensor {
  const tensor = tf.tensor(values, [...dims], 'float32');
  if (perm === undefined) return tensor;
  const transposed = tf.transpose(tensor, [...perm]);
  tensor.dispose();
  return transposed;
}
