/**
 * One optimisation step, generic over what is trained and what the loss is.
 *
 * The EMO recovery trains a pruned sub-network S_k' against cached boundary features with
 * loss = alpha * MSE(S_k'(X_{k-1}), X_k) / Var(X_k) + beta * CE(T_k(S_k'(X_{k-1})), y), with the
 * rest of the network T_k frozen; fine-tuning trains a whole classifier with CE (+ distillation).
 * Both are `trainStep(variables, lossFn, optimizer, lr)`: the caller says which variables move
 * (the student's trainable weights) and builds the loss in a closure; nothing here knows
 * about models.
 *
 * BATCH NORM IN TRAINING MODE. `model.apply(x, {training: true})` on a tf.LayersModel reaches
 * every layer's `call` with `training: true` (tfjs-layers' functional `execute` forwards the
 * kwargs), so BatchNormalization normalises with the batch statistics AND updates its moving
 * mean/variance in place (tfjs does the EMA update imperatively inside `call`; there is no
 * separate "updates" list to run as in Keras 2 graph mode). Consequences:
 *  - every forward in training mode moves the BN moving statistics, also a forward whose loss
 *    you throw away; use `training: false` for anything that is not a real training step
 *    (teacher forward, feature extraction, evaluation);
 *  - the moving statistics are plain non-trainable variables, so `tf.variableGrads` never
 *    differentiates them and the optimiser never touches them.
 * test/train/step.test.ts checks both.
 */
import { tf } from '../engine/backend.ts';
import type { Optimizer, VariableGradient } from './optimizers.ts';
import { mixSeed } from '../data/prng.ts';
import { distillationLoss, outputKind, softmaxCrossEntropy, toLogits } from './losses.ts';
import type { OutputKind } from './losses.ts';

/** A mini-batch: inputs (float32, normalised, NHWC) and labels ([batch] indices or [batch, classes] targets). */
export interface Batch {
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
  /** Frees the batch (src/data's TensorBatch has one); without it, consumers dispose x and y. */
  dispose?(): void;
}

/** Frees a batch the way its producer wants (its own `dispose`, else x and y). */
export function disposeBatch(batch: Batch): void {
  if (typeof batch.dispose === 'function') batch.dispose();
  else {
    batch.x.dispose();
    batch.y.dispose();
  }
}

/** Logits for a batch; `training` selects batch-statistics BN / active dropout. */
export type LogitsFn = (x: tf.Tensor, training: boolean) => tf.Tensor;

export interface TrainStepOptions {
  /**
   * Clip the global L2 norm of all gradients to this value (0 or undefined: off). Useful for
   * short recoveries at a high learning rate, where one bad batch can wreck inherited weights.
   */
  readonly clipGradNorm?: number;
}

/**
 * The tf.Variables behind a model's trainable weights (layers with `trainable = false`
 * are excluded by tfjs-layers itself). BN moving statistics are never included.
 */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((weight) => {
    // LayerVariable.read() returns the backing tf.Variable itself (not a copy).
    const variable = weight.read();
    if (!(variable instanceof tf.Variable)) throw new Error(`weight ${weight.name} is not backed by a tf.Variable`);
    return variable;
  });
}

/**
 * Computes the gradients of `lossFn` with respect to `variables`, applies one optimiser
 * update with learning rate `lr` and returns the loss (BEFORE the update). The caller owns
 * the returned scalar and must dispose it; every other tensor is freed here.
 * `lossFn` must return a scalar; tensors it creates are released by the gradient tape.
 * Variables the loss does not depend on are skipped (no update, no decay).
 */
export function trainStep(
  variables: readonly tf.Variable[],
  lossFn: () => tf.Scalar,
  optimizer: Optimizer,
  lr: number,
  options: TrainStepOptions = {},
): tf.Scalar {
  if (variables.length === 0) throw new Error('trainStep: no variables to train');
  const byName = new Map(variables.map((v) => [v.name, v]));
  const { value, grads } = tf.variableGrads(lossFn, [...variables]);
  try {
    tf.tidy(() => {
      const updates: VariableGradient[] = [];
      for (const [name, gradient] of Object.entries(grads)) {
        const variable = byName.get(name);
        if (gradient && variable) updates.push({ variable, gradient });
      }
      const clip = options.clipGradNorm ?? 0;
      if (clip > 0 && updates.length > 0) {
        const sumSquares = tf.addN(updates.map(({ gradient }) => tf.sum(tf.square(gradient))));
        // scale = min(1, clip / norm): one multiply per gradient, no host sync.
        const scale = tf.minimum(1, tf.div(clip, tf.add(tf.sqrt(sumSquares), 1e-12)));
        optimizer.apply(
          updates.map(({ variable, gradient }) => ({ variable, gradient: tf.mul(gradient, scale) })),
          lr,
        );
      } else {
        optimizer.apply(updates, lr);
      }
    });
  } finally {
    for (const gradient of Object.values(grads)) gradient?.dispose();
  }
  return value;
}

/**
 * A model as a `LogitsFn`: `model.apply(x, {training})`, converting a softmax output to
 * logits when the model ends in softmax (see losses.ts `outputKind`).
 */
export function logitsFn(model: tf.LayersModel, kind: OutputKind = outputKind(model)): LogitsFn {
  return (x, training) => {
    const output = model.apply(x, { training });
    if (Array.isArray(output)) throw new Error(`model ${model.name} has ${output.length} outputs; a classifier has one`);
    return toLogits(output as tf.Tensor, kind);
  };
}

export interface ClassifierLossOptions {
  /** Label smoothing eps for the hard-label cross-entropy. Default 0. */
  readonly labelSmoothing?: number;
  /**
   * Knowledge distillation: loss = (1 - weight) * CE(student, y) + weight * KD(student, teacher, T).
   * `teacherLogits` must be computed outside the tape (see `teacherLogits`).
   */
  readonly distill?: { readonly teacherLogits: tf.Tensor; readonly temperature: number; readonly weight: number };
}

/** Classification loss of `logits` for `labels`, with optional smoothing and distillation. */
export function classifierLoss(logits: tf.Tensor, labels: tf.Tensor, options: ClassifierLossOptions = {}): tf.Scalar {
  const ce = softmaxCrossEntropy(logits, labels, options.labelSmoothing ?? 0);
  const distill = options.distill;
  if (!distill || distill.weight === 0) return ce;
  if (!(distill.weight >= 0 && distill.weight <= 1)) throw new Error(`distill.weight=${distill.weight} must be in [0, 1]`);
  return tf.tidy(() =>
    tf.add(tf.mul(ce, 1 - distill.weight), tf.mul(distillationLoss(logits, distill.teacherLogits, distill.temperature), distill.weight)),
  ) as tf.Scalar;
}

type Layer = tf.LayersModel['layers'][number];

/**
 * Seeds the dropout layers of a model for one step, so training with dropout is reproducible.
 * tfjs-layers' Dropout passes its `seed` field to every mask draw: unset, masks come from an
 * unseeded generator; set once (the config option), EVERY step reuses the same mask. Setting a
 * fresh seed per step (a hash of (seed, step, layer)) gives reproducible, varying masks.
 * Touches a field tfjs declares private; `restore()` puts the original seeds back so a saved
 * model's config is unchanged.
 */
export class DropoutSeeder {
  private readonly layers: { layer: Layer; original: number | undefined }[];

  constructor(model: tf.LayersModel) {
    this.layers = model.layers
      .filter((layer) => /Dropout/.test(layer.getClassName()) && 'seed' in layer)
      .map((layer) => ({ layer, original: (layer as unknown as { seed?: number }).seed }));
  }

  get count(): number {
    return this.layers.length;
  }

  /** Sets every dropout layer's seed from (seed, step, layer index). */
  seed(seed: number, step: number): void {
    this.layers.forEach(({ layer }, index) => {
      (layer as unknown as { seed?: number }).seed = mixSeed(seed, step, index, 0x64726f70 /* 'drop' */);
    });
  }

  restore(): void {
    for (const { layer, original } of this.layers) (layer as unknown as { seed?: number }).seed = original;
  }
}

/** Teacher logits in inference mode (frozen BN statistics, no tape). Caller disposes. */
export function teacherLogits(teacher: LogitsFn, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => teacher(x, false));
}

/**
 * One supervised step of a classifier: forward in training mode, `classifierLoss`, update.
 * Returns the loss before the update (caller disposes).
 */
export function classifierTrainStep(
  model: tf.LayersModel,
  batch: Batch,
  optimizer: Optimizer,
  lr: number,
  options: ClassifierLossOptions & TrainStepOptions & { readonly variables?: readonly tf.Variable[]; readonly forward?: LogitsFn } = {},
): tf.Scalar {
  const forward = options.forward ?? logitsFn(model);
  const variables = options.variables ?? trainableVariables(model);
  return trainStep(variables, () => classifierLoss(forward(batch.x, true), batch.y, options), optimizer, lr, options);
}
