/**
 * Runnable pieces of a divided model (DESIGN §2 "Divide", "Recovery"):
 *
 *   S_k   buildSubnetworkModel: X_{k-1} -> X_k, the k-th sub-network alone;
 *   T_k   buildTailModel:       X_k -> network output, the frozen rest of the network;
 *   P_k   buildHeadModel:       network input -> X_k (S_1..S_k), for computing features;
 *         buildBoundaryModel:   network input -> several boundary tensors in one pass.
 *
 * SHARING VS CLONING. S_k and T_k are built by re-applying the ORIGINAL layer objects to a new
 * `tf.input`, so they share the original weights (no copy, no extra memory). That is what the
 * evaluation wants: T_k is the frozen rest of the network, and the original S_k is the template
 * a candidate inherits its weights from. Recovery trains a pruned CLONE: `pruneSubnetwork`
 * (pruneModel on the standalone S_k) builds new layers with copies of the kept weights, so
 * training S_k' never moves the original. Frozen means "not in the trained variable list":
 * the original layers' `trainable` flags are not touched (that would change the original model).
 * Re-applying a layer adds an inbound node to it; graph.ts walks only the nodes a model uses,
 * so the original model's graph, analysis and saving are unaffected. Every piece may be
 * disposed without freeing the original weights (see `applyRange`); build each piece once per
 * task and reuse it, since every build adds inbound nodes to the original layers.
 *
 * GROUP IDS. A channel group's id is its first producing layer's name. A group searched by S_k
 * lies wholly inside the piece (divide.ts), so the standalone S_k sees the same producers,
 * consumers and pass-through layers and names the group the same: masks keyed by the full
 * model's group ids apply to S_k unchanged. `checkSubnetworkGroups` verifies that (the tests
 * run it on the zoo models); the boundary input of S_k is its own, unprunable, input group.
 *
 * ASSEMBLY. `assemblePrunedModel` prunes the whole original model with the union of every
 * sub-network's masks (one physically smaller functional model, same layer names, saveable)
 * and copies each recovered S_k' weight into it by layer name.
 */
import { tf } from '../engine/backend.ts';
import { buildGraph } from '../model/graph.ts';
import type { ModelGraph } from '../model/graph.ts';
import { analyzeChannels, groupLayers } from '../model/groups.ts';
import type { ChannelAnalysis, ChannelGroup, GroupMasks } from '../model/groups.ts';
import { pruneModel } from '../model/prune.ts';
import { findSubnetwork } from './divide.ts';
import type { Division, SubnetworkSpec } from './divide.ts';

type SymbolicTensor = tf.SymbolicTensor;

export class SubnetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubnetworkError';
  }
}

/** A per-sub-network collection keyed by sub-network id (`k1`, ...): a Map or a plain record. */
export type BySubnet<T> = ReadonlyMap<string, T> | Readonly<Record<string, T>>;

function entriesOf<T>(collection: BySubnet<T>): [string, T][] {
  return collection instanceof Map ? [...(collection as ReadonlyMap<string, T>).entries()] : Object.entries(collection);
}

const graphCache = new WeakMap<tf.LayersModel, ModelGraph>();
function graphOf(model: tf.LayersModel): ModelGraph {
  let graph = graphCache.get(model);
  if (!graph) {
    graph = buildGraph(model);
    graphCache.set(model, graph);
  }
  return graph;
}

function checkDivision(model: tf.LayersModel, division: Division): ModelGraph {
  const graph = graphOf(model);
  if (graph.name !== division.model) {
    throw new SubnetworkError(`the division is of model '${division.model}', not of '${graph.name}'`);
  }
  return graph;
}

/**
 * Re-applies the original layers at graph positions (from, to] to a new input standing for the
 * output of the layer at `from`, and returns the model from that input to the outputs of
 * `outputs` (default: the layer at `to`). The input layer is named after the layer at `from`
 * (unique inside the piece, and it says which tensor the model expects).
 *
 * Why re-apply even where the original graph's tensors could be reused (heads, boundaries):
 * tfjs counts a layer's uses per apply() and a model's dispose() releases one use of each of
 * its layers, freeing the weights at zero. A model made directly from the original's tensors
 * adds no use, so disposing it would free the ORIGINAL weights. Re-applied, every piece here
 * can be disposed safely.
 */
function applyRange(
  model: tf.LayersModel,
  graph: ModelGraph,
  from: number,
  to: number,
  name: string,
  outputs: readonly string[] = [graph.nodes[to].name],
): tf.LayersModel {
  const source = graph.nodes[from];
  const shape = source.outputShape.slice(1);
  if (!shape.every((d): d is number => typeof d === 'number')) {
    throw new SubnetworkError(`layer '${source.name}': output shape [${source.outputShape.join(', ')}] has an unknown dimension`);
  }
  const input = tf.input({ shape, name: source.name });
  const built = new Map<string, SymbolicTensor>([[source.name, input]]);
  for (let index = from + 1; index <= to; index++) {
    const node = graph.nodes[index];
    const inputs = node.inputs.map((inputName) => {
      const tensor = built.get(inputName);
      if (!tensor) {
        throw new SubnetworkError(
          `layer '${node.name}' reads '${inputName}', which is outside the piece after '${source.name}' (not a cut point?)`,
        );
      }
      return tensor;
    });
    const layer = model.getLayer(node.name);
    // Merge layers take a list; every other layer a single tensor.
    const applied = layer.apply(inputs.length === 1 ? inputs[0] : inputs);
    if (Array.isArray(applied) || !(applied instanceof tf.SymbolicTensor)) {
      throw new SubnetworkError(`layer '${node.name}' (${node.className}) did not return one symbolic tensor when re-applied`);
    }
    built.set(node.name, applied);
  }
  const symbolic = outputs.map((layer) => {
    const tensor = built.get(layer);
    if (!tensor) throw new SubnetworkError(`layer '${layer}' is not computed between '${source.name}' and '${graph.nodes[to].name}'`);
    return tensor;
  });
  return tf.model({ inputs: input, outputs: symbolic.length === 1 ? symbolic[0] : symbolic, name });
}

function positionOf(graph: ModelGraph, layer: string): number {
  const node = graph.nodes.find((n) => n.name === layer);
  if (!node) throw new SubnetworkError(`model '${graph.name}' has no layer named '${layer}'`);
  return node.index;
}

/**
 * S_k: X_{k-1} -> X_k, sharing the original layers (and weights). Its input layer is named after
 * `spec.inputTensor`; its layers keep the original names. Name: `<model>_<id>`.
 */
export function buildSubnetworkModel(model: tf.LayersModel, division: Division, subnet: string | number): tf.LayersModel {
  const graph = checkDivision(model, division);
  const spec = findSubnetwork(division, subnet);
  return applyRange(model, graph, positionOf(graph, spec.inputTensor), positionOf(graph, spec.outputTensor), `${division.model}_${spec.id}`);
}

/**
 * T_k: X_k -> network output, sharing the original layers (frozen unless someone trains them).
 * For the last sub-network it is the identity model on the output (X_K is the output).
 */
export function buildTailModel(model: tf.LayersModel, division: Division, subnet: string | number): tf.LayersModel {
  const graph = checkDivision(model, division);
  const spec = findSubnetwork(division, subnet);
  const from = positionOf(graph, spec.outputTensor);
  return applyRange(model, graph, from, positionOf(graph, graph.outputs[0]), `${division.model}_tail_${spec.id}`);
}

/** P_k = S_1..S_k: network input -> X_k, sharing the original layers. */
export function buildHeadModel(model: tf.LayersModel, division: Division, subnet: string | number): tf.LayersModel {
  const spec = findSubnetwork(division, subnet);
  return buildBoundaryModel(model, division, [spec.outputTensor], `${division.model}_head_${spec.id}`);
}

/**
 * Network input -> the outputs of `layers` (boundary tensors, in the given order), sharing the
 * original layers: one forward pass computes every requested X_k, and only the prefix up to
 * the last requested tensor is run.
 */
export function buildBoundaryModel(
  model: tf.LayersModel,
  division: Division,
  layers: readonly string[],
  name = `${division.model}_boundaries`,
): tf.LayersModel {
  const graph = checkDivision(model, division);
  if (layers.length === 0) throw new SubnetworkError(`buildBoundaryModel(${division.model}): no boundary tensors requested`);
  const last = Math.max(...layers.map((layer) => positionOf(graph, layer)));
  return applyRange(model, graph, positionOf(graph, graph.inputs[0]), last, name, layers);
}

/**
 * A pruned clone of a standalone sub-network model: new layers, kept weights copied (the input
 * is never pruned: X_{k-1} keeps its shape). `masks` are keyed by group id; the full model's
 * ids are valid here (see GROUP IDS above). With empty masks it is a plain clone.
 */
export function pruneSubnetwork(subModel: tf.LayersModel, masks: GroupMasks, options: { analysis?: ChannelAnalysis } = {}): tf.LayersModel {
  const analysis = options.analysis ?? analyzeChannels(subModel);
  try {
    return pruneModel(subModel, masks, { analysis });
  } catch (error) {
    throw new SubnetworkError(`pruning sub-network model '${subModel.name}': ${(error as Error).message}`);
  }
}

/** The group's members and where its channels sit in each of their tensors (the segments naming it). */
function memberSet(group: ChannelGroup, analysis: ChannelAnalysis): string {
  const placement = (layer: string, side: 'in' | 'out'): string => {
    const channels = analysis.layers.find((l) => l.name === layer)!;
    const layouts = side === 'out' ? [channels.output] : channels.inputs;
    return layouts
      .flatMap((layout) => layout.segments.filter((s) => s.group === group.id))
      .map((s) => `${s.offset}:${s.start}+${s.channels}${s.repeat ? `x${s.repeat}` : ''}`)
      .join(',');
  };
  return [
    group.producers.map((m) => `${m.layer}@${placement(m.layer, 'out')}`).join(','),
    group.passThrough.map((m) => `${m.layer}@${placement(m.layer, 'out')}`).join(','),
    group.consumers.map((m) => `${m.layer}@${placement(m.layer, 'in')}`).join(','),
  ].join(' | ');
}

/**
 * Throws unless every group searched by sub-network `subnet` exists in `subAnalysis` (the
 * analysis of the standalone S_k) under the same id, with the same channels and members.
 */
export function checkSubnetworkGroups(
  fullAnalysis: ChannelAnalysis,
  division: Division,
  subnet: string | number,
  subAnalysis: ChannelAnalysis,
): void {
  const spec: SubnetworkSpec = findSubnetwork(division, subnet);
  const subGroups = new Map(subAnalysis.groups.map((g) => [g.id, g]));
  for (const id of spec.groupIds) {
    const full = fullAnalysis.groups.find((g) => g.id === id);
    if (!full) throw new SubnetworkError(`sub-network ${spec.id}: group '${id}' is not in the analysis of model '${fullAnalysis.graph.name}'`);
    const sub = subGroups.get(id);
    if (!sub) {
      throw new SubnetworkError(
        `sub-network ${spec.id}: group '${id}' of model '${fullAnalysis.graph.name}' has no counterpart in '${subAnalysis.graph.name}' ` +
          `(its groups: ${[...subGroups.keys()].join(', ')})`,
      );
    }
    if (sub.channels !== full.channels || memberSet(sub, subAnalysis) !== memberSet(full, fullAnalysis) || sub.boundary !== null) {
      throw new SubnetworkError(
        `sub-network ${spec.id}: group '${id}' differs between the full model and '${subAnalysis.graph.name}': ` +
          `${full.channels} ch [${groupLayers(full).join(', ')}] vs ${sub.channels} ch [${groupLayers(sub).join(', ')}]` +
          (sub.boundary !== null ? ` (a ${sub.boundary} boundary there)` : ''),
      );
    }
  }
}

/** Recovered weights of a sub-network: its trained S_k' model, or weights per layer name (getWeights order). */
export type RecoveredWeights = tf.LayersModel | ReadonlyMap<string, readonly tf.Tensor[]> | Readonly<Record<string, readonly tf.Tensor[]>>;

function recoveredLayers(recovered: RecoveredWeights): [string, readonly tf.Tensor[]][] {
  if (recovered instanceof tf.LayersModel) {
    return recovered.layers.filter((l) => l.getClassName() !== 'InputLayer').map((l) => [l.name, l.getWeights()]);
  }
  return recovered instanceof Map
    ? [...(recovered as ReadonlyMap<string, readonly tf.Tensor[]>).entries()]
    : Object.entries(recovered as Readonly<Record<string, readonly tf.Tensor[]>>);
}

export interface AssembleOptions {
  /** When given, each sub-network's masks must only name groups that sub-network searches. */
  readonly division?: Division;
}

/**
 * The whole network pruned with every sub-network's masks, with each sub-network's recovered
 * weights copied in by layer name: one functional tf.LayersModel with the original layer names,
 * physically smaller, saveable. Sub-networks without recovered weights keep the inherited
 * (original, kept-channel) weights. The caller owns and disposes the result.
 */
export function assemblePrunedModel(
  original: tf.LayersModel,
  analysis: ChannelAnalysis,
  masksBySubnet: BySubnet<GroupMasks>,
  recoveredWeightsBySubnet: BySubnet<RecoveredWeights> = {},
  options: AssembleOptions = {},
): tf.LayersModel {
  const union: Record<string, Uint8Array> = {};
  const owner = new Map<string, string>();
  for (const [subnet, masks] of entriesOf(masksBySubnet)) {
    const allowed = options.division ? new Set(findSubnetwork(options.division, subnet).groupIds) : undefined;
    for (const [id, mask] of Object.entries(masks)) {
      if (owner.has(id)) throw new SubnetworkError(`group '${id}' has masks from sub-networks ${owner.get(id)} and ${subnet}`);
      if (allowed && !allowed.has(id)) {
        throw new SubnetworkError(`sub-network ${subnet}: mask for group '${id}', which it does not search (its groups: ${[...allowed].join(', ')})`);
      }
      owner.set(id, subnet);
      union[id] = mask;
    }
  }
  const pruned = pruneModel(original, union, { analysis });
  try {
    for (const [subnet, recovered] of entriesOf(recoveredWeightsBySubnet)) {
      for (const [layerName, weights] of recoveredLayers(recovered)) {
        if (weights.length === 0) continue;
        let target: tf.layers.Layer;
        try {
          target = pruned.getLayer(layerName);
        } catch {
          throw new SubnetworkError(`sub-network ${subnet}: recovered layer '${layerName}' is not a layer of model '${original.name}'`);
        }
        const targetWeights = target.weights;
        const mismatch =
          targetWeights.length !== weights.length ||
          targetWeights.some((w, i) => w.shape.join('x') !== weights[i].shape.join('x'));
        if (mismatch) {
          throw new SubnetworkError(
            `sub-network ${subnet}: recovered weights of layer '${layerName}' have shapes ` +
              `${weights.map((w) => `[${w.shape.join(', ')}]`).join(' ')}, the pruned model's layer has ` +
              `${targetWeights.map((w) => `[${w.shape.join(', ')}]`).join(' ')} (masks and recovered model disagree)`,
          );
        }
        target.setWeights([...weights]);
      }
    }
  } catch (error) {
    pruned.dispose();
    throw error;
  }
  return pruned;
}
