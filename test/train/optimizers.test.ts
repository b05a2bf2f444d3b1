// Optimisers, schedules and losses against hand-written reference formulas (cpu backend:
// exact and independent of the engine helper's WASM kernels).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { AdamOptimizer, SgdOptimizer, createOptimizer } from '../../src/train/optimizers.ts';
import { constantLr, cosineLr, resolveSchedule, stepLr } from '../../src/train/schedules.ts';
import {
  distillationLoss,
  normalizedMse,
  outputKind,
  softmaxCrossEntropy,
  targetDistribution,
  toLogits,
} from '../../src/train/losses.ts';

before(async () => {
  await initEngine({ backend: 'cpu', log: () => {} });
});

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5, what = ''): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i += 1) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** A kernel (rank 2, decayed by default) and a bias (rank 1, not decayed) with fixed values. */
function makeParams(): { kernel: tf.Variable; bias: tf.Variable } {
  return {
    kernel: tf.variable(tf.tensor2d([[0.5, -1.0], [2.0, 0.25]]), true, `k${Math.random()}`),
    bias: tf.variable(tf.tensor1d([0.1, -0.3]), true, `b${Math.random()}`),
  };
}

const GRADS = [
  { kernel: [0.2, -0.1, 0.4, 0.05], bias: [1.0, -2.0] },
  { kernel: [-0.3, 0.2, 0.1, 0.0], bias: [0.5, 0.5] },
  { kernel: [0.1, 0.1, -0.2, 0.3], bias: [-1.0, 0.25] },
];

function runOptimizer(optimizer: SgdOptimizer | AdamOptimizer, lrs: number[]): { kernel: Float32Array; bias: Float32Array } {
  const { kernel, bias } = makeParams();
  GRADS.forEach((g, step) => {
    const gk = tf.tensor2d(g.kernel, [2, 2]);
    const gb = tf.tensor1d(g.bias);
    optimizer.apply([{ variable: kernel, gradient: gk }, { variable: bias, gradient: gb }], lrs[step]);
    gk.dispose();
    gb.dispose();
  });
  const result = { kernel: kernel.dataSync() as Float32Array, bias: bias.dataSync() as Float32Array };
  kernel.dispose();
  bias.dispose();
  optimizer.dispose();
  return result;
}

/** Reference SGD in plain JS (PyTorch semantics). */
function referenceSgd(w0: number[], grads: number[][], lrs: number[], mu: number, nesterov: boolean, wd: number, mode: 'l2' | 'decoupled'): number[] {
  const w = [...w0];
  const v = w.map(() => 0);
  grads.forEach((g, t) => {
    for (let i = 0; i < w.length; i += 1) {
      let gi = g[i];
      if (mode === 'l2') gi += wd * w[i];
      v[i] = mu * v[i] + gi;
      const d = nesterov ? gi + mu * v[i] : v[i];
      const base = mode === 'decoupled' ? w[i] * (1 - lrs[t] * wd) : w[i];
      w[i] = base - lrs[t] * d;
    }
  });
  return w;
}

function referenceAdam(w0: number[], grads: number[][], lrs: number[], wd: number, mode: 'l2' | 'decoupled'): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const w = [...w0];
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  grads.forEach((g, index) => {
    const t = index + 1;
    for (let i = 0; i < w.length; i += 1) {
      const gi = mode === 'l2' ? g[i] + wd * w[i] : g[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const mHat = m[i] / (1 - b1 ** t);
      const vHat = v[i] / (1 - b2 ** t);
      const base = mode === 'decoupled' ? w[i] * (1 - lrs[index] * wd) : w[i];
      w[i] = base - (lrs[index] * mHat) / (Math.sqrt(vHat) + eps);
    }
  });
  return w;
}

const K0 = [0.5, -1.0, 2.0, 0.25];
const B0 = [0.1, -0.3];
const LRS = [0.1, 0.05, 0.02];

describe('SgdOptimizer', () => {
  for (const [nesterov, mode] of [[false, 'l2'], [true, 'l2'], [true, 'decoupled']] as const) {
    test(`momentum, nesterov=${nesterov}, weight decay ${mode}, kernels only`, () => {
      const got = runOptimizer(new SgdOptimizer({ momentum: 0.9, nesterov, weightDecay: 0.01, weightDecayMode: mode }), LRS);
      close(got.kernel, referenceSgd(K0, GRADS.map((g) => g.kernel), LRS, 0.9, nesterov, 0.01, mode), 1e-5, 'kernel');
      // The bias (rank 1) gets no decay.
      close(got.bias, referenceSgd(B0, GRADS.map((g) => g.bias), LRS, 0.9, nesterov, 0, mode), 1e-5, 'bias');
    });
  }

  test('plain SGD (momentum 0) is w - lr g', () => {
    const got = runOptimizer(new SgdOptimizer({ momentum: 0 }), LRS);
    close(got.bias, referenceSgd(B0, GRADS.map((g) => g.bias), LRS, 0, false, 0, 'l2'), 1e-6, 'bias');
  });

  test('rejects bad settings', () => {
    assert.throws(() => new SgdOptimizer({ momentum: 0, nesterov: true }), /nesterov/);
    assert.throws(() => new SgdOptimizer({ momentum: 1.5 }), /momentum/);
    const sgd = new SgdOptimizer();
    assert.throws(() => sgd.apply([], Number.NaN), /lr/);
  });
});

describe('AdamOptimizer', () => {
  for (const mode of ['l2', 'decoupled'] as const) {
    test(`matches the textbook update with bias correction, weight decay ${mode}`, () => {
      const got = runOptimizer(new AdamOptimizer({ weightDecay: 0.05, weightDecayMode: mode }), LRS);
      close(got.kernel, referenceAdam(K0, GRADS.map((g) => g.kernel), LRS, 0.05, mode), 1e-4, 'kernel');
      close(got.bias, referenceAdam(B0, GRADS.map((g) => g.bias), LRS, 0, mode), 1e-4, 'bias');
    });
  }

  test('createOptimizer: adamw is decoupled, adam is L2, descriptions say so', () => {
    const adamw = createOptimizer({ kind: 'adamw', weightDecay: 0.05 });
    const adam = createOptimizer({ kind: 'adam', weightDecay: 0.05 });
    const sgd = createOptimizer({ kind: 'sgd', nesterov: true, weightDecay: 5e-4 });
    assert.match(adamw.description, /^adamw\(.*decoupled/);
    assert.match(adam.description, /^adam\(.*l2/);
    assert.match(sgd.description, /nesterov,wd=0.0005 l2/);
    const got = runOptimizer(adamw as AdamOptimizer, LRS);
    close(got.kernel, referenceAdam(K0, GRADS.map((g) => g.kernel), LRS, 0.05, 'decoupled'), 1e-4, 'adamw kernel');
  });
});

test('optimisers keep a fixed number of tensors across steps and free them on dispose', () => {
  for (const optimizer of [new SgdOptimizer({ nesterov: true, weightDecay: 1e-3 }), new AdamOptimizer({ weightDecay: 0.01 })]) {
    const { kernel, bias } = makeParams();
    const step = (): void => {
      tf.tidy(() => {
        optimizer.apply([{ variable: kernel, gradient: tf.onesLike(kernel) }, { variable: bias, gradient: tf.onesLike(bias) }], 0.01);
      });
    };
    step();
    const afterFirst = tf.memory().numTensors;
    for (let i = 0; i < 5; i += 1) step();
    assert.equal(tf.memory().numTensors, afterFirst, `${optimizer.description} leaks tensors`);
    assert.equal(optimizer.iterations, 6);
    optimizer.dispose();
    assert.equal(tf.memory().numTensors, afterFirst - (optimizer instanceof AdamOptimizer ? 4 : 2));
    kernel.dispose();
    bias.dispose();
  }
});

describe('schedules', () => {
  test('cosine: warm-up rises linearly, peak after warm-up, minLr at the last step', () => {
    const s = cosineLr({ lr: 1, totalSteps: 110, warmupSteps: 10, minLr: 0.01, warmupStartFactor: 0 });
    assert.equal(s(0), 0);
    assert.ok(Math.abs(s(5) - 0.5) < 1e-12);
    assert.equal(s(10), 1);
    assert.ok(Math.abs(s(109) - 0.01) < 1e-12);
    assert.ok(Math.abs(s(500) - 0.01) < 1e-12);
    // Half-way through the decay the rate is the mean of peak and floor.
    assert.ok(Math.abs(s(10 + 49.5) - 0.505) < 1e-9);
    for (let t = 11; t < 110; t += 1) assert.ok(s(t) <= s(t - 1), `not decreasing at ${t}`);
  });

  test('step and constant', () => {
    const s = stepLr({ lr: 0.1, milestones: [10, 20], gamma: 0.5 });
    assert.deepEqual([s(0), s(9), s(10), s(19), s(20), s(99)], [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
    assert.equal(constantLr(0.3)(1000), 0.3);
    assert.throws(() => stepLr({ lr: 0.1, milestones: [5, 2] }), /ascending/);
  });

  test('resolveSchedule converts epochs to steps', () => {
    const cosine = resolveSchedule({ kind: 'cosine', lr: 0.2, warmupEpochs: 1, warmupStartFactor: 0.5 }, 10, 5);
    assert.equal(cosine(0), 0.1);
    assert.equal(cosine(10), 0.2);
    assert.ok(cosine(49) < 1e-12);
    const step = resolveSchedule({ kind: 'step', lr: 1, milestones: [2, 4], gamma: 0.1 }, 10, 5);
    assert.equal(step(19), 1);
    assert.ok(Math.abs(step(20) - 0.1) < 1e-12);
    assert.ok(Math.abs(step(45) - 0.01) < 1e-12);
    assert.equal(resolveSchedule({ kind: 'constant', lr: 0.5 }, 10, 5)(33), 0.5);
  });
});

describe('losses', () => {
  const logitsRows = [[2, 1, 0.1], [0.5, 2.5, -1], [0, 0, 3]];
  const labels = [0, 2, 2];

  function referenceCe(eps: number): number {
    let total = 0;
    logitsRows.forEach((row, i) => {
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
      row.forEach((z, k) => {
        const target = (k === labels[i] ? 1 - eps : 0) + eps / row.length;
        total -= target * (z - lse);
      });
    });
    return total / logitsRows.length;
  }

  test('softmax cross-entropy with and without label smoothing, indices or one-hot labels', () => {
    for (const eps of [0, 0.1]) {
      const logits = tf.tensor2d(logitsRows);
      const y = tf.tensor1d(labels, 'int32');
      const oneHot = tf.oneHot(y, 3);
      assert.ok(Math.abs(softmaxCrossEntropy(logits, y, eps).dataSync()[0] - referenceCe(eps)) < 1e-5);
      assert.ok(Math.abs(softmaxCrossEntropy(logits, oneHot, eps).dataSync()[0] - referenceCe(eps)) < 1e-5);
      tf.dispose([logits, y, oneHot]);
    }
    assert.throws(() => targetDistribution(tf.zeros([2, 4]), 3), /do not fit 3 classes/);
  });

  test('a softmax-output model is recognised and its output turned into equivalent logits', () => {
    const input = tf.input({ shape: [4] });
    const softmaxModel = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, activation: 'softmax' }).apply(input) as tf.SymbolicTensor });
    const linearModel = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3 }).apply(input) as tf.SymbolicTensor });
    assert.equal(outputKind(softmaxModel), 'probabilities');
    assert.equal(outputKind(linearModel), 'logits');
    const logits = tf.tensor2d(logitsRows);
    const fromProbs = toLogits(tf.softmax(logits), 'probabilities');
    const y = tf.tensor1d(labels, 'int32');
    assert.ok(Math.abs(softmaxCrossEntropy(fromProbs, y).dataSync()[0] - referenceCe(0)) < 1e-4);
    tf.dispose([logits, fromProbs, y]);
  });

  test('distillation is zero for identical logits, positive otherwise, and scales with T^2', () => {
    const a = tf.tensor2d(logitsRows);
    const b = tf.tensor2d([[0, 1, 2], [1, 1, 1], [3, 0, 0]]);
    assert.ok(Math.abs(distillationLoss(a, a, 2).dataSync()[0]) < 1e-6);
    assert.ok(distillationLoss(a, b, 2).dataSync()[0] > 0.1);
    tf.dispose([a, b]);
  });

  test('normalizedMse divides by the target variance', () => {
    const target = tf.tensor1d([1, 3, 5, 7]); // variance 5
    const prediction = tf.tensor1d([2, 3, 5, 8]); // mse 0.5
    assert.ok(Math.abs(normalizedMse(prediction, target).dataSync()[0] - 0.1) < 1e-6);
    assert.ok(Math.abs(normalizedMse(prediction, target, 2).dataSync()[0] - 0.25) < 1e-6);
    assert.throws(() => normalizedMse(tf.zeros([2]), tf.zeros([3])), /shapes differ/);
    tf.dispose([target, prediction]);
  });
});
