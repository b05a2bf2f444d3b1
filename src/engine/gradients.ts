/**
 * Leaner gradients for the ops a batch-norm layer runs in training mode.
 *
 * tf.layers.batchNormalization(training) computes `tf.moments(x)` and then `FusedBatchNorm`.
 * The stock tfjs gradients of that chain cost ~25 passes over the activation per layer, one of
 * them a `Tile` of the per-channel scale to the full activation (the wasm Tile kernel is a
 * scalar index loop: ~30x slower than a multiply); the stock `Mean`/`Sum` gradients build their
 * broadcast with `tf.ones` (a JS array copied into the backend) and then multiply and divide.
 * The gradients below compute the same values with per-channel algebra and ~half the passes.
 *
 * Gradients are registered per kernel name for every backend (tfjs has no per-backend
 * gradients); they are exact rewrites of the stock formulas, checked by
 * test/engine/batchnorm-grad.test.ts against a closed-form reference.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, NamedAttrMap, Tensor } from '@tensorflow/tfjs-core';

/** Reduction axes that take a tensor of `shape` to the broadcastable `reducedShape`. */
function reductionAxes(reducedShape: readonly number[], shape: readonly number[]): number[] {
  return tf.broadcast_util.getReductionAxes(reducedShape as number[], shape as number[]);
}

/**
 * FusedBatchNorm: y = (x - mean) * r * scale + offset, r = 1/sqrt(variance + eps).
 *   dx = dy * (scale r)                  dmean = -(scale r) sum(dy)
 *   dvariance = -0.5 scale r^3 sum(dy (x - mean))
 *   dscale = r sum(dy (x - mean))        doffset = sum(dy)
 * The two sums are computed once, in the gradient function's own scope (each input's closure
 * runs in a tidy of its own, so sharing must happen here).
 */
const fusedBatchNormGrad: GradConfig = {
  kernelName: 'FusedBatchNorm',
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const grad = dy as Tensor;
    const [x, mean, variance, scale] = saved;
    const epsilon = attrs.varianceEpsilon as number;
    const axes = reductionAxes(mean.shape, x.shape);
    const keepDims = mean.rank === x.rank;
    const r = tf.rsqrt(tf.add(variance, epsilon));
    const scaleR = scale === undefined ? r : tf.mul(scale, r);
    const sumDy = tf.reshape(tf.sum(grad, axes, keepDims), mean.shape);
    // sum(dy * (x - mean)) rather than sum(dy x) - mean sum(dy): no cancellation when |mean| >> std.
    const sumDyCentered = tf.reshape(tf.sum(tf.mul(grad, tf.sub(x, mean)), axes, keepDims), mean.shape);
    return {
      x: () => tf.mul(grad, scaleR),
      mean: () => tf.neg(tf.mul(scaleR, sumDy)),
      variance: () => tf.mul(tf.mul(tf.mul(scaleR, tf.square(r)), sumDyCentered), -0.5),
      scale: () => tf.reshape(tf.mul(r, sumDyCentered), scale === undefined ? mean.shape : scale.shape),
      offset: () => sumDy,
    };
  },
};

/** Broadcasts `dy` (reduced over `axes`) back to `shape`, times `factor`: one fill + one multiply. */
function broadcastBack(dy: Tensor, axes: number[], shape: number[], factor: number): Tensor {
  const expanded = shape.slice();
  for (const axis of axes) expanded[axis] = 1;
  const scaled = factor === 1 ? dy : tf.mul(dy, factor);
  return tf.mul(tf.fill(shape, 1), tf.reshape(scaled, expanded));
}

const meanGrad: GradConfig = {
  kernelName: 'Mean',
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
    const count = axes.reduce((n, axis) => n * x.shape[axis], 1);
    return { x: () => broadcastBack(dy as Tensor, axes, x.shape, 1 / count) };
  },
};

const sumGrad: GradConfig = {
  kernelName: 'Sum',
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
    return { x: () => broadcastBack(dy as Tensor, axes, x.shape, 1) };
  },
};

export const leanGradients: readonly GradConfig[] = [fusedBatchNormGrad, meanGrad, sumGrad];

let registered = false;

/** Registers the lean gradients (idempotent; applies to every backend). */
export function registerLeanGradients(): void {
  if (registered) return;
  for (const config of leanGradients) tf.registerGradient(config);
  registered = true;
}
