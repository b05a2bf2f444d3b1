/**
 * The supervised training loop (fine-tuning after pruning, training the example models).
 *
 * A custom loop rather than `model.fit` because the same step function (`trainStep`, step.ts)
 * also runs EMO recovery with a feature-matching loss, and because we want seeded data order
 * and augmentation (src/data), per-step learning-rate schedules, kernel-only weight decay and
 * distillation from a teacher, none of which `model.fit` offers.
 *
 * Reproducibility: with the same seed, data, options and backend the run is deterministic:
 * epoch order and augmentation come from (seed, epoch[, batch]) in src/data; the model's own
 * initialisation is seeded by whoever built it (zoo seed); dropout masks from (seed, step,
 * layer) through `DropoutSeeder` (step.ts). The zoo models have no dropout.
 */
import { tf } from '../engine/backend.ts';
import type { ImageDataset } from '../data/dataset.ts';
import { batchCount } from '../data/batches.ts';
import type { AugmentOptions, Normalization } from '../data/batches.ts';
import type { ImageSource } from '../data/image-source.ts';
import { batches as tensorBatches, sourceTensorBatches } from '../data/tensor-batches.ts';
import { evaluateSource, evaluationBatches } from './evaluate.ts';

// Re-exported for callers that import the loop and its evaluation batches together.
export { evaluationBatches };
import type { EvaluationResult } from './evaluate.ts';
import { createOptimizer } from './optimizers.ts';
import type { Optimizer, OptimizerSpec } from './optimizers.ts';
import { resolveSchedule } from './schedules.ts';
import type { LrSchedule, ScheduleSpec } from './schedules.ts';
import { DropoutSeeder, classifierLoss, disposeBatch, logitsFn, teacherLogits, trainableVariables, trainStep } from './step.ts';
import type { Batch, LogitsFn } from './step.ts';

/** Any source of training batches other than images (e.g. cached features, a capped stream). */
export interface EpochBatches {
  readonly stepsPerEpoch: number;
  /**
   * The batches of epoch `epoch` (0-based) from batch `startStep` on (a resumed fit passes its
   * `startStep` for the first epoch, 0 after); fit disposes each batch after its step.
   */
  batches(epoch: number, startStep: number): Iterable<Batch> | AsyncIterable<Batch>;
}

/**
 * An in-memory set (batched by batches.ts), any ImageSource (read as needed by
 * stream-batches.ts: a sharded set is streamed through a bounded shuffle buffer), or batches.
 */
export type TrainData = ImageDataset | ImageSource | EpochBatches;

export interface DistillOptions {
  /** The teacher (frozen: run in inference mode, never updated). */
  readonly teacher: tf.LayersModel | LogitsFn;
  /** Softmax temperature. Default 4. */
  readonly temperature?: number;
  /** Weight of the distillation term; (1 - weight) goes to the hard-label CE. Default 0.5. */
  readonly weight?: number;
}

export interface EpochInfo {
  /** 0-based. */
  readonly epoch: number;
  readonly epochs: number;
  /** Mean training loss over the epoch's examples (as optimised: with smoothing/distillation). */
  readonly loss: number;
  /** Learning rate of the epoch's last step. */
  readonly lr: number;
  readonly steps: number;
  readonly examples: number;
  readonly seconds: number;
  readonly imagesPerSecond: number;
  /** Present when `validation` was given (and this epoch was evaluated). */
  readonly validation?: EvaluationResult;
}

export interface FitOptions {
  readonly epochs: number;
  readonly batchSize: number;
  /** An instance (kept; the caller disposes it) or a spec (created and disposed here). Default: SGD, Nesterov 0.9, L2 5e-4 on kernels. */
  readonly optimizer?: Optimizer | OptimizerSpec;
  /** Default: cosine from 0.1 * batchSize / 128 to 0, with a one-epoch (at most 10% of the run) warm-up. */
  readonly schedule?: ScheduleSpec | LrSchedule;
  /** Seeds data order, augmentation and dropout masks. Default 0. */
  readonly seed?: number;
  /** Augmentation of ImageDataset batches. Default: none. */
  readonly augment?: AugmentOptions | false;
  /** Pixel normalisation of ImageDataset batches. Must match evaluation. Default 'unit'. */
  readonly normalize?: Normalization;
  /** Train on these images of the data set only. */
  readonly indices?: ArrayLike<number>;
  /** Drop the last partial batch (tiny batches give noisy BN statistics). Default true. */
  readonly dropLast?: boolean;
  readonly labelSmoothing?: number;
  readonly clipGradNorm?: number;
  readonly distillFrom?: DistillOptions;
  /** ImageSource data: shuffle-buffer images and shards read ahead (stream-batches.ts defaults). */
  readonly stream?: { readonly shuffleBuffer?: number; readonly prefetch?: number };
  /** Evaluated after every `every`-th epoch (default 1) and after the last. */
  readonly validation?: { readonly data: ImageDataset | ImageSource; readonly batchSize?: number; readonly every?: number };
  /** Start at this epoch (resume: the schedule and data order continue as if uninterrupted). Default 0. */
  readonly startEpoch?: number;
  /**
   * Start at this step of `startEpoch` (resume mid-epoch): the epoch's batches from there on are
   * the ones an uninterrupted fit would have seen (same order, same augmentation), and the
   * schedule and dropout continue at the same step. Weights and optimiser state are the caller's
   * to restore. Default 0.
   */
  readonly startStep?: number;
  readonly onEpoch?: (info: EpochInfo) => void | Promise<void>;
  /** Progress line every this many steps (0 = off, the default). Costs one host sync per line. */
  readonly logEverySteps?: number;
  readonly log?: (message: string) => void;
}

export interface FitResult {
  readonly history: readonly EpochInfo[];
  readonly optimizer: string;
  readonly seconds: number;
}

function isDataset(data: TrainData): data is ImageDataset {
  return (data as ImageDataset).images instanceof Uint8Array;
}

function isEpochBatches(data: TrainData): data is EpochBatches {
  return typeof (data as EpochBatches).batches === 'function';
}

/** Trains `model` in place; returns the per-epoch history. */
export async function fit(model: tf.LayersModel, data: TrainData, options: FitOptions): Promise<FitResult> {
  const { epochs, batchSize } = options;
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`fit: epochs=${epochs} must be an integer >= 1`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`fit: batchSize=${batchSize} must be an integer >= 1`);
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 0;
  const dropLast = options.dropLast ?? true;
  const startEpoch = options.startEpoch ?? 0;
  const startStep = options.startStep ?? 0;
  const normalize = options.normalize ?? 'unit';

  const stepsPerEpoch = isEpochBatches(data) ? data.stepsPerEpoch : batchCount(options.indices?.length ?? data.count, batchSize, dropLast);
  if (stepsPerEpoch < 1) throw new Error(`fit: no full batch of ${batchSize} in the training data`);
  if (!Number.isInteger(startStep) || startStep < 0 || startStep >= stepsPerEpoch) {
    throw new Error(`fit: startStep=${startStep} must be an integer in 0..${stepsPerEpoch - 1}`);
  }
  const epochBatches = (epoch: number, firstStep: number): Iterable<Batch> | AsyncIterable<Batch> => {
    if (isEpochBatches(data)) return data.batches(epoch, firstStep);
    const batchOptions = { batchSize, seed, epoch, shuffle: true, augment: options.augment ?? false, normalize, dropLast, indices: options.indices, startBatch: firstStep };
    return isDataset(data) ? tensorBatches(data, batchOptions) : sourceTensorBatches(data, { ...batchOptions, ...options.stream });
  };

  const schedule: LrSchedule =
    typeof options.schedule === 'function'
      ? options.schedule
      : resolveSchedule(
          options.schedule ?? { kind: 'cosine', lr: (0.1 * batchSize) / 128, warmupEpochs: Math.min(1, epochs / 10) },
          stepsPerEpoch,
          epochs,
        );
  const ownsOptimizer = options.optimizer === undefined || !('apply' in options.optimizer);
  const optimizer: Optimizer =
    options.optimizer !== undefined && 'apply' in options.optimizer
      ? options.optimizer
      : createOptimizer(options.optimizer ?? { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 5e-4 });

  const student = logitsFn(model);
  const variables = trainableVariables(model);
  const distill = options.distillFrom;
  const teacher = distill ? (typeof distill.teacher === 'function' ? distill.teacher : logitsFn(distill.teacher)) : undefined;
  const dropout = new DropoutSeeder(model);
  const history: EpochInfo[] = [];
  const started = performance.now();
  log(`fit: ${model.name}, ${epochs} epochs x ${stepsPerEpoch} steps of ${batchSize}, ${optimizer.description}, ${variables.length} trainable tensors`);

  try {
    for (let epoch = startEpoch; epoch < epochs; epoch += 1) {
      const epochStarted = performance.now();
      let lossSum: tf.Scalar = tf.scalar(0);
      let examples = 0;
      // A resumed epoch counts its steps from where it resumed, so the schedule and dropout do.
      let steps = epoch === startEpoch ? startStep : 0;
      let lr = 0;
      try {
        for await (const batch of epochBatches(epoch, steps)) {
          try {
            const step = epoch * stepsPerEpoch + steps;
            lr = schedule(step);
            dropout.seed(seed, step);
            const size = batch.x.shape[0] as number;
            const target = teacher ? teacherLogits(teacher, batch.x) : undefined;
            try {
              const loss = trainStep(
                variables,
                () =>
                  classifierLoss(student(batch.x, true), batch.y, {
                    labelSmoothing: options.labelSmoothing,
                    distill: target ? { teacherLogits: target, temperature: distill?.temperature ?? 4, weight: distill?.weight ?? 0.5 } : undefined,
                  }),
                optimizer,
                lr,
                { clipGradNorm: options.clipGradNorm },
              );
              const next = tf.tidy(() => tf.add(lossSum, tf.mul(loss, size)) as tf.Scalar);
              loss.dispose();
              lossSum.dispose();
              lossSum = next;
            } finally {
              target?.dispose();
            }
            examples += size;
            steps += 1;
            if (options.logEverySteps && steps % options.logEverySteps === 0) {
              const seconds = (performance.now() - epochStarted) / 1000;
              log(
                `fit: epoch ${epoch + 1}/${epochs} step ${steps}/${stepsPerEpoch} loss ${(lossSum.dataSync()[0] / examples).toFixed(4)} ` +
                  `lr ${lr.toPrecision(3)} ${(examples / seconds).toFixed(1)} img/s`,
              );
            }
          } finally {
            disposeBatch(batch);
          }
          // Yield to the event loop between steps (timers, signals, other async work).
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const loss = lossSum.dataSync()[0] / Math.max(1, examples);
        if (!Number.isFinite(loss)) {
          throw new Error(`fit: training loss is ${loss} in epoch ${epoch + 1} of ${model.name} (lr ${lr}); lower the learning rate or clip gradients`);
        }
        const seconds = (performance.now() - epochStarted) / 1000;
        const every = options.validation?.every ?? 1;
        const validate = options.validation && ((epoch + 1) % every === 0 || epoch === epochs - 1);
        const validation = validate && options.validation
          ? await evaluateSource(student, options.validation.data, { batchSize: options.validation.batchSize ?? 256, normalize })
          : undefined;
        const info: EpochInfo = {
          epoch,
          epochs,
          loss,
          lr,
          steps,
          examples,
          seconds,
          imagesPerSecond: examples / seconds,
          ...(validation ? { validation } : {}),
        };
        history.push(info);
        log(
          `fit: epoch ${epoch + 1}/${epochs} loss ${loss.toFixed(4)} lr ${lr.toPrecision(3)} ${info.imagesPerSecond.toFixed(1)} img/s ${seconds.toFixed(1)} s` +
            (validation ? ` | val loss ${validation.loss.toFixed(4)} top1 ${(validation.top1 * 100).toFixed(2)}%` : ''),
        );
        await options.onEpoch?.(info);
      } finally {
        lossSum.dispose();
      }
    }
  } finally {
    dropout.restore();
    if (ownsOptimizer) optimizer.dispose();
  }
  return { history, optimizer: optimizer.description, seconds: (performance.now() - started) / 1000 };
}
