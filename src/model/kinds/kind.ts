/**
 * What a layer kind tells the pruning library (Torch-Pruning's per-layer pruning functions are
 * the model): how its output channels follow from its input channels (`flow`), which of its
 * weights carry which channels (`weights`, enough to slice them and to score them), what its
 * pruned config is, and what it costs. `groups.ts`, `prune.ts`, `cost.ts` and `importance.ts`
 * are generic over this interface; adding a layer kind is one module in this folder and one line
 * in `index.ts`.
 *
 * Channels are tracked one by one (DepGraph's index-level dependencies): during the analysis a
 * tensor's channel axis is a list of channel ids, one per position; a producer allocates fresh
 * ids, a layer that ties channels (an Add, an SE gate) couples ids pairwise, and everything else
 * moves ids around (concatenation, depthwise multipliers, flattening).
 */
import type { GraphNode, Shape } from '../graph.ts';

export type { GraphNode, Shape } from '../graph.ts';

export class ChannelAnalysisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelAnalysisError';
  }
}

/**
 * A tensor's last axis during the analysis.
 * - `channels`: the last axis is the channel axis; `ids[p]` is the channel at position p.
 * - `flatten`: a channels-last map flattened: `spatial` positions of `ids.length` channels,
 *   feature f = s * ids.length + p (NHWC order).
 */
export interface FlowLayout {
  readonly kind: 'channels' | 'flatten';
  readonly ids: Int32Array;
  /** Positions interleaved with the channels (1 for `channels`). */
  readonly spatial: number;
}

export interface FlowContext {
  /** Fresh channel ids for a new dimension of `count` channels (a producer's output). */
  newChannels(count: number): Int32Array;
  /**
   * Ties channel `a` to channel `b`: pruning one prunes the other. `stream` marks ties made by
   * summing streams (Add, Subtract, Average, Maximum, Minimum: residual connections), which the
   * search leaves alone unless `pruneResidual`; a gate (Multiply) or a concatenation along
   * another axis ties channels without making them residual.
   */
  couple(a: number, b: number, stream: boolean): void;
}

/** Which channels a weight axis is indexed by. */
export type WeightRole =
  /** A producer's output channels (kernel columns). */
  | 'kernel-out'
  /** A consumer's input channels (kernel rows): what a channel-reducing layer reads. */
  | 'kernel-in'
  /** A depthwise filter per input channel. */
  | 'depthwise'
  | 'bias'
  /** Normalisation scale (BN/LN gamma). */
  | 'scale'
  /** Normalisation shift (BN/LN beta). */
  | 'shift'
  /** BN moving statistics (not trained). */
  | 'statistics'
  /** PReLU slopes. */
  | 'alpha';

export interface WeightAxis {
  /** Index of the weight in `layer.getWeights()`. */
  readonly weight: number;
  readonly axis: number;
  /** The tensor whose channel positions index this axis: the (first) input or the output. */
  readonly side: 'input' | 'output';
  /**
   * Entries per position along the axis (default 1): a separable conv's pointwise rows hold
   * `depthMultiplier` entries per input channel (row = p * expand + j).
   */
  readonly expand?: number;
  readonly role: WeightRole;
}

/** Kept positions of a pruned layer's tensors: per input, and of the output (flatten: features). */
export interface KeptPositions {
  readonly inputs: readonly Int32Array[];
  readonly output: Int32Array;
}

/** Channel widths after pruning (last-axis widths: flatten layouts count features). */
export interface LayerWidths {
  readonly inputs: readonly number[];
  readonly output: number;
}

export interface LayerCostValue {
  readonly macs: number;
  readonly params: number;
}

export type LayerConfig = Record<string, unknown>;

export interface LayerKind {
  /** The tfjs layer classes this module handles (getClassName()). */
  readonly classNames: readonly string[];
  /**
   * `producer`: its output channels are new (its kernel columns are cut) and its inputs are
   * read through weights (its kernel rows are cut): Conv2D, Dense, SeparableConv2D, ...
   * `passThrough`: channels flow through (per-channel weights, if any, are cut with them).
   * `input`: a model input; its channels are never pruned.
   */
  readonly role: 'input' | 'producer' | 'passThrough';
  /**
   * Output layout from the input layouts. Throws ChannelAnalysisError naming the layer when the
   * configuration cannot be pruned exactly (never a silent wrong prune).
   */
  flow(node: GraphNode, inputs: readonly FlowLayout[], context: FlowContext): FlowLayout;
  /** The weights that carry channels, per axis (default: none). */
  weights?(node: GraphNode): readonly WeightAxis[];
  /** The config of the pruned layer when it names a channel count (filters, units, targetShape). */
  prunedConfig?(config: LayerConfig, node: GraphNode, kept: KeptPositions): LayerConfig;
  /** MACs and params for one image at these widths (default 0 and 0). */
  cost?(node: GraphNode, widths: LayerWidths): LayerCostValue;
}

// ---- helpers shared by the kind modules ----

export function describe(node: GraphNode): string {
  return `layer '${node.name}' (${node.className})`;
}

export function refuse(node: GraphNode, why: string): never {
  throw new ChannelAnalysisError(`${describe(node)}: ${why}`);
}

/** The last axis' size of a shape; refuses an unknown one. */
export function lastDim(node: GraphNode, shape: Shape): number {
  const last = shape[shape.length - 1];
  if (typeof last !== 'number') refuse(node, `channel dimension of shape [${shape.join(', ')}] is unknown`);
  return last;
}

export function requireChannelsLast(node: GraphNode): void {
  const format = node.config.dataFormat;
  if (format !== undefined && format !== 'channelsLast') {
    refuse(node, `dataFormat '${format}' is not supported (channelsLast only: channels-first layers cannot be pruned by the channel-last rules)`);
  }
}

/** Refuses unless input `i` is an NHWC feature map whose last axis is channels. */
export function requireFeatureMap(node: GraphNode, inputs: readonly FlowLayout[], i = 0): void {
  const shape = node.inputShapes[i];
  if (inputs[i].kind !== 'channels' || shape.length !== 4) {
    refuse(node, `needs an NHWC feature map as input, got shape [${shape.join(', ')}]${inputs[i].kind === 'flatten' ? ' (after Flatten)' : ''}`);
  }
}

export function onlyInput(node: GraphNode, inputs: readonly FlowLayout[]): FlowLayout {
  if (inputs.length !== 1) refuse(node, `has ${inputs.length} inputs; one expected`);
  return inputs[0];
}

export function channelsLayout(ids: Int32Array): FlowLayout {
  return { kind: 'channels', ids, spatial: 1 };
}

/** Positions between batch and channels (H*W for NHWC maps, 1 for vectors). */
export function spatialPositions(shape: Shape): number {
  let positions = 1;
  for (let i = 1; i < shape.length - 1; i++) positions *= shape[i] ?? 1;
  return positions;
}

/** True when `axis` (possibly negative, possibly a one-element list) is the last axis of a rank-`rank` tensor. */
export function isLastAxis(axis: number | readonly number[] | undefined, rank: number): boolean {
  const value = Array.isArray(axis) ? (axis.length === 1 ? axis[0] : undefined) : axis;
  return value === -1 || value === rank - 1;
}

/** The producer outputs' width as its config declares it; refuses a mismatch with the real shape. */
export function checkDeclaredWidth(node: GraphNode, declared: number | undefined): number {
  const channels = lastDim(node, node.outputShape);
  if (declared !== undefined && declared !== channels) {
    refuse(node, `output has ${channels} channels but the config says ${declared}`);
  }
  return channels;
}


/** A convolution's flow: one channels-last feature map in, `filters` new channels out. */
export function convolutionFlow(node: GraphNode, inputs: readonly FlowLayout[], context: FlowContext): FlowLayout {
  onlyInput(node, inputs);
  requireChannelsLast(node);
  requireFeatureMap(node, inputs);
  return channelsLayout(context.newChannels(checkDeclaredWidth(node, node.config.filters)));
}

/** `axes` plus the per-output-channel bias at weight `index`, when the layer has one. */
export function withBias(node: GraphNode, axes: WeightAxis[], index: number): WeightAxis[] {
  if (node.config.useBias !== false) axes.push({ weight: index, axis: 0, side: 'output', role: 'bias' });
  return axes;
}

/** The pruned config of a layer whose width is `filters`. */
export function prunedFilters(config: LayerConfig, _node: GraphNode, kept: KeptPositions): LayerConfig {
  return { ...config, filters: kept.output.length };
}

/** A normalisation's flow: over the last (channel) axis of a non-flattened tensor only, channels pass through. */
export function channelAxisNormalizationFlow(node: GraphNode, inputs: readonly FlowLayout[]): FlowLayout {
  const input = onlyInput(node, inputs);
  if (input.kind !== 'channels' || !isLastAxis(node.config.axis, node.inputShapes[0].length)) {
    refuse(
      node,
      `only normalisation over the last (channel) axis of a non-flattened tensor is supported ` +
        `(axis ${JSON.stringify(node.config.axis)}, input shape [${node.inputShapes[0].join(', ')}])`,
    );
  }
  return input;
}

/** gamma and beta of a normalisation layer, those its config has, in weight order. */
export function affineRoles(node: GraphNode): WeightRole[] {
  const out: WeightRole[] = [];
  if (node.config.scale !== false) out.push('scale');
  if (node.config.center !== false) out.push('shift');
  return out;
}
