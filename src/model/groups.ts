/**
 * Channel groups: which channels of a model must be pruned together (DepGraph's index-level
 * dependencies).
 *
 * Channels are tracked one by one. Every producer (Conv2D, Dense, SeparableConv2D, ...) and every
 * model input creates fresh channels; each layer kind (`kinds/`) says how its output channels
 * follow from its inputs': carried through (BN, activations, pooling), laid side by side
 * (Concatenate), repeated (a depthwise multiplier), interleaved with positions (Flatten), or
 * coupled one by one (Add and the other merges: a concatenation added to a single convolution
 * couples each concatenated channel with its counterpart; an SE gate couples the excitation's
 * channels with the gated map's). A union-find over channels gives the *coupled channels* (one
 * mask bit each); the channels of every layer that shares one are a *group* (one mask per group),
 * applied to every producer's output channels, every pass-through layer's per-channel weights and
 * every consumer's input channels, wherever in the tensor the group's channels sit.
 *
 * The result is plain data (JSON-serialisable): `ChannelAnalysis.groups` for the search, the
 * report and `emo-dir inspect`; `ChannelAnalysis.layers` (each layer's input/output channel
 * layout in terms of groups) for the pruner, the cost model and importance.
 */
import type { tf } from '../engine/backend.ts';
import { buildGraph } from './graph.ts';
import type { GraphNode, ModelGraph } from './graph.ts';
import { layerKind, refusalReason, SUPPORTED_CLASSES } from './kinds/index.ts';
import { ChannelAnalysisError, describe, lastDim } from './kinds/kind.ts';
import type { FlowContext, FlowLayout } from './kinds/kind.ts';

export { ChannelAnalysisError, SUPPORTED_CLASSES };

/**
 * A run of a tensor's channel axis holding consecutive channels of one group: positions
 * `offset .. offset + channels*repeat - 1`, position `offset + i*repeat + j` (j < repeat) holding
 * the group's channel `start + i`. `repeat` > 1 only behind a depthwise multiplier.
 */
export interface ChannelSegment {
  readonly group: string;
  /** First position of the run in the tensor's channel axis. */
  readonly offset: number;
  /** The group channel at that position. */
  readonly start: number;
  /** Group channels in the run. */
  readonly channels: number;
  /** Positions per group channel (absent = 1). */
  readonly repeat?: number;
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

/** A layer's part in a group (where the group's channels sit in it: its layouts, `ChannelAnalysis.layers`). */
export interface GroupMember {
  readonly layer: string;
  readonly className: string;
}

export interface ChannelGroup {
  /** Stable, readable: the first producing layer's name (topological order); an input layer's name for input channels. */
  readonly id: string;
  /** Coupled channels of the group: the mask length. */
  readonly channels: number;
  /** True when channels of the group are tied through a sum of streams (Add...): a residual stream. */
  readonly residual: boolean;
  /** Whether the search may prune this group (false for input, output, one-channel, and residual groups unless `pruneResidual`). */
  readonly prunable: boolean;
  /** Set when the group is the model's input channels or its output (logits): never prunable, not even physically. */
  readonly boundary: 'input' | 'output' | null;
  /** Layers whose output channels (kernel columns, bias) are cut: Conv2D, Dense, SeparableConv2D, Conv2DTranspose. */
  readonly producers: readonly GroupMember[];
  /**
   * Layers that carry the channels through: BatchNormalization, DepthwiseConv2D, PReLU,
   * LayerNormalization (their per-channel weights are cut) and weightless ones (activations,
   * pooling, merges, Concatenate, Flatten, Reshape, ...).
   */
  readonly passThrough: readonly GroupMember[];
  /** Layers whose input channels are cut (kernel rows): the producers reading the group. */
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
  /** Topological order (by the first layer creating one of the group's channels). */
  readonly groups: readonly ChannelGroup[];
  /** Same order as `graph.nodes`. */
  readonly layers: readonly LayerChannels[];
  readonly pruneResidual: boolean;
}

export interface AnalyzeOptions {
  /** Let the search prune groups tied through a sum of streams (residual streams). Default false. */
  readonly pruneResidual?: boolean;
}

/** Per group id, one byte per channel: 1 keeps the channel, 0 removes it. A missing group keeps all. */
export type GroupMasks = Readonly<Record<string, Uint8Array>>;

// ---- union-find over channels ----

class ChannelSets implements FlowContext {
  /** Per channel id: the layer that created it (index into `creators`) and whether it is a model input's. */
  readonly creatorOf: number[] = [];
  readonly creators: { name: string; fromInput: boolean }[] = [];
  private readonly parent: number[] = [];
  private readonly stream: boolean[] = [];
  private current: { name: string; fromInput: boolean } | undefined;

  /** The layer whose `flow` runs now: new channels are its. */
  begin(node: GraphNode, fromInput: boolean): void {
    this.current = { name: node.name, fromInput };
  }

  newChannels(count: number): Int32Array {
    if (!this.current) throw new Error('newChannels outside a layer');
    if (this.creators.at(-1) !== this.current) this.creators.push(this.current);
    const creator = this.creators.length - 1;
    const ids = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      ids[i] = this.parent.length;
      this.parent.push(this.parent.length);
      this.stream.push(false);
      this.creatorOf.push(creator);
    }
    return ids;
  }

  find(id: number): number {
    let root = id;
    while (this.parent[root] !== root) root = this.parent[root];
    while (this.parent[id] !== root) {
      const next = this.parent[id];
      this.parent[id] = root;
      id = next;
    }
    return root;
  }

  /** The smaller id stays root, so a component's root is its first-created channel. */
  couple(a: number, b: number, stream: boolean): void {
    const ra = this.find(a);
    const rb = this.find(b);
    const root = Math.min(ra, rb);
    const child = Math.max(ra, rb);
    this.parent[child] = root;
    this.stream[root] = this.stream[root] || this.stream[child] || stream;
  }

  isStream(root: number): boolean {
    return this.stream[root];
  }

  get size(): number {
    return this.parent.length;
  }
}

/** Minimal union-find over small integers (the creators, to gather groups). */
function unionFind(size: number): { find(i: number): number; union(a: number, b: number): void } {
  const parent = Array.from({ length: size }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  return {
    find,
    union(a, b) {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    },
  };
}

function isModelGraph(value: tf.LayersModel | ModelGraph): value is ModelGraph {
  return !('layers' in value) && Array.isArray((value as ModelGraph).nodes);
}

/** Channel groups of `model` (or of an already built graph). Throws ChannelAnalysisError naming the offending layer. */
export function analyzeChannels(model: tf.LayersModel | ModelGraph, options: AnalyzeOptions = {}): ChannelAnalysis {
  const graph = isModelGraph(model) ? model : buildGraph(model);
  const pruneResidual = options.pruneResidual ?? false;
  const sets = new ChannelSets();
  const outputs = new Map<string, FlowLayout>();
  const flows: { node: GraphNode; inputs: FlowLayout[]; output: FlowLayout; role: string }[] = [];

  for (const node of graph.nodes) {
    const kind = layerKind(node.className);
    if (!kind) throw new ChannelAnalysisError(`${describe(node)}: ${refusalReason(node.className)}`);
    if (node.outputShape.some((d) => d === 0)) {
      // tfjs builds such a layer (e.g. a pool on a 1x1 map) and then corrupts memory running it.
      throw new ChannelAnalysisError(`${describe(node)}: output shape [${node.outputShape.join(', ')}] is empty (the input is too small for this network)`);
    }
    const inputs = node.inputs.map((name) => outputs.get(name) as FlowLayout);
    sets.begin(node, kind.role === 'input');
    const output = kind.flow(node, inputs, sets);
    // Sanity: the layout must describe the layer's real output width.
    const width = lastDim(node, node.outputShape);
    if (width !== output.ids.length * output.spatial) {
      throw new ChannelAnalysisError(
        `${describe(node)}: output width ${width} does not match its channel layout (${output.ids.length * output.spatial}); unsupported configuration`,
      );
    }
    outputs.set(node.name, output);
    flows.push({ node, inputs, output, role: kind.role });
  }

  // Groups: creators linked by a coupled channel.
  const creators = unionFind(sets.creators.length);
  for (let id = 0; id < sets.size; id++) creators.union(sets.creatorOf[id], sets.creatorOf[sets.find(id)]);

  // A group's channels are its components (coupled-channel sets), in the order of their first
  // channel id: creation order, so a sub-network's analysis orders them as the full model's does.
  interface GroupBuild {
    readonly creators: number[];
    readonly components: number[];
    residual: boolean;
  }
  const builds = new Map<number, GroupBuild>();
  sets.creators.forEach((_, creator) => {
    const groupRoot = creators.find(creator);
    let build = builds.get(groupRoot);
    if (!build) {
      build = { creators: [], components: [], residual: false };
      builds.set(groupRoot, build);
    }
    build.creators.push(creator);
  });
  const channelOf = new Int32Array(sets.size);
  const groupOfRoot = new Map<number, GroupBuild>();
  for (let id = 0; id < sets.size; id++) {
    // A component's root is its smallest id, met first here.
    if (sets.find(id) !== id) continue;
    const build = builds.get(creators.find(sets.creatorOf[id]))!;
    channelOf[id] = build.components.length;
    build.components.push(id);
    groupOfRoot.set(id, build);
    if (sets.isStream(id)) build.residual = true;
  }
  // Name each group after its first producer (else its input layer).
  const nameOf = new Map<GroupBuild, string>();
  for (const build of builds.values()) {
    const first = build.creators.map((c) => sets.creators[c]).find((c) => !c.fromInput) ?? sets.creators[build.creators[0]];
    nameOf.set(build, first.name);
  }
  const groupName = (id: number): string => nameOf.get(groupOfRoot.get(sets.find(id))!)!;
  const groupChannel = (id: number): number => channelOf[sets.find(id)];

  const resolve = (layout: FlowLayout): ChannelLayout => {
    const segments = toSegments(layout.ids, groupName, groupChannel);
    return layout.kind === 'flatten'
      ? { kind: 'flatten', channels: layout.ids.length, spatial: layout.spatial, segments }
      : { kind: 'channels', channels: layout.ids.length, segments };
  };
  const layers: LayerChannels[] = flows.map(({ node, inputs, output }) => ({
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
  for (const name of nameOf.values()) roles.set(name, { producers: [], passThrough: [], consumers: [] });
  const addOnce = (list: GroupMember[], member: GroupMember): void => {
    if (list.at(-1)?.layer !== member.layer) list.push(member);
  };
  layers.forEach((layer, i) => {
    const role = flows[i].role;
    if (role === 'input') return;
    const member: GroupMember = { layer: layer.name, className: layer.className };
    if (role === 'producer') {
      for (const input of layer.inputs) for (const s of input.segments) addOnce(roles.get(s.group)!.consumers, member);
    }
    for (const s of layer.output.segments) {
      addOnce(role === 'producer' ? roles.get(s.group)!.producers : roles.get(s.group)!.passThrough, member);
    }
  });

  // Boundaries: the input channels and every model output are fixed.
  const boundary = new Map<string, 'input' | 'output'>();
  for (const name of graph.outputs) {
    for (const s of layers[graph.nodes.findIndex((n) => n.name === name)].output.segments) boundary.set(s.group, 'output');
  }
  for (const build of builds.values()) {
    if (build.creators.some((c) => sets.creators[c].fromInput)) boundary.set(nameOf.get(build)!, 'input');
  }

  const ordered = [...builds.values()].sort((a, b) => a.components[0] - b.components[0]);
  const groups: ChannelGroup[] = ordered.map((build) => {
    const id = nameOf.get(build)!;
    const fixed = boundary.get(id) ?? null;
    const r = roles.get(id)!;
    return {
      id,
      channels: build.components.length,
      residual: build.residual,
      prunable: fixed === null && r.producers.length > 0 && build.components.length > 1 && (!build.residual || pruneResidual),
      boundary: fixed,
      producers: r.producers,
      passThrough: r.passThrough,
      consumers: r.consumers,
    };
  });
  return { graph, groups, layers, pruneResidual };
}

/** Run-length segments of a channel axis whose positions hold `ids`. */
function toSegments(ids: Int32Array, groupName: (id: number) => string, groupChannel: (id: number) => number): ChannelSegment[] {
  const segments: ChannelSegment[] = [];
  let p = 0;
  while (p < ids.length) {
    const group = groupName(ids[p]);
    const start = groupChannel(ids[p]);
    // Positions holding the same channel as p: the run's repeat.
    let repeat = 1;
    while (p + repeat < ids.length && groupName(ids[p + repeat]) === group && groupChannel(ids[p + repeat]) === start) repeat++;
    let channels = 1;
    for (;;) {
      const next = p + channels * repeat;
      if (next + repeat > ids.length) break;
      let fits = true;
      for (let j = 0; j < repeat && fits; j++) {
        fits = groupName(ids[next + j]) === group && groupChannel(ids[next + j]) === start + channels;
      }
      if (!fits) break;
      channels++;
    }
    segments.push(repeat === 1 ? { group, offset: p, start, channels } : { group, offset: p, start, channels, repeat });
    p += channels * repeat;
  }
  return segments;
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

/** Kept positions of one segment (channels kept x repeat). */
function keptInSegment(segment: ChannelSegment, mask: Uint8Array | undefined): number {
  if (!mask) return segment.channels * (segment.repeat ?? 1);
  let kept = 0;
  for (let i = 0; i < segment.channels; i++) kept += mask[segment.start + i] ? 1 : 0;
  return kept * (segment.repeat ?? 1);
}

/** Width of a tensor's last axis after pruning (flatten layouts multiply by the spatial size). */
export function keptWidth(analysis: ChannelAnalysis, layout: ChannelLayout, masks: GroupMasks): number {
  let channels = 0;
  for (const s of layout.segments) {
    findGroup(analysis, s.group);
    channels += keptInSegment(s, masks[s.group]);
  }
  return layout.kind === 'flatten' ? channels * layout.spatial : channels;
}

/**
 * Indices along a tensor's last axis that survive pruning, in order: for a `channels` layout the
 * kept channel positions; for a `flatten` layout the kept features s*C + c for every position s.
 */
export function keptIndices(layout: ChannelLayout, masks: GroupMasks): Int32Array {
  const positions: number[] = [];
  for (const s of layout.segments) {
    const mask = masks[s.group];
    const repeat = s.repeat ?? 1;
    for (let i = 0; i < s.channels; i++) {
      if (mask && !mask[s.start + i]) continue;
      for (let j = 0; j < repeat; j++) positions.push(s.offset + i * repeat + j);
    }
  }
  if (layout.kind === 'channels') return Int32Array.from(positions);
  const indices = new Int32Array(layout.spatial * positions.length);
  let i = 0;
  for (let p = 0; p < layout.spatial; p++) {
    for (const c of positions) indices[i++] = p * layout.channels + c;
  }
  return indices;
}

/**
 * Per position of a layout's channel axis (flatten: per channel position, not feature): the
 * group id and the group channel it holds. For importance and tools.
 */
export function positionChannels(layout: ChannelLayout): { groups: string[]; channels: Int32Array } {
  const groups: string[] = new Array<string>(layout.channels);
  const channels = new Int32Array(layout.channels);
  for (const s of layout.segments) {
    const repeat = s.repeat ?? 1;
    for (let i = 0; i < s.channels; i++) {
      for (let j = 0; j < repeat; j++) {
        groups[s.offset + i * repeat + j] = s.group;
        channels[s.offset + i * repeat + j] = s.start + i;
      }
    }
  }
  return { groups, channels };
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
