/**
 * Boundary features (DESIGN §2): for sub-network S_k, its input X_{k-1}, its output X_k and the
 * labels y, computed by the ORIGINAL network in inference mode on two fixed, seeded, disjoint
 * subsets of the TRAINING data: the search-train subset (recovery trains on it) and the
 * search-validation subset (impairment is measured on it). A candidate evaluation then never
 * runs the prefix S_1..S_{k-1}. Also kept: the original network's CE loss and accuracy on the
 * search-validation subset (the impairment baseline) and Var(X_k) over the search-train subset
 * (the normaliser of the recovery's MSE term).
 *
 * One job per module (./features/):
 *   subsets.ts   the seeded search subsets
 *   compute.ts   running the original network over them, batch by batch
 *   rows.ts      a stored array of feature rows (float32 or float16), read back by row number
 *   spool.ts     where rows live: memory, or unlinked spool files on local disk (the default)
 *   float16.ts   the half-precision codec
 *   batches.ts   mini-batches for recovery and scoring (the hot path)
 *   metrics.ts   CE / top-1 of outputs
 *   cache.ts     the store cache: sharded, checksummed, streamed in and out
 *
 * BOUNDED MEMORY (DESIGN §3 "Scale"). A worker's memory does not grow with the search subsets:
 * rows go from the network to local spool files as they are computed (or from the store cache
 * to spool files shard by shard), and each mini-batch reads its rows back with positioned reads.
 * ResNet-50's first stage at 2048 + 1024 images is ~12 GB of float32 rows: on disk and in the
 * page cache, not in the process. Chosen by measurement over keeping the input images and
 * recomputing X_{k-1}/X_k per batch (README "Bounded memory"): spooled float32 rows give the same
 * bits as before, cost no extra FLOPs, and read at page-cache speed.
 */
export type { BoundaryFeatures, FeatureSplit, Metrics } from './features/types.ts';
export { drawSearchSubsets } from './features/subsets.ts';
export type { SearchSubsets, SearchSubsetOptions } from './features/subsets.ts';
export { computeBoundaryFeatures, rowsVariance } from './features/compute.ts';
export type { ComputeFeaturesOptions } from './features/compute.ts';
export { FEATURE_DTYPES, bytesPerValue } from './features/rows.ts';
export type { FeatureDtype, FeatureRows } from './features/rows.ts';
export { DEFAULT_FEATURE_STORAGE, FeatureSpool } from './features/spool.ts';
export type { FeatureStorage } from './features/spool.ts';
export { bnInputBatches, evaluateOnFeatures, featureBatches, recoveryBatches } from './features/batches.ts';
export type { FeatureBatch, FeatureBatchOptions } from './features/batches.ts';
export { outputMetrics } from './features/metrics.ts';
export {
  BoundaryFeatureCache,
  DEFAULT_MAX_SHARD_BYTES,
  FEATURES_FORMAT,
  FEATURES_INDEX,
  FEATURES_VERSION,
  FeatureCacheError,
  FeatureDtypeMismatchError,
  ensureBoundaryFeatures,
  featureIndexSchema,
  featuresPrefix,
  loadBoundaryFeatures,
  saveBoundaryFeatures,
} from './features/cache.ts';
export type { EnsureFeaturesOptions, FeatureIndex, LoadFeaturesOptions, SaveFeaturesOptions } from './features/cache.ts';
