// Boundary features (src/dir/features*): subsets, the bounded-memory computation (rows streamed
// to spool files, images read per batch through an ImageSource), bit-identity of float32 rows with
// the in-memory computation they replaced, float16 storage, batches, and the store cache.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { arrayBatches } from '../../src/data/batches.ts';
import { createDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { inMemorySource } from '../../src/data/image-source.ts';
import type { ImageSource } from '../../src/data/image-source.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { NotFoundError } from '../../src/store/object-store.ts';
import { divideNetwork } from '../../src/dir/divide.ts';
import type { Division } from '../../src/dir/divide.ts';
import {
  BoundaryFeatureCache,
  FeatureCacheError,
  FeatureDtypeMismatchError,
  computeBoundaryFeatures,
  drawSearchSubsets,
  ensureBoundaryFeatures,
  evaluateOnFeatures,
  featureBatches,
  featuresPrefix,
  loadBoundaryFeatures,
  outputMetrics,
  saveBoundaryFeatures,
} from '../../src/dir/features.ts';
import type { BoundaryFeatures, FeatureRows, SearchSubsets } from '../../src/dir/features.ts';
import { buildBoundaryModel, buildSubnetworkModel, buildTailModel } from '../../src/dir/subnetwork.ts';

let model: tf.LayersModel;
let division: Division;
let dataset: ImageDataset;
let subsets: SearchSubsets;
let all: Map<string, BoundaryFeatures>;
let dir: string;
const quiet = (): void => {};

/** Class-dependent synthetic images (so the labels matter) of Fashion-MNIST geometry. */
function syntheticDataset(count: number): ImageDataset {
  let state = 12345;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
  const images = new Uint8Array(count * 28 * 28);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < 28 * 28; p++) images[i * 784 + p] = Math.floor(random() * 128 + (p % 28 < labels[i] * 2 ? 127 : 0));
  }
  return createDataset({ name: 'synthetic/train', images, labels, height: 28, width: 28, channels: 1, classes: 10 });
}

before(async () => {
  await initEngine();
  model = buildModel('fmnist-resnet', { seed: 3 });
  division = divideNetwork(model, analyzeChannels(model));
  dataset = syntheticDataset(150);
  subsets = drawSearchSubsets(dataset, { searchTrain: 40, searchVal: 30, seed: 9 });
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-features-'));
  all = await computeBoundaryFeatures(model, division, dataset, subsets, { batchSize: 16, log: quiet });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bytesOf(array: Float32Array | Int32Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/** Every row of an array, as float32, in row order. */
function allRows(rows: FeatureRows): Float32Array {
  return rows.gather(Int32Array.from({ length: rows.count }, (_, i) => i));
}

function assertIdentical(a: BoundaryFeatures, b: BoundaryFeatures): void {
  for (const split of ['train', 'val'] as const) {
    assert.equal(a[split].count, b[split].count);
    assert.deepEqual(a[split].indices, b[split].indices);
    assert.equal(a[split].input.dtype, b[split].input.dtype);
    assert.ok(bytesOf(allRows(a[split].input)).equals(bytesOf(allRows(b[split].input))), `${split} input differs`);
    assert.ok(bytesOf(allRows(a[split].output)).equals(bytesOf(allRows(b[split].output))), `${split} output differs`);
    assert.deepEqual(a[split].labels, b[split].labels);
    assert.equal(a[split].outputVariance, b[split].outputVariance);
  }
  assert.deepEqual(a.baseline, b.baseline);
  assert.deepEqual([...a.inputShape], [...b.inputShape]);
  assert.deepEqual([...a.outputShape], [...b.outputShape]);
}

describe('search subsets', () => {
  test('seeded, disjoint, stratified, reproducible', () => {
    const train = new Set(subsets.train);
    assert.equal(subsets.train.length, 40);
    assert.equal(subsets.val.length, 30);
    assert.ok([...subsets.val].every((i) => !train.has(i)));
    const counts = new Array<number>(10).fill(0);
    for (const i of subsets.train) counts[dataset.labels[i]]++;
    assert.deepEqual(counts, new Array<number>(10).fill(4));
    const again = drawSearchSubsets(dataset, { searchTrain: 40, searchVal: 30, seed: 9 });
    assert.deepEqual(again, subsets);
    assert.notDeepEqual(drawSearchSubsets(dataset, { searchTrain: 40, searchVal: 30, seed: 10 }).train, subsets.train);
    assert.throws(() => drawSearchSubsets(dataset, { searchTrain: 100, searchVal: 60, seed: 1 }), /exceed its 150 images/);
  });
});

describe('computeBoundaryFeatures', () => {
  test('X_0 is the normalised input, X_k chains between neighbours, X_K is the network output', () => {
    const k1 = all.get('k1')!;
    const k2 = all.get('k2')!;
    const k3 = all.get('k3')!;
    assert.equal(allRows(k1.train.input)[0], Math.fround(dataset.images[subsets.train[0] * 784] * Math.fround(1 / 255)));
    assert.equal(k1.train.input.count * k1.train.input.rowLength, 40 * 784);
    assert.equal(k1.train.output, k2.train.input);
    assert.equal(k2.val.output, k3.val.input);
    assert.deepEqual([...k3.outputShape], [10]);
    const x = tf.tensor4d(allRows(k1.val.input), [30, 28, 28, 1]);
    const logits = model.predict(x) as tf.Tensor;
    const expected = logits.dataSync() as Float32Array;
    const stored = allRows(k3.val.output);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(expected[i] - stored[i]));
    assert.ok(worst < 1e-4);
    assert.deepEqual(k1.val.labels, Int32Array.from(subsets.val, (i) => dataset.labels[i]));
    tf.dispose([x, logits]);
    assert.ok(k2.train.outputVariance > 0);
  });

  test('baseline = CE/accuracy of the original network on the search-val subset', () => {
    const k3 = all.get('k3')!;
    const direct = outputMetrics(allRows(k3.val.output), k3.val.labels, 10);
    assert.deepEqual(all.get('k1')!.baseline, direct);
    assert.equal(direct.count, 30);
    assert.ok(direct.loss > 0 && Number.isFinite(direct.loss));
  });

  test('a per-k computation (prefix only) gives the same features as the one-pass computation', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const only = await computeBoundaryFeatures(model, division, dataset, subsets, { subnets: ['k2'], batchSize: 16, log: quiet });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'computeBoundaryFeatures leaks tensors');
    assert.deepEqual([...only.keys()], ['k2']);
    assertIdentical(only.get('k2')!, all.get('k2')!);
  });

  test('T_k(X_k) on the search-val subset reproduces the full model\'s CE, and S_k(X_{k-1}) reproduces X_k', () => {
    for (const features of all.values()) {
      const tail = buildTailModel(model, division, features.subnet);
      const metrics = evaluateOnFeatures(tail, features, 'val', 'output', 7);
      assert.ok(Math.abs(metrics.loss - features.baseline.loss) < 1e-4, `${features.subnet}: ${metrics.loss} vs ${features.baseline.loss}`);
      assert.equal(metrics.accuracy, features.baseline.accuracy);
      const sub = buildSubnetworkModel(model, division, features.subnet);
      const through = evaluateOnFeatures((x) => tail.apply(sub.apply(x, { training: false }) as tf.Tensor, { training: false }) as tf.Tensor, features, 'val', 'input');
      assert.ok(Math.abs(through.loss - features.baseline.loss) < 1e-4);
    }
  });

  test('featureBatches: seeded order, every row once, tensors match the arrays', () => {
    const features = all.get('k2')!;
    const seen: number[] = [];
    for (const batch of featureBatches(features, 'train', { batchSize: 16, shuffle: true, seed: 1, epoch: 2 })) {
      assert.deepEqual(batch.input.shape, [batch.rows.length, 14, 14, 16]);
      assert.deepEqual(batch.output.shape, [batch.rows.length, 7, 7, 32]);
      const row = batch.rows[0];
      const size = 7 * 7 * 32;
      assert.deepEqual(batch.output.dataSync().slice(0, size), allRows(features.train.output).slice(row * size, (row + 1) * size));
      assert.equal(batch.labels.dataSync()[0], features.train.labels[row]);
      seen.push(...batch.rows);
      batch.dispose();
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
    assert.notDeepEqual(seen, Array.from({ length: 40 }, (_, i) => i));
  });
});

/**
 * The in-memory computation the streamed one replaced (every row of every tensor in one
 * Float32Array, batches from arrayBatches): the reference float32 rows must equal bit for bit.
 */
function referenceArrays(indices: Int32Array, layers: readonly string[], batchSize: number): Map<string, Float32Array> {
  const inputName = model.inputs[0].sourceLayer.name;
  const computed = layers.filter((l) => l !== inputName);
  const boundary = buildBoundaryModel(model, division, computed);
  const arrays = new Map<string, Float32Array>();
  const sizeOf = (shape: readonly (number | null)[]): number => (shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  const sizes = new Map<string, number>([[inputName, sizeOf(model.inputs[0].shape)]]);
  boundary.outputs.forEach((t, i) => sizes.set(computed[i], sizeOf(t.shape)));
  for (const name of layers) arrays.set(name, new Float32Array(indices.length * sizes.get(name)!));
  let row = 0;
  for (const batch of arrayBatches(dataset, { batchSize, shuffle: false, indices })) {
    if (layers.includes(inputName)) arrays.get(inputName)!.set(batch.x, row * sizes.get(inputName)!);
    const outputs = tf.tidy(() => {
      const result = boundary.apply(tf.tensor4d(batch.x, [...batch.shape]), { training: false });
      return Array.isArray(result) ? (result as tf.Tensor[]) : [result as tf.Tensor];
    });
    outputs.forEach((tensor, i) => arrays.get(computed[i])!.set(tensor.dataSync() as Float32Array, row * sizes.get(computed[i])!));
    tf.dispose(outputs);
    row += batch.y.length;
  }
  boundary.dispose();
  return arrays;
}

function referenceVariance(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  const mean = sum / values.length;
  let squares = 0;
  for (let i = 0; i < values.length; i++) squares += (values[i] - mean) ** 2;
  return squares / values.length;
}

/** An ImageSource that records every read (sizes, reads in flight) and can fail on request. */
function recordingSource(inner: ImageSource, failAtRead?: number): { source: ImageSource; reads: number[]; maxInFlight: () => number } {
  const reads: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const source: ImageSource = {
    ...inner,
    async readImages(indices) {
      reads.push(indices.length);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (reads.length === failAtRead) throw new Error(`${inner.name}: image ${indices[0]} is unreadable (test)`);
        return await inner.readImages(indices);
      } finally {
        inFlight--;
      }
    },
  };
  return { source, reads, maxInFlight: () => maxInFlight };
}

describe('bounded-memory features', () => {
  test('float32 rows, variances and baseline are bit-identical to the in-memory computation', () => {
    const layers = [...new Set(division.subnetworks.flatMap((s) => [s.inputTensor, s.outputTensor]))];
    const train = referenceArrays(subsets.train, layers, 16);
    const val = referenceArrays(subsets.val, layers, 16);
    for (const features of all.values()) {
      assert.equal(features.dtype, 'float32');
      for (const [split, arrays] of [['train', train], ['val', val]] as const) {
        const data = features[split];
        assert.ok(bytesOf(allRows(data.input)).equals(bytesOf(arrays.get(features.inputTensor)!)), `${features.subnet} ${split} input`);
        assert.ok(bytesOf(allRows(data.output)).equals(bytesOf(arrays.get(features.outputTensor)!)), `${features.subnet} ${split} output`);
        assert.equal(data.outputVariance, referenceVariance(arrays.get(features.outputTensor)!));
      }
    }
    const outputLayer = model.outputs[0].sourceLayer.name;
    assert.deepEqual(all.get('k1')!.baseline, outputMetrics(val.get(outputLayer)!, all.get('k1')!.val.labels, 10));
  });

  test('rows go to unlinked spool files (nothing left in the directory), the same bits as in memory; release frees them', async () => {
    const spoolDir = await mkdtemp(join(dir, 'spool-'));
    const spooled = await computeBoundaryFeatures(model, division, dataset, subsets, { batchSize: 16, storage: { spoolDir }, log: quiet });
    const inMemory = await computeBoundaryFeatures(model, division, dataset, subsets, { batchSize: 16, storage: 'memory', log: quiet });
    assert.deepEqual(readdirSync(spoolDir), [], 'spool files must be unlinked as soon as they are open');
    for (const [id, features] of spooled) assertIdentical(features, inMemory.get(id)!);
    const k2 = spooled.get('k2')!;
    for (const features of spooled.values()) if (features !== k2) features.release();
    // k2 still holds the shared files; once it is released too, reading is an error naming the spool.
    assert.equal(allRows(k2.train.input).length, 40 * k2.train.input.rowLength);
    k2.release();
    k2.release(); // idempotent
    assert.throws(() => allRows(k2.train.input), /spool file .* used after its spool was released/);
    for (const features of inMemory.values()) features.release();
  });

  test('images are read per batch through the ImageSource, one read ahead; a failed read rejects with its message', async () => {
    const recorded = recordingSource(inMemorySource(dataset));
    const streamed = await computeBoundaryFeatures(model, division, recorded.source, subsets, { batchSize: 16, log: quiet });
    assert.deepEqual(recorded.reads, [16, 16, 8, 16, 14]); // 40 search-train + 30 search-val images
    assert.equal(recorded.maxInFlight(), 1, 'reads are sequential: the next batch is read while this one is computed');
    for (const [id, features] of streamed) assertIdentical(features, all.get(id)!);
    const failing = recordingSource(inMemorySource(dataset), 2);
    await assert.rejects(computeBoundaryFeatures(model, division, failing.source, subsets, { batchSize: 16, log: quiet }), /image \d+ is unreadable/);
  });

  test('float16 rows: within half precision of float32, half the bytes, and recorded in the cache index', async () => {
    const half = await computeBoundaryFeatures(model, division, dataset, subsets, { batchSize: 16, dtype: 'float16', log: quiet });
    for (const [id, features] of half) {
      const exact = all.get(id)!;
      assert.equal(features.dtype, 'float16');
      for (const split of ['train', 'val'] as const) {
        for (const array of ['input', 'output'] as const) {
          const a = allRows(features[split][array]);
          const b = allRows(exact[split][array]);
          assert.equal(features[split][array].rowBytes * 2, exact[split][array].rowBytes);
          for (let i = 0; i < a.length; i++) {
            // Round to nearest of an 11-bit significand; below 2^-14 the absolute step is 2^-24.
            assert.ok(Math.abs(a[i] - b[i]) <= Math.max(Math.abs(b[i]) * 2 ** -11, 2 ** -25), `${id} ${split} ${array}[${i}]: ${a[i]} vs ${b[i]}`);
          }
        }
      }
      assert.ok(Math.abs(features.train.outputVariance / exact.train.outputVariance - 1) < 1e-3);
      assert.deepEqual(features.baseline, exact.baseline, 'the baseline is the network output, never rounded');
    }
    const store = new FileStore(join(dir, 'half'));
    const index = await saveBoundaryFeatures(store, 'run6', half.get('k2')!, { log: quiet });
    assert.equal(index.splits.train.arrays.output.dtype, 'float16');
    assert.equal(index.splits.train.arrays.output.bytes, 40 * 7 * 7 * 32 * 2);
    assert.equal(index.splits.train.arrays.labels.dtype, 'int32');
    const loaded = await loadBoundaryFeatures(store, 'run6', 'k2');
    assertIdentical(loaded, half.get('k2')!);
    // A run asking for float32 never silently mixes in (or recomputes over) float16 features.
    await assert.rejects(
      ensureBoundaryFeatures(store, 'run6', 'k2', () => all.get('k2')!, { dtype: 'float32', log: quiet }),
      (error: Error) => error instanceof FeatureDtypeMismatchError && /cached features are float16, this run asks for float32/.test(error.message),
    );
    assert.equal((await ensureBoundaryFeatures(store, 'run6', 'k2', () => all.get('k2')!, { dtype: 'float16', log: quiet })).dtype, 'float16');
  });
});

describe('feature cache in the object store', () => {
  test('round trip through a FileStore is bit-identical, in several shards', async () => {
    const store = new FileStore(join(dir, 'roundtrip'));
    for (const features of all.values()) {
      const index = await saveBoundaryFeatures(store, 'run1', features, { maxShardBytes: 100_000, log: quiet });
      assert.ok(index.totalBytes > 0);
      const loaded = await loadBoundaryFeatures(store, 'run1', features.subnet);
      assertIdentical(loaded, features);
    }
    const keys = await store.list(featuresPrefix('run1', 'k1'));
    // k1 train input: 40 * 3136 bytes = 125440 > 100000: two shards.
    assert.ok(keys.includes(`${featuresPrefix('run1', 'k1')}train-input-00001.bin`), keys.join('\n'));
    assert.ok(keys.includes(`${featuresPrefix('run1', 'k1')}index.json`));
    assert.match(featuresPrefix('run1', 'k1'), /^scratch\/run1\/subnets\/k1\/features\/$/);
  });

  test('a corrupt, truncated or missing shard is an error naming its key', async () => {
    const store = new FileStore(join(dir, 'corrupt'));
    const features = all.get('k2')!;
    await saveBoundaryFeatures(store, 'run2', features, { maxShardBytes: 100_000, log: quiet });
    const key = `${featuresPrefix('run2', 'k2')}val-output-00000.bin`;
    const good = await store.get(key);
    const flipped = Uint8Array.from(good);
    flipped[17] ^= 0x40;
    await store.put(key, flipped);
    await assert.rejects(loadBoundaryFeatures(store, 'run2', 'k2'), (error: Error) => {
      assert.ok(error instanceof FeatureCacheError);
      assert.ok(error.message.includes(key), error.message);
      assert.match(error.message, /corrupt: sha256/);
      return true;
    });
    await store.put(key, good.subarray(0, good.length - 4));
    await assert.rejects(loadBoundaryFeatures(store, 'run2', 'k2'), (error: Error) => error.message.includes(key) && /has \d+ bytes/.test(error.message));
    await store.delete(key);
    await assert.rejects(loadBoundaryFeatures(store, 'run2', 'k2'), (error: Error) => error.message.includes(key) && /missing/.test(error.message));
    await assert.rejects(loadBoundaryFeatures(store, 'run2', 'k3'), NotFoundError);

    // ensureBoundaryFeatures recomputes a corrupt cache (or throws when asked to).
    await assert.rejects(
      ensureBoundaryFeatures(store, 'run2', 'k2', () => features, { onCorrupt: 'throw', log: quiet }),
      FeatureCacheError,
    );
    let computed = 0;
    const repaired = await ensureBoundaryFeatures(store, 'run2', 'k2', () => (computed++, features), { log: quiet });
    assert.equal(computed, 1);
    assert.equal(repaired, features);
    assertIdentical(await loadBoundaryFeatures(store, 'run2', 'k2'), features);
  });

  test('an index that does not describe its arrays is refused', async () => {
    const store = new FileStore(join(dir, 'index'));
    await saveBoundaryFeatures(store, 'run3', all.get('k1')!, { log: quiet });
    const indexKey = `${featuresPrefix('run3', 'k1')}index.json`;
    const index = JSON.parse(new TextDecoder().decode(await store.get(indexKey))) as { splits: { val: { arrays: { input: { shape: number[] } } } } };
    index.splits.val.arrays.input.shape = [30, 28, 28, 2];
    await store.put(indexKey, JSON.stringify(index));
    await assert.rejects(loadBoundaryFeatures(store, 'run3', 'k1'), (error: Error) => error.message.includes(indexKey) && /val input/.test(error.message));
    await store.put(indexKey, '{"format": "something else"}');
    await assert.rejects(loadBoundaryFeatures(store, 'run3', 'k1'), (error: Error) => error.message.includes(indexKey) && /invalid feature index/.test(error.message));
  });

  test('features of another cut are refused when the division is given', async () => {
    const store = new FileStore(join(dir, 'stale'));
    await saveBoundaryFeatures(store, 'run5', all.get('k1')!, { log: quiet });
    const loaded = await loadBoundaryFeatures(store, 'run5', 'k1', { division });
    assert.equal(loaded.outputTensor, 'stage1_block1_out');
    const other = divideNetwork(model, analyzeChannels(model), { subnetworks: 2 });
    const key = `${featuresPrefix('run5', 'k1')}index.json`;
    await assert.rejects(loadBoundaryFeatures(store, 'run5', 'k1', { division: other }), (error: Error) => {
      assert.ok(error instanceof FeatureCacheError);
      assert.ok(error.message.includes(key));
      assert.match(error.message, /features are of fmnist-resnet input \[28,28,1\] -> stage1_block1_out .* the division needs .*stage2_block0_out/);
      return true;
    });
  });

  test('BoundaryFeatureCache computes once per (store, run, sub-network)', async () => {
    const store = new FileStore(join(dir, 'memo'));
    const cache = new BoundaryFeatureCache();
    let computed = 0;
    const compute = (): BoundaryFeatures => {
      computed++;
      return all.get('k3')!;
    };
    const [a, b] = await Promise.all([cache.get(store, 'run4', 'k3', compute, { log: quiet }), cache.get(store, 'run4', 'k3', compute, { log: quiet })]);
    assert.equal(a, b);
    assert.equal(computed, 1);
    cache.clear();
    const c = await cache.get(store, 'run4', 'k3', compute, { log: quiet });
    assert.equal(computed, 1); // loaded from the store this time
    assertIdentical(c, a);
  });
});
