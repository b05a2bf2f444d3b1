import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arrayBatches } from '../../src/data/batches.ts';
import type { ArrayBatch, SourceBatchOptions } from '../../src/data/index.ts';
import { createDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { directoryFiles, storeFiles } from '../../src/data/data-files.ts';
import { readImageShards } from '../../src/data/image-shards.ts';
import { inMemorySource } from '../../src/data/image-source.ts';
import type { ShardedImageSource } from '../../src/data/image-source.ts';
import { ShardCache } from '../../src/data/shard-cache.ts';
import { openShardSource } from '../../src/data/shard-source.ts';
import { writeImageShards } from '../../src/data/shard-writer.ts';
import { sourceBatches } from '../../src/data/stream-batches.ts';
import { streamOrder } from '../../src/data/stream-order.ts';
import { FileStore } from '../../src/store/file-store.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import { S3Store } from '../../src/store/s3-store.ts';
import { s3rverStoreOptions, startS3rver } from '../store/s3rver.ts';
import type { RunningS3rver } from '../store/s3rver.ts';

/** `count` distinct images (pixels from a hash of image, position), labels cycling over `classes`. */
function syntheticSet(count: number, height: number, width: number, channels: number, classes: number): ImageDataset {
  const perImage = height * width * channels;
  const images = new Uint8Array(count * perImage);
  for (let i = 0; i < images.length; i++) images[i] = (Math.imul(i + 1, 2654435761) >>> 24) & 0xff;
  const labels = Int32Array.from({ length: count }, (_, i) => (i * 7) % classes);
  return createDataset({ name: 'synthetic', images, labels, height, width, channels, classes });
}

function gather(dataset: ImageDataset, indices: ArrayLike<number>): Uint8Array {
  const perImage = dataset.height * dataset.width * dataset.channels;
  const out = new Uint8Array(indices.length * perImage);
  for (let i = 0; i < indices.length; i++) out.set(dataset.images.subarray(indices[i] * perImage, (indices[i] + 1) * perImage), i * perImage);
  return out;
}

async function collect(batches: AsyncIterable<ArrayBatch>): Promise<ArrayBatch[]> {
  const out: ArrayBatch[] = [];
  for await (const batch of batches) out.push(batch);
  return out;
}

function concatIndices(batches: readonly ArrayBatch[]): number[] {
  return batches.flatMap((batch) => [...batch.indices]);
}

/** An ObjectStore that counts ranged and whole reads (to see what a reader fetched). */
function countingStore(inner: ObjectStore): { store: ObjectStore; ranges: string[]; gets: string[] } {
  const ranges: string[] = [];
  const gets: string[] = [];
  const store: ObjectStore = {
    location: inner.location,
    get: (key) => {
      gets.push(key);
      return inner.get(key);
    },
    getRange: (key, offset, length, into) => {
      ranges.push(`${key}@${offset}+${length}`);
      return inner.getRange(key, offset, length, into);
    },
    put: (key, body, options) => inner.put(key, body, options),
    exists: (key) => inner.exists(key),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
  };
  return { store, ranges, gets };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-shard-source-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('shard source: random access', () => {
  test('returns the same images as a full read, from a directory and from a store prefix, RGB and grey', async () => {
    for (const [height, width, channels] of [
      [5, 4, 3],
      [3, 6, 1],
    ] as const) {
      const dataset = syntheticSet(37, height, width, channels, 4);
      const local = join(dir, `random-${channels}`);
      await writeImageShards(local, dataset, { shardSize: 8 });
      const store = new FileStore(join(dir, `store-${channels}`));
      await writeImageShards(storeFiles(store, 'datasets/syn/train'), dataset, { shardSize: 8 });
      const full = await readImageShards(local);
      assert.deepEqual(full.images, dataset.images);
      assert.deepEqual(full.labels, dataset.labels);
      for (const files of [directoryFiles(local), storeFiles(store, 'datasets/syn/train')]) {
        const source = await openShardSource(files, { cache: new ShardCache({ dir: join(dir, `cache-${channels}`) }) });
        assert.deepEqual([source.count, source.height, source.width, source.channels, source.classes], [37, height, width, channels, 4]);
        assert.deepEqual(source.shardCounts, [8, 8, 8, 8, 5]);
        assert.deepEqual(source.labels, dataset.labels);
        // Across shard boundaries, descending, with a repeat, the last image.
        const indices = Int32Array.from([36, 0, 7, 8, 9, 9, 20, 3, 35, 15, 16]);
        assert.deepEqual(await source.readImages(indices), gather(dataset, indices));
        // Twice: the second read comes from the cache and must not differ.
        assert.deepEqual(await source.readImages(indices), gather(dataset, indices));
        assert.deepEqual(await source.readShard(4), dataset.images.subarray(32 * height * width * channels));
        await assert.rejects(source.readImages(Int32Array.from([37])), /image index 37 is out of range \(0\.\.36\)/);
      }
    }
  });

  test('from a store: fetches only the images asked for (one ranged read per run); the local cache serves them again', async () => {
    const dataset = syntheticSet(40, 4, 4, 3, 5);
    const counted = countingStore(new FileStore(join(dir, 'counted-store')));
    await writeImageShards(storeFiles(counted.store, 'datasets/c/train'), dataset, { shardSize: 10 });
    const cacheDir = join(dir, 'counted-cache');
    const open = () => openShardSource(storeFiles(counted.store, 'datasets/c/train'), { cache: new ShardCache({ dir: cacheDir }) });
    const first = await open();
    counted.ranges.length = 0;
    const indices = Int32Array.from([5, 6, 7, 21, 39]);
    assert.deepEqual(await first.readImages(indices), gather(dataset, indices));
    const perImage = 48;
    assert.deepEqual(counted.ranges.sort(), [
      `datasets/c/train/shard-00000.bin@${5 * perImage}+${3 * perImage}`,
      `datasets/c/train/shard-00002.bin@${1 * perImage}+${perImage}`,
      `datasets/c/train/shard-00003.bin@${9 * perImage}+${perImage}`,
    ]);
    counted.ranges.length = 0;
    counted.gets.length = 0;
    const second = await open();
    assert.deepEqual(await second.readImages(indices), gather(dataset, indices));
    assert.deepEqual(counted.ranges, [], 'the images come from the local cache');
    assert.deepEqual(counted.gets.filter((key) => key.endsWith('.labels')), [], 'so do the label files');
    // Whole shards (this set fits the cache budget) are cached too.
    await second.readShard(1);
    counted.ranges.length = 0;
    assert.deepEqual(await second.readShard(1), dataset.images.subarray(10 * perImage, 20 * perImage));
    assert.deepEqual(counted.ranges, []);
  });

  test('over the S3 wire protocol (s3rver): ranged GETs, streaming and the cache agree with a local read', async () => {
    let s3rver: RunningS3rver | undefined;
    let client: S3Store['client'] | undefined;
    try {
      s3rver = await startS3rver();
      const s3 = new S3Store(s3rverStoreOptions(s3rver));
      client = s3.client;
      const dataset = syntheticSet(30, 6, 6, 3, 3);
      await writeImageShards(storeFiles(s3, 'datasets/s3/train'), dataset, { shardSize: 7 });
      const source = await openShardSource(storeFiles(s3, 'datasets/s3/train'), { cache: new ShardCache({ dir: join(dir, 's3-cache') }) });
      assert.equal(source.name, `s3://${s3rver.bucket}/datasets/s3/train`);
      const indices = Int32Array.from([29, 0, 13, 14, 6, 7]);
      assert.deepEqual(await source.readImages(indices), gather(dataset, indices));
      const options: SourceBatchOptions = { batchSize: 4, seed: 2, shuffleBuffer: 5, normalize: 'raw' };
      const local = join(dir, 's3-local');
      await writeImageShards(local, dataset, { shardSize: 7 });
      assert.deepEqual(await collect(sourceBatches(source, options)), await collect(sourceBatches(await openShardSource(local), options)));
    } finally {
      client?.destroy();
      await s3rver?.stop();
    }
  });
});

describe('shard source: streamed epochs', () => {
  const dataset = syntheticSet(37, 3, 3, 3, 4);
  let source: ShardedImageSource;
  before(async () => {
    await writeImageShards(join(dir, 'stream'), dataset, { shardSize: 8 });
    source = await openShardSource(join(dir, 'stream'));
  });

  test('a shuffled epoch visits every image exactly once, in the same order for the same seed, with the right pixels', async () => {
    const options: SourceBatchOptions = { batchSize: 6, seed: 3, epoch: 0, shuffleBuffer: 10, normalize: 'raw' };
    const batches = await collect(sourceBatches(source, options));
    const order = concatIndices(batches);
    assert.deepEqual([...order].sort((a, b) => a - b), [...dataset.labels.keys()]);
    assert.deepEqual(order, [...streamOrder({ shardCounts: source.shardCounts, shuffle: true, seed: 3, epoch: 0, shuffleBuffer: 10 })]);
    assert.deepEqual(batches.map((b) => b.shape[0]), [6, 6, 6, 6, 6, 6, 1]);
    for (const batch of batches) {
      assert.deepEqual(Uint8Array.from(batch.x), gather(dataset, batch.indices), `pixels of batch ${batch.batchIndex}`);
      assert.deepEqual([...batch.y], [...batch.indices].map((i) => dataset.labels[i]));
    }
    assert.deepEqual(await collect(sourceBatches(source, options)), batches, 'same seed, same batches');
    assert.notDeepEqual(concatIndices(await collect(sourceBatches(source, { ...options, seed: 4 }))), order);
    assert.notDeepEqual(concatIndices(await collect(sourceBatches(source, { ...options, epoch: 1 }))), order);
    // dropLast keeps whole batches only.
    assert.deepEqual((await collect(sourceBatches(source, { ...options, dropLast: true }))).map((b) => b.shape[0]), [6, 6, 6, 6, 6, 6]);
  });

  test('a subset is visited exactly once; an unshuffled epoch is index order, exactly the in-memory batches', async () => {
    const subset = [1, 2, 3, 9, 10, 30, 36];
    const streamed = await collect(sourceBatches(source, { batchSize: 3, seed: 5, shuffleBuffer: 4, indices: subset }));
    assert.deepEqual(concatIndices(streamed).sort((a, b) => a - b), subset);
    const plain = { batchSize: 5, shuffle: false, normalize: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] } } as const;
    assert.deepEqual(await collect(sourceBatches(source, plain)), [...arrayBatches(dataset, plain)]);
    assert.deepEqual(await collect(sourceBatches(source, { ...plain, indices: subset })), [...arrayBatches(dataset, { ...plain, indices: subset })]);
    // An order a stream cannot give (descending) falls back to random access, same batches.
    const descending = [...subset].reverse();
    assert.deepEqual(await collect(sourceBatches(source, { ...plain, indices: descending })), [...arrayBatches(dataset, { ...plain, indices: descending })]);
  });

  test('an in-memory source gives exactly the batches of arrayBatches (Fashion-MNIST and CIFAR keep their order)', async () => {
    const options = { batchSize: 7, seed: 11, epoch: 2, augment: { cropPadding: 1, flip: true }, dropLast: true } as const;
    assert.deepEqual(await collect(sourceBatches(inMemorySource(dataset), options)), [...arrayBatches(dataset, options)]);
  });

  test('a resumed epoch gives the batches an uninterrupted one gives from there on (shuffle buffer restored by random access)', async () => {
    const options: SourceBatchOptions = { batchSize: 4, seed: 9, epoch: 1, shuffleBuffer: 10, augment: { cropPadding: 1, flip: true } };
    const whole = await collect(sourceBatches(source, options));
    for (const startBatch of [1, 3, 6, 9]) {
      assert.deepEqual(await collect(sourceBatches(source, { ...options, startBatch })), whole.slice(startBatch), `resumed at batch ${startBatch}`);
    }
    const unshuffled = { batchSize: 4, shuffle: false } as const;
    assert.deepEqual(await collect(sourceBatches(source, { ...unshuffled, startBatch: 5 })), (await collect(sourceBatches(source, unshuffled))).slice(5));
    const memory = inMemorySource(dataset);
    assert.deepEqual(await collect(sourceBatches(memory, { ...options, startBatch: 4 })), (await collect(sourceBatches(memory, options))).slice(4));
  });

  test('the next shards are read while the current one is consumed, at most `prefetch` ahead', async () => {
    const requested: number[] = [];
    const watched: ShardedImageSource = {
      ...source,
      readShard: (shard, into) => {
        requested.push(shard);
        return source.readShard(shard, into);
      },
    };
    const plan = streamOrder({ shardCounts: source.shardCounts, shuffle: false, seed: 0, epoch: 0, shuffleBuffer: 1 });
    assert.equal(plan.length, 37);
    for await (const batch of sourceBatches(watched, { batchSize: 4, shuffle: false, prefetch: 2 })) {
      // Index order: the batch's last image tells which shard is being consumed.
      const consumedShards = Math.floor(batch.indices[batch.indices.length - 1] / 8) + 1;
      assert.ok(requested.length <= Math.min(5, consumedShards + 2), `after shard ${consumedShards}: ${requested.length} shards requested`);
      assert.ok(requested.length >= Math.min(5, consumedShards + 2) - 1, 'the shards ahead were requested');
    }
    assert.deepEqual(requested, [0, 1, 2, 3, 4]);
  });

  test('a truncated or corrupt shard met mid-stream fails naming the file, before any of its images is used', async () => {
    const broken = join(dir, 'broken');
    await writeImageShards(broken, dataset, { shardSize: 8 });
    const shard2 = join(broken, 'shard-00002.bin');
    const bytes = await readFile(shard2);
    const flipped = Uint8Array.from(bytes);
    flipped[5] ^= 0xff;
    await writeFile(shard2, flipped);
    const seen: number[] = [];
    const corrupt = await openShardSource(broken);
    await assert.rejects(
      (async () => {
        for await (const batch of sourceBatches(corrupt, { batchSize: 8, shuffle: false })) seen.push(...batch.indices);
      })(),
      (error: Error) => error.message.includes('shard-00002.bin') && /sha256 does not match/.test(error.message),
    );
    assert.deepEqual(seen, [...Array(16).keys()], 'shards 0 and 1 were used, nothing of shard 2');
    await assert.rejects(collect(sourceBatches(corrupt, { batchSize: 5, seed: 1, shuffleBuffer: 6 })), /shard-00002\.bin: sha256 does not match/);
    // verify: 'size' does not hash, so only a size change is caught.
    assert.equal((await collect(sourceBatches(await openShardSource(broken, { verify: 'size' }), { batchSize: 8 }))).length, 5);
    await writeFile(shard2, bytes.subarray(0, bytes.length - 3));
    await assert.rejects(
      collect(sourceBatches(await openShardSource(broken, { verify: 'size' }), { batchSize: 8, shuffle: false })),
      new RegExp(`${shard2.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: truncated: ended after ${bytes.length - 3} of ${bytes.length} bytes`),
    );
    await assert.rejects(corrupt.readImages(Int32Array.from([23])), /shard-00002\.bin: truncated: images 7\.\.7 end at byte/);
  });
});
