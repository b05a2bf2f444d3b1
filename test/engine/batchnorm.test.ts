/**
 * Batch norm on wasm: the FusedBatchNorm kernel (1x1 depthwise conv form) against the cpu
 * backend, and the lean gradients of training-mode batch norm (src/engine/gradients.ts)
 * against the closed-form gradient computed here in plain JS.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/backend.ts';
import { installBatchNormTraining } from '../../src/engine/batchnorm.ts';
import { onBackend, relativeError, seededValues, setupBackends, sizeOf } from './helpers.ts';

const TOLERANCE = 1e-4;

interface BnCase {
  readonly x: number[];
  readonly withScale: boolean;
  readonly paramRank: 1 | 'full';
}

const forwardCases: BnCase[] = [
  { x: [3, 5, 7, 4], withScale: true, paramRank: 1 },
  { x: [3, 5, 7, 4], withScale: false, paramRank: 1 },
  { x: [6, 5], withScale: true, paramRank: 1 },
  { x: [2, 4, 4, 3], withScale: true, paramRank: 'full' }, // not per-channel: the stock kernel's case
];

function batchNormForward(c: BnCase, seed: number): Float32Array {
  return tf.tidy(() => {
    const channels = c.x[c.x.length - 1];
    const paramShape = c.paramRank === 1 ? [channels] : c.x;
    const n = sizeOf(paramShape);
    const x = tf.tensor(seededValues(sizeOf(c.x), seed), c.x);
    const mean = tf.tensor(seededValues(n, seed + 1), paramShape);
    const variance = tf.tensor(seededValues(n, seed + 2).map((v) => 0.5 + v * v), paramShape);
    const offset = c.withScale ? tf.tensor(seededValues(n, seed + 3), paramShape) : undefined;
    const scale = c.withScale ? tf.tensor(seededValues(n, seed + 4), paramShape) : undefined;
    return tf.batchNorm(x, mean, variance, offset, scale, 1e-3).dataSync() as Float32Array;
  });
}

/**
 * Training-mode batch norm over all but the last axis, as tf.layers.batchNormalization does it
 * (tf.moments, then tf.batchNorm), with gradients of sum(y * g) w.r.t. x, gamma, beta.
 */
function trainingBatchNormGrads(shape: number[], seed: number): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  return tf.tidy(() => {
    const channels = shape[shape.length - 1];
    const axes = shape.slice(0, -1).map((_, i) => i);
    const x = tf.tensor(seededValues(sizeOf(shape), seed).map((v) => 3 + 2 * v), shape);
    const gamma = tf.tensor1d(seededValues(channels, seed + 1));
    const beta = tf.tensor1d(seededValues(channels, seed + 2));
    const g = tf.tensor(seededValues(sizeOf(shape), seed + 3), shape);
    const f = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor): tf.Scalar => {
      const { mean, variance } = tf.moments(a, axes);
      return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, o, s, 1e-3), g));
    };
    const [dx, dgamma, dbeta] = tf.grads(f)([x, gamma, beta]);
    return { dx: dx.dataSync() as Float32Array, dgamma: dgamma.dataSync() as Float32Array, dbeta: dbeta.dataSync() as Float32Array };
  });
}

/** Closed form: dx = gamma r (g - mean(g) - xhat mean(g xhat)), dgamma = sum(g xhat), dbeta = sum(g). */
function closedFormGrads(shape: number[], seed: number): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const channels = shape[shape.length - 1];
  const x = seededValues(sizeOf(shape), seed).map((v) => 3 + 2 * v);
  const gamma = seededValues(channels, seed + 1);
  const g = seededValues(sizeOf(shape), seed + 3);
  const rows = x.length / channels;
  const dx = new Float32Array(x.length);
  const dgamma = new Float32Array(channels);
  const dbeta = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let i = 0; i < rows; i++) mean += x[i * channels + c];
    mean /= rows;
    let variance = 0;
    for (let i = 0; i < rows; i++) variance += (x[i * channels + c] - mean) ** 2;
    variance /= rows;
    const r = 1 / Math.sqrt(variance + 1e-3);
    let sumG = 0;
    let sumGXhat = 0;
    for (let i = 0; i < rows; i++) {
      const xhat = (x[i * channels + c] - mean) * r;
      sumG += g[i * channels + c];
      sumGXhat += g[i * channels + c] * xhat;
    }
    dgamma[c] = sumGXhat;
    dbeta[c] = sumG;
    for (let i = 0; i < rows; i++) {
      const xhat = (x[i * channels + c] - mean) * r;
      dx[i * channels + c] = gamma[c] * r * (g[i * channels + c] - sumG / rows - (xhat * sumGXhat) / rows);
    }
  }
  return { dx, dgamma, dbeta };
}

describe('wasm FusedBatchNorm matches the cpu backend', () => {
  before(setupBackends);
  forwardCases.forEach((c, index) => {
    it(`x=${c.x.join('x')} scale=${c.withScale} params=${c.paramRank}`, async () => {
      const reference = await onBackend('cpu', () => batchNormForward(c, 10 + index));
      const dataIdsBefore = await onBackend('wasm', () => tf.engine().backend.numDataIds());
      const actual = await onBackend('wasm', () => batchNormForward(c, 10 + index));
      assert.equal(tf.engine().backend.numDataIds(), dataIdsBefore, 'wasm tensor data leaked');
      const error = relativeError(actual, reference);
      assert.ok(error < TOLERANCE, `relative error ${error.toExponential(2)}`);
    });
  });
});

describe('training-mode batch norm gradients match the closed form', () => {
  before(setupBackends);
  for (const shape of [
    [4, 5, 3, 6],
    [7, 3],
  ]) {
    for (const backend of ['cpu', 'wasm'] as const) {
      it(`${backend} x=${shape.join('x')}`, async () => {
        const reference = closedFormGrads(shape, 7);
        const actual = await onBackend(backend, () => trainingBatchNormGrads(shape, 7));
        for (const key of ['dx', 'dgamma', 'dbeta'] as const) {
          const error = relativeError(actual[key], reference[key]);
          assert.ok(error < TOLERANCE, `${key}: relative error ${error.toExponential(2)}`);
        }
      });
    }
  }
});

/**
 * tf.layers.batchNormalization in training mode, patched by installBatchNormTraining: output,
 * moving statistics and gradients against plain JS (the closed form above and the tfjs-layers
 * moving-average formula).
 */
function layerTraining(shape: number[], seed: number): {
  y: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
} {
  const channels = shape[shape.length - 1];
  const layer = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3 });
  layer.build(shape);
  const [gammaVar, betaVar] = layer.trainableWeights;
  gammaVar.write(tf.tensor1d(seededValues(channels, seed + 1)));
  betaVar.write(tf.tensor1d(seededValues(channels, seed + 2)));
  const x = tf.tensor(seededValues(sizeOf(shape), seed).map((v) => 3 + 2 * v), shape);
  const g = tf.tensor(seededValues(sizeOf(shape), seed + 3), shape);
  const y = tf.tidy(() => (layer.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array);
  const moving = layer.getWeights().slice(2).map((w) => w.dataSync() as Float32Array);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, g)) as tf.Scalar, layer.trainableWeights.map((w) => w.read() as tf.Variable));
  const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, g)))(x);
  const result = {
    y,
    movingMean: moving[0],
    movingVariance: moving[1],
    dx: dx.dataSync() as Float32Array,
    dgamma: grads[(gammaVar.read() as tf.Variable).name].dataSync() as Float32Array,
    dbeta: grads[(betaVar.read() as tf.Variable).name].dataSync() as Float32Array,
  };
  tf.dispose([x, g, value, dx, ...Object.values(grads)]);
  for (const weight of layer.weights) weight.dispose();
  return result;
}

describe('patched tf.layers.batchNormalization (training) matches plain JS', () => {
  before(async () => {
    await setupBackends();
    installBatchNormTraining();
  });
  for (const shape of [
    [4, 5, 3, 6],
    [9, 4],
  ]) {
    for (const backend of ['cpu', 'wasm'] as const) {
      it(`${backend} x=${shape.join('x')}`, async () => {
        const seed = 21;
        const reference = closedFormGrads(shape, seed);
        const actual = await onBackend(backend, () => layerTraining(shape, seed));
        // Output and moving statistics from first principles.
        const channels = shape[shape.length - 1];
        const x = seededValues(sizeOf(shape), seed).map((v) => 3 + 2 * v);
        const gamma = seededValues(channels, seed + 1);
        const beta = seededValues(channels, seed + 2);
        const rows = x.length / channels;
        const y = new Float32Array(x.length);
        const movingMean = new Float32Array(channels);
        const movingVariance = new Float32Array(channels);
        for (let c = 0; c < channels; c++) {
          let mean = 0;
          for (let i = 0; i < rows; i++) mean += x[i * channels + c] / rows;
          let variance = 0;
          for (let i = 0; i < rows; i++) variance += (x[i * channels + c] - mean) ** 2 / rows;
          for (let i = 0; i < rows; i++) y[i * channels + c] = (gamma[c] * (x[i * channels + c] - mean)) / Math.sqrt(variance + 1e-3) + beta[c];
          movingMean[c] = 0 - (0 - mean) * 0.1; // initial moving mean 0, momentum 0.9
          movingVariance[c] = 1 - (1 - variance) * 0.1; // initial moving variance 1
        }
        const checks: Array<[string, Float32Array, Float32Array]> = [
          ['y', actual.y, y],
          ['movingMean', actual.movingMean, movingMean],
          ['movingVariance', actual.movingVariance, movingVariance],
          ['dx', actual.dx, reference.dx],
          ['dgamma', actual.dgamma, reference.dgamma],
          ['dbeta', actual.dbeta, reference.dbeta],
        ];
        for (const [key, a, b] of checks) {
          const error = relativeError(a, b);
          assert.ok(error < TOLERANCE, `${key}: relative error ${error.toExponential(2)}`);
        }
      });
    }
  }
});
