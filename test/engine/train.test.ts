/**
 * End to end on wasm: a small conv + BN + relu + pooling + dense model trains (the loss falls)
 * through the registered kernels and lean gradients, its gradients match the cpu backend's,
 * and a train step leaves no tensors behind.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/backend.ts';
import { onBackend, relativeError, seededValues, setupBackends } from './helpers.ts';

/** conv3x3 -> BN -> relu -> conv3x3/2 -> BN -> add(1x1/2 projection) -> relu -> maxpool -> GAP -> dense. */
function buildNet(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotNormal({ seed });
  const input = tf.input({ shape: [9, 9, 3] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  let y = tf.layers.conv2d({ filters: 12, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(2) }).apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  const shortcut = tf.layers.conv2d({ filters: 12, kernelSize: 1, strides: 2, padding: 'same', kernelInitializer: init(3) }).apply(x) as tf.SymbolicTensor;
  let z = tf.layers.add().apply([y, shortcut]) as tf.SymbolicTensor;
  z = tf.layers.activation({ activation: 'relu' }).apply(z) as tf.SymbolicTensor;
  z = tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'same' }).apply(z) as tf.SymbolicTensor;
  z = tf.layers.globalAveragePooling2d({}).apply(z) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 4, kernelInitializer: init(4) }).apply(z) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

const BATCH = 8;

function batch(seed: number): { x: tf.Tensor; y: tf.Tensor } {
  // Labels depend on the input (the sign pattern of channel means), so the loss can fall.
  const values = seededValues(BATCH * 9 * 9 * 3, seed);
  const labels: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    let s0 = 0;
    let s1 = 0;
    for (let i = 0; i < 81; i++) {
      s0 += values[(b * 81 + i) * 3];
      s1 += values[(b * 81 + i) * 3 + 1];
    }
    labels.push((s0 > 0 ? 1 : 0) + (s1 > 0 ? 2 : 0));
  }
  return { x: tf.tensor4d(values, [BATCH, 9, 9, 3]), y: tf.oneHot(tf.tensor1d(labels, 'int32'), 4) };
}

function lossOf(net: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(y, net.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
}

/** Gradients of the training loss w.r.t. every trainable weight, concatenated. */
function flatGradients(): Float32Array {
  const net = buildNet();
  const data = batch(5);
  const { grads } = tf.variableGrads(() => lossOf(net, data.x, data.y));
  const flat = tf.tidy(() => tf.concat(net.trainableWeights.map((w) => tf.reshape(grads[w.originalName], [-1]))).dataSync() as Float32Array);
  tf.dispose([data.x, data.y, ...Object.values(grads)]);
  net.dispose();
  return flat;
}

describe('training on wasm', () => {
  before(setupBackends);

  it('has the same gradients as the cpu backend', async () => {
    const reference = await onBackend('cpu', flatGradients);
    const actual = await onBackend('wasm', flatGradients);
    assert.equal(actual.length, reference.length);
    const error = relativeError(actual, reference);
    assert.ok(error < 1e-4, `relative error ${error.toExponential(2)}`);
  });

  it('lowers the loss and leaks no tensors', async () => {
    await onBackend('wasm', () => undefined);
    const net = buildNet();
    const optimizer = tf.train.momentum(0.05, 0.9);
    const data = batch(9);
    const step = (): number => {
      const loss = optimizer.minimize(() => lossOf(net, data.x, data.y), true);
      assert.ok(loss !== null);
      const value = loss.dataSync()[0];
      loss.dispose();
      return value;
    };
    const first = step(); // creates the optimizer's momentum slots
    const tensors = tf.memory().numTensors;
    const dataIds = tf.engine().backend.numDataIds();
    let last = first;
    for (let i = 0; i < 30; i++) last = step();
    assert.equal(tf.memory().numTensors, tensors, 'tensors leaked by train steps');
    assert.equal(tf.engine().backend.numDataIds(), dataIds, 'wasm tensor data leaked by train steps');
    assert.ok(Number.isFinite(last), `loss is ${last}`);
    assert.ok(last < 0.5 * first, `loss fell only from ${first.toFixed(3)} to ${last.toFixed(3)}`);
    tf.dispose([data.x, data.y]);
    optimizer.dispose();
    net.dispose();
  });
});
