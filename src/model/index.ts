/**
 * The pruning library's public surface: graph (what is connected), groups (what must be cut
 * together), importance (what to cut), prune (how to cut), cost (what it saves); each layer
 * kind's part in all four is one module under kinds/.
 * Zoo and io are not re-exported: import them from their modules (io pulls in the store).
 */
export { buildGraph, cutPoints, graphNode, GraphError } from './graph.ts';
export type { GraphNode, LayerEssentials, ModelGraph, Shape } from './graph.ts';
export {
  analyzeChannels,
  ChannelAnalysisError,
  findGroup,
  fullMasks,
  genomeFromMasks,
  genomeLength,
  genomeSlots,
  masksFromGenome,
  groupLayers,
  keptChannels,
  keptIndices,
  keptWidth,
  layerChannels,
  prunableChannels,
  positionChannels,
  validateMasks,
  SUPPORTED_CLASSES,
} from './groups.ts';
export type {
  AnalyzeOptions,
  ChannelAnalysis,
  ChannelGroup,
  ChannelLayout,
  ChannelSegment,
  GenomeSlot,
  GroupMasks,
  GroupMember,
  LayerChannels,
} from './groups.ts';
export { channelImportance, IMPORTANCE_CRITERIA } from './importance.ts';
export type { ImportanceCriterion, ImportanceOptions, WeightGradients } from './importance.ts';
export { keptPositions, masksKeeping, prunedLayerWeights, pruneModel } from './prune.ts';
export type { PruneOptions } from './prune.ts';
export { costOfLayers, countCost, countTotals } from './cost.ts';
export type { CostReport, LayerCost } from './cost.ts';
