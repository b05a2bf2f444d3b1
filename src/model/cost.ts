/**
 * Analytic cost of a model and of a pruned mask set, without building the pruned model: every
 * layer's input and output channel counts are reduced by the keep counts of the groups its
 * tensors are made of (consumers' input channels included).
 *
 * Conventions (the usual ones of pruning papers, so published numbers match):
 * - MACs are multiply-accumulates of the weighted layers only, for one input image:
 *   Conv2D   Kh*Kw*Cin*Cout*Hout*Wout
 *   Depthwise Kh*Kw*C*Hout*Wout
 *   Dense    In*Out (times the positions when applied to a map)
 *   Bias adds, BatchNormalization, activations, Add, pooling, padding: 0 MACs (they are listed
 *   with 0 so every layer stays reportable). "FLOPs" in papers that report ResNet-56 at 125M and
 *   ResNet-50 at 4.1G are these MACs.
 * - Params count every weight the tfjs model stores: kernels, biases, and 4 per channel for
 *   BatchNormalization (gamma, beta, moving mean, moving variance, as Keras' model.summary() does;
 *   PyTorch counts only gamma and beta, a difference of well under 1% for ResNets).
 */
import { findGroup, keptChannels } from './groups.ts';
import type { ChannelAnalysis, ChannelLayout, GroupMasks, LayerChannels } from './groups.ts';
import type { GraphNode, Shape } from './graph.ts';

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

function spatialPositions(shape: Shape): number {
  // Every axis between batch and channels (H*W for NHWC maps; 1 for vectors).
  let positions = 1;
  for (let i = 1; i < shape.length - 1; i++) positions *= shape[i] ?? 1;
  return positions;
}

function bnWeightsPerChannel(node: GraphNode): number {
  return (node.config.scale === false ? 0 : 1) + (node.config.center === false ? 0 : 1) + 2;
}

/** Width of a tensor's last axis after pruning, from per-group kept counts (computed once per call). */
function widthOf(layout: ChannelLayout, kept: ReadonlyMap<string, number>): number {
  let channels = 0;
  for (const segment of layout.segments) channels += kept.get(segment.group)!;
  return layout.kind === 'flatten' ? channels * layout.spatial : channels;
}

function layerCost(node: GraphNode, channels: LayerChannels, kept: ReadonlyMap<string, number>): LayerCost {
  const outChannels = widthOf(channels.output, kept);
  const inChannels = channels.inputs.length > 0 ? widthOf(channels.inputs[0], kept) : null;
  const outputShape = [...node.outputShape.slice(0, -1), outChannels];
  const positions = spatialPositions(node.outputShape);
  const bias = node.config.useBias === false ? 0 : 1;
  let macs = 0;
  let params = 0;
  switch (node.className) {
    case 'Conv2D': {
      const [kh, kw] = node.config.kernelSize ?? [1, 1];
      const weights = kh * kw * (inChannels ?? 0) * outChannels;
      macs = weights * positions;
      params = weights + bias * outChannels;
      break;
    }
    case 'DepthwiseConv2D': {
      const [kh, kw] = node.config.kernelSize ?? [1, 1];
      const weights = kh * kw * outChannels;
      macs = weights * positions;
      params = weights + bias * outChannels;
      break;
    }
    case 'Dense': {
      const weights = (inChannels ?? 0) * outChannels;
      macs = weights * positions;
      params = weights + bias * outChannels;
      break;
    }
    case 'BatchNormalization':
      params = bnWeightsPerChannel(node) * outChannels;
      break;
    default:
      break;
  }
  return { name: node.name, className: node.className, outputShape, inChannels, outChannels, macs, params };
}

/** MACs and params per layer and in total, for `masks` (default: the unpruned model). */
export function countCost(analysis: ChannelAnalysis, masks: GroupMasks = {}): CostReport {
  for (const id of Object.keys(masks)) findGroup(analysis, id);
  const kept = new Map(analysis.groups.map((g) => [g.id, keptChannels(g, masks)]));
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
