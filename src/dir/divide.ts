/**
 * Divide (DESIGN §2): cut a model into K contiguous sub-networks S_1..S_K at cut points, the
 * tensors every input-to-output path passes through (graph.ts `cutPoints`).
 *
 * The result, a `Division`, is plain JSON data (it is the run's manifest entry for the model):
 * the cut layers (whose output tensors are the boundary features X_1..X_{K-1}), and per
 * sub-network its layers, the channel groups its search may prune, and its cost.
 *
 * Why cutting at cut points is enough to keep groups apart: every graph edge that crosses the
 * boundary after a cut point starts at the cut layer, so a channel group whose members lie on
 * both sides carries the cut tensor's channels. Those channels are the boundary contract X_k and
 * are never pruned (the neighbouring sub-networks are searched against the original X_k), so
 * every group touching a cut is excluded from the search, and every searchable group lies wholly
 * inside one piece. That is asserted here, not assumed.
 *
 * A sub-network's *prunable* cost is the cost of the layers its searched groups touch
 * (producers, pass-through layers, consumers); nothing else in the network changes when its
 * masks change. Hence totalMacs = fixedMacs + sum_k prunableMacs_k exactly, with `fixedMacs` the
 * cost no search can change (used as GPIR's `fixed` when fronts report the prunable part).
 *
 * Choice of the cuts:
 * - default: one sub-network per stage. Zoo ResNets (`stage{s}_block{b}_out`) are cut at each
 *   stage's last block output, VGG (`block{k}_pool`) at each block's pool; stem and head go to
 *   the first/last sub-network. Other models: one per spatial resolution, a resolution whose
 *   piece would have nothing to search being merged into the next one.
 * - `subnetworks: K`: an exact dynamic programme over the candidate cuts that minimises the
 *   largest per-piece prunable MACs (counting groups a cut excludes, see `pieceWeight`), ties
 *   broken by the smallest sum of squares (the most even split), then by the earliest cuts.
 *   Every piece must contain at least one searchable group.
 * - `cuts: [...]`: the caller names the cut layers (validated).
 */
import { z } from 'zod';
import type { tf } from '../engine/backend.ts';
import { countCost } from '../model/cost.ts';
import type { CostReport } from '../model/cost.ts';
import { cutPoints } from '../model/graph.ts';
import type { GraphNode, ModelGraph } from '../model/graph.ts';
import { groupLayers } from '../model/groups.ts';
import type { ChannelAnalysis, ChannelGroup, ChannelLayout, GroupMasks } from '../model/groups.ts';

export const DIVISION_VERSION = 1;

export interface DivideOptions {
  /** Number of sub-networks K; default: one per stage (see the module comment). */
  readonly subnetworks?: number;
  /**
   * Search residual groups wholly inside a sub-network. Default: the analysis' setting. A
   * residual group touching a cut is never searched (its channels are the boundary contract).
   */
  readonly pruneResidual?: boolean;
  /** Explicit cut layers, in topological order (overrides `subnetworks`). */
  readonly cuts?: readonly string[];
}

/** Why a group that could otherwise be pruned is not searched. */
export interface ExcludedGroup {
  readonly id: string;
  readonly channels: number;
  /** The cut layer whose output tensor carries the group's channels. */
  readonly cut: string;
}

export interface SubnetworkSpec {
  /** `k1`, `k2`, ...: the sub-network's id in keys, logs and fronts. */
  readonly id: string;
  /** 1-based position k. */
  readonly index: number;
  /** Layer whose output is X_{k-1}: the model's input layer for k = 1, else the previous cut. */
  readonly inputTensor: string;
  /** Layer whose output is X_k: the cut layer, or the model's output layer for k = K. */
  readonly outputTensor: string;
  /** Shape of X_{k-1} without the batch dimension. */
  readonly inputShape: readonly number[];
  /** Shape of X_k without the batch dimension. */
  readonly outputShape: readonly number[];
  /** The piece's layers in topological order (the input tensor's layer is not among them). */
  readonly layers: readonly string[];
  /** Channel groups the search of this sub-network prunes (the genome layout, topological order). */
  readonly groupIds: readonly string[];
  /** Channels of those groups (the genome length). */
  readonly genomeLength: number;
  /** Cost of the whole piece, unpruned. */
  readonly macs: number;
  readonly params: number;
  /** Cost of the piece's layers that its searched groups touch (what the search can reduce). */
  readonly prunableMacs: number;
  readonly prunableParams: number;
}

export interface Division {
  readonly version: typeof DIVISION_VERSION;
  /** The model's name (graph name). */
  readonly model: string;
  readonly pruneResidual: boolean;
  /** How the cuts were chosen. */
  readonly method: 'stages' | 'resolutions' | 'balanced' | 'explicit';
  /** Layer names whose outputs are the boundaries X_1..X_{K-1}, in topological order. */
  readonly cuts: readonly string[];
  /** Every layer the division could have cut at (one per run of tensors carrying the same channels). */
  readonly candidates: readonly string[];
  readonly subnetworks: readonly SubnetworkSpec[];
  /** Groups not searched because a cut tensor carries their channels. */
  readonly excludedGroups: readonly ExcludedGroup[];
  readonly totalMacs: number;
  readonly totalParams: number;
  /** Cost that no sub-network search can change: total minus every piece's prunable cost. */
  readonly fixedMacs: number;
  readonly fixedParams: number;
}

export class DivideError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DivideError';
  }
}

/** Sub-network id of position k (1-based). */
export function subnetworkId(index: number): string {
  return `k${index}`;
}

/** The sub-network with this id (`k2`) or 1-based index; error lists the ids. */
export function findSubnetwork(division: Division, subnet: string | number): SubnetworkSpec {
  const found = division.subnetworks.find((s) => (typeof subnet === 'number' ? s.index === subnet : s.id === subnet));
  if (!found) {
    throw new DivideError(
      `model '${division.model}' has no sub-network ${JSON.stringify(subnet)} (sub-networks: ${division.subnetworks.map((s) => s.id).join(', ')})`,
    );
  }
  return found;
}

// ---- helpers over the analysis ----

function layoutGroups(layout: ChannelLayout): string[] {
  return layout.segments.map((s) => s.group);
}

function shapeWithoutBatch(node: GraphNode): number[] {
  return node.outputShape.slice(1).map((d) => {
    if (typeof d !== 'number') {
      throw new DivideError(`layer '${node.name}' (${node.className}): output shape [${node.outputShape.join(', ')}] has an unknown dimension`);
    }
    return d;
  });
}

/** Whether the search may prune this group at all, cuts aside. */
function searchable(group: ChannelGroup, pruneResidual: boolean): boolean {
  return group.boundary === null && group.producers.length > 0 && (!group.residual || pruneResidual);
}

interface Prepared {
  readonly graph: ModelGraph;
  readonly position: ReadonlyMap<string, number>;
  readonly inputIndex: number;
  readonly outputIndex: number;
  /** Eligible groups with the span [first, last] of their member layers' positions. */
  readonly spans: readonly { group: ChannelGroup; first: number; last: number; layers: number[] }[];
  readonly cost: CostReport;
  /** Per node position: whether a searchable group (cuts aside) touches the layer. */
  readonly touchedBySearchable: readonly boolean[];
}

function prepare(analysis: ChannelAnalysis, pruneResidual: boolean): Prepared {
  const graph = analysis.graph;
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
    throw new DivideError(
      `model '${graph.name}' has ${graph.inputs.length} inputs and ${graph.outputs.length} outputs; ` +
        'dividing needs exactly one of each',
    );
  }
  const position = new Map(graph.nodes.map((n) => [n.name, n.index]));
  const spans = analysis.groups
    .filter((g) => searchable(g, pruneResidual))
    .map((group) => {
      const layers = groupLayers(group).map((name) => position.get(name) as number);
      return { group, first: Math.min(...layers), last: Math.max(...layers), layers };
    });
  const touchedBySearchable = graph.nodes.map(() => false);
  for (const span of spans) for (const index of span.layers) touchedBySearchable[index] = true;
  return {
    graph,
    position,
    touchedBySearchable,
    inputIndex: position.get(graph.inputs[0]) as number,
    outputIndex: position.get(graph.outputs[0]) as number,
    spans,
    cost: countCost(analysis),
  };
}

/**
 * Candidate cut layers: the graph's cut points minus input layers and the output, and of each
 * run of consecutive cut points that carry the same channel groups (conv -> bn -> relu, or
 * add -> relu) only the last one: cutting anywhere in the run excludes the same groups, and the
 * last tensor (after the activation or pool) is the natural, often smallest, boundary.
 */
function candidateCuts(
  analysis: ChannelAnalysis,
  p: Prepared,
): { raw: string[]; kept: string[]; representative: Map<string, string> } {
  const layerOf = new Map(analysis.layers.map((l) => [l.name, l]));
  const raw = cutPoints(p.graph).filter((name) => {
    const node = p.graph.nodes[p.position.get(name) as number];
    return node.className !== 'InputLayer' && node.index > p.inputIndex && node.index < p.outputIndex;
  });
  const kept: string[] = [];
  const representative = new Map<string, string>();
  let run: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    run.push(raw[i]);
    const next = raw[i + 1];
    const here = layoutGroups(layerOf.get(raw[i])!.output).join('|');
    const sameRun =
      next !== undefined &&
      (p.position.get(next) as number) === (p.position.get(raw[i]) as number) + 1 &&
      layoutGroups(layerOf.get(next)!.output).join('|') === here;
    if (!sameRun) {
      kept.push(raw[i]);
      for (const member of run) representative.set(member, raw[i]);
      run = [];
    }
  }
  return { raw, kept, representative };
}

/** Prunable MACs/params of the piece (a, b] (positions) and its searched groups. */
function pieceValue(p: Prepared, a: number, b: number): { macs: number; params: number; groups: ChannelGroup[] } {
  const touched = new Set<number>();
  const groups: ChannelGroup[] = [];
  for (const span of p.spans) {
    if (span.first > a && span.last <= b) {
      groups.push(span.group);
      for (const layer of span.layers) touched.add(layer);
    }
  }
  let macs = 0;
  let params = 0;
  for (const index of touched) {
    macs += p.cost.layers[index].macs;
    params += p.cost.layers[index].params;
  }
  return { macs, params, groups };
}

/**
 * The MACs of the piece (a, b] that some searchable group touches, whether or not that group is
 * wholly inside the piece. The balancing DP uses this rather than `pieceValue`: with the true
 * searched MACs, minimising the largest piece would reward cuts that exclude big groups (an
 * excluded group lowers its piece's value), so the DP would prefer to lose prunable channels.
 */
function pieceWeight(p: Prepared, a: number, b: number): number {
  let macs = 0;
  for (let index = a + 1; index <= b; index++) if (p.touchedBySearchable[index]) macs += p.cost.layers[index].macs;
  return macs;
}

/** Zoo ResNet/VGG stage ends among the candidates, or undefined when the naming does not fit. */
function stageCuts(candidates: readonly string[]): { cuts: string[] } | undefined {
  const lastBlock = new Map<number, { b: number; name: string }>();
  for (const name of candidates) {
    const match = /^stage(\d+)_block(\d+)_out$/.exec(name);
    if (!match) continue;
    const s = Number(match[1]);
    const b = Number(match[2]);
    const seen = lastBlock.get(s);
    if (!seen || b > seen.b) lastBlock.set(s, { b, name });
  }
  if (lastBlock.size > 0) {
    const stages = [...lastBlock.keys()].sort((x, y) => x - y);
    // The last stage's output feeds the head, which stays with the last sub-network.
    return { cuts: stages.slice(0, -1).map((s) => lastBlock.get(s)!.name) };
  }
  const pools = candidates
    .map((name) => ({ name, match: /^block(\d+)_pool$/.exec(name) }))
    .filter((c) => c.match !== null)
    .sort((x, y) => Number(x.match![1]) - Number(y.match![1]));
  if (pools.length > 0) return { cuts: pools.slice(0, -1).map((c) => c.name) };
  return undefined;
}

/**
 * One cut per spatial resolution: at the last cut point before the resolution changes (found on
 * the raw cut points, since a pool that changes the resolution may represent its run), moved to
 * its run's representative. The final resolution ends at the head, which is not a cut.
 */
function resolutionCuts(raw: readonly string[], representative: ReadonlyMap<string, string>, p: Prepared): string[] {
  const spatial = (name: string): string => {
    const shape = p.graph.nodes[p.position.get(name) as number].outputShape;
    return shape.length === 4 ? `${shape[1]}x${shape[2]}` : 'vector';
  };
  const cuts: string[] = [];
  for (let i = 0; i + 1 < raw.length; i++) {
    if (spatial(raw[i]) === spatial(raw[i + 1])) continue;
    const cut = representative.get(raw[i]) as string;
    if (cuts[cuts.length - 1] !== cut) cuts.push(cut);
  }
  return cuts;
}

/** Drops cuts that would leave a piece with nothing to search (the piece joins the next one). */
function dropEmptyPieces(cuts: readonly string[], p: Prepared): string[] {
  const kept: string[] = [];
  let start = p.inputIndex;
  for (const cut of cuts) {
    const end = p.position.get(cut) as number;
    if (pieceValue(p, start, end).groups.length > 0) {
      kept.push(cut);
      start = end;
    }
  }
  // If the last piece is empty, move its start back by dropping the last kept cut.
  while (kept.length > 0 && pieceValue(p, p.position.get(kept[kept.length - 1]) as number, p.outputIndex).groups.length === 0) {
    kept.pop();
  }
  return kept;
}

/**
 * Exact DP: choose K-1 of the candidates minimising (max piece weight, sum of squared weights),
 * where a piece's weight is its MACs touched by searchable groups (`pieceWeight`).
 * O(K * n^2) piece evaluations over n candidates, each O(groups): instant for ResNet-110.
 */
function balancedCuts(candidates: readonly string[], p: Prepared, k: number, model: string): string[] {
  const points = [p.inputIndex, ...candidates.map((c) => p.position.get(c) as number), p.outputIndex];
  const n = points.length;
  const value: (number | null)[][] = [];
  for (let i = 0; i < n; i++) {
    value.push([]);
    for (let j = 0; j < n; j++) {
      if (j <= i) {
        value[i].push(null);
        continue;
      }
      const searched = pieceValue(p, points[i], points[j]).groups.length > 0;
      value[i].push(searched ? pieceWeight(p, points[i], points[j]) : null);
    }
  }
  interface Best {
    max: number;
    squares: number;
    prev: number;
  }
  const better = (a: Best, b: Best | undefined): boolean =>
    b === undefined || a.max < b.max || (a.max === b.max && a.squares < b.squares);
  // best[m][j]: best split of (points[0], points[j]] into m pieces.
  const best: (Best | undefined)[][] = [];
  for (let m = 0; m <= k; m++) best.push(new Array<Best | undefined>(n).fill(undefined));
  best[0][0] = { max: 0, squares: 0, prev: -1 };
  for (let m = 1; m <= k; m++) {
    for (let j = 1; j < n; j++) {
      for (let i = 0; i < j; i++) {
        const before = best[m - 1][i];
        const v = value[i][j];
        if (before === undefined || v === null) continue;
        const candidate = { max: Math.max(before.max, v), squares: before.squares + v * v, prev: i };
        if (better(candidate, best[m][j])) best[m][j] = candidate;
      }
    }
  }
  if (best[k][n - 1] === undefined) {
    let possible = 0;
    for (let m = 1; m <= k; m++) if (best[m][n - 1] !== undefined) possible = m;
    throw new DivideError(
      `model '${model}': cannot divide into ${k} sub-networks that each have a searchable channel group ` +
        `(at most ${possible} with ${candidates.length} candidate cuts)`,
    );
  }
  const cuts: string[] = [];
  let j = n - 1;
  for (let m = k; m > 1; m--) {
    const i = best[m][j]!.prev;
    cuts.unshift(candidates[i - 1]);
    j = i;
  }
  return cuts;
}

function validateExplicitCuts(cuts: readonly string[], p: Prepared, allCuts: ReadonlySet<string>): void {
  let last = p.inputIndex;
  for (const cut of cuts) {
    const index = p.position.get(cut);
    if (index === undefined) throw new DivideError(`model '${p.graph.name}': cut '${cut}' is not a layer of the model`);
    if (!allCuts.has(cut)) {
      throw new DivideError(
        `model '${p.graph.name}': layer '${cut}' is not a cut point (some input-to-output path bypasses it)`,
      );
    }
    if (index <= last) throw new DivideError(`model '${p.graph.name}': cuts must be distinct and in topological order ('${cut}' is out of order)`);
    last = index;
  }
}

/**
 * Divides `model` (whose channel analysis is `analysis`) into sub-networks. Pure: reads the
 * analysis' graph and costs; `model` is only checked to be the analysed one.
 */
export function divideNetwork(model: tf.LayersModel, analysis: ChannelAnalysis, options: DivideOptions = {}): Division {
  if (model.name !== analysis.graph.name) {
    throw new DivideError(`divideNetwork: the analysis is of model '${analysis.graph.name}', not of '${model.name}'`);
  }
  const pruneResidual = options.pruneResidual ?? analysis.pruneResidual;
  const p = prepare(analysis, pruneResidual);
  const { raw: rawCandidates, kept: candidates, representative } = candidateCuts(analysis, p);
  const name = p.graph.name;

  let cuts: string[];
  let method: Division['method'];
  if (options.cuts !== undefined) {
    const allCuts = new Set(cutPoints(p.graph).filter((c) => c !== p.graph.inputs[0]));
    validateExplicitCuts(options.cuts, p, allCuts);
    cuts = [...options.cuts];
    method = 'explicit';
  } else if (options.subnetworks !== undefined) {
    const k = options.subnetworks;
    if (!Number.isInteger(k) || k < 1) throw new DivideError(`model '${name}': subnetworks must be a positive integer, got ${k}`);
    cuts = balancedCuts(candidates, p, k, name);
    method = 'balanced';
  } else {
    // The raw cut points: deduplication may have merged a stage end into the head's pool.
    const stages = stageCuts(rawCandidates);
    if (stages) {
      cuts = stages.cuts;
      method = 'stages';
    } else {
      cuts = dropEmptyPieces(resolutionCuts(rawCandidates, representative, p), p);
      method = 'resolutions';
    }
  }

  // Groups carried by a cut tensor: never searched.
  const layerOf = new Map(analysis.layers.map((l) => [l.name, l]));
  const groupById = new Map(analysis.groups.map((g) => [g.id, g]));
  const excluded = new Map<string, ExcludedGroup>();
  for (const cut of cuts) {
    for (const id of layoutGroups(layerOf.get(cut)!.output)) {
      const group = groupById.get(id)!;
      if (searchable(group, pruneResidual) && !excluded.has(id)) excluded.set(id, { id, channels: group.channels, cut });
    }
  }

  const bounds = [p.inputIndex, ...cuts.map((c) => p.position.get(c) as number), p.outputIndex];
  const subnetworks: SubnetworkSpec[] = [];
  const assigned = new Set<string>();
  for (let i = 0; i + 1 < bounds.length; i++) {
    const [a, b] = [bounds[i], bounds[i + 1]];
    const piece = pieceValue(p, a, b);
    for (const g of piece.groups) assigned.add(g.id);
    const layers = p.graph.nodes.filter((n) => n.index > a && n.index <= b);
    let macs = 0;
    let params = 0;
    for (const node of layers) {
      macs += p.cost.layers[node.index].macs;
      params += p.cost.layers[node.index].params;
    }
    const index = i + 1;
    subnetworks.push({
      id: subnetworkId(index),
      index,
      inputTensor: p.graph.nodes[a].name,
      outputTensor: p.graph.nodes[b].name,
      inputShape: shapeWithoutBatch(p.graph.nodes[a]),
      outputShape: shapeWithoutBatch(p.graph.nodes[b]),
      layers: layers.map((n) => n.name),
      groupIds: piece.groups.map((g) => g.id),
      genomeLength: piece.groups.reduce((sum, g) => sum + g.channels, 0),
      macs,
      params,
      prunableMacs: piece.macs,
      prunableParams: piece.params,
    });
  }

  // The invariant of the module comment: every searchable group is either searched by exactly
  // one piece or carried by a cut tensor. Anything else would be a group straddling a cut.
  for (const span of p.spans) {
    const id = span.group.id;
    if (!assigned.has(id) && !excluded.has(id)) {
      const names = span.layers.map((i) => p.graph.nodes[i].name);
      throw new DivideError(
        `model '${name}': channel group '${id}' spans layers ${names.join(', ')} across the cuts ` +
          `${cuts.join(', ')} without being carried by a cut tensor; it cannot be searched by one sub-network`,
      );
    }
    if (assigned.has(id) && excluded.has(id)) {
      throw new DivideError(`model '${name}': channel group '${id}' is both inside a sub-network and on cut '${excluded.get(id)!.cut}'`);
    }
  }

  const prunableMacs = subnetworks.reduce((sum, s) => sum + s.prunableMacs, 0);
  const prunableParams = subnetworks.reduce((sum, s) => sum + s.prunableParams, 0);
  return {
    version: DIVISION_VERSION,
    model: name,
    pruneResidual,
    method,
    cuts,
    candidates,
    subnetworks,
    excludedGroups: [...excluded.values()],
    totalMacs: p.cost.macs,
    totalParams: p.cost.params,
    fixedMacs: p.cost.macs - prunableMacs,
    fixedParams: p.cost.params - prunableParams,
  };
}

/**
 * Cost of sub-network `subnet` under `masks` (keyed by the full model's group ids; groups of
 * other sub-networks are ignored, so the same union of masks can be passed for every k):
 * the whole piece and its prunable part. The search's cost objective.
 */
export function subnetworkCost(
  analysis: ChannelAnalysis,
  division: Division,
  subnet: string | number,
  masks: GroupMasks,
): { macs: number; params: number; prunableMacs: number; prunableParams: number } {
  const spec = findSubnetwork(division, subnet);
  const own: Record<string, Uint8Array> = {};
  for (const id of spec.groupIds) if (masks[id] !== undefined) own[id] = masks[id];
  const report = countCost(analysis, own);
  const byName = new Map(report.layers.map((l) => [l.name, l]));
  let macs = 0;
  let params = 0;
  for (const layer of spec.layers) {
    const cost = byName.get(layer);
    if (!cost) throw new DivideError(`sub-network ${spec.id}: layer '${layer}' is not in the analysis of model '${analysis.graph.name}'`);
    macs += cost.macs;
    params += cost.params;
  }
  // Only the prunable layers change, so the fixed part of the piece is (unpruned - prunable).
  const fixedMacs = spec.macs - spec.prunableMacs;
  const fixedParams = spec.params - spec.prunableParams;
  return { macs, params, prunableMacs: macs - fixedMacs, prunableParams: params - fixedParams };
}

// ---- the manifest form ----

const count = z.number().int().min(0);
const subnetworkSchema = z.strictObject({
  id: z.string().regex(/^k[1-9][0-9]*$/),
  index: z.number().int().min(1),
  inputTensor: z.string().min(1),
  outputTensor: z.string().min(1),
  inputShape: z.array(z.number().int().min(1)).min(1),
  outputShape: z.array(z.number().int().min(1)).min(1),
  layers: z.array(z.string().min(1)).min(1),
  groupIds: z.array(z.string().min(1)),
  genomeLength: count,
  macs: count,
  params: count,
  prunableMacs: count,
  prunableParams: count,
});

export const divisionSchema = z
  .strictObject({
    version: z.literal(DIVISION_VERSION),
    model: z.string().min(1),
    pruneResidual: z.boolean(),
    method: z.enum(['stages', 'resolutions', 'balanced', 'explicit']),
    cuts: z.array(z.string().min(1)),
    candidates: z.array(z.string().min(1)),
    subnetworks: z.array(subnetworkSchema).min(1),
    excludedGroups: z.array(z.strictObject({ id: z.string().min(1), channels: z.number().int().min(1), cut: z.string().min(1) })),
    totalMacs: count,
    totalParams: count,
    fixedMacs: count,
    fixedParams: count,
  })
  .superRefine((division, ctx) => {
    const { cuts, subnetworks } = division;
    if (subnetworks.length !== cuts.length + 1) {
      ctx.addIssue({ code: 'custom', path: ['subnetworks'], message: `${subnetworks.length} sub-networks for ${cuts.length} cuts` });
      return;
    }
    const groups = new Set<string>();
    subnetworks.forEach((s, i) => {
      if (s.index !== i + 1 || s.id !== subnetworkId(i + 1)) {
        ctx.addIssue({ code: 'custom', path: ['subnetworks', i], message: `expected id k${i + 1} and index ${i + 1}` });
      }
      if (i > 0 && s.inputTensor !== cuts[i - 1]) {
        ctx.addIssue({ code: 'custom', path: ['subnetworks', i, 'inputTensor'], message: `must be the cut '${cuts[i - 1]}'` });
      }
      if (i < cuts.length && s.outputTensor !== cuts[i]) {
        ctx.addIssue({ code: 'custom', path: ['subnetworks', i, 'outputTensor'], message: `must be the cut '${cuts[i]}'` });
      }
      for (const id of s.groupIds) {
        if (groups.has(id)) ctx.addIssue({ code: 'custom', path: ['subnetworks', i, 'groupIds'], message: `group '${id}' is searched twice` });
        groups.add(id);
      }
    });
  });

/** A division read back from JSON (the manifest); errors list every bad field with its path. */
export function parseDivision(value: unknown, where = 'division'): Division {
  const parsed = divisionSchema.safeParse(value);
  if (!parsed.success) throw new DivideError(`${where}: invalid division: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
