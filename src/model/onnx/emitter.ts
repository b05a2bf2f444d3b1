/**
 * Builds an ONNX graph node by node for the exporter: unique value/node/initializer names,
 * attribute encoding, int64 and float initializers, and dead-node elimination at the end (the
 * exporter emits eagerly and lets consumers fold a padding layer into their own pads, which
 * leaves the padding's node unused).
 */
import type { z } from 'zod';
import { AttributeType, type attributeProtoSchema, type graphProtoSchema, type nodeProtoSchema } from './proto.ts';
import { floatTensorProto, int64TensorProto, type FloatTensor } from './tensor.ts';
import type { TensorProto } from './proto.ts';

type NodeOut = z.input<typeof nodeProtoSchema>;
type AttributeOut = z.input<typeof attributeProtoSchema>;
type GraphOut = z.input<typeof graphProtoSchema>;

/** An attribute value, typed explicitly (ONNX distinguishes INT from FLOAT even for 1 and 1.0). */
export type AttributeValue =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly string: string };

export const int = (value: number): AttributeValue => ({ int: value });
export const float = (value: number): AttributeValue => ({ float: value });
export const ints = (values: readonly number[]): AttributeValue => ({ ints: values });
export const floats = (values: readonly number[]): AttributeValue => ({ floats: values });
export const text = (value: string): AttributeValue => ({ string: value });

function attribute(name: string, value: AttributeValue): AttributeOut {
  if ('int' in value) return { name, type: AttributeType.INT, i: value.int };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('ints' in value) return { name, type: AttributeType.INTS, ints: [...value.ints] };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value.string) };
}

export class GraphEmitter {
  private readonly nodes: NodeOut[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();

  /** A value name not used yet (`base`, else `base_2`, ...). */
  uniqueValue(base: string): string {
    let name = base;
    for (let k = 2; this.valueNames.has(name); k++) name = `${base}_${k}`;
    this.valueNames.add(name);
    return name;
  }

  private uniqueNode(base: string): string {
    let name = base;
    for (let k = 2; this.nodeNames.has(name); k++) name = `${base}_${k}`;
    this.nodeNames.add(name);
    return name;
  }

  /** Registers a name as taken (the graph input). */
  reserve(name: string): string {
    return this.uniqueValue(name);
  }

  /** Appends a node named `name`; its one output is named `output` (default: the node's name). Returns the output. */
  node(op: string, inputs: readonly string[], options: { name: string; output?: string; attrs?: Record<string, AttributeValue> }): string {
    const output = this.uniqueValue(options.output ?? options.name);
    const attributes = Object.entries(options.attrs ?? {}).map(([name, value]) => attribute(name, value));
    this.nodes.push({ name: this.uniqueNode(options.name), op_type: op, input: [...inputs], output: [output], attribute: attributes });
    return output;
  }

  float(base: string, tensor: Pick<FloatTensor, 'dims' | 'values'>): string {
    const name = this.uniqueValue(base);
    this.initializers.push(floatTensorProto(name, tensor.dims, tensor.values));
    return name;
  }

  int64(base: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.uniqueValue(base);
    this.initializers.push(int64TensorProto(name, dims, values));
    return name;
  }

  /** The graph with only the nodes and initializers the outputs depend on. */
  graph(name: string, inputs: GraphOut['input'], outputs: NonNullable<GraphOut['output']>): GraphOut {
    const needed = new Set(outputs.map((o) => o.name));
    const kept: NodeOut[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      if (!(node.output ?? []).some((o) => needed.has(o))) continue;
      kept.push(node);
      for (const input of node.input ?? []) if (input !== '') needed.add(input);
    }
    kept.reverse();
    return { name, node: kept, initializer: this.initializers.filter((t) => needed.has(t.name)), input: inputs, output: outputs };
  }
}
