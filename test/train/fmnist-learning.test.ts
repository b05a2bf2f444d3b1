// End-to-end learning test on the real engine (wasm here, tfjs-node where installed):
// fmnist-resnet trained from scratch on a 10k Fashion-MNIST training subset must reach >= 85%
// top-1 on a fixed 2000-image subset of the test split. It exercises everything the loop is
// made of (seeded batches, trainStep, kernel-only L2, cosine schedule, BN in training mode,
// evaluate) and, on the trained model, BN recalibration restoring corrupted statistics.
//
// Budget: 2 epochs x 78 steps of 128 = ~20k training images. fmnist-resnet trains at roughly
// 150-250 img/s on one wasm thread when the machine is otherwise idle (~1.5-2 min here); on a
// busy machine it is several times slower, hence the generous timeout.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { engineInfo, initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { sliceDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { batches as tensorBatches } from '../../src/data/tensor-batches.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { evaluationBatches, fit } from '../../src/train/fit.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { batchNormLayers, recalibrateBatchNorm } from '../../src/train/bn-recalibrate.ts';

const TRAIN_IMAGES = 10_000;
const TEST_IMAGES = 2_000;
const TIMEOUT_MS = 20 * 60_000;

let train: ImageDataset;
let testSet: ImageDataset;

function say(message: string): void {
  process.stderr.write(`fmnist-learning: ${message}\n`);
}

before(async () => {
  await initEngine({ log: say });
  // The splits are class-interleaved, so these prefixes are class-balanced (1000 / 200 per class).
  train = sliceDataset(await loadFashionMnist({ split: 'train' }), 0, TRAIN_IMAGES);
  testSet = sliceDataset(await loadFashionMnist({ split: 'test' }), 0, TEST_IMAGES);
});

test(`fmnist-resnet learns Fashion-MNIST: >= 85% test top-1 from ${TRAIN_IMAGES} training images`, { timeout: TIMEOUT_MS }, async () => {
  const model = buildModel('fmnist-resnet', { seed: 1 });
  const tensorsBefore = tf.memory().numTensors;
  const result = await fit(model, train, {
    epochs: 2,
    batchSize: 128,
    seed: 1,
    optimizer: { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    schedule: { kind: 'cosine', lr: 0.2, warmupEpochs: 0.2 },
    log: say,
  });
  const trainSeconds = result.seconds;
  const images = result.history.reduce((sum, epoch) => sum + epoch.examples, 0);
  // Weights are the only tensors a fit may leave behind (they were counted before it started).
  assert.equal(tf.memory().numTensors, tensorsBefore, 'fit leaked tensors');

  const evalStarted = performance.now();
  const metrics = evaluate(model, evaluationBatches(testSet, { batchSize: 500 }));
  const evalSeconds = (performance.now() - evalStarted) / 1000;
  say(
    `backend ${engineInfo()?.backend}: trained ${images} images in ${trainSeconds.toFixed(1)} s (${(images / trainSeconds).toFixed(1)} img/s), ` +
      `test top1 ${(metrics.top1 * 100).toFixed(2)}% top5 ${(metrics.top5 * 100).toFixed(2)}% loss ${metrics.loss.toFixed(4)} on ${metrics.count} ` +
      `(eval ${(metrics.count / evalSeconds).toFixed(1)} img/s)`,
  );
  assert.equal(metrics.count, TEST_IMAGES);
  assert.ok(result.history[1].loss < result.history[0].loss, 'training loss did not decrease');
  assert.ok(metrics.top1 >= 0.85, `test top-1 ${metrics.top1} < 0.85`);

  // BN recalibration on a real network: wreck every BN layer's moving statistics (the state a
  // model is in right after physical pruning), then re-estimate them from 8 training batches.
  for (const layer of batchNormLayers(model)) {
    // getWeights() hands out the live variables: only the new tensors are ours to dispose.
    const [gamma, beta, mean, variance] = layer.getWeights();
    const corrupted = tf.tidy(() => [tf.add(mean, tf.randomNormal(mean.shape, 0, 1, 'float32', 3)), tf.mul(variance, 4)]);
    layer.setWeights([gamma, beta, ...corrupted]);
    tf.dispose(corrupted);
  }
  const broken = evaluate(model, evaluationBatches(testSet, { batchSize: 500 }));
  recalibrateBatchNorm(model, tensorBatches(train, { batchSize: 128, seed: 2, shuffle: true }), { maxBatches: 8 });
  const recalibrated = evaluate(model, evaluationBatches(testSet, { batchSize: 500 }));
  say(`BN statistics corrupted: top1 ${(broken.top1 * 100).toFixed(2)}%, recalibrated on 1024 images: ${(recalibrated.top1 * 100).toFixed(2)}%`);
  assert.ok(broken.top1 < metrics.top1 - 0.1, `corruption should hurt (got ${broken.top1})`);
  assert.ok(recalibrated.top1 >= metrics.top1 - 0.015, `recalibrated top-1 ${recalibrated.top1} vs trained ${metrics.top1}`);
  model.dispose();
});
