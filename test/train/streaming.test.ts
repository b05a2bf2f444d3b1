// fit / evaluate / BN re-estimation on data read as it is needed (shard sets streamed from a
// directory or a store), against the in-memory paths (cpu backend: exact).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { createDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { storeFiles } from '../../src/data/data-files.ts';
import { convertImageFolder } from '../../src/data/image-folder-convert.ts';
import { isShardedSource } from '../../src/data/image-source.ts';
import type { ImageSource } from '../../src/data/image-source.ts';
import { openDatasetSource } from '../../src/data/load.ts';
import { ShardCache } from '../../src/data/shard-cache.ts';
import { openShardSource } from '../../src/data/shard-source.ts';
import { writeImageShards } from '../../src/data/shard-writer.ts';
import { batches as tensorBatches, sourceTensorBatches } from '../../src/data/tensor-batches.ts';
import type { TensorBatch } from '../../src/data/tensor-batches.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { recalibrateBatchNorm, recalibrateBatchNormStream } from '../../src/train/bn-recalibrate.ts';
import { evaluate, evaluateSource } from '../../src/train/evaluate.ts';
import { fit } from '../../src/train/fit.ts';
import type { EpochBatches, FitOptions } from '../../src/train/fit.ts';
import { cosineLr } from '../../src/train/schedules.ts';
import { fineTuneAndEvaluate } from '../../src/dir/finalize.ts';

let dir: string;
before(async () => {
  await initEngine({ backend: 'cpu', log: () => {} });
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-streaming-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let modelCounter = 0;

/** conv(3x3, 4) -> BN -> relu -> GAP -> dense: small enough for exact cpu runs in milliseconds. */
function tinyModel(side: number, channels: number, classes = 3): tf.LayersModel {
  modelCounter += 1;
  const input = tf.input({ shape: [side, side, channels] });
  let x = tf.layers.conv2d({ name: `s_c1_${modelCounter}`, filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: `s_bn1_${modelCounter}`, momentum: 0.9, epsilon: 1e-5 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: `stream_tiny${modelCounter}` });
}

/** 3 classes of 1-channel 6x6 images: horizontal stripes, vertical stripes, checkerboard, plus noise. */
function stripes(count: number, seed = 5): ImageDataset {
  let state = seed;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  const side = 6;
  const images = new Uint8Array(count * side * side);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = (i * 5) % 3;
    labels[i] = label;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const on = label === 0 ? y % 2 === 0 : label === 1 ? x % 2 === 0 : (x + y) % 2 === 0;
        images[i * side * side + y * side + x] = Math.min(255, Math.floor((on ? 150 : 20) + random() * 80));
      }
    }
  }
  return createDataset({ name: 'stripes', images, labels, height: side, width: side, channels: 1, classes: 3 });
}

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => Float32Array.from(w.dataSync()));
}

describe('streaming evaluation and BN re-estimation', () => {
  test('evaluating a streamed shard set equals the in-memory evaluation (whole split and a subset)', async () => {
    const data = stripes(53);
    await writeImageShards(join(dir, 'eval'), data, { shardSize: 10 });
    const source = await openShardSource(join(dir, 'eval'));
    const model = tinyModel(6, 1);
    try {
      for (const options of [{ batchSize: 16 }, { batchSize: 7, indices: [0, 3, 4, 11, 12, 30, 52], normalize: { mean: [0.4], std: [0.3] } }]) {
        const inMemory = evaluate(model, data, options);
        const streamed = await evaluateSource(model, source, options);
        assert.deepEqual(streamed, inMemory);
      }
      assert.equal((await evaluateSource(model, source)).count, 53);
    } finally {
      model.dispose();
    }
  });

  test('BN re-estimation on a stream equals the in-memory re-estimation', async () => {
    const data = stripes(40);
    await writeImageShards(join(dir, 'bn'), data, { shardSize: 9 });
    const source = await openShardSource(join(dir, 'bn'));
    const inMemory = tinyModel(6, 1);
    const streamed = tinyModel(6, 1);
    try {
      streamed.setWeights(inMemory.getWeights());
      const options = { batchSize: 8, shuffle: true, seed: 4 } as const;
      const fromMemory = recalibrateBatchNorm(inMemory, tensorBatches(data, options), { maxBatches: 3 });
      // Not the same order (a stream shuffles through its buffer), so compare on all batches in index order.
      const memoryAll = recalibrateBatchNorm(inMemory, tensorBatches(data, { batchSize: 8, shuffle: false }));
      const streamAll = await recalibrateBatchNormStream(streamed, sourceTensorBatches(source, { batchSize: 8, shuffle: false }));
      assert.equal(fromMemory.batches, 3);
      assert.deepEqual([streamAll.batches, streamAll.examples], [memoryAll.batches, memoryAll.examples]);
      assert.deepEqual(weightsOf(streamed), weightsOf(inMemory));
      // maxBatches stops pulling from the stream.
      assert.equal((await recalibrateBatchNormStream(streamed, sourceTensorBatches(source, { batchSize: 8, seed: 1, shuffleBuffer: 5 }), { maxBatches: 2 })).examples, 16);
    } finally {
      inMemory.dispose();
      streamed.dispose();
    }
  });
});

describe('fit on a stream', () => {
  test('a fine-tune resumed mid-epoch restores its batch order: same weights as an uninterrupted run', async () => {
    const data = stripes(48);
    await writeImageShards(join(dir, 'resume'), data, { shardSize: 10 });
    const source = await openShardSource(join(dir, 'resume'));
    assert.ok(isShardedSource(source));
    // Momentum-free SGD has no optimiser state, so weights alone are the whole checkpoint.
    const options: FitOptions = {
      epochs: 2,
      batchSize: 8,
      seed: 6,
      optimizer: { kind: 'sgd', momentum: 0, weightDecay: 1e-4 },
      schedule: { kind: 'cosine', lr: 0.2 },
      augment: { cropPadding: 1, flip: true },
      stream: { shuffleBuffer: 12, prefetch: 1 },
    };
    const uninterrupted = tinyModel(6, 1);
    const crashed = tinyModel(6, 1);
    try {
      crashed.setWeights(uninterrupted.getWeights());
      await fit(uninterrupted, source, options);

      // The same batches fit takes from a source, with a crash after step 3 of epoch 1.
      const crashAt = { epoch: 1, step: 3 };
      const crashing: EpochBatches = {
        stepsPerEpoch: 6,
        async *batches(epoch: number, startStep: number): AsyncGenerator<TensorBatch> {
          let step = startStep;
          for await (const batch of sourceTensorBatches(source, { batchSize: 8, seed: 6, epoch, shuffle: true, augment: options.augment, dropLast: true, startBatch: startStep, ...options.stream })) {
            if (epoch === crashAt.epoch && step === crashAt.step) {
              batch.dispose();
              throw new Error('worker reclaimed');
            }
            yield batch;
            step++;
          }
        },
      };
      await assert.rejects(fit(crashed, crashing, options), /worker reclaimed/);
      assert.notDeepEqual(weightsOf(crashed), weightsOf(uninterrupted));
      await fit(crashed, source, { ...options, startEpoch: crashAt.epoch, startStep: crashAt.step });
      assert.deepEqual(weightsOf(crashed), weightsOf(uninterrupted));
      await assert.rejects(fit(crashed, source, { ...options, startStep: 6 }), /startStep=6 must be an integer in 0\.\.5/);
    } finally {
      uninterrupted.dispose();
      crashed.dispose();
    }
  });

  test('a streamed fine-tune whose first epoch starts during the before-evaluation trains on the batches fit streams', async () => {
    const data = stripes(48);
    await writeImageShards(join(dir, 'early'), data, { shardSize: 10 });
    const source = await openShardSource(join(dir, 'early'));
    const finalized = tinyModel(6, 1);
    const reference = tinyModel(6, 1);
    try {
      reference.setWeights(finalized.getWeights());
      const before = await evaluateSource(reference, source);
      const tensors = tf.memory().numTensors;
      const tuned = await fineTuneAndEvaluate(finalized, finalized, source, source, {
        epochs: 2,
        batchSize: 8,
        learningRate: 0.2,
        weightDecay: 1e-4,
        distillWeight: 0,
        distillTemperature: 4,
        augment: true,
        seed: 6,
        skipOriginal: true,
      });
      assert.equal(tf.memory().numTensors, tensors, 'no tensors are left behind');
      assert.deepEqual(tuned.beforeFineTune, before);
      // What fineTuneAndEvaluate does, with the epochs pulled only when fit asks for them.
      await fit(reference, source, {
        epochs: 2,
        batchSize: 8,
        seed: 6,
        optimizer: { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
        schedule: cosineLr({ lr: 0.2, totalSteps: 12 }),
        augment: { cropPadding: 1, flip: true },
      });
      assert.deepEqual(weightsOf(finalized), weightsOf(reference));
      assert.deepEqual(tuned.afterFineTune, await evaluateSource(reference, source));
    } finally {
      finalized.dispose();
      reference.dispose();
    }
  });

  test('a store-hosted shard data set (converted straight into the store) trains a tiny model', async () => {
    // Three classes of JPEGs: a colour plus a class-specific stripe pattern, noisy and of varied sizes.
    const tree = join(dir, 'jpeg');
    const colours: [number, number, number][] = [
      [200, 60, 60],
      [60, 180, 70],
      [70, 80, 200],
    ];
    let state = 11;
    const random = (): number => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 4294967296;
    };
    for (const split of ['train', 'val']) {
      for (let c = 0; c < 3; c++) {
        await mkdir(join(tree, split, `n0${c}`), { recursive: true });
        for (let k = 0; k < (split === 'train' ? 24 : 8); k++) {
          const [w, h] = [20 + Math.floor(random() * 20), 20 + Math.floor(random() * 20)];
          const raw = Buffer.alloc(w * h * 3);
          for (let p = 0; p < w * h; p++) for (let ch = 0; ch < 3; ch++) raw[p * 3 + ch] = Math.max(0, Math.min(255, colours[c][ch] + Math.floor((random() - 0.5) * 90)));
          await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(tree, split, `n0${c}`, `img${k}.JPEG`));
        }
      }
    }
    const store = new FileStore(join(dir, 'store'));
    const train = await convertImageFolder({ root: join(tree, 'train'), out: storeFiles(store, 'datasets/colours/train'), resize: 12, crop: 12, shardSize: 16 });
    await convertImageFolder({ root: join(tree, 'val'), out: storeFiles(store, 'datasets/colours/val'), resize: 12, crop: 12, shardSize: 16, classes: train.classes });

    // Read through the store with a local cache, as a worker reads s3:// data.
    const cache = new ShardCache({ dir: join(dir, 'cache') });
    const trainSet: ImageSource = await openDatasetSource('imagenet:datasets/colours', { store, cache });
    const valSet: ImageSource = await openDatasetSource('imagenet:datasets/colours', { store, cache, split: 'test' });
    assert.ok(isShardedSource(trainSet));
    assert.deepEqual([trainSet.count, valSet.count, trainSet.height, trainSet.channels], [72, 24, 12, 3]);
    const model = tinyModel(12, 3);
    try {
      const before = await evaluateSource(model, valSet);
      const result = await fit(model, trainSet, {
        epochs: 4,
        batchSize: 12,
        seed: 2,
        optimizer: { kind: 'sgd', momentum: 0.9 },
        schedule: { kind: 'cosine', lr: 0.2 },
        stream: { shuffleBuffer: 20 },
        validation: { data: valSet, every: 4 },
      });
      const afterTraining = await evaluateSource(model, valSet);
      assert.equal(result.history.length, 4);
      assert.ok(result.history[3].loss < result.history[0].loss / 2, `training loss ${result.history[0].loss} -> ${result.history[3].loss}`);
      assert.ok(afterTraining.top1 >= 0.9, `validation top-1 ${before.top1} before, ${afterTraining.top1} after`);
      assert.deepEqual(result.history[3].validation, afterTraining);
    } finally {
      model.dispose();
    }
  });
});
