/**
 * One candidate of a sub-network search, scored (DESIGN §2 "Objectives", "Recovery under
 * cross-network constraints"). This is the hot path of the whole method: every genome NSGA-II
 * proposes for S_k comes through `CandidateEvaluator.evaluate` exactly once.
 *
 *   genome -> masks -> S_k' = physically pruned copy of S_k with the kept channels' weights
 *          -> recovery: `recoverySteps` mini-batches of cached (X_{k-1}, X_k, y) with
 *               loss = alpha * MSE(S_k'(X_{k-1}), X_k) / Var(X_k) + beta * CE(T_k(S_k'(X_{k-1})), y)
 *             only S_k' variables in the var list; T_k runs in inference mode (frozen weights
 *             AND frozen BN statistics: a training-mode T_k would move the original network's
 *             moving averages, and every later candidate would be scored by a different T_k)
 *          -> BN re-estimation of S_k' on `bnRecalibrationBatches` batches of X_{k-1}
 *          -> impairment = CE(T_k(S_k'(X_{k-1})), y) on search-val - baseline CE.
 *
 * DETERMINISM. The result is a function of (genome, settings, features, original weights) only:
 * recovery batches come from `settings.seed` (the same batches for every genome, in the same
 * order), the pruned copy starts from inherited weights (no random initialisation), the
 * optimiser starts afresh per candidate, and nothing the evaluation does survives it. So a
 * genome scores the same whether it is evaluated first in a fresh process or last in a long one,
 * which is what makes a resumed search end with the same front as an uninterrupted one.
 *
 * THE UNPRUNED GENOME. All-ones is evaluated as the original S_k itself: no recovery, no BN
 * re-estimation, so its impairment is the exact reference (~0, float rounding only). Recovering
 * an unpruned sub-network could only fit noise of the small search-train subset, and re-estimated
 * BN statistics from a few batches are noisier than the trained moving averages; either would
 * shift the anchor point of the front, which GPIR's ranking walks from. `identityShortcut: false`
 * turns this off (tests use it to check that the clone-prune-evaluate path is exact too).
 *
 * OPTIMISER. SGD with Nesterov momentum 0.9 by default, chosen by measurement at the spec's
 * default learning rate 0.01 (20 steps of 64, alpha = beta = 1, 4 BN batches, impairment on 1024
 * search-val images, k2 of fmnist-resnet pruned by L1 to 50% / 25% of its channels):
 *   example model (2 epochs on 60k, 92% search-val top-1):
 *     no recovery 0.069 / 0.416;  SGD 0.017 / 0.078;  Adam 0.041 / 0.061;  Adam lr 0.001 0.015 / 0.077
 *   fixture model (1 epoch on 4k, 78%):
 *     no recovery 0.115 / 0.404;  SGD 0.031 / 0.065;  Adam 0.014 / 0.020
 * On the well-trained model Adam at 0.01 HURTS the mildly pruned candidate (top-1 92.3% -> 90.3%,
 * while SGD keeps 92.4%): Adam's first steps move every weight by about lr whatever its gradient,
 * which knocks a network that is already near a minimum off it. The search's most useful points
 * are the mild ones (50-70% targets), so the safe optimiser is the default. SGD at lr 0.05 was
 * best on both models (example: 0.014 / 0.053), so specs may raise `recoveryLearningRate`.
 * `optimizer: 'adam'` is kept for weakly trained models.
 */
import { tf } from '../engine/backend.ts';
import { countCost } from '../model/cost.ts';
import { genomeLength as slotsLength, masksFromGenome } from '../model/groups.ts';
import type { ChannelAnalysis, GenomeSlot, GroupMasks } from '../model/groups.ts';
import { recalibrateBatchNorm } from '../train/bn-recalibrate.ts';
import { normalizedMse, softmaxCrossEntropy, toLogits } from '../train/losses.ts';
import { createOptimizer } from '../train/optimizers.ts';
import type { OptimizerSpec } from '../train/optimizers.ts';
import { trainStep, trainableVariables } from '../train/step.ts';
import { bnInputBatches, evaluateOnFeatures, recoveryBatches } from './features.ts';
import type { BoundaryFeatures } from './features.ts';
import { pruneSubnetwork } from './subnetwork.ts';

export class CandidateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CandidateError';
  }
}

export type RecoveryOptimizer = 'sgd' | 'adam';

/** Impairment reported for a candidate whose recovery diverged: far above any real CE increase. */
export const DIVERGED_IMPAIRMENT = 1000;

/** See OPTIMISER in the module comment for the measurement behind this choice. */
export const DEFAULT_OPTIMIZER: RecoveryOptimizer = 'sgd';

export interface CandidateSettings {
  /** Mini-batches of recovery training; 0 skips training (BN re-estimation still runs). */
  readonly recoverySteps: number;
  /** Recovery (and BN re-estimation) batch size. */
  readonly batchSize: number;
  readonly learningRate: number;
  /** Weight of MSE(S_k'(X_{k-1}), X_k) / Var(X_k). */
  readonly alpha: number;
  /** Weight of CE(T_k(S_k'(X_{k-1})), y). */
  readonly beta: number;
  /** Batches of X_{k-1} used to re-estimate S_k' batch-norm statistics (0: keep the inherited ones). */
  readonly bnRecalibrationBatches: number;
  /** Seeds the order of the recovery and BN batches (the same for every genome). */
  readonly seed: number;
  /** Default DEFAULT_OPTIMIZER. */
  readonly optimizer?: RecoveryOptimizer;
  /** Global gradient-norm clip during recovery (0: off). Default 0. */
  readonly clipGradNorm?: number;
  /** Batch size of the search-val evaluation (inference only). Default 256. */
  readonly evalBatchSize?: number;
  /** Score the all-ones genome as the original S_k (see the module comment). Default true. */
  readonly identityShortcut?: boolean;
}

export interface CandidateEvaluatorOptions {
  /** S_k: X_{k-1} -> X_k (buildSubnetworkModel; shares the original weights, never modified here). */
  readonly originalSubnet: tf.LayersModel;
  /** T_k: X_k -> network output (buildTailModel), frozen; null/undefined when S_k is the last piece (X_K is the output). */
  readonly tail?: tf.LayersModel | null;
  /** Cached boundary features of this sub-network. */
  readonly features: BoundaryFeatures;
  /** Channel analysis of `originalSubnet` (the standalone S_k). */
  readonly analysis: ChannelAnalysis;
  /** Genome layout over the searched groups (genomeSlots(analysis, spec.groupIds)). */
  readonly slots: readonly GenomeSlot[];
  readonly settings: CandidateSettings;
  /** CE of the original network on search-val; default `features.baseline.loss`. */
  readonly baselineLoss?: number;
}

/** Analytic cost of the pruned S_k (ratios are over the unpruned S_k). */
export interface CandidateCost {
  /** Pruned S_k MACs / original S_k MACs (the `flops` objective). */
  readonly flops: number;
  /** Pruned S_k params / original S_k params (the `params` objective). */
  readonly paramsRatio: number;
  /** Absolute MACs of the pruned S_k. */
  readonly macs: number;
  /** Absolute params of the pruned S_k. */
  readonly params: number;
}

export interface RecoveryReport {
  /** Steps actually trained. */
  readonly steps: number;
  /** Recovery loss of the first and of the last step (before their updates); NaN with 0 steps. */
  readonly firstLoss: number;
  readonly lastLoss: number;
  /** BN layers re-estimated, and on how many examples. */
  readonly bnLayers: number;
  readonly bnExamples: number;
}

export interface CandidateResult extends CandidateCost {
  /** CE(T_k(S_k'(X_{k-1})), y) on search-val minus the baseline CE: the `impairment` objective. */
  readonly impairment: number;
  /** CE on search-val of the network with S_k replaced by the recovered S_k'. */
  readonly loss: number;
  /** Top-1 on search-val of that network. */
  readonly accuracy: number;
  /** True when recovery diverged (non-finite loss); impairment is then DIVERGED_IMPAIRMENT. */
  readonly diverged: boolean;
  /** Wall time of the evaluation (not deterministic: keep it out of results that must be reproducible). */
  readonly seconds: number;
  readonly recovery: RecoveryReport;
}

export interface CandidateEvaluator {
  readonly genomeLength: number;
  readonly slots: readonly GenomeSlot[];
  /** The unpruned S_k. */
  readonly original: { readonly macs: number; readonly params: number };
  readonly baselineLoss: number;
  /** Group masks of a genome (copies: safe to keep after the genome changes). */
  masks(genome: Uint8Array): Record<string, Uint8Array>;
  /** Analytic cost only (no model is built). */
  cost(genome: Uint8Array): CandidateCost;
  /** Prune, recover, re-estimate BN, score; frees everything it created. */
  evaluate(genome: Uint8Array): CandidateResult;
  /**
   * The recovered pruned S_k' of a genome, exactly as `evaluate` scored it (same deterministic
   * recovery), for verification and finalize. The caller owns it and must dispose it. Its layer
   * names are the original ones, so its weights can be copied into an assembled model
   * (assemblePrunedModel) or saved.
   */
  recoverCandidate(genome: Uint8Array): tf.LayersModel;
}

function checkSettings(settings: CandidateSettings): void {
  const integer = (name: keyof CandidateSettings, min: number): void => {
    const value = settings[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new CandidateError(`candidate settings: ${name} must be an integer >= ${min}, got ${String(value)}`);
    }
  };
  integer('recoverySteps', 0);
  integer('batchSize', 1);
  integer('bnRecalibrationBatches', 0);
  integer('seed', 0);
  const nonNegative = (name: keyof CandidateSettings): void => {
    const value = settings[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new CandidateError(`candidate settings: ${name} must be a finite number >= 0, got ${String(value)}`);
    }
  };
  nonNegative('alpha');
  nonNegative('beta');
  nonNegative('learningRate');
  if (settings.clipGradNorm !== undefined) nonNegative('clipGradNorm');
  if (settings.evalBatchSize !== undefined) integer('evalBatchSize', 1);
  if (settings.recoverySteps > 0 && settings.alpha === 0 && settings.beta === 0) {
    throw new CandidateError('candidate settings: alpha and beta are both 0, recovery would train on a zero loss');
  }
}

function shapeKey(shape: readonly (number | null)[]): string {
  return shape.slice(1).join('x');
}

/** Stream tags so the recovery and BN batch orders are independent draws from one seed. */
const RECOVERY_EPOCH_BASE = 0;
const BN_EPOCH = 0x626e6563; // 'bnec'

function isAllOnes(genome: Uint8Array): boolean {
  for (let i = 0; i < genome.length; i++) if (genome[i] !== 1) return false;
  return true;
}

export function createCandidateEvaluator(options: CandidateEvaluatorOptions): CandidateEvaluator {
  const { originalSubnet, features, analysis, slots, settings } = options;
  const tail = options.tail ?? null;
  checkSettings(settings);
  const subnetName = `sub-network ${features.subnet} ('${originalSubnet.name}')`;
  if (analysis.graph.name !== originalSubnet.name) {
    throw new CandidateError(`${subnetName}: the analysis is of model '${analysis.graph.name}'`);
  }
  const inShape = shapeKey(originalSubnet.inputs[0].shape);
  const outShape = shapeKey(originalSubnet.outputs[0].shape);
  if (inShape !== features.inputShape.join('x') || outShape !== features.outputShape.join('x')) {
    throw new CandidateError(
      `${subnetName}: maps [${inShape}] -> [${outShape}], but the features are [${features.inputShape.join('x')}] -> [${features.outputShape.join('x')}]`,
    );
  }
  if (tail && shapeKey(tail.inputs[0].shape) !== outShape) {
    throw new CandidateError(`${subnetName}: the tail '${tail.name}' takes [${shapeKey(tail.inputs[0].shape)}], S_k gives [${outShape}]`);
  }
  for (const slot of slots) {
    const group = analysis.groups.find((g) => g.id === slot.group);
    if (!group || group.channels !== slot.channels) {
      throw new CandidateError(`${subnetName}: genome slot for group '${slot.group}' (${slot.channels} ch) does not match the analysis`);
    }
  }
  const length = slotsLength(slots);
  const totals = countCost(analysis);
  const original = { macs: totals.macs, params: totals.params };
  const baselineLoss = options.baselineLoss ?? features.baseline.loss;
  const evalBatchSize = settings.evalBatchSize ?? 256;
  const identityShortcut = settings.identityShortcut ?? true;
  const optimizerSpec: OptimizerSpec =
    (settings.optimizer ?? DEFAULT_OPTIMIZER) === 'adam' ? { kind: 'adam' } : { kind: 'sgd', momentum: 0.9, nesterov: true };
  const trainCount = features.train.count;
  if (settings.recoverySteps > 0 && trainCount === 0) throw new CandidateError(`${subnetName}: recovery needs search-train features, there are none`);
  if (features.val.count === 0) throw new CandidateError(`${subnetName}: impairment needs search-val features, there are none`);

  const masksOf = (genome: Uint8Array): Record<string, Uint8Array> => {
    if (!(genome instanceof Uint8Array) || genome.length !== length) {
      throw new CandidateError(`${subnetName}: genome of ${genome.length} bits, the layout has ${length}`);
    }
    const view = masksFromGenome(slots, genome);
    const copies: Record<string, Uint8Array> = {};
    for (const [id, mask] of Object.entries(view)) copies[id] = mask.slice();
    return copies;
  };

  const costOf = (masks: GroupMasks): CandidateCost => {
    const { macs, params } = countCost(analysis, masks);
    return { flops: macs / original.macs, paramsRatio: params / original.params, macs, params };
  };

  /** T_k(X_k) as logits; T_k always in inference mode (frozen weights and BN statistics). */
  const logitsOf = (out: tf.Tensor): tf.Tensor => toLogits(tail ? (tail.apply(out, { training: false }) as tf.Tensor) : out, features.outputKind);

  const recover = (model: tf.LayersModel): RecoveryReport => {
    let firstLoss = Number.NaN;
    let lastLoss = Number.NaN;
    let steps = 0;
    if (settings.recoverySteps > 0) {
      const variables = trainableVariables(model);
      const optimizer = createOptimizer(optimizerSpec);
      const { alpha, beta } = settings;
      const variance = features.train.outputVariance;
      // The first and last losses are read once, after the loop: a read per step would make a
      // GPU backend wait for every step to finish before queueing the next one.
      let firstLossTensor: tf.Tensor | undefined;
      let lastLossTensor: tf.Tensor | undefined;
      try {
        for (const batch of recoveryBatches(features, { batchSize: settings.batchSize, seed: settings.seed, steps: settings.recoverySteps, epochBase: RECOVERY_EPOCH_BASE })) {
          try {
            const loss = trainStep(
              variables,
              () => {
                const out = model.apply(batch.input, { training: true }) as tf.Tensor;
                const terms: tf.Scalar[] = [];
                if (alpha > 0) terms.push(tf.mul(normalizedMse(out, batch.output, variance), alpha));
                // The tail is only run when its term counts: it is most of the network for early k.
                if (beta > 0) terms.push(tf.mul(softmaxCrossEntropy(logitsOf(out), batch.labels), beta));
                return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
              },
              optimizer,
              settings.learningRate,
              { clipGradNorm: settings.clipGradNorm ?? 0 },
            );
            if (firstLossTensor === undefined) {
              firstLossTensor = loss;
            } else {
              lastLossTensor?.dispose();
              lastLossTensor = loss;
            }
            steps++;
          } finally {
            batch.dispose();
          }
        }
        if (firstLossTensor !== undefined) {
          firstLoss = firstLossTensor.dataSync()[0];
          lastLoss = lastLossTensor === undefined ? firstLoss : lastLossTensor.dataSync()[0];
        }
      } finally {
        firstLossTensor?.dispose();
        lastLossTensor?.dispose();
        optimizer.dispose();
      }
    }
    let bnLayers = 0;
    let bnExamples = 0;
    if (settings.bnRecalibrationBatches > 0 && trainCount > 0) {
      const done = recalibrateBatchNorm(model, bnInputBatches(features, { batchSize: settings.batchSize, seed: settings.seed, epoch: BN_EPOCH }), { maxBatches: settings.bnRecalibrationBatches, disposeBatches: false });
      bnLayers = done.layers.length;
      bnExamples = done.examples;
    }
    return { steps, firstLoss, lastLoss, bnLayers, bnExamples };
  };

  const noRecovery: RecoveryReport = { steps: 0, firstLoss: Number.NaN, lastLoss: Number.NaN, bnLayers: 0, bnExamples: 0 };

  const score = (model: tf.LayersModel): { loss: number; accuracy: number } => {
    const metrics = evaluateOnFeatures((x) => logitsOf(model.apply(x, { training: false }) as tf.Tensor), features, 'val', 'input', evalBatchSize);
    return { loss: metrics.loss, accuracy: metrics.accuracy };
  };

  const buildRecovered = (genome: Uint8Array, masks: GroupMasks): { model: tf.LayersModel; recovery: RecoveryReport } => {
    const model = pruneSubnetwork(originalSubnet, masks, { analysis });
    try {
      if (identityShortcut && isAllOnes(genome)) return { model, recovery: noRecovery };
      return { model, recovery: recover(model) };
    } catch (error) {
      model.dispose();
      throw error;
    }
  };

  return {
    genomeLength: length,
    slots,
    original,
    baselineLoss,
    masks: masksOf,
    cost: (genome) => costOf(masksOf(genome)),
    evaluate(genome) {
      const started = performance.now();
      const masks = masksOf(genome);
      const cost = costOf(masks);
      let metrics: { loss: number; accuracy: number };
      let recovery = noRecovery;
      if (identityShortcut && isAllOnes(genome)) {
        // The original S_k itself (shares the original weights; nothing is built or trained).
        metrics = score(originalSubnet);
      } else {
        const built = buildRecovered(genome, masks);
        try {
          recovery = built.recovery;
          metrics = score(built.model);
        } finally {
          built.model.dispose();
        }
      }
      // A diverged recovery (NaN/Infinity loss) must not stop the search: the genome gets a
      // finite impairment worse than any real one (so it is dominated), and is flagged. Throwing
      // would be worse: the evaluation is deterministic, so a retried job would fail again.
      const diverged = !Number.isFinite(metrics.loss);
      return {
        ...cost,
        impairment: diverged ? DIVERGED_IMPAIRMENT : metrics.loss - baselineLoss,
        loss: diverged ? DIVERGED_IMPAIRMENT + baselineLoss : metrics.loss,
        accuracy: diverged ? 0 : metrics.accuracy,
        diverged,
        seconds: (performance.now() - started) / 1000,
        recovery,
      };
    },
    recoverCandidate(genome) {
      return buildRecovered(genome, masksOf(genome)).model;
    },
  };
}
