import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCifar10, readCifar100 } from '../../src/data/cifar.ts';

/** Channel c of pixel (y, x) of record `seed`: distinct across channels, rows, columns and records. */
const value = (seed: number, y: number, x: number, c: number) => (seed * 31 + y * 7 + x * 3 + c * 85) % 256;

/** One record in the official layout: label bytes, then the R, G, B planes, each row-major 32x32. */
function record(labels: number[], seed: number): Buffer {
  const out = Buffer.alloc(labels.length + 3072);
  labels.forEach((l, i) => (out[i] = l));
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[labels.length + c * 1024 + y * 32 + x] = value(seed, y, x, c);
  return out;
}

function assertNhwc(images: Uint8Array, index: number, seed: number): void {
  for (const [y, x] of [[0, 0], [0, 31], [5, 17], [31, 0], [31, 31]])
    for (let c = 0; c < 3; c++) {
      assert.equal(images[index * 3072 + (y * 32 + x) * 3 + c], value(seed, y, x, c), `image ${index} pixel ${y},${x} channel ${c}`);
    }
}

test('CIFAR-10 binary: five train batches + test batch, NHWC pixels, labels, class names', async () => {
  const root = await mkdtemp(join(tmpdir(), 'emo-dir-cifar10-'));
  try {
    const dir = join(root, 'cifar-10-batches-bin');
    await mkdir(dir);
    for (let b = 1; b <= 5; b++) {
      await writeFile(join(dir, `data_batch_${b}.bin`), Buffer.concat([record([b], b * 10), record([9 - b], b * 10 + 1)]));
    }
    await writeFile(join(dir, 'test_batch.bin'), Buffer.concat([record([3], 77)]));
    const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    await writeFile(join(dir, 'batches.meta.txt'), `${names.join('\n')}\n\n`);

    const train = await readCifar10(root); // the archive root: finds cifar-10-batches-bin/
    assert.equal(train.count, 10);
    assert.deepEqual([train.height, train.width, train.channels, train.classes], [32, 32, 3, 10]);
    assert.deepEqual(Array.from(train.labels), [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    assert.deepEqual(train.classNames, names);
    assertNhwc(train.images, 0, 10);
    assertNhwc(train.images, 1, 11);
    assertNhwc(train.images, 9, 51);
    const testSplit = await readCifar10(dir, { split: 'test' });
    assert.equal(testSplit.count, 1);
    assert.equal(testSplit.name, 'cifar10/test');
    assertNhwc(testSplit.images, 0, 77);

    // A truncated batch: the error names the file and the record size.
    await writeFile(join(dir, 'data_batch_3.bin'), Buffer.concat([record([1], 1), Buffer.alloc(5)]));
    await assert.rejects(readCifar10(dir), (e: Error) => e.message.includes('data_batch_3.bin') && e.message.includes('3073-byte record'));
    await writeFile(join(dir, 'data_batch_3.bin'), record([10], 1));
    await assert.rejects(readCifar10(dir), /data_batch_3\.bin: record 0 has label 10/);
    await rm(join(dir, 'data_batch_4.bin'));
    await assert.rejects(readCifar10(dir), /missing .*data_batch_4\.bin/);
    await assert.rejects(readCifar10(join(root, 'nope')), /no data_batch_1\.bin in/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('CIFAR-100 binary: coarse + fine label bytes, NHWC pixels, both label sets', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-cifar100-'));
  try {
    await writeFile(join(dir, 'train.bin'), Buffer.concat([record([4, 99], 1), record([19, 0], 2), record([0, 42], 3)]));
    await writeFile(join(dir, 'test.bin'), record([7, 8], 4));
    await writeFile(join(dir, 'fine_label_names.txt'), Array.from({ length: 100 }, (_, i) => `fine${i}`).join('\n'));
    const fine = await readCifar100(dir);
    assert.equal(fine.classes, 100);
    assert.deepEqual(Array.from(fine.labels), [99, 0, 42]);
    assert.equal(fine.classNames?.[42], 'fine42');
    assertNhwc(fine.images, 2, 3);
    const coarse = await readCifar100(dir, { labels: 'coarse' });
    assert.equal(coarse.classes, 20);
    assert.deepEqual(Array.from(coarse.labels), [4, 19, 0]);
    assert.equal(coarse.classNames, undefined); // no coarse_label_names.txt
    const testSplit = await readCifar100(dir, { split: 'test' });
    assert.deepEqual(Array.from(testSplit.labels), [8]);
    assertNhwc(testSplit.images, 0, 4);

    // CIFAR-10 records (3073 bytes) in a CIFAR-100 file are caught by size.
    await writeFile(join(dir, 'test.bin'), Buffer.concat([record([1], 1), record([1], 2)]));
    await assert.rejects(readCifar100(dir, { split: 'test' }), (e: Error) => e.message.includes('test.bin') && e.message.includes('3074-byte record'));
    await writeFile(join(dir, 'fine_label_names.txt'), 'a\nb\n');
    await assert.rejects(readCifar100(dir), /fine_label_names\.txt has 2 names, expected 100/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
