/**
 * Joint recovery of an assembled scheme before it is verified (finalize.ts, spec
 * `finalize.jointRecoverySteps`). Each sub-network's candidate was recovered alone, with every
 * other sub-network original; assembled, the pruned sub-networks feed each other features none of
 * them was recovered on, which is why the measured joint impairment is 2-3x GPIR's additive
 * estimate. A few steps of training the WHOLE assembled network on search-train, towards the
 * original network's logits and the labels (the whole-network form of the recovery loss:
 * alpha * MSE(logits', logits) / Var(logits) + beta * CE(logits', y)), then BN re-estimation,
 * repair most of that interaction before the scheme is measured and chosen.
 *
 * Deterministic (seeded batch order, fresh optimiser, no random initialisation), so a retried
 * finalize verifies the same network. The same determinism means every scheme of a target is
 * trained on the same batches towards the same teacher logits: one `TeacherLogits` shared by the
 * schemes computes the original network's forward pass once per batch, not once per scheme.
 */
import { tf } from '../engine/backend.ts';
import { recalibrateBatchNorm } from '../train/bn-recalibrate.ts';
import { normalizedMse, outputKind, softmaxCrossEntropy, toLogits } from '../train/losses.ts';
import { createOptimizer } from '../train/optimizers.ts';
import { trainStep, trainableVariables } from '../train/step.ts';
import type { RunSpec } from '../schema/spec.ts';
import { candidateSettingsFromSpec } from './search-task.ts';
import type { CandidateSettings } from './candidate.ts';
import { bnInputBatches, recoveryBatches } from './features.ts';
import type { BoundaryFeatures } from './features.ts';

/** The per-sub-network recovery's settings (candidate.ts), applied to the whole network for `steps` batches. */
export type JointRecoverySettings = Pick<CandidateSettings, 'batchSize' | 'learningRate' | 'alpha' | 'beta' | 'bnRecalibrationBatches' | 'seed'> & {
  readonly steps: number;
};

/** Batch-order stream tags, apart from the per-sub-network recovery's (candidate.ts). */
const JOINT_EPOCH_BASE = 0x6a6f0000; // 'jo'
const JOINT_BN_EPOCH = 0x6a6f626e; // 'jobn'

/**
 * The original network as the joint recovery's teacher: its logits per step, computed on first
 * use and kept (one row of class scores per image: 40 steps of 64 ImageNet images hold 10 MB).
 * Each entry remembers its batch's rows, so a caller whose batches differ (other settings or
 * features) fails loudly instead of training towards the wrong targets.
 */
export class TeacherLogits {
  private readonly entries = new Map<number, { readonly rows: Int32Array; readonly logits: tf.Tensor }>();

  constructor(readonly original: tf.LayersModel) {}

  logitsFor(step: number, rows: Int32Array, input: tf.Tensor): tf.Tensor {
    const cached = this.entries.get(step);
    if (cached) {
      if (cached.rows.length !== rows.length || cached.rows.some((row, i) => row !== rows[i])) {
        throw new Error(`teacher logits of joint-recovery step ${step} were computed for other search-train rows`);
      }
      return cached.logits;
    }
    const kind = outputKind(this.original);
    const logits = tf.keep(tf.tidy(() => toLogits(this.original.apply(input, { training: false }) as tf.Tensor, kind)));
    this.entries.set(step, { rows: rows.slice(), logits });
    return logits;
  }

  dispose(): void {
    for (const entry of this.entries.values()) entry.logits.dispose();
    this.entries.clear();
  }
}

/**
 * Trains `pruned` (the assembled network, images -> logits) in place for `settings.steps` batches
 * of the first sub-network's search-train rows (X_0 = the normalised images), then re-estimates
 * its BN statistics. `teacher` holds the frozen original network; one shared by the schemes of a
 * finalize computes its logits once. Returns the image passes spent.
 */
export function jointRecover(pruned: tf.LayersModel, teacher: TeacherLogits, inputFeatures: BoundaryFeatures, settings: JointRecoverySettings): number {
  if (settings.steps <= 0 || inputFeatures.train.count === 0) return 0;
  const kind = outputKind(teacher.original);
  const variables = trainableVariables(pruned);
  const optimizer = createOptimizer({ kind: 'sgd', momentum: 0.9, nesterov: true });
  let images = 0;
  let step = 0;
  try {
    for (const batch of recoveryBatches(inputFeatures, { batchSize: settings.batchSize, seed: settings.seed, steps: settings.steps, epochBase: JOINT_EPOCH_BASE })) {
      try {
        const target = teacher.logitsFor(step++, batch.rows, batch.input);
        const loss = trainStep(
          variables,
          () => {
            const logits = toLogits(pruned.apply(batch.input, { training: true }) as tf.Tensor, kind);
            const terms: tf.Scalar[] = [];
            if (settings.alpha > 0) terms.push(tf.mul(normalizedMse(logits, target), settings.alpha));
            if (settings.beta > 0) terms.push(tf.mul(softmaxCrossEntropy(logits, batch.labels), settings.beta));
            return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
          },
          optimizer,
          settings.learningRate,
        );
        loss.dispose();
        images += batch.rows.length;
      } finally {
        batch.dispose();
      }
    }
  } finally {
    optimizer.dispose();
  }
  if (settings.bnRecalibrationBatches > 0) {
    recalibrateBatchNorm(pruned, bnInputBatches(inputFeatures, { batchSize: settings.batchSize, seed: settings.seed, epoch: JOINT_BN_EPOCH }), {
      maxBatches: settings.bnRecalibrationBatches,
      disposeBatches: false,
    });
  }
  return images;
}

/** The joint recovery of a spec: `finalize.jointRecoverySteps` with the search's recovery settings. */
export function jointRecoverySettingsFromSpec(spec: RunSpec): JointRecoverySettings {
  const { batchSize, learningRate, alpha, beta, bnRecalibrationBatches, seed } = candidateSettingsFromSpec(spec);
  return { steps: spec.finalize.jointRecoverySteps, batchSize, learningRate, alpha, beta, bnRecalibrationBatches, seed };
}
