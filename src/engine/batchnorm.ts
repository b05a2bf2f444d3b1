/**
 * Training-mode batch norm as one differentiable op with a closed-form gradient.
 *
 * tf.layers.batchNormalization(training) runs tf.moments + tf.batchNorm, and autodiff walks
 * back through every op of that chain (mean, subtract, square, mean, normalise): even with the
 * lean gradients of ./gradients.ts that is ~12 passes over the activation per layer, about 15%
 * of a ResNet-20 train step on wasm. The textbook gradient
 *   dx = gamma r (dy - mean(dy) - xc r^2 mean(dy xc)),  r = 1/sqrt(var + eps), xc = x - mean
 * needs ~4 passes plus two per-channel sums.
 *
 * `installBatchNormTraining()` routes the training branch of tfjs-layers' BatchNormalization
 * through it (channels-last layers with both gamma and beta, i.e. the zoo's layers); every
 * other case calls the original method. The moving statistics are updated exactly as tfjs-layers
 * does (same formula, biased batch variance). test/engine/batchnorm.test.ts compares outputs,
 * moving statistics and gradients with the original layer.
 */
import * as tf from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs-core';

export interface BatchNormTrainingResult {
  readonly y: Tensor;
  /** Batch statistics (per channel), for the moving averages; not differentiated. The caller disposes them. */
  readonly mean: Tensor;
  readonly variance: Tensor;
}

/**
 * y = gamma (x - mean) / sqrt(var + eps) + beta with mean and (biased) variance over every axis
 * but the last; gradients for x, gamma and beta in closed form.
 */
export function batchNormTraining(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormTrainingResult {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const count = x.size / x.shape[x.shape.length - 1];
  // customGrad has one output; the statistics leave through this closure.
  let statistics: { mean: Tensor; variance: Tensor } | undefined;
  const op = tf.customGrad((...args: Array<Tensor | tf.GradSaveFunc>) => {
    const [input, scale, offset, save] = args as [Tensor, Tensor, Tensor, tf.GradSaveFunc];
    const mean = tf.mean(input, axes);
    const centered = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centered), axes);
    // The forward runs inside a tidy of the engine: keep the statistics past it.
    statistics = { mean: tf.keep(tf.clone(mean)), variance: tf.keep(tf.clone(variance)) };
    save([centered, variance, scale]);
    return {
      value: tf.batchNorm(input, mean, variance, offset, scale, epsilon),
      gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
        const grad = dy as Tensor;
        const [xc, v, g] = saved;
        const r = tf.rsqrt(tf.add(v, epsilon));
        const sumDy = tf.sum(grad, axes);
        const sumDyXc = tf.sum(tf.mul(grad, xc), axes);
        // dx = (dy - xc k - sumDy / N) * gamma r, with k = r^2 sumDyXc / N; the last step is a
        // per-channel affine map, which FusedBatchNorm does in one pass (variance 1, eps 0).
        const k = tf.div(tf.mul(tf.square(r), sumDyXc), count);
        const dx = tf.batchNorm(tf.sub(grad, tf.mul(xc, k)), tf.div(sumDy, count), tf.onesLike(v), undefined, tf.mul(g, r), 0);
        return [dx, tf.mul(sumDyXc, r), sumDy];
      },
    };
  });
  const y = op(x, gamma, beta);
  if (statistics === undefined) throw new Error('batchNormTraining: forward pass did not run');
  return { y, ...statistics };
}

/** The private fields of tfjs-layers' BatchNormalization that its training branch uses. */
interface BatchNormLayerFields {
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly gamma: { read(): Tensor } | null;
  readonly beta: { read(): Tensor } | null;
  readonly movingMean: { read(): Tensor; write(value: Tensor): void };
  readonly movingVariance: { read(): Tensor; write(value: Tensor): void };
}

type CallFn = (this: BatchNormLayerFields, inputs: Tensor | Tensor[], kwargs: Record<string, unknown>) => Tensor | Tensor[];

let installed = false;

/** Patches tf.layers.batchNormalization's training branch (once per process). */
export function installBatchNormTraining(): void {
  if (installed) return;
  // The class from the serialization registry: instantiating a layer to reach its prototype
  // would bump tfjs-layers' automatic layer-name counters.
  const registered = tf.serialization.SerializationMap.getMap().classNameMap.BatchNormalization as [unknown, unknown] | undefined;
  const prototype = (registered?.[0] as { prototype?: { call: CallFn } } | undefined)?.prototype;
  const original = prototype?.call;
  if (prototype === undefined || typeof original !== 'function') {
    throw new Error('installBatchNormTraining: tfjs-layers BatchNormalization class not found in the serialization registry');
  }
  prototype.call = function (this: BatchNormLayerFields, inputs, kwargs) {
    const training = kwargs?.training ?? false;
    const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    if (!training || input === undefined || this.gamma === null || this.beta === null || input.dtype !== 'float32') {
      return original.call(this, inputs, kwargs);
    }
    const axis = this.axis >= 0 ? this.axis : this.axis + input.rank;
    if (axis !== input.rank - 1 || input.rank < 2) return original.call(this, inputs, kwargs);
    const gamma = this.gamma;
    const beta = this.beta;
    return tf.tidy(() => {
      const { y, mean, variance } = batchNormTraining(input, gamma.read(), beta.read(), this.epsilon);
      // As tfjs-layers: moving = moving - (moving - batch) * (1 - momentum).
      for (const [variable, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const current = variable.read();
          variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - this.momentum)));
        });
      }
      tf.dispose([mean, variance]);
      return y;
    });
  };
  installed = true;
}
