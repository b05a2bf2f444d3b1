// trainStep / fit / evaluate / BN recalibration on tiny models (cpu backend: exact and fast).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { createDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { SgdOptimizer } from '../../src/train/optimizers.ts';
import { DropoutSeeder, classifierTrainStep, logitsFn, trainStep, trainableVariables } from '../../src/train/step.ts';
import type { Batch } from '../../src/train/step.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { evaluationBatches, fit } from '../../src/train/fit.ts';
import { recalibrateBatchNorm } from '../../src/train/bn-recalibrate.ts';
import { softmaxCrossEntropy } from '../../src/train/losses.ts';

before(async () => {
  await initEngine({ backend: 'cpu', log: () => {} });
});

let modelCounter = 0;

/** conv(3x3, 4) -> bn1 -> relu -> conv(3x3, 4) -> bn2 -> relu -> GAP -> dense(classes). */
function tinyModel(seed = 1, classes = 3, side = 6): tf.LayersModel {
  modelCounter += 1;
  const input = tf.input({ shape: [side, side, 1] });
  let x = tf.layers.conv2d({ name: `c1_${modelCounter}`, filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: `bn1_${modelCounter}`, momentum: 0.9, epsilon: 1e-5 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ name: `c2_${modelCounter}`, filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: `bn2_${modelCounter}`, momentum: 0.9, epsilon: 1e-5 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: `tiny${modelCounter}` });
}

function bnLayer(model: tf.LayersModel, prefix: string): tf.layers.Layer {
  const layer = model.layers.find((l) => l.name.startsWith(prefix));
  assert.ok(layer, `no ${prefix} layer`);
  return layer;
}

function movingStats(layer: tf.layers.Layer): { mean: Float32Array; variance: Float32Array } {
  const weights = layer.getWeights();
  return { mean: weights[2].dataSync() as Float32Array, variance: weights[3].dataSync() as Float32Array };
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i += 1) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/**
 * Synthetic 3-class images: horizontal stripes, vertical stripes or a checkerboard, plus noise.
 * Translation-invariant (so crop augmentation keeps the class) and learnable by the tiny conv
 * net in a few dozen steps.
 */
function syntheticDataset(count: number, side = 6, seed = 7): ImageDataset {
  let state = seed;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  const images = new Uint8Array(count * side * side);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i += 1) {
    const label = i % 3;
    labels[i] = label;
    for (let y = 0; y < side; y += 1) {
      for (let x = 0; x < side; x += 1) {
        const on = label === 0 ? y % 2 === 0 : label === 1 ? x % 2 === 0 : (x + y) % 2 === 0;
        images[i * side * side + y * side + x] = Math.min(255, Math.floor((on ? 150 : 20) + random() * 80));
      }
    }
  }
  return createDataset({ name: 'synthetic', images, labels, height: side, width: side, channels: 1, classes: 3 });
}

function firstBatch(dataset: ImageDataset, batchSize: number): Batch {
  const iterator = evaluationBatches(dataset, { batchSize })[Symbol.iterator]();
  const { value } = iterator.next();
  assert.ok(value);
  return value;
}

describe('batch norm in training mode (tfjs-layers semantics the loop relies on)', () => {
  test('trainable variables exclude the moving statistics', () => {
    const model = tinyModel();
    const names = trainableVariables(model).map((v) => v.name);
    assert.equal(names.length, 8); // 2 conv kernels, 2 x (gamma, beta), dense kernel + bias
    assert.ok(names.every((n) => !/moving/.test(n)), names.join());
    model.dispose();
  });

  test('apply(training: true) updates the EMA once per forward; training: false and evaluate do not', () => {
    const model = tinyModel();
    const data = syntheticDataset(16);
    const batch = firstBatch(data, 16);
    const bn1 = bnLayer(model, 'bn1');
    const conv1 = tf.model({ inputs: model.inputs, outputs: bn1.input as tf.SymbolicTensor });
    const { mean: batchMean, variance: batchVariance } = tf.tidy(() => tf.moments(conv1.predict(batch.x) as tf.Tensor, [0, 1, 2]));
    const before = movingStats(bn1);

    tf.tidy(() => {
      model.apply(batch.x, { training: false });
    });
    evaluate(model, [firstBatch(data, 8)]);
    close(movingStats(bn1).mean, before.mean, 0, 'inference must not move the mean');

    tf.tidy(() => {
      model.apply(batch.x, { training: true });
    });
    const expectedMean = Array.from(before.mean, (m, i) => 0.9 * m + 0.1 * batchMean.dataSync()[i]);
    const expectedVariance = Array.from(before.variance, (v, i) => 0.9 * v + 0.1 * batchVariance.dataSync()[i]);
    close(movingStats(bn1).mean, expectedMean, 1e-5, 'moving mean');
    close(movingStats(bn1).variance, expectedVariance, 1e-5, 'moving variance');

    // A train step runs the training-mode forward exactly once (inside the gradient tape).
    const afterForward = movingStats(bn1);
    const optimizer = new SgdOptimizer({ momentum: 0 });
    const loss = classifierTrainStep(model, batch, optimizer, 0);
    loss.dispose();
    const expectedAfterStep = Array.from(afterForward.mean, (m, i) => 0.9 * m + 0.1 * batchMean.dataSync()[i]);
    close(movingStats(bn1).mean, expectedAfterStep, 1e-5, 'moving mean after trainStep with lr 0');
    tf.dispose([batchMean, batchVariance, batch.x, batch.y]);
    optimizer.dispose();
    model.dispose();
  });
});

describe('trainStep', () => {
  test('descends, frees every temporary, and reports the pre-update loss', () => {
    const model = tinyModel(3);
    const batch = firstBatch(syntheticDataset(30), 30);
    const optimizer = new SgdOptimizer({ momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
    const variables = trainableVariables(model);
    const forward = logitsFn(model);
    const lossFn = (): tf.Scalar => softmaxCrossEntropy(forward(batch.x, true), batch.y);
    const losses: number[] = [];
    let tensorsAfterFirst = 0;
    for (let step = 0; step < 25; step += 1) {
      const loss = trainStep(variables, lossFn, optimizer, 0.05);
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      if (step === 0) tensorsAfterFirst = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, tensorsAfterFirst, 'tensor leak in trainStep');
    assert.ok(losses[24] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[24]}`);
    tf.dispose([batch.x, batch.y]);
    optimizer.dispose();
    model.dispose();
  });

  test('clipGradNorm bounds the update: plain SGD moves the weights by at most lr * clip', () => {
    const model = tinyModel(4);
    const batch = firstBatch(syntheticDataset(12), 12);
    const variables = trainableVariables(model);
    const before = variables.map((v) => v.clone());
    const optimizer = new SgdOptimizer({ momentum: 0 });
    const loss = classifierTrainStep(model, batch, optimizer, 0.5, { clipGradNorm: 1e-3 });
    loss.dispose();
    const moved = tf.tidy(() => Math.sqrt(tf.addN(variables.map((v, i) => tf.sum(tf.square(tf.sub(v, before[i]))))).dataSync()[0]));
    assert.ok(Math.abs(moved - 0.5e-3) < 1e-5, `update norm ${moved}`);
    tf.dispose([...before, batch.x, batch.y]);
    optimizer.dispose();
    model.dispose();
  });

  test('only the given variables move (a frozen part stays put)', () => {
    const model = tinyModel(5);
    const batch = firstBatch(syntheticDataset(12), 12);
    const all = trainableVariables(model);
    const head = all.slice(-2); // dense kernel + bias
    const frozenBefore = all.slice(0, -2).map((v) => v.clone());
    const optimizer = new SgdOptimizer();
    const loss = classifierTrainStep(model, batch, optimizer, 0.1, { variables: head });
    loss.dispose();
    all.slice(0, -2).forEach((v, i) => assert.equal(tf.tidy(() => tf.max(tf.abs(tf.sub(v, frozenBefore[i]))).dataSync()[0]), 0));
    tf.dispose([...frozenBefore, batch.x, batch.y]);
    optimizer.dispose();
    model.dispose();
  });
});

describe('evaluate', () => {
  test('loss, top-1 and top-5 are example-weighted over uneven batches', () => {
    // The "model" returns its input as logits; 6 classes.
    const rows = [
      { logits: [9, 1, 2, 3, 4, 5], label: 0 }, // top-1 hit
      { logits: [9, 1, 2, 3, 4, 5], label: 5 }, // rank 2: top-5 hit
      { logits: [9, 8, 7, 6, 5, 0], label: 5 }, // rank 6: miss
      { logits: [0, 0, 0, 0, 0, 0], label: 3 }, // ties: topk order decides; CE = ln 6
      { logits: [1, 2, 3, 4, 5, 6], label: 5 }, // top-1 hit
    ];
    const make = (from: number, to: number): Batch => ({
      x: tf.tensor2d(rows.slice(from, to).map((r) => r.logits)),
      y: tf.tensor1d(rows.slice(from, to).map((r) => r.label), 'int32'),
    });
    const result = evaluate((x) => x, [make(0, 3), make(3, 5)]);
    const ce = rows.map(({ logits, label }) => {
      const lse = Math.log(logits.reduce((s, z) => s + Math.exp(z), 0));
      return lse - logits[label];
    });
    assert.equal(result.count, 5);
    assert.ok(Math.abs(result.loss - ce.reduce((a, b) => a + b) / 5) < 1e-5);
    assert.ok(result.top1 >= 2 / 5 && result.top1 <= 3 / 5);
    assert.ok(result.top5 >= 3 / 5 && result.top5 <= 4 / 5);
    const exactRows = make(0, 3);
    const exact = evaluate((x) => x, [exactRows], { disposeBatches: false });
    assert.equal(exact.top1, 1 / 3);
    assert.equal(exact.top5, 2 / 3);
    assert.ok(!exactRows.x.isDisposed, 'disposeBatches: false keeps the batch');
    tf.dispose([exactRows.x, exactRows.y]);
    assert.throws(() => evaluate((x) => x, []), /no examples/);
  });

  test('an ImageDataset is batched for evaluation; the batch size does not change the result', () => {
    const model = tinyModel(13);
    const data = syntheticDataset(23);
    const whole = evaluate(model, evaluationBatches(data, { batchSize: 23 }));
    const pieces = evaluate(model, data, { batchSize: 5 });
    assert.equal(pieces.count, 23);
    assert.ok(Math.abs(whole.loss - pieces.loss) < 1e-5);
    assert.equal(whole.top1, pieces.top1);
    const subset = evaluate(model, data, { indices: [0, 1, 2] });
    assert.equal(subset.count, 3);
    model.dispose();
  });
});

describe('recalibrateBatchNorm', () => {
  test('sets exact pooled statistics, restores the training-mode EMA side effect, changes nothing else', () => {
    const model = tinyModel(6);
    const data = syntheticDataset(50);
    const bn1 = bnLayer(model, 'bn1');
    const bn2 = bnLayer(model, 'bn2');
    // Corrupt both BN layers' statistics.
    for (const layer of [bn1, bn2]) {
      const [gamma, beta] = layer.getWeights();
      layer.setWeights([gamma, beta, tf.fill([4], 3), tf.fill([4], 40)]);
    }
    const otherBefore = model.layers.filter((l) => !l.name.startsWith('bn')).flatMap((l) => l.getWeights().map((w) => w.dataSync().slice()));
    const tensorsBefore = tf.memory().numTensors;
    // Uneven batches (20, 20, 10) so a mean of batch means would be wrong.
    const result = recalibrateBatchNorm(model, evaluationBatches(data, { batchSize: 20 }));
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensor leak');
    assert.deepEqual(result.layers, [bn1.name, bn2.name]);
    assert.equal(result.batches, 3);
    assert.equal(result.examples, 50);

    // bn1's input does not depend on any BN: its pooled statistics are the moments over all 50 images.
    const all = firstBatch(data, 50);
    const conv1 = tf.model({ inputs: model.inputs, outputs: bn1.input as tf.SymbolicTensor });
    const truth1 = tf.tidy(() => tf.moments(conv1.predict(all.x) as tf.Tensor, [0, 1, 2]));
    close(movingStats(bn1).mean, truth1.mean.dataSync(), 1e-4, 'bn1 mean');
    close(movingStats(bn1).variance, truth1.variance.dataSync(), 1e-4, 'bn1 variance');

    // bn2's input depends on bn1 in training mode, i.e. per batch: pool the per-batch outputs.
    const conv2 = tf.model({ inputs: model.inputs, outputs: bn2.input as tf.SymbolicTensor });
    const pieces: tf.Tensor[] = [];
    for (const batch of evaluationBatches(data, { batchSize: 20 })) {
      pieces.push(tf.tidy(() => conv2.apply(batch.x, { training: true }) as tf.Tensor));
      tf.dispose([batch.x, batch.y]);
    }
    const truth2 = tf.tidy(() => tf.moments(tf.concat(pieces, 0), [0, 1, 2]));
    close(movingStats(bn2).mean, truth2.mean.dataSync(), 1e-4, 'bn2 mean');
    close(movingStats(bn2).variance, truth2.variance.dataSync(), 1e-4, 'bn2 variance');

    const otherAfter = model.layers.filter((l) => !l.name.startsWith('bn')).flatMap((l) => l.getWeights().map((w) => w.dataSync()));
    otherAfter.forEach((values, i) => close(values, otherBefore[i], 0, `weight ${i}`));
    tf.dispose([...pieces, truth1.mean, truth1.variance, truth2.mean, truth2.variance, all.x, all.y]);

    // Selecting a layer leaves the other one exactly as it was (the training-mode forward moves
    // every EMA; recalibration must put them back).
    const bn1Now = movingStats(bn1);
    const bn2Layer = bn2.getWeights();
    bn2.setWeights([bn2Layer[0], bn2Layer[1], tf.fill([4], -1), tf.fill([4], 9)]);
    recalibrateBatchNorm(model, evaluationBatches(data, { batchSize: 20 }), { layers: [bn2.name], maxBatches: 2 });
    close(movingStats(bn1).mean, bn1Now.mean, 0, 'unselected bn1 mean');
    close(movingStats(bn1).variance, bn1Now.variance, 0, 'unselected bn1 variance');
    assert.ok(movingStats(bn2).variance.every((v) => v !== 9), 'bn2 was recalibrated');
    assert.throws(() => recalibrateBatchNorm(model, [], { layers: ['nope'] }), /no BatchNormalization layer 'nope'/);
    assert.throws(() => recalibrateBatchNorm(model, []), /no batches/);
    model.dispose();
  });

  test('works on a sub-network model built from shared layers, fed with feature tensors', () => {
    const model = tinyModel(12);
    const bn2 = bnLayer(model, 'bn2');
    // S_2 = conv2 -> bn2 -> relu, applied to a new input (as the EMO code builds sub-networks):
    // the layers now have two inbound nodes, one per model.
    const start = model.layers.findIndex((l) => l.name.startsWith('c2_'));
    const featureInput = tf.input({ shape: [6, 6, 4] });
    let y: tf.SymbolicTensor = featureInput;
    for (const layer of model.layers.slice(start, start + 3)) y = layer.apply(y) as tf.SymbolicTensor;
    const subnet = tf.model({ inputs: featureInput, outputs: y });
    const features = [tf.randomNormal([10, 6, 6, 4], 0, 1, 'float32', 1), tf.randomNormal([6, 6, 6, 4], 0.5, 2, 'float32', 2)];
    const result = recalibrateBatchNorm(subnet, features, { disposeBatches: false });
    assert.deepEqual(result.layers, [bn2.name]);
    const conv2 = model.layers[start];
    const truth = tf.tidy(() => tf.moments(conv2.apply(tf.concat(features, 0)) as tf.Tensor, [0, 1, 2]));
    close(movingStats(bn2).mean, truth.mean.dataSync(), 1e-4, 'sub-network bn2 mean');
    close(movingStats(bn2).variance, truth.variance.dataSync(), 1e-4, 'sub-network bn2 variance');
    // The full model still resolves its own inbound node of the shared layers.
    assert.equal(recalibrateBatchNorm(model, evaluationBatches(syntheticDataset(20), { batchSize: 10 })).layers.length, 2);
    tf.dispose([...features, truth.mean, truth.variance]);
    model.dispose();
  });
});

describe('fit', () => {
  test('learns the synthetic task, is reproducible for a seed, and reports every epoch', async () => {
    const train = syntheticDataset(96, 6, 11);
    const test = syntheticDataset(48, 6, 99);
    const run = async (): Promise<{ model: tf.LayersModel; epochs: number[]; top1: number }> => {
      const model = tinyModel(8);
      const epochs: number[] = [];
      const result = await fit(model, train, {
        epochs: 4,
        batchSize: 16,
        seed: 5,
        augment: { cropPadding: 1, flip: false },
        labelSmoothing: 0.05,
        schedule: { kind: 'cosine', lr: 0.1, warmupEpochs: 0.5 },
        validation: { data: test, every: 2 },
        onEpoch: (info) => {
          epochs.push(info.epoch);
        },
      });
      assert.equal(result.history.length, 4);
      assert.ok(result.history[1].validation && !result.history[0].validation, 'validation every 2 epochs');
      assert.ok(result.history[3].loss < result.history[0].loss);
      return { model, epochs, top1: result.history[3].validation?.top1 ?? 0 };
    };
    const tensorsBefore = tf.memory().numTensors;
    const a = await run();
    const b = await run();
    assert.deepEqual(a.epochs, [0, 1, 2, 3]);
    assert.ok(a.top1 >= 0.8, `synthetic accuracy ${a.top1} (chance 0.33)`);
    const wa = a.model.getWeights().map((w) => w.dataSync());
    const wb = b.model.getWeights().map((w) => w.dataSync());
    wa.forEach((values, i) => close(values, wb[i], 0, `weight ${i} differs between identical seeded runs`));
    const modelTensors = a.model.getWeights().length; // weights are the only survivors
    a.model.dispose();
    b.model.dispose();
    assert.ok(tf.memory().numTensors <= tensorsBefore + 2 * modelTensors, `fit leaked: ${tf.memory().numTensors} vs ${tensorsBefore}`);
  });

  test('distillation from a teacher runs and optimises the mixed loss', async () => {
    const train = syntheticDataset(48, 6, 13);
    const teacher = tinyModel(9);
    const student = tinyModel(10);
    const result = await fit(student, train, {
      epochs: 2,
      batchSize: 16,
      distillFrom: { teacher, temperature: 2, weight: 0.7 },
      optimizer: { kind: 'adamw', weightDecay: 0.01 },
      schedule: { kind: 'constant', lr: 0.01 },
    });
    assert.ok(result.optimizer.startsWith('adamw'));
    assert.ok(Number.isFinite(result.history[1].loss));
    teacher.dispose();
    student.dispose();
  });

  test('dropout masks are seeded per step: reproducible runs, varying masks, config restored', async () => {
    const makeModel = (): tf.LayersModel => {
      const input = tf.input({ shape: [8] });
      const hidden = tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
      const dropped = tf.layers.dropout({ rate: 0.5 }).apply(hidden) as tf.SymbolicTensor;
      const out = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(dropped) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: out });
    };
    const x = tf.randomNormal([16, 8], 0, 1, 'float32', 5);
    const y = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 3), 'int32');
    const data = { stepsPerEpoch: 3, batches: () => [0, 1, 2].map(() => ({ x: x.clone(), y: y.clone() })) };

    const seeder = new DropoutSeeder(makeModel());
    assert.equal(seeder.count, 1);
    const probe = makeModel();
    const probeSeeder = new DropoutSeeder(probe);
    const forward = (seed: number, step: number): Float32Array => {
      probeSeeder.seed(seed, step);
      return tf.tidy(() => (probe.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array);
    };
    assert.deepEqual(forward(1, 0), forward(1, 0));
    assert.notDeepEqual(forward(1, 0), forward(1, 1));
    probeSeeder.restore();
    assert.equal((probe.layers[2].getConfig() as { seed?: number }).seed, undefined);

    const weights: Float32Array[][] = [];
    for (let run = 0; run < 2; run += 1) {
      const model = makeModel();
      await fit(model, data, { epochs: 2, batchSize: 16, seed: 3, schedule: { kind: 'constant', lr: 0.1 } });
      weights.push(model.getWeights().map((w) => w.dataSync() as Float32Array));
      model.dispose();
    }
    weights[0].forEach((values, i) => close(values, weights[1][i], 0, `dropout run weight ${i}`));
    tf.dispose([x, y]);
    probe.dispose();
  });

  test('rejects bad options', async () => {
    const model = tinyModel(11);
    await assert.rejects(fit(model, syntheticDataset(8), { epochs: 0, batchSize: 4 }), /epochs/);
    await assert.rejects(fit(model, syntheticDataset(8), { epochs: 1, batchSize: 16 }), /no full batch/);
    model.dispose();
  });
});
