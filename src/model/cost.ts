/**
 * Analytic cost of a model and of a pruned mask set, without building the pruned model: every
 * layer's input and output channel counts are reduced by the keep counts of the groups its
 * tensors are made of (consumers' input channels included).
 *
 * Conventions (the usual ones of pruning papers, so published numbers match):
 * - MACs are multiply-accumulates of the weighted layers only, for one input image (each layer
 *   kind's `cost`, `kinds/`):
 *   Conv2D          Kh*Kw*Cin*Cout*Hout*Wout
 *   Depthwise       Kh*Kw*Cout*Hout*Wout (Cout = C * depthMultiplier)
 *   SeparableConv2D (Kh*Kw*Cin*m + Cin*m*Cout)*Hout*Wout
 *   Conv2DTranspose Kh*Kw*Cin*Cout*Hin*Win
 *   Dense           In*Out (times the positions when applied to a map)
 *   Bias adds, normalisation, activations, merges, pooling, padding, resizing: 0 MACs (they are
 *   listed with 0 so every layer stays reportable). "FLOPs" in papers that report ResNet-56 at 125M and
 *   ResNet-50 at 4.1G are these MACs.
 * - Params count every weight the tfjs model stores: kernels, biases, and 4 per channel for
 *   BatchNormalization (gamma, beta, moving mean, moving variance, as Keras' model.summary() does;
 *   PyTorch counts only gamma and beta, a difference of well under 1% for ResNets).
 */
import { findGroup } from './groups.ts';
import type { ChannelAnalysis, ChannelLayout, GroupMasks, LayerChannels } from './groups.ts';
import type { GraphNode, Shape } from './graph.ts';
import { layerKind } from './kinds/index.ts';

export interface LayerCost {
  readonly name: string;
  readonly className: string;
  /** Output shape after pruning (batch dimension null). */
  readonly outputShape: Shape;
  /** Width of the (first) input's last axis after pruning; null for input layers. */
  readonly inChannels: number | null;
  readonly outChannels: number;
  readonly macs: number;
  readonly params: number;
}

export interface CostReport {
  /** Same order as the analysis' layers (topological). */
  readonly layers: readonly LayerCost[];
  readonly macs: number;
  readonly params: number;
}

/** Kept channels of each group over ranges: prefix counts of every mask (computed once per call). */
type KeptPrefix = ReadonlyMap<string, Int32Array>;

function keptPrefix(masks: GroupMasks): KeptPrefix {
  const prefix = new Map<string, Int32Array>();
  for (const [id, mask] of Object.entries(masks)) {
    const counts = new Int32Array(mask.length + 1);
    for (let i = 0; i < mask.length; i++) counts[i + 1] = counts[i] + (mask[i] ? 1 : 0);
    prefix.set(id, counts);
  }
  return prefix;
}

/** Width of a tensor's last axis after pruning. */
function widthOf(layout: ChannelLayout, kept: KeptPrefix): number {
  let channels = 0;
  for (const s of layout.segments) {
    const counts = kept.get(s.group);
    const keptChannels = counts ? counts[s.start + s.channels] - counts[s.start] : s.channels;
    channels += keptChannels * (s.repeat ?? 1);
  }
  return layout.kind === 'flatten' ? channels * layout.spatial : channels;
}

function layerCost(node: GraphNode, channels: LayerChannels, kept: KeptPrefix): LayerCost {
  const outChannels = widthOf(channels.output, kept);
  const inputs = channels.inputs.map((layout) => widthOf(layout, kept));
  const outputShape = [...node.outputShape.slice(0, -1), outChannels];
  const cost = layerKind(node.className)?.cost?.(node, { inputs, output: outChannels }) ?? { macs: 0, params: 0 };
  return { name: node.name, className: node.className, outputShape, inChannels: inputs[0] ?? null, outChannels, ...cost };
}

/** MACs and params per layer and in total, for `masks` (default: the unpruned model). */
export function countCost(analysis: ChannelAnalysis, masks: GroupMasks = {}): CostReport {
  for (const id of Object.keys(masks)) findGroup(analysis, id);
  const kept = keptPrefix(masks);
  const layers = analysis.graph.nodes.map((node, i) => layerCost(node, analysis.layers[i], kept));
  let macs = 0;
  let params = 0;
  for (const layer of layers) {
    macs += layer.macs;
    params += layer.params;
  }
  return { layers, macs, params };
}

/** Just the totals (the search's objective evaluation calls this often). */
export function countTotals(analysis: ChannelAnalysis, masks: GroupMasks = {}): { macs: number; params: number } {
  const { macs, params } = countCost(analysis, masks);
  return { macs, params };
}

/**
 * Totals over a subset of layers (e.g. one sub-network of the divide step). Unknown names are
 * an error, so a renamed layer cannot silently drop out of an objective.
 */
export function costOfLayers(report: CostReport, layers: Iterable<string>): { macs: number; params: number } {
  const byName = new Map(report.layers.map((l) => [l.name, l]));
  let macs = 0;
  let params = 0;
  for (const name of new Set(layers)) {
    const layer = byName.get(name);
    if (!layer) throw new Error(`costOfLayers: no layer named '${name}' in the cost report`);
    macs += layer.macs;
    params += layer.params;
  }
  return { macs, params };
}
