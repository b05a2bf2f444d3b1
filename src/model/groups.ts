/**
 * Channel groups: which channel dimensions of a model must be pruned together.
 *
 * Every Conv2D/Dense output (and every model input) starts a *channel dimension*. Layers that keep
 * channels one-to-one (BatchNormalization, activations, pooling, padding, dropout, depthwise
 * convolution with depthMultiplier 1) pass their input's dimensions through; Add ties (unions) the
 * dimensions of its inputs; Concatenate lays its inputs' dimensions side by side, so its output is
 * made of *segments*; Flatten keeps the segments but changes the layout the next Dense sees
 * (NHWC flatten: row = (h*W + w)*C + c). A union-find over the dimensions gives the groups: one
 * mask per group, applied to every producer's output channels, every pass-through layer's
 * per-channel weights and every consumer's input channels (at the segment's offset).
 *
 * The result is plain data (JSON-serialisable): `ChannelAnalysis.groups` for the search, the
 * report and `emo-dir inspect`; `ChannelAnalysis.layers` (each layer's input/output channel
 * layout in terms of groups) for the pruner and the cost model.
 */
import type { tf } from '../engine/backend.ts';
import { buildGraph } from './graph.ts';
import type { GraphNode, ModelGraph, Shape } from './graph.ts';

/** A run of channels of one group inside a tensor's channel axis. */
export interface ChannelSegment {
  readonly group: string;
  /** First channel of the segment in the tensor's channel axis. */
  readonly offset: number;
  readonly channels: number;
}

/**
 * How a tensor's last axis is made of groups.
 * - `channels`: the last axis is the channel axis (NHWC feature maps, or [N, C] vectors).
 * - `flatten`: a Flatten of an NHWC map with `spatial` = H*W positions and `channels` = C
 *   channels per position; feature f = s*channels + c (s = h*W + w).
 */
export type ChannelLayout =
  | { readonly kind: 'channels'; readonly channels: number; readonly segments: readonly ChannelSegment[] }
  | {
      readonly kind: 'flatten';
      readonly channels: number;
      readonly spatial: number;
      readonly segments: readonly ChannelSegment[];
    };

/** A layer's part in a group. */
export interface GroupMember {
  readonly layer: string;
  readonly className: string;
  /** Where the group's channels start in the layer's (input for consumers, output otherwise) channel axis. */
  readonly offset: number;
  /** For consumers behind a Flatten: the number of spatial positions interleaved with channels. */
  readonly spatial?: number;
}

export interface ChannelGroup {
  /** Stable, readable: the first producing layer's name (topological order); an input layer's name for input channels. */
  readonly id: string;
  readonly channels: number;
  /** True when the group is tied to another dimension through an Add (a residual stream). */
  readonly residual: boolean;
  /** Whether the search may prune this group (false for input, output, and residual groups unless `pruneResidual`). */
  readonly prunable: boolean;
  /** Set when the group is the model's input channels or its output (logits): never prunable, not even physically. */
  readonly boundary: 'input' | 'output' | null;
  /** Layers whose output channels (kernel output axis, bias) are cut: Conv2D, Dense. */
  readonly producers: readonly GroupMember[];
  /**
   * Layers that carry the channels through: BatchNormalization and DepthwiseConv2D (their
   * per-channel weights are cut) and weightless ones (activations, pooling, Add, Concatenate, Flatten, ...).
   */
  readonly passThrough: readonly GroupMember[];
  /** Layers whose input channels are cut (kernel input axis / dense rows): Conv2D, Dense. */
  readonly consumers: readonly GroupMember[];
}

export interface LayerChannels {
  readonly name: string;
  readonly className: string;
  /** One layout per input tensor (empty for InputLayer). */
  readonly inputs: readonly ChannelLayout[];
  readonly output: ChannelLayout;
}

export interface ChannelAnalysis {
  readonly graph: ModelGraph;
  /** Topological order (by the first layer creating one of the group's dimensions). */
  readonly groups: readonly ChannelGroup[];
  /** Same order as `graph.nodes`. */
  readonly layers: readonly LayerChannels[];
  readonly pruneResidual: boolean;
}

export interface AnalyzeOptions {
  /** Let the search prune groups tied through an Add (residual streams). Default false. */
  readonly pruneResidual?: boolean;
}

/** Per group id, one byte per channel: 1 keeps the channel, 0 removes it. A missing group keeps all. */
export type GroupMasks = Readonly<Record<string, Uint8Array>>;

export class ChannelAnalysisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelAnalysisError';
  }
}

/** Layer classes whose output channels are a new dimension and whose input channels are cut. */
export const PRODUCER_CLASSES: ReadonlySet<string> = new Set(['Conv2D', 'Dense']);
/** Channel-preserving layers with per-channel weights. */
export const WEIGHTED_PASS_THROUGH_CLASSES: ReadonlySet<string> = new Set(['BatchNormalization', 'DepthwiseConv2D']);
/** Channel-preserving layers without weights; any tensor layout. */
const ELEMENTWISE_CLASSES: ReadonlySet<string> = new Set([
  'Activation', 'ReLU', 'LeakyReLU', 'ELU', 'Softmax', 'ThresholdedReLU',
  'Dropout', 'AlphaDropout', 'GaussianDropout', 'GaussianNoise',
]);
/** Channel-preserving layers on NHWC maps. */
const SPATIAL_CLASSES: ReadonlySet<string> = new Set(['MaxPooling2D', 'AveragePooling2D', 'ZeroPadding2D']);
const GLOBAL_POOL_CLASSES: ReadonlySet<string> = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D']);
/** Every layer class the analysis understands. */
export const SUPPORTED_CLASSES: ReadonlySet<string> = new Set([
  'InputLayer', 'Add', 'Concatenate', 'Flatten',
  ...PRODUCER_CLASSES, ...WEIGHTED_PASS_THROUGH_CLASSES, ...ELEMENTWISE_CLASSES, ...SPATIAL_CLASSES, ...GLOBAL_POOL_CLASSES,
]);

// ---- union-find over channel dimensions ----

interface Dimension {
  readonly channels: number;
  /** The layer that created it (a producer or an input layer). */
  readonly creator: string;
  readonly fromInput: boolean;
}

class DimensionSets {
  readonly dims: Dimension[] = [];
  private readonly parent: number[] = [];
  private readonly residual: boolean[] = [];

  create(dim: Dimension): number {
    this.dims.push(dim);
    this.parent.push(this.parent.length);
    this.residual.push(false);
    return this.parent.length - 1;
  }

  find(d: number): number {
    let root = d;
    while (this.parent[root] !== root) root = this.parent[root];
    while (this.parent[d] !== root) {
      const next = this.parent[d];
      this.parent[d] = root;
      d = next;
    }
    return root;
  }

  /** Ties two dimensions through an Add; the earlier-created root wins so roots stay in topological order. */
  unionResidual(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    const root = Math.min(ra, rb);
    const child = Math.max(ra, rb);
    this.parent[child] = root;
    this.residual[root] = true;
  }

  isResidual(d: number): boolean {
    return this.residual[this.find(d)];
  }
}

/** A layout before group ids are known: segments name dimensions. */
interface RawSegment {
  dim: number;
  offset: number;
  channels: number;
}
type RawLayout =
  | { kind: 'channels'; channels: number; segments: RawSegment[] }
  | { kind: 'flatten'; channels: number; spatial: number; segments: RawSegment[] };

function describe(node: GraphNode): string {
  return `layer '${node.name}' (${node.className})`;
}

function lastDim(shape: Shape, node: GraphNode): number {
  const last = shape[shape.length - 1];
  if (typeof last !== 'number') {
    throw new ChannelAnalysisError(`${describe(node)}: channel dimension of shape [${shape.join(', ')}] is unknown`);
  }
  return last;
}

function requireRank4(node: GraphNode, layout: RawLayout, shape: Shape): void {
  if (layout.kind !== 'channels' || shape.length !== 4) {
    throw new ChannelAnalysisError(
      `${describe(node)} needs an NHWC feature map as input, got shape [${shape.join(', ')}]` +
        (layout.kind === 'flatten' ? ' (after Flatten)' : ''),
    );
  }
}

function requireChannelsLast(node: GraphNode): void {
  const format = node.config.dataFormat;
  if (format !== undefined && format !== 'channelsLast') {
    throw new ChannelAnalysisError(`${describe(node)}: dataFormat '${format}' is not supported (channelsLast only)`);
  }
}

/** True when `axis` (possibly negative, possibly a one-element list) is the last axis of a rank-`rank` tensor. */
function isLastAxis(axis: number | readonly number[] | undefined, rank: number): boolean {
  const value = Array.isArray(axis) ? (axis.length === 1 ? axis[0] : undefined) : axis;
  return value === -1 || value === rank - 1;
}

function sameSegmentation(a: RawLayout, b: RawLayout): boolean {
  if (a.kind !== b.kind || a.channels !== b.channels || a.segments.length !== b.segments.length) return false;
  if (a.kind === 'flatten' && b.kind === 'flatten' && a.spatial !== b.spatial) return false;
  return a.segments.every((s, i) => s.offset === b.segments[i].offset && s.channels === b.segments[i].channels);
}

function singleDimLayout(dim: number, channels: number): RawLayout {
  return { kind: 'channels', channels, segments: [{ dim, offset: 0, channels }] };
}

function isModelGraph(value: tf.LayersModel | ModelGraph): value is ModelGraph {
  return !('layers' in value) && Array.isArray((value as ModelGraph).nodes);
}

/** Channel groups of `model` (or of an already built graph). Throws ChannelAnalysisError naming the offending layer. */
export function analyzeChannels(model: tf.LayersModel | ModelGraph, options: AnalyzeOptions = {}): ChannelAnalysis {
  const graph = isModelGraph(model) ? model : buildGraph(model);
  const pruneResidual = options.pruneResidual ?? false;
  const sets = new DimensionSets();
  const outputs = new Map<string, RawLayout>();
  const rawLayers: { node: GraphNode; inputs: RawLayout[]; output: RawLayout }[] = [];

  for (const node of graph.nodes) {
    const inputs = node.inputs.map((name) => outputs.get(name) as RawLayout);
    const inputShape = node.inputShapes[0];
    let output: RawLayout;
    const cls = node.className;
    if (!SUPPORTED_CLASSES.has(cls)) {
      throw new ChannelAnalysisError(
        `${describe(node)}: layer class '${cls}' is not supported by the channel analysis ` +
          `(supported: ${[...SUPPORTED_CLASSES].sort().join(', ')})`,
      );
    }
    if (cls === 'InputLayer') {
      const channels = lastDim(node.outputShape, node);
      output = singleDimLayout(sets.create({ channels, creator: node.name, fromInput: true }), channels);
    } else if (cls === 'Conv2D' || cls === 'Dense') {
      if (inputs.length !== 1) throw new ChannelAnalysisError(`${describe(node)} has ${inputs.length} inputs`);
      if (cls === 'Conv2D') {
        requireChannelsLast(node);
        requireRank4(node, inputs[0], inputShape);
      }
      const channels = lastDim(node.outputShape, node);
      const declared = cls === 'Conv2D' ? node.config.filters : node.config.units;
      if (declared !== undefined && declared !== channels) {
        throw new ChannelAnalysisError(`${describe(node)}: output has ${channels} channels but the config says ${declared}`);
      }
      output = singleDimLayout(sets.create({ channels, creator: node.name, fromInput: false }), channels);
    } else if (cls === 'DepthwiseConv2D') {
      requireChannelsLast(node);
      requireRank4(node, inputs[0], inputShape);
      const multiplier = node.config.depthMultiplier ?? 1;
      if (multiplier !== 1) {
        throw new ChannelAnalysisError(
          `${describe(node)}: depthMultiplier ${multiplier} is not supported (only 1, which keeps channels one-to-one)`,
        );
      }
      output = inputs[0];
    } else if (cls === 'BatchNormalization') {
      if (inputs[0].kind !== 'channels' || !isLastAxis(node.config.axis, inputShape.length)) {
        throw new ChannelAnalysisError(
          `${describe(node)}: only normalisation over the last (channel) axis of a non-flattened tensor is supported ` +
            `(axis ${JSON.stringify(node.config.axis)}, input shape [${inputShape.join(', ')}])`,
        );
      }
      output = inputs[0];
    } else if (ELEMENTWISE_CLASSES.has(cls)) {
      output = inputs[0];
    } else if (SPATIAL_CLASSES.has(cls)) {
      requireChannelsLast(node);
      requireRank4(node, inputs[0], inputShape);
      output = inputs[0];
    } else if (GLOBAL_POOL_CLASSES.has(cls)) {
      requireChannelsLast(node);
      requireRank4(node, inputs[0], inputShape);
      output = { kind: 'channels', channels: inputs[0].channels, segments: inputs[0].segments };
    } else if (cls === 'Flatten') {
      const input = inputs[0];
      if (input.kind === 'flatten' || inputShape.length === 2) {
        output = input;
      } else if (inputShape.length === 4) {
        const [, h, w] = inputShape;
        if (typeof h !== 'number' || typeof w !== 'number') {
          throw new ChannelAnalysisError(`${describe(node)}: spatial size of [${inputShape.join(', ')}] is unknown`);
        }
        output = { kind: 'flatten', channels: input.channels, spatial: h * w, segments: input.segments };
      } else {
        throw new ChannelAnalysisError(`${describe(node)}: input of rank ${inputShape.length} is not supported`);
      }
    } else if (cls === 'Add') {
      const [first, ...rest] = inputs;
      for (const other of rest) {
        if (!sameSegmentation(first, other)) {
          throw new ChannelAnalysisError(
            `${describe(node)}: its inputs (${node.inputs.join(', ')}) are laid out differently in channels ` +
              `(e.g. a concatenation added to a single convolution); not supported`,
          );
        }
        first.segments.forEach((segment, i) => sets.unionResidual(segment.dim, other.segments[i].dim));
      }
      output = first;
    } else if (cls === 'Concatenate') {
      if (!isLastAxis(node.config.axis, node.outputShape.length)) {
        throw new ChannelAnalysisError(
          `${describe(node)}: only concatenation along the channel (last) axis is supported (axis ${JSON.stringify(node.config.axis)})`,
        );
      }
      const segments: RawSegment[] = [];
      let offset = 0;
      for (const [i, input] of inputs.entries()) {
        if (input.kind !== 'channels') {
          throw new ChannelAnalysisError(`${describe(node)}: input '${node.inputs[i]}' is flattened; not supported`);
        }
        for (const s of input.segments) segments.push({ dim: s.dim, offset: offset + s.offset, channels: s.channels });
        offset += input.channels;
      }
      output = { kind: 'channels', channels: offset, segments };
    } else {
      throw new ChannelAnalysisError(`${describe(node)}: layer class '${cls}' is not supported`);
    }
    // Sanity: the layout must describe the layer's real output width.
    const width = lastDim(node.outputShape, node);
    const expected = output.kind === 'flatten' ? output.channels * output.spatial : output.channels;
    if (width !== expected) {
      throw new ChannelAnalysisError(
        `${describe(node)}: output width ${width} does not match its channel layout (${expected}); unsupported configuration`,
      );
    }
    outputs.set(node.name, output);
    rawLayers.push({ node, inputs, output });
  }

  // Boundaries: the input channels and every model output are fixed.
  const boundary = new Map<number, 'input' | 'output'>();
  for (const name of graph.outputs) {
    for (const s of outputs.get(name)!.segments) boundary.set(sets.find(s.dim), 'output');
  }
  sets.dims.forEach((dim, d) => {
    if (dim.fromInput) boundary.set(sets.find(d), 'input');
  });

  // Name each root: its first producer in topological order (dims are created in that order, so
  // the lowest-index non-input dim of the root), else its input layer.
  const rootName = new Map<number, string>();
  const rootFirst = new Map<number, number>();
  sets.dims.forEach((dim, d) => {
    const root = sets.find(d);
    if (!rootFirst.has(root)) rootFirst.set(root, d);
    if (!dim.fromInput && !rootName.has(root)) rootName.set(root, dim.creator);
  });
  sets.dims.forEach((dim, d) => {
    const root = sets.find(d);
    if (!rootName.has(root)) rootName.set(root, dim.creator);
  });
  const groupOf = (dim: number): string => rootName.get(sets.find(dim))!;

  const resolve = (layout: RawLayout): ChannelLayout => {
    const segments = layout.segments.map((s) => ({ group: groupOf(s.dim), offset: s.offset, channels: s.channels }));
    return layout.kind === 'flatten'
      ? { kind: 'flatten', channels: layout.channels, spatial: layout.spatial, segments }
      : { kind: 'channels', channels: layout.channels, segments };
  };
  const layers: LayerChannels[] = rawLayers.map(({ node, inputs, output }) => ({
    name: node.name,
    className: node.className,
    inputs: inputs.map(resolve),
    output: resolve(output),
  }));

  // Members, in topological order of the layers.
  interface Roles {
    producers: GroupMember[];
    passThrough: GroupMember[];
    consumers: GroupMember[];
  }
  const roles = new Map<string, Roles>();
  for (const name of rootName.values()) roles.set(name, { producers: [], passThrough: [], consumers: [] });
  for (const layer of layers) {
    if (layer.className === 'InputLayer') continue;
    const isProducer = PRODUCER_CLASSES.has(layer.className);
    if (isProducer) {
      for (const input of layer.inputs) {
        for (const s of input.segments) {
          const member: GroupMember = { layer: layer.name, className: layer.className, offset: s.offset };
          roles.get(s.group)!.consumers.push(input.kind === 'flatten' ? { ...member, spatial: input.spatial } : member);
        }
      }
    }
    for (const s of layer.output.segments) {
      const member: GroupMember = { layer: layer.name, className: layer.className, offset: s.offset };
      (isProducer ? roles.get(s.group)!.producers : roles.get(s.group)!.passThrough).push(member);
    }
  }

  const roots = [...rootName.keys()].sort((a, b) => rootFirst.get(a)! - rootFirst.get(b)!);
  const groups: ChannelGroup[] = roots.map((root) => {
    const id = rootName.get(root)!;
    const fixed = boundary.get(root) ?? null;
    const residual = sets.isResidual(root);
    const r = roles.get(id)!;
    return {
      id,
      channels: sets.dims[root].channels,
      residual,
      prunable: fixed === null && r.producers.length > 0 && (!residual || pruneResidual),
      boundary: fixed,
      producers: r.producers,
      passThrough: r.passThrough,
      consumers: r.consumers,
    };
  });
  return { graph, groups, layers, pruneResidual };
}

// ---- helpers shared by importance, prune and cost ----

const groupIndexCache = new WeakMap<ChannelAnalysis, Map<string, ChannelGroup>>();

/** The group with this id; error lists the known ids. */
export function findGroup(analysis: ChannelAnalysis, id: string): ChannelGroup {
  let index = groupIndexCache.get(analysis);
  if (!index) {
    index = new Map(analysis.groups.map((g) => [g.id, g]));
    groupIndexCache.set(analysis, index);
  }
  const group = index.get(id);
  if (!group) {
    throw new ChannelAnalysisError(
      `no channel group '${id}' in model '${analysis.graph.name}' (groups: ${analysis.groups.map((g) => g.id).join(', ')})`,
    );
  }
  return group;
}

/** The channel layouts of a layer; error names the layer. */
export function layerChannels(analysis: ChannelAnalysis, name: string): LayerChannels {
  const layer = analysis.layers.find((l) => l.name === name);
  if (!layer) throw new ChannelAnalysisError(`model '${analysis.graph.name}' has no layer named '${name}'`);
  return layer;
}

/** Number of kept channels of a group (all when it has no mask). */
export function keptChannels(group: ChannelGroup, masks: GroupMasks): number {
  const mask = masks[group.id];
  if (!mask) return group.channels;
  let kept = 0;
  for (const bit of mask) kept += bit ? 1 : 0;
  return kept;
}

/** Width of a tensor's last axis after pruning (flatten layouts multiply by the spatial size). */
export function keptWidth(analysis: ChannelAnalysis, layout: ChannelLayout, masks: GroupMasks): number {
  let channels = 0;
  for (const s of layout.segments) channels += keptChannels(findGroup(analysis, s.group), masks);
  return layout.kind === 'flatten' ? channels * layout.spatial : channels;
}

/**
 * Indices along a tensor's last axis that survive pruning, in order: for a `channels` layout the
 * kept channels; for a `flatten` layout the kept features s*C + c for every position s.
 */
export function keptIndices(layout: ChannelLayout, masks: GroupMasks): Int32Array {
  const channels: number[] = [];
  for (const s of layout.segments) {
    const mask = masks[s.group];
    for (let c = 0; c < s.channels; c++) if (!mask || mask[c]) channels.push(s.offset + c);
  }
  if (layout.kind === 'channels') return Int32Array.from(channels);
  const indices = new Int32Array(layout.spatial * channels.length);
  let i = 0;
  for (let p = 0; p < layout.spatial; p++) {
    for (const c of channels) indices[i++] = p * layout.channels + c;
  }
  return indices;
}

/**
 * Throws ChannelAnalysisError unless every mask names a group of the analysis, has one entry per
 * channel, keeps at least one channel, and leaves the input and output groups whole.
 * Residual groups may be cut here (physically that is fine); `prunable` is the search's business.
 */
export function validateMasks(analysis: ChannelAnalysis, masks: GroupMasks): void {
  for (const [id, mask] of Object.entries(masks)) {
    const group = findGroup(analysis, id);
    if (!(mask instanceof Uint8Array)) {
      throw new ChannelAnalysisError(`mask for group '${id}' must be a Uint8Array (1 keeps a channel)`);
    }
    if (mask.length !== group.channels) {
      throw new ChannelAnalysisError(`mask for group '${id}' has ${mask.length} entries, the group has ${group.channels} channels`);
    }
    const kept = keptChannels(group, masks);
    if (kept === 0) throw new ChannelAnalysisError(`mask for group '${id}' keeps no channel (at least one must stay)`);
    if (group.boundary !== null && kept !== group.channels) {
      throw new ChannelAnalysisError(
        `group '${id}' is the model's ${group.boundary} channels and cannot be pruned (mask keeps ${kept} of ${group.channels})`,
      );
    }
  }
}

/** The all-ones masks of every prunable group (a convenient starting genome). */
export function fullMasks(analysis: ChannelAnalysis): Record<string, Uint8Array> {
  const masks: Record<string, Uint8Array> = {};
  for (const group of analysis.groups) if (group.prunable) masks[group.id] = new Uint8Array(group.channels).fill(1);
  return masks;
}

/** Every layer a group touches (producers, pass-through layers, consumers), each once, in that order. */
export function groupLayers(group: ChannelGroup): string[] {
  return [...new Set([...group.producers, ...group.passThrough, ...group.consumers].map((m) => m.layer))];
}

/** Total number of channels the search may cut (the genome length over the whole model). */
export function prunableChannels(analysis: ChannelAnalysis): number {
  return analysis.groups.reduce((sum, g) => sum + (g.prunable ? g.channels : 0), 0);
}

// ---- genome <-> masks (the search's encoding: one bit per prunable channel, groups in order) ----

/** Where a group's channels sit in a genome. */
export interface GenomeSlot {
  readonly group: string;
  /** First genome bit of the group. */
  readonly start: number;
  readonly channels: number;
}

/**
 * The genome layout over `groupIds` (default: every prunable group, in topological order):
 * the groups' channels back to back. Unknown ids are an error; a non-prunable group may be
 * listed explicitly (e.g. a residual group a sub-network search is allowed to cut).
 */
export function genomeSlots(analysis: ChannelAnalysis, groupIds?: readonly string[]): GenomeSlot[] {
  const groups = groupIds ? groupIds.map((id) => findGroup(analysis, id)) : analysis.groups.filter((g) => g.prunable);
  let start = 0;
  return groups.map((g) => {
    const slot = { group: g.id, start, channels: g.channels };
    start += g.channels;
    return slot;
  });
}

/** Genome length of a layout. */
export function genomeLength(slots: readonly GenomeSlot[]): number {
  const last = slots[slots.length - 1];
  return last ? last.start + last.channels : 0;
}

/** Per-group masks viewing the genome (no copy: a later change to the genome shows in the masks). */
export function masksFromGenome(slots: readonly GenomeSlot[], genome: Uint8Array): Record<string, Uint8Array> {
  if (genome.length !== genomeLength(slots)) {
    throw new ChannelAnalysisError(`genome has ${genome.length} bits, the layout needs ${genomeLength(slots)}`);
  }
  const masks: Record<string, Uint8Array> = {};
  for (const slot of slots) masks[slot.group] = genome.subarray(slot.start, slot.start + slot.channels);
  return masks;
}

/** The genome of `masks` over a layout (groups without a mask are all ones). */
export function genomeFromMasks(slots: readonly GenomeSlot[], masks: GroupMasks): Uint8Array {
  const genome = new Uint8Array(genomeLength(slots)).fill(1);
  for (const slot of slots) {
    const mask = masks[slot.group];
    if (!mask) continue;
    if (mask.length !== slot.channels) {
      throw new ChannelAnalysisError(`mask for group '${slot.group}' has ${mask.length} entries, the group has ${slot.channels} channels`);
    }
    genome.set(mask, slot.start);
  }
  return genome;
}
