/**
 * The in-memory description of one sub-network's boundary features (DESIGN §2 "Boundary
 * features"): shapes and provenance in memory, the X_{k-1}/X_k rows in FeatureRows (memory or
 * spool files, see spool.ts), labels and subset indices in memory (4 bytes per image each).
 */
import type { Normalization } from '../../data/batches.ts';
import type { OutputKind } from '../../train/losses.ts';
import type { FeatureDtype, FeatureRows } from './rows.ts';

export interface FeatureSplit {
  readonly count: number;
  /** Training-set indices of the rows, in row order. */
  readonly indices: Int32Array;
  /** X_{k-1}: count rows of prod(inputShape) values, NHWC. */
  readonly input: FeatureRows;
  /** X_k: count rows of prod(outputShape) values. */
  readonly output: FeatureRows;
  readonly labels: Int32Array;
  /** Variance of X_k over all its elements (population variance, of the stored values). */
  readonly outputVariance: number;
}

export interface Metrics {
  /** Mean softmax cross-entropy. */
  readonly loss: number;
  /** Top-1 accuracy. */
  readonly accuracy: number;
  readonly count: number;
}

export interface BoundaryFeatures {
  readonly subnet: string;
  readonly index: number;
  readonly model: string;
  readonly inputTensor: string;
  readonly outputTensor: string;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly classes: number;
  /** Whether the network's output is logits or probabilities (for CE on T_k's output). */
  readonly outputKind: OutputKind;
  readonly normalize: Normalization;
  readonly dataset: string;
  readonly seed: number;
  /** How X_{k-1} and X_k rows are stored (float32 is exact; float16 halves the bytes). */
  readonly dtype: FeatureDtype;
  readonly train: FeatureSplit;
  readonly val: FeatureSplit;
  /** The original network on the search-validation subset: the impairment baseline. */
  readonly baseline: Metrics;
  /**
   * Frees the rows' storage (spool files) once every holder of these features has released
   * them; the features must not be read afterwards. Idempotent per holder.
   */
  release(): void;
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
