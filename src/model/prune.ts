/**
 * Physical pruning: *how to remove*. Given one keep-mask per channel group, build a new, smaller
 * functional LayersModel with the same layer names, classes and settings, and copy the kept
 * weights into it. Which weight axes carry which channels, and which configs name a channel
 * count, each layer kind says (`kinds/`): producers lose kernel columns and biases, consumers
 * kernel rows (Dense rows behind a Flatten in NHWC-interleaved blocks), normalisation layers and
 * PReLU their per-channel weights, depthwise kernels their channels.
 *
 * The original model is left untouched; the caller owns (and disposes) the returned model.
 */
import { tf } from '../engine/backend.ts';
import type { GraphNode } from './graph.ts';
import { analyzeChannels, keptIndices, keptWidth, validateMasks } from './groups.ts';
import type { ChannelAnalysis, GroupMasks, LayerChannels } from './groups.ts';
import { layerKind } from './kinds/index.ts';
import type { KeptPositions, WeightAxis } from './kinds/kind.ts';

export interface PruneOptions {
  /** A channel analysis of `model` to reuse (saves re-analysing in a search loop). */
  readonly analysis?: ChannelAnalysis;
}

type Config = Record<string, unknown>;

/** Constructs a layer of `className` from a `getConfig()` dictionary, the way tfjs deserialises. */
function layerFromConfig(className: string, config: Config, name: string): tf.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new Error(`layer '${name}' (${className}): class is not registered with tfjs serialization`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config as tf.serialization.ConfigDict) as unknown as tf.layers.Layer;
}

function isFull(indices: Int32Array, width: number): boolean {
  if (indices.length !== width) return false;
  for (let i = 0; i < width; i++) if (indices[i] !== i) return false;
  return true;
}

/**
 * `tensor` restricted to `indices` along `axis`: a new tensor (a plain clone when nothing is cut).
 * Done on the host rather than with tf.gather: one pass over the values, and the result is a
 * fresh tensor. (The wasm backend's gather also registers its output data under a 4-D shape,
 * which a variable assigned from it keeps and the wasm FusedConv2D then rejects as a
 * "rank-4 bias".)
 */
function take(tensor: tf.Tensor, indices: Int32Array, axis: number): tf.Tensor {
  const shape = tensor.shape;
  const size = shape[axis];
  if (isFull(indices, size)) return tensor.clone();
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  let inner = 1;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  const source = tensor.dataSync() as Float32Array;
  const target = new Float32Array(outer * indices.length * inner);
  let t = 0;
  for (let o = 0; o < outer; o++) {
    const base = o * size;
    if (inner === 1) {
      for (let j = 0; j < indices.length; j++) target[t++] = source[base + indices[j]];
    } else {
      for (let j = 0; j < indices.length; j++) {
        const from = (base + indices[j]) * inner;
        target.set(source.subarray(from, from + inner), t);
        t += inner;
      }
    }
  }
  const newShape = [...shape];
  newShape[axis] = indices.length;
  return tf.tensor(target, newShape, 'float32');
}

/** Initializer settings of the supported weighted layers. */
const INITIALIZER_KEYS = [
  'kernelInitializer',
  'biasInitializer',
  'depthwiseInitializer',
  'pointwiseInitializer',
  'alphaInitializer',
  'gammaInitializer',
  'betaInitializer',
  'movingMeanInitializer',
  'movingVarianceInitializer',
] as const;

/**
 * The rebuilt layers are built with zero initializers, because their weights are overwritten
 * right after and random initialisation of a large model costs seconds (ResNet-50: ~3 s on
 * wasm); the original initializer objects are then put back so the pruned model's config
 * (and saved topology) says what the original's does.
 */
function withZeroInitializers(config: Config): Config {
  const copy = { ...config };
  for (const key of INITIALIZER_KEYS) if (key in copy) copy[key] = { className: 'Zeros', config: {} };
  return copy;
}

function restoreInitializers(target: tf.layers.Layer, source: tf.layers.Layer): void {
  // The initializers are (protected) fields of the tfjs layer classes; read and written by name.
  const from = source as unknown as Record<string, unknown>;
  const to = target as unknown as Record<string, unknown>;
  for (const key of INITIALIZER_KEYS) if (key in from && key in to) to[key] = from[key];
}

/** Kept positions of a layer's input and output tensors under `masks`. */
export function keptPositions(channels: LayerChannels, masks: GroupMasks): KeptPositions {
  return { inputs: channels.inputs.map((layout) => keptIndices(layout, masks)), output: keptIndices(channels.output, masks) };
}

/** Kept entries along a weight axis: the kept positions, each expanded to `expand` entries. */
function axisIndices(axis: WeightAxis, kept: KeptPositions): Int32Array {
  const positions = axis.side === 'input' ? kept.inputs[0] : kept.output;
  const expand = axis.expand ?? 1;
  if (expand === 1) return positions;
  const out = new Int32Array(positions.length * expand);
  positions.forEach((p, i) => {
    for (let j = 0; j < expand; j++) out[i * expand + j] = p * expand + j;
  });
  return out;
}

/**
 * The kept weights of one layer (`node` is its graph node), in `layer.getWeights()` order. New tensors: the caller disposes them.
 * Exposed so a search can build pruned weights for a layer without rebuilding the whole model.
 */
export function prunedLayerWeights(
  layer: tf.layers.Layer,
  channels: LayerChannels,
  masks: GroupMasks,
  node: GraphNode,
): tf.Tensor[] {
  const weights = layer.getWeights();
  if (weights.length === 0) return [];
  const axes = layerKind(channels.className)?.weights?.(node) ?? [];
  const kept = keptPositions(channels, masks);
  return weights.map((weight, index) => {
    let current = weight;
    let owned = false;
    for (const axis of axes) {
      if (axis.weight !== index) continue;
      const next = take(current, axisIndices(axis, kept), axis.axis);
      if (owned) current.dispose();
      current = next;
      owned = true;
    }
    return owned ? current : weight.clone();
  });
}

/** The config of the pruned layer: kinds that name a channel count (filters, units, targetShape) get the kept one. */
function prunedConfig(layer: tf.layers.Layer, node: GraphNode, channels: LayerChannels, masks: GroupMasks): Config {
  const config = { ...(layer.getConfig() as Config) };
  const kind = layerKind(channels.className);
  return kind?.prunedConfig ? kind.prunedConfig(config, node, keptPositions(channels, masks)) : config;
}

/**
 * A new LayersModel with the channels whose mask bit is 0 removed. Missing masks keep their group
 * whole. Throws (naming the group) on masks for unknown groups, wrong lengths, masks that keep
 * nothing, and masks that would cut the model's input or output channels.
 */
export function pruneModel(model: tf.LayersModel, masks: GroupMasks, options: PruneOptions = {}): tf.LayersModel {
  const analysis = options.analysis ?? analyzeChannels(model);
  validateMasks(analysis, masks);
  const built = new Map<string, tf.SymbolicTensor>();
  const newLayers: { layer: tf.layers.Layer; source: tf.layers.Layer; channels: LayerChannels; node: GraphNode }[] = [];
  analysis.graph.nodes.forEach((node, i) => {
    const channels = analysis.layers[i];
    if (node.className === 'InputLayer') {
      // From the model's input tensors: a Sequential model does not list its InputLayer in `layers`.
      const dtype = model.inputs.find((t) => t.sourceLayer.name === node.name)?.dtype;
      built.set(
        node.name,
        tf.input({
          batchShape: [...node.outputShape],
          name: node.name,
          dtype: dtype === 'int32' ? 'int32' : 'float32',
        }),
      );
      return;
    }
    const source = model.getLayer(node.name);
    const config = withZeroInitializers(prunedConfig(source, node, channels, masks));
    const layer = layerFromConfig(node.className, config, node.name);
    const inputs = node.inputs.map((name) => built.get(name) as tf.SymbolicTensor);
    // Merge layers take a list; every other layer a single tensor.
    const applied = layer.apply(inputs.length === 1 ? inputs[0] : inputs);
    if (Array.isArray(applied) || !(applied instanceof tf.SymbolicTensor)) {
      throw new Error(`layer '${node.name}' (${node.className}) did not return one symbolic tensor when rebuilt`);
    }
    const expected = keptWidth(analysis, channels.output, masks);
    const width = applied.shape[applied.shape.length - 1];
    if (width !== expected) {
      throw new Error(`layer '${node.name}' (${node.className}): rebuilt output width ${width}, expected ${expected}`);
    }
    restoreInitializers(layer, source);
    built.set(node.name, applied);
    newLayers.push({ layer, source, channels, node });
  });
  const pruned = tf.model({
    inputs: analysis.graph.inputs.map((name) => built.get(name) as tf.SymbolicTensor),
    outputs: analysis.graph.outputs.map((name) => built.get(name) as tf.SymbolicTensor),
    name: model.name,
  });
  for (const { layer, source, channels, node } of newLayers) {
    const weights = prunedLayerWeights(source, channels, masks, node);
    if (weights.length === 0) continue;
    try {
      layer.setWeights(weights);
    } finally {
      // setWeights assigns copies into the layer's variables.
      tf.dispose(weights);
    }
  }
  return pruned;
}

/** Masks that keep exactly the channels listed (per group), for tests and tools. */
export function masksKeeping(analysis: ChannelAnalysis, keep: Readonly<Record<string, readonly number[]>>): Record<string, Uint8Array> {
  const masks: Record<string, Uint8Array> = {};
  for (const [id, channels] of Object.entries(keep)) {
    const group = analysis.groups.find((g) => g.id === id);
    if (!group) throw new Error(`no channel group '${id}' in model '${analysis.graph.name}'`);
    const mask = new Uint8Array(group.channels);
    for (const c of channels) {
      if (!Number.isInteger(c) || c < 0 || c >= group.channels) {
        throw new Error(`channel ${c} is out of range for group '${id}' (${group.channels} channels)`);
      }
      mask[c] = 1;
    }
    masks[id] = mask;
  }
  return masks;
}
