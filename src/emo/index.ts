/**
 * The EMO engine's public surface: NSGA-II over bitset genomes plus the pieces a pruning
 * problem or a report needs (genome codec, groups, Pareto tools, RNG). Import from here.
 */
export { Rng, RNG_ALGORITHM, type RngState } from './rng.ts';
export { assertGenome, countKept, decodeGenome, encodeGenome, fullGenome, genomesEqual, hashGenome, hashString, type Genome } from './genome.ts';
export { isLegalKeptCount, legalKeptCount, minimumKept, prepareGroups, type ChannelGroup, type KeepRule, type PreparedGroup } from './groups.ts';
export { crowdingDistance, dominates, nonDominatedSort, type NonDominatedSorting } from './sort.ts';
export { hypervolume2d, paretoFront } from './hypervolume.ts';
export { binaryTournament } from './operators/tournament.ts';
export { groupUniformCrossover, type CrossoverOptions } from './operators/crossover.ts';
export { bitFlipMutation, type MutationOptions } from './operators/mutation.ts';
export { isRepaired, repairGenome } from './operators/repair.ts';
export { sampleAtRatio, sampleInitialPopulation, type SamplingOptions } from './operators/sampling.ts';
export { rankAndCrowding, rankAndCrowdingSurvival } from './operators/survival.ts';
export {
  defaultOperators,
  front,
  resolveConfig,
  resumeNsga2,
  runNsga2,
  searchConfigHash,
  validateSearchState,
  type ArchivePoint,
  type Evaluation,
  type Nsga2Config,
  type Nsga2Operators,
  type Problem,
  type ResolvedNsga2Config,
  type RunOptions,
  type SearchCounters,
  type SearchResult,
  type SearchState,
  type StopReason,
} from './nsga2.ts';
