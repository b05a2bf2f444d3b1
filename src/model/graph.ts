/**
 * The layer graph of a tfjs LayersModel as plain, typed data: one node per layer, in topological
 * order, with the names of the layers feeding it and its output shape. This is the "what is
 * connected to what" layer of the pruning library (Torch-Pruning's dependency graph); channel
 * groups (groups.ts), importance (importance.ts), physical pruning (prune.ts) and cost (cost.ts)
 * are built on it.
 *
 * The graph is found by walking back from the model's output tensors through each symbolic
 * tensor's source layer and inbound node. So only what this model computes is seen: a layer that
 * was also applied elsewhere (e.g. re-used to build a sub-network model) is fine, but a layer
 * applied twice *inside this model* (a shared layer) is rejected, because its channels could not
 * be pruned independently per call.
 */
import type { tf } from '../engine/backend.ts';
// Registers the project's layer classes and repairs SeparableConv2D's config (read below).
import './custom-layers.ts';

type Layer = tf.layers.Layer;
type SymbolicTensor = tf.SymbolicTensor;

/** Shape of a layer output; the batch dimension (and only it, for our models) is null. */
export type Shape = readonly (number | null)[];

/**
 * The parts of a layer's config the pruning library reads. Absent when the layer has no such
 * setting. Read through typed accessors (tfjs configs are loosely typed dictionaries).
 */
export interface LayerEssentials {
  readonly filters?: number;
  readonly units?: number;
  readonly kernelSize?: readonly [number, number];
  readonly strides?: readonly [number, number];
  readonly dilationRate?: readonly [number, number];
  readonly padding?: string;
  readonly dataFormat?: string;
  readonly useBias?: boolean;
  readonly activation?: string;
  readonly depthMultiplier?: number;
  readonly axis?: number | readonly number[];
  readonly epsilon?: number;
  readonly center?: boolean;
  readonly scale?: boolean;
  readonly poolSize?: readonly [number, number];
  /** Reshape's target shape (batch axis excluded; -1 allowed). */
  readonly targetShape?: readonly number[];
  /** PReLU's axes sharing one slope (Keras counts from 1, the batch axis being 0). */
  readonly sharedAxes?: readonly number[];
}

export interface GraphNode {
  readonly name: string;
  readonly className: string;
  /** Position in `ModelGraph.nodes` (topological order). */
  readonly index: number;
  /** Names of the layers whose outputs feed this layer, in call order (Add/Concat order matters). */
  readonly inputs: readonly string[];
  /** Names of the layers that consume this layer's output (filled from `inputs`). */
  readonly outputs: readonly string[];
  readonly inputShapes: readonly Shape[];
  readonly outputShape: Shape;
  readonly config: LayerEssentials;
  /** Number of weights in the layer (as tfjs counts them, BN moving statistics included). */
  readonly paramCount: number;
}

export interface ModelGraph {
  readonly name: string;
  /** Topological order: every node comes after all of its inputs. */
  readonly nodes: readonly GraphNode[];
  /** Names of the model's input layers (InputLayer nodes), in model order. */
  readonly inputs: readonly string[];
  /** Names of the layers producing the model's outputs, in model order. */
  readonly outputs: readonly string[];
}

export class GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphError';
  }
}

/** Lookup by name with an error naming the missing layer. */
export function graphNode(graph: ModelGraph, name: string): GraphNode {
  const node = nodeIndex(graph).get(name);
  if (!node) throw new GraphError(`model '${graph.name}' has no layer named '${name}'`);
  return node;
}

const indexCache = new WeakMap<ModelGraph, Map<string, GraphNode>>();
function nodeIndex(graph: ModelGraph): Map<string, GraphNode> {
  let index = indexCache.get(graph);
  if (!index) {
    index = new Map(graph.nodes.map((n) => [n.name, n]));
    indexCache.set(graph, index);
  }
  return index;
}

/** The layer graph of `model`. Throws GraphError on shared layers or multi-output layers. */
export function buildGraph(model: tf.LayersModel): ModelGraph {
  const layerOrder = new Map<Layer, number>();
  model.layers.forEach((layer, i) => layerOrder.set(layer, i));

  // Walk back from the outputs. Each layer must be reached through one inbound node only.
  interface Visit {
    layer: Layer;
    nodeIndex: number;
    inputs: SymbolicTensor[];
    output: SymbolicTensor;
  }
  const visits = new Map<string, Visit>();
  const stack: SymbolicTensor[] = [...model.outputs];
  while (stack.length > 0) {
    const tensor = stack.pop() as SymbolicTensor;
    const layer = tensor.sourceLayer;
    const seen = visits.get(layer.name);
    if (seen) {
      if (seen.layer !== layer) {
        throw new GraphError(`model '${model.name}' has two different layers named '${layer.name}'`);
      }
      if (seen.nodeIndex !== tensor.nodeIndex) {
        throw new GraphError(
          `layer '${layer.name}' (${layer.getClassName()}) is called more than once in model ` +
            `'${model.name}' (shared layer); shared layers cannot be pruned per call and are not supported`,
        );
      }
      continue;
    }
    if (tensor.tensorIndex !== 0) {
      throw new GraphError(
        `layer '${layer.name}' (${layer.getClassName()}) has several output tensors; not supported`,
      );
    }
    const inbound = layer.inboundNodes[tensor.nodeIndex];
    if (!inbound) {
      throw new GraphError(`layer '${layer.name}' (${layer.getClassName()}) has no inbound node ${tensor.nodeIndex}`);
    }
    if (inbound.outputTensors.length !== 1) {
      throw new GraphError(
        `layer '${layer.name}' (${layer.getClassName()}) has ${inbound.outputTensors.length} output tensors; not supported`,
      );
    }
    // InputLayer's inbound node lists no input tensors.
    const inputs = layer.getClassName() === 'InputLayer' ? [] : [...inbound.inputTensors];
    visits.set(layer.name, { layer, nodeIndex: tensor.nodeIndex, inputs, output: inbound.outputTensors[0] });
    for (const input of inputs) stack.push(input);
  }

  // Kahn's algorithm; ties broken by the model's own layer order so the result reads like
  // `model.summary()` (and is deterministic).
  const names = [...visits.keys()];
  const rank = (name: string): number => layerOrder.get(visits.get(name)!.layer) ?? -1;
  const consumers = new Map<string, string[]>(names.map((n) => [n, []]));
  const pending = new Map<string, number>();
  for (const [name, visit] of visits) {
    pending.set(name, visit.inputs.length);
    for (const input of visit.inputs) consumers.get(input.sourceLayer.name)!.push(name);
  }
  const ready = names.filter((n) => pending.get(n) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => rank(a) - rank(b));
    const name = ready.shift() as string;
    order.push(name);
    for (const consumer of consumers.get(name)!) {
      // A consumer listing the same input twice (add([x, x])) is decremented twice, as counted.
      const left = pending.get(consumer)! - 1;
      pending.set(consumer, left);
      if (left === 0) ready.push(consumer);
    }
  }
  if (order.length !== names.length) {
    throw new GraphError(`model '${model.name}' has a cycle in its layer graph`);
  }

  const position = new Map(order.map((name, i) => [name, i]));
  const nodes: GraphNode[] = order.map((name, index) => {
    const { layer, inputs, output } = visits.get(name)!;
    const uniqueConsumers = [...new Set(consumers.get(name)!)].sort(
      (a, b) => position.get(a)! - position.get(b)!,
    );
    return {
      name,
      className: layer.getClassName(),
      index,
      inputs: inputs.map((t) => t.sourceLayer.name),
      outputs: uniqueConsumers,
      inputShapes: inputs.map((t) => [...t.shape]),
      outputShape: [...output.shape],
      config: readEssentials(layer),
      paramCount: layer.countParams(),
    };
  });
  const graph: ModelGraph = {
    name: model.name,
    nodes,
    inputs: model.inputs.map((t) => t.sourceLayer.name),
    outputs: model.outputs.map((t) => t.sourceLayer.name),
  };
  return graph;
}

// ---- typed accessors for tfjs' loosely typed layer configs ----

type Config = Record<string, unknown>;

function readNumber(config: Config, key: string): number | undefined {
  const value = config[key];
  return typeof value === 'number' ? value : undefined;
}

function readBoolean(config: Config, key: string): boolean | undefined {
  const value = config[key];
  return typeof value === 'boolean' ? value : undefined;
}

function readString(config: Config, key: string): string | undefined {
  const value = config[key];
  return typeof value === 'string' ? value : undefined;
}

/** Keras allows `3` or `[3, 3]` for kernel sizes, strides and pool sizes. */
function readPair(config: Config, key: string): readonly [number, number] | undefined {
  const value = config[key];
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) {
    return [value[0] as number, value[1] as number];
  }
  return undefined;
}

function readNumbers(config: Config, key: string): readonly number[] | undefined {
  const value = config[key];
  return Array.isArray(value) && value.every((v) => typeof v === 'number') ? (value as number[]) : undefined;
}

function readAxis(config: Config): number | readonly number[] | undefined {
  const value = config.axis;
  if (typeof value === 'number') return value;
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) return value as number[];
  return undefined;
}

function readEssentials(layer: Layer): LayerEssentials {
  const config = layer.getConfig() as Config;
  const essentials: Record<string, unknown> = {
    filters: readNumber(config, 'filters'),
    units: readNumber(config, 'units'),
    kernelSize: readPair(config, 'kernelSize'),
    strides: readPair(config, 'strides'),
    dilationRate: readPair(config, 'dilationRate'),
    padding: readString(config, 'padding'),
    dataFormat: readString(config, 'dataFormat'),
    useBias: readBoolean(config, 'useBias'),
    activation: readString(config, 'activation'),
    depthMultiplier: readNumber(config, 'depthMultiplier'),
    axis: readAxis(config),
    epsilon: readNumber(config, 'epsilon'),
    center: readBoolean(config, 'center'),
    scale: readBoolean(config, 'scale'),
    poolSize: readPair(config, 'poolSize'),
    targetShape: readNumbers(config, 'targetShape'),
    sharedAxes: typeof config.sharedAxes === 'number' ? [config.sharedAxes] : readNumbers(config, 'sharedAxes'),
  };
  for (const key of Object.keys(essentials)) if (essentials[key] === undefined) delete essentials[key];
  return essentials as LayerEssentials;
}

/**
 * Layers whose output tensor every path from the inputs to the outputs passes through, in
 * topological order: the candidate cut points of the divide step (a ResNet's block outputs, a
 * VGG's layers between convolutions...). A layer is one when every edge leaving the prefix of
 * the topological order that ends at it starts at it; e.g. inside a residual block the skip edge
 * crosses every inner layer, so only the block's output qualifies. The model's output layers are
 * not listed (nothing follows them).
 */
export function cutPoints(graph: ModelGraph): string[] {
  const position = new Map(graph.nodes.map((n) => [n.name, n.index]));
  // For each node, the furthest position any of its outputs reaches.
  const reach = graph.nodes.map((n) => Math.max(n.index, ...n.outputs.map((o) => position.get(o)!)));
  const outputs = new Set(graph.outputs);
  const cuts: string[] = [];
  // Edges crossing the boundary after position p come from nodes at positions <= p whose reach
  // is > p; the boundary is a cut when the only such node is p itself.
  // With several inputs, a cut must come after all of them (paths start at every input).
  const lastInput = Math.max(...graph.inputs.map((name) => position.get(name)!));
  let furthestBefore = -1;
  for (const node of graph.nodes) {
    const isCut = furthestBefore <= node.index && node.index >= lastInput && reach[node.index] > node.index;
    if (isCut && !outputs.has(node.name)) {
      cuts.push(node.name);
    }
    furthestBefore = Math.max(furthestBefore, reach[node.index]);
  }
  return cuts;
}
