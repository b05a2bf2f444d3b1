import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { dataFilesAt, loadDataset, openDatasetSource, parseDatasetSpec, readDatasetShardIndex } from '../../src/data/load.ts';
import { convertImageFolder } from '../../src/data/image-folder-convert.ts';
import { createDataset } from '../../src/data/dataset.ts';
import { storeFiles } from '../../src/data/data-files.ts';
import { isShardedSource } from '../../src/data/image-source.ts';
import { writeImageShards } from '../../src/data/shard-writer.ts';
import { probeDataset } from '../../src/data/probe.ts';
import { FileStore } from '../../src/store/file-store.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';

test('parseDatasetSpec: string and object forms; unknown names and missing paths are clear errors', () => {
  assert.deepEqual(parseDatasetSpec('fashion-mnist'), { kind: 'fashion-mnist', split: 'train' });
  assert.deepEqual(parseDatasetSpec('cifar10:/data/c10'), { kind: 'cifar10', path: '/data/c10', split: 'train' });
  assert.deepEqual(parseDatasetSpec({ kind: 'imagenet', path: '/x', split: 'test', shards: { start: 1 } }), {
    kind: 'imagenet',
    path: '/x',
    split: 'test',
    shards: { start: 1 },
  });
  assert.throws(() => parseDatasetSpec('mnist'), /unknown data set "mnist": use one of: fashion-mnist, cifar10:<dir>/);
  assert.throws(() => parseDatasetSpec('cifar10'), /cifar10 needs a directory: cifar10:<dir>/);
  assert.throws(() => parseDatasetSpec({ kind: 'cifar10', path: '/x', split: 'val' as 'test' }), /invalid data set spec.*split/);
  assert.throws(() => parseDatasetSpec({ kind: 'cifar10', path: '/x', shards: { start: 0 } }), /imagenet only/);
});

test('loadDataset: cifar10, cifar100-coarse and imagenet directories; missing files named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-load-'));
  try {
    const record = (label: number[]) => Buffer.concat([Buffer.from(label), Buffer.alloc(3072, 7)]);
    const c10 = join(dir, 'c10');
    await mkdir(c10);
    for (let b = 1; b <= 5; b++) await writeFile(join(c10, `data_batch_${b}.bin`), record([b]));
    await writeFile(join(c10, 'test_batch.bin'), Buffer.concat([record([0]), record([9])]));
    const c10test = await loadDataset(`cifar10:${c10}`, { split: 'test' });
    assert.deepEqual(Array.from(c10test.labels), [0, 9]);
    assert.equal((await loadDataset({ kind: 'cifar10', path: c10 })).count, 5);

    const c100 = join(dir, 'c100');
    await mkdir(c100);
    await writeFile(join(c100, 'train.bin'), Buffer.concat([record([3, 50]), record([19, 99])]));
    const coarse = await loadDataset(`cifar100-coarse:${c100}`);
    assert.deepEqual([coarse.classes, ...coarse.labels], [20, 3, 19]);
    await assert.rejects(loadDataset(`cifar100:${c100}`, { split: 'test' }), /no test\.bin in/);

    const tree = join(dir, 'jpeg');
    for (const wnid of ['n2', 'n1']) {
      await mkdir(join(tree, wnid), { recursive: true });
      await sharp({ create: { width: 20, height: 24, channels: 3, background: '#808080' } }).jpeg().toFile(join(tree, wnid, 'a.JPEG'));
    }
    const imagenet = join(dir, 'imagenet');
    await convertImageFolder({ root: tree, out: join(imagenet, 'train'), resize: 16, crop: 16, order: 'sorted' });
    const train = await loadDataset(`imagenet:${imagenet}`);
    assert.equal(train.name, 'imagenet/train');
    assert.deepEqual(Array.from(train.labels), [0, 1]);
    assert.deepEqual(train.classNames, ['n1', 'n2']);
    assert.equal((await loadDataset(`imagenet:${join(imagenet, 'train')}`)).count, 2);
    await assert.rejects(loadDataset(`imagenet:${imagenet}`, { split: 'test' }), /imagenet test: no index\.json in .*val or .*test/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadDataset: fashion-mnist by name', async () => {
  const testSplit = await loadDataset('fashion-mnist', { split: 'test' });
  assert.equal(testSplit.name, 'fashion-mnist/test');
  assert.equal(testSplit.count, 10000);
});

test('data set locations: local directories, store prefixes, s3:// only inside the run store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-locations-'));
  try {
    const store = new FileStore(join(dir, 'store'));
    assert.equal(dataFilesAt('/abs/data', store).location, '/abs/data');
    assert.equal(dataFilesAt('./rel/data', store).location, resolve('rel/data'));
    assert.equal(dataFilesAt(pathToFileURL('/abs/x').href, store).location, '/abs/x');
    assert.equal(dataFilesAt('datasets/imagenet', store).location, `${store.location}/datasets/imagenet`);
    assert.equal(dataFilesAt('datasets/imagenet', undefined).location, resolve('datasets/imagenet'), 'no store: a local path');
    // Resolving reads only the store's location (no request is made).
    const s3Named = { location: 's3://emo-bucket/team' } as ObjectStore;
    assert.equal(dataFilesAt('s3://emo-bucket/team/datasets/imagenet/', s3Named).location, 's3://emo-bucket/team/datasets/imagenet');
    assert.throws(() => dataFilesAt('s3://emo-bucket/other/datasets/x', s3Named), /s3:\/\/emo-bucket\/other\/datasets\/x is outside the run's store s3:\/\/emo-bucket\/team: put it there/);
    assert.throws(() => dataFilesAt('s3://emo-bucket/team', s3Named), /root of the store/);
    assert.throws(() => dataFilesAt('s3://b/datasets/x', undefined), /outside the run's store/);
    assert.throws(() => dataFilesAt('gs://b/x', store), /unsupported scheme/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('imagenet and cifar10 from store prefixes: loadDataset, openDatasetSource and the shard index probe', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-load-store-'));
  try {
    const store = new FileStore(join(dir, 'store'));
    const train = createDataset({ name: 't', images: Uint8Array.from({ length: 10 * 12 }, (_, i) => i % 251), labels: Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), height: 2, width: 2, channels: 3, classes: 3 });
    const val = createDataset({ name: 'v', images: new Uint8Array(4 * 12).fill(9), labels: Int32Array.from([2, 1, 0, 2]), height: 2, width: 2, channels: 3, classes: 3 });
    await writeImageShards(storeFiles(store, 'datasets/tiny/train'), train, { shardSize: 4, classes: ['a', 'b', 'c'] });
    await writeImageShards(storeFiles(store, 'datasets/tiny/val'), val, { shardSize: 4, classes: ['a', 'b', 'c'] });

    const loaded = await loadDataset('imagenet:datasets/tiny', { store });
    assert.equal(loaded.name, 'imagenet/train');
    assert.deepEqual(loaded.images, train.images);
    const source = await openDatasetSource('imagenet:datasets/tiny', { store, split: 'test' });
    assert.ok(isShardedSource(source), 'a shard set opens as a streaming source');
    assert.equal(source.name, 'imagenet/test');
    assert.deepEqual(source.labels, val.labels);
    assert.deepEqual(await source.readImages(Int32Array.from([3, 0])), new Uint8Array(24).fill(9));
    const ranged = await openDatasetSource({ kind: 'imagenet', path: 'datasets/tiny', shards: { start: 1 } }, { store });
    assert.deepEqual(ranged.labels, train.labels.subarray(4));
    const index = await readDatasetShardIndex('imagenet:datasets/tiny', { store, split: 'test' });
    assert.deepEqual([index.count, index.classes], [4, ['a', 'b', 'c']]);
    await assert.rejects(readDatasetShardIndex('cifar10:/x'), /cifar10 has no shard index/);
    await assert.rejects(openDatasetSource('imagenet:datasets/none', { store }), /imagenet train: no index\.json in .*datasets\/none\/train or .*datasets\/none/);
    // Plan's probe reads a store location even when it cannot see local files (a Lambda).
    const probed = await probeDataset('imagenet:datasets/tiny', { store, files: false });
    assert.deepEqual([probed?.train.images, probed?.test.images, probed?.classes, probed?.filesChecked], [10, 4, 3, true]);
    assert.match(probed?.train.location ?? '', /datasets\/tiny\/train$/);
    await store.put('datasets/tiny/val/shard-00000.bin', new Uint8Array(5));
    await assert.rejects(probeDataset('imagenet:datasets/tiny', { store }), /shard-00000\.bin: truncated: shorter than the 48 bytes index\.json says/);
    assert.equal(await probeDataset('imagenet:datasets/tiny', { files: false }), undefined, 'without a store it is a local directory Plan cannot see');

    // CIFAR-10's binary batches under a store prefix (nested cifar-10-batches-bin/ as extracted).
    const record = (label: number) => Buffer.concat([Buffer.from([label]), Buffer.alloc(3072, label)]);
    for (let b = 1; b <= 5; b++) await store.put(`datasets/c10/cifar-10-batches-bin/data_batch_${b}.bin`, record(b));
    await store.put('datasets/c10/cifar-10-batches-bin/test_batch.bin', Buffer.concat([record(3), record(4)]));
    const c10 = await openDatasetSource('cifar10:datasets/c10', { store, split: 'test' });
    assert.ok(!isShardedSource(c10), 'small sets stay in memory behind the same interface');
    assert.deepEqual([...c10.labels], [3, 4]);
    assert.deepEqual(await c10.readImages(Int32Array.from([1])), new Uint8Array(3072).fill(4));
    // A store has no size read: the probe finds every batch and counts the official records.
    assert.deepEqual((await probeDataset('cifar10:datasets/c10', { store, files: false }))?.train.images, 50_000);
    await store.delete('datasets/c10/cifar-10-batches-bin/data_batch_4.bin');
    await assert.rejects(probeDataset('cifar10:datasets/c10', { store }), /cifar10: missing .*datasets\/c10\/cifar-10-batches-bin\/data_batch_4\.bin/);
    await assert.rejects(loadDataset('cifar10:datasets/none', { store }), /cifar10: no data_batch_1\.bin in .*datasets\/none or .*datasets\/none\/cifar-10-batches-bin/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
