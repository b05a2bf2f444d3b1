/**
 * Losses for the custom loop. All take logits (pre-softmax scores): log-softmax of logits is
 * numerically stable, whereas log of a softmax output underflows. A loaded model whose last
 * layer already applies softmax is handled by `outputKind` + `toLogits` (log of the clipped
 * probabilities, which are logits up to a per-row constant, and softmax ignores that constant).
 *
 * Labels are either class indices (int32 or float32, shape [batch]) or one-hot / soft targets
 * (shape [batch, classes]); every function here accepts both.
 */
import { tf } from '../engine/backend.ts';

export type OutputKind = 'logits' | 'probabilities';

interface LayerLike {
  getClassName(): string;
  getConfig(): object;
}

/**
 * What the model's last layer produces: the zoo's models end in a linear `dense` (logits);
 * models from elsewhere often end in a softmax (`dense` with activation softmax, a `Softmax`
 * layer, or an `Activation('softmax')`).
 */
export function outputKind(model: { readonly layers: readonly LayerLike[] }): OutputKind {
  const last = model.layers[model.layers.length - 1];
  if (!last) throw new Error('outputKind: model has no layers');
  if (last.getClassName() === 'Softmax') return 'probabilities';
  const activation = (last.getConfig() as { activation?: unknown }).activation;
  return activation === 'softmax' ? 'probabilities' : 'logits';
}

/** Logits from the model's output (identity for logits, clipped log for probabilities). */
export function toLogits(output: tf.Tensor, kind: OutputKind): tf.Tensor {
  if (kind === 'logits') return output;
  return tf.tidy(() => tf.log(tf.clipByValue(output, 1e-7, 1)));
}

/** Soft target distribution [batch, classes] from labels, with optional label smoothing. */
export function targetDistribution(labels: tf.Tensor, classes: number, labelSmoothing = 0): tf.Tensor2D {
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new Error(`labelSmoothing=${labelSmoothing} must be in [0, 1)`);
  return tf.tidy(() => {
    let target: tf.Tensor2D;
    if (labels.rank === 1) {
      target = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, classes).toFloat() as tf.Tensor2D;
    } else if (labels.rank === 2 && labels.shape[1] === classes) {
      target = tf.cast(labels, 'float32') as tf.Tensor2D;
    } else {
      throw new Error(`labels of shape [${labels.shape}] do not fit ${classes} classes (want [batch] or [batch, ${classes}])`);
    }
    if (labelSmoothing === 0) return target;
    // (1 - eps) * target + eps / K: the Szegedy et al. form used by torch's CrossEntropyLoss.
    return tf.add(tf.mul(target, 1 - labelSmoothing), labelSmoothing / classes) as tf.Tensor2D;
  });
}

/**
 * Mean softmax cross-entropy over the batch, from logits [batch, classes].
 * With `labelSmoothing` eps the target is (1 - eps) * one-hot + eps / classes.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, labelSmoothing = 0): tf.Scalar {
  if (logits.rank !== 2) throw new Error(`softmaxCrossEntropy: logits must be [batch, classes], got [${logits.shape}]`);
  return tf.tidy(() => {
    const target = targetDistribution(labels, logits.shape[1] as number, labelSmoothing);
    const logProbs = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(target, logProbs), 1)));
  });
}

/**
 * Per-example cross-entropy [batch] (no smoothing), for evaluation where the sum over all
 * examples (not a mean of batch means) is wanted.
 */
export function perExampleCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const target = targetDistribution(labels, logits.shape[1] as number, 0);
    return tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
  });
}

/**
 * Knowledge-distillation loss (Hinton et al.): T^2 * KL(softmax(teacher/T) || softmax(student/T)),
 * batch mean. The T^2 factor keeps the gradient scale independent of T, so the weight between
 * this and the hard-label CE does not have to be retuned when T changes.
 * The teacher logits should come from outside the gradient tape (they are constants here).
 */
export function distillationLoss(studentLogits: tf.Tensor, teacherLogits: tf.Tensor, temperature = 4): tf.Scalar {
  if (!(temperature > 0)) throw new Error(`distillationLoss: temperature=${temperature} must be > 0`);
  return tf.tidy(() => {
    const t = tf.scalar(temperature);
    const teacherLogProbs = tf.logSoftmax(tf.div(teacherLogits, t));
    const studentLogProbs = tf.logSoftmax(tf.div(studentLogits, t));
    const kl = tf.sum(tf.mul(tf.exp(teacherLogProbs), tf.sub(teacherLogProbs, studentLogProbs)), 1);
    return tf.mul(tf.mean(kl), temperature * temperature) as tf.Scalar;
  });
}

/**
 * MSE between features, divided by the variance of the target features (over all elements):
 * the feature-matching term of EMO-DIR recovery. Normalising by Var(target) makes the term
 * scale-free, so one `alpha` works for every cut point. `targetVariance` may be precomputed
 * over the whole cached feature set (preferred: a per-batch variance is noisy).
 */
export function normalizedMse(prediction: tf.Tensor, target: tf.Tensor, targetVariance?: number): tf.Scalar {
  if (prediction.shape.join() !== target.shape.join()) {
    throw new Error(`normalizedMse: shapes differ, prediction [${prediction.shape}] vs target [${target.shape}]`);
  }
  return tf.tidy(() => {
    const mse = tf.mean(tf.squaredDifference(prediction, target));
    if (targetVariance !== undefined) return tf.div(mse, Math.max(targetVariance, 1e-12)) as tf.Scalar;
    return tf.div(mse, tf.maximum(tf.moments(target).variance, 1e-12)) as tf.Scalar;
  });
}
