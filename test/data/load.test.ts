import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadDataset, parseDatasetSpec } from '../../src/data/load.ts';
import { convertImageFolder } from '../../src/data/image-folder-convert.ts';

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
