/**
 * Channel importance: *what to remove*. Per group, one score per channel, aggregated over every
 * coupled layer as DepGraph does: each layer's weights that carry the channel (producer kernel
 * columns, consumer kernel rows, depthwise filters, BN/LN |gamma|; which weights those are, each
 * layer kind says) give a local score, the local scores of a channel are averaged over the layers
 * that touch it, and each group's scores are divided by their mean, so scores of different groups
 * are on one scale (global pruning compares them).
 *
 * Criteria:
 * - `l1`: sum of |w| over the channel's weights; `l2`: sum of w^2 (DepGraph's magnitude, p = 2).
 * - `bn-scale`: |gamma| of the normalisation layers carrying the channel (network slimming);
 *   a group with no BN/LN falls back to `l1`.
 * - `taylor`: first-order Taylor, sum of |w * dL/dw| over every trained weight of the channel;
 *   needs the loss gradients (`weightGradients`, src/train/gradients.ts computes them on data).
 */
import { tf } from '../engine/backend.ts';
import { findGroup, positionChannels } from './groups.ts';
import type { ChannelAnalysis, ChannelLayout } from './groups.ts';
import { layerKind } from './kinds/index.ts';
import type { WeightAxis, WeightRole } from './kinds/kind.ts';

import type { ImportanceCriterion } from './importance-criteria.ts';

export { IMPORTANCE_CRITERIA } from './importance-criteria.ts';
export type { ImportanceCriterion } from './importance-criteria.ts';

/** Per layer name, the loss gradient of each of its weights, in `layer.getWeights()` order. */
export type WeightGradients = ReadonlyMap<string, readonly tf.Tensor[]>;

export interface ImportanceOptions {
  /** Default `l1`. */
  readonly criterion?: ImportanceCriterion;
  /** Only these groups (default: every group). */
  readonly groups?: readonly string[];
  /** Required by `taylor`. */
  readonly gradients?: WeightGradients;
  /** Divide each group's scores by their mean (default true). Off, scores are raw averages. */
  readonly normalize?: boolean;
}

const MAGNITUDE_ROLES: ReadonlySet<WeightRole> = new Set(['kernel-out', 'kernel-in', 'depthwise', 'scale']);
const SCALE_ROLES: ReadonlySet<WeightRole> = new Set(['scale']);
const TAYLOR_ROLES: ReadonlySet<WeightRole> = new Set(['kernel-out', 'kernel-in', 'depthwise', 'bias', 'scale', 'shift', 'alpha']);

interface Accumulator {
  readonly sum: Float64Array;
  readonly count: Float64Array;
}

/** One score per channel for each group (of `options.groups`, default all). */
export function channelImportance(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  options: ImportanceOptions = {},
): Record<string, Float32Array> {
  const criterion = options.criterion ?? 'l1';
  if (criterion === 'taylor' && !options.gradients) {
    throw new Error("importance criterion 'taylor' needs the loss gradients of the weights (options.gradients)");
  }
  const wanted = options.groups ? new Set(options.groups) : undefined;
  if (wanted) for (const id of wanted) findGroup(analysis, id);
  const inScope = (id: string): boolean => !wanted || wanted.has(id);

  const primary = accumulate(model, analysis, inScope, criterion, options.gradients);
  // bn-scale: groups no normalisation layer carries are scored by magnitude instead.
  const fallback = criterion === 'bn-scale' ? accumulate(model, analysis, inScope, 'l1', undefined) : undefined;

  const scores: Record<string, Float32Array> = {};
  for (const group of analysis.groups) {
    if (!inScope(group.id)) continue;
    let acc = primary.get(group.id);
    if ((!acc || acc.count.every((c) => c === 0)) && fallback) acc = fallback.get(group.id);
    const values = new Float32Array(group.channels);
    if (acc) for (let c = 0; c < group.channels; c++) values[c] = acc.count[c] > 0 ? acc.sum[c] / acc.count[c] : 0;
    if (options.normalize ?? true) normalizeByMean(values);
    scores[group.id] = values;
  }
  return scores;
}

function normalizeByMean(values: Float32Array): void {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length || 1;
  if (mean > 0) for (let i = 0; i < values.length; i++) values[i] /= mean;
}

function rolesOf(criterion: ImportanceCriterion): ReadonlySet<WeightRole> {
  if (criterion === 'bn-scale') return SCALE_ROLES;
  if (criterion === 'taylor') return TAYLOR_ROLES;
  return MAGNITUDE_ROLES;
}

function accumulate(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  inScope: (group: string) => boolean,
  criterion: ImportanceCriterion,
  gradients: WeightGradients | undefined,
): Map<string, Accumulator> {
  const roles = rolesOf(criterion);
  const accumulators = new Map<string, Accumulator>();
  const accumulatorOf = (group: string): Accumulator => {
    let acc = accumulators.get(group);
    if (!acc) {
      const channels = findGroup(analysis, group).channels;
      acc = { sum: new Float64Array(channels), count: new Float64Array(channels) };
      accumulators.set(group, acc);
    }
    return acc;
  };
  analysis.graph.nodes.forEach((node, i) => {
    const axes = (layerKind(node.className)?.weights?.(node) ?? []).filter((axis) => roles.has(axis.role));
    if (axes.length === 0) return;
    const layout = analysis.layers[i];
    if (![...layout.output.segments, ...(layout.inputs[0]?.segments ?? [])].some((s) => inScope(s.group))) return;
    const weights = model.getLayer(node.name).getWeights();
    const layerGradients = criterion === 'taylor' ? gradients?.get(node.name) : undefined;
    if (criterion === 'taylor' && layerGradients?.length !== weights.length) {
      throw new Error(`importance 'taylor': layer '${node.name}' has ${weights.length} weights but ${layerGradients?.length ?? 0} gradients`);
    }
    for (const axis of axes) {
      const entries = entryScores(weights[axis.weight], axis, criterion, layerGradients?.[axis.weight], node.name);
      addToChannels(entries, axis, axis.side === 'input' ? layout.inputs[0] : layout.output, inScope, accumulatorOf);
    }
  });
  return accumulators;
}

/** One value per entry along `axis.axis` of the weight. */
function entryScores(
  weight: tf.Tensor,
  axis: WeightAxis,
  criterion: ImportanceCriterion,
  gradient: tf.Tensor | undefined,
  layer: string,
): Float32Array {
  const scored = tf.tidy(() => {
    const others = weight.shape.map((_, i) => i).filter((i) => i !== axis.axis);
    let local: tf.Tensor;
    if (criterion === 'taylor') {
      if (!gradient) throw new Error(`importance 'taylor': no gradient for weight ${axis.weight} of layer '${layer}'`);
      local = tf.abs(tf.mul(weight, gradient));
    } else if (criterion === 'l2') {
      local = tf.square(weight);
    } else {
      local = tf.abs(weight);
    }
    return others.length > 0 ? tf.sum(local, others) : local;
  });
  const values = scored.dataSync() as Float32Array;
  scored.dispose();
  return values;
}

/** Adds entry scores to the group channels their positions hold (one layer contribution per channel). */
function addToChannels(
  entries: Float32Array,
  axis: WeightAxis,
  layout: ChannelLayout,
  inScope: (group: string) => boolean,
  accumulatorOf: (group: string) => Accumulator,
): void {
  const { groups, channels } = positionChannels(layout);
  const expand = axis.expand ?? 1;
  const perPosition = new Float64Array(layout.channels);
  for (let e = 0; e < entries.length; e++) {
    // Entry -> feature (undo the expansion) -> channel position (undo the flatten interleaving).
    const feature = Math.floor(e / expand);
    perPosition[feature % layout.channels] += entries[e];
  }
  // A channel repeated at several positions (a depthwise multiplier) is one contribution.
  const touched = new Set<string>();
  for (let p = 0; p < layout.channels; p++) {
    const group = groups[p];
    if (!inScope(group)) continue;
    const acc = accumulatorOf(group);
    acc.sum[channels[p]] += perPosition[p];
    const key = `${group}#${channels[p]}`;
    if (!touched.has(key)) {
      touched.add(key);
      acc.count[channels[p]] += 1;
    }
  }
}
