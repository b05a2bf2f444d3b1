import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  classCounts,
  concatDatasets,
  createDataset,
  indicesByClass,
  sliceDataset,
  subsetDataset,
} from '../../src/data/dataset.ts';
import { readDatasetFile, writeDatasetFile } from '../../src/data/dataset-file.ts';

function tiny() {
  const images = Uint8Array.from({ length: 5 * 2 * 2 * 3 }, (_, i) => i);
  return createDataset({ name: 'tiny', images, labels: Int32Array.from([0, 1, 1, 2, 0]), height: 2, width: 2, channels: 3, classes: 3, classNames: ['a', 'b', 'c'] });
}

test('createDataset rejects inconsistent sizes and out-of-range labels, naming the data set', () => {
  const images = new Uint8Array(12);
  assert.throws(() => createDataset({ name: 'bad', images, labels: Int32Array.from([0, 1]), height: 2, width: 2, channels: 3, classes: 2 }), /dataset bad: images has 12 bytes/);
  assert.throws(() => createDataset({ name: 'bad', images, labels: Int32Array.from([2]), height: 2, width: 2, channels: 3, classes: 2 }), /label 2 of image 0/);
  assert.throws(() => createDataset({ name: 'bad', images, labels: Int32Array.from([0]), height: 2, width: 2, channels: 3, classes: 2, classNames: ['x'] }), /1 class names for 2 classes/);
});

test('slice is a view, subset is a copy in index order, concat joins', () => {
  const ds = tiny();
  const s = sliceDataset(ds, 1, 3);
  assert.equal(s.count, 2);
  assert.equal(s.images[0], 12);
  assert.deepEqual(Array.from(s.labels), [1, 1]);
  assert.equal(s.images.buffer, ds.images.buffer);
  assert.equal(sliceDataset(ds, 4, 99).count, 1);
  const sub = subsetDataset(ds, [4, 0, 4]);
  assert.deepEqual(Array.from(sub.labels), [0, 0, 0]);
  assert.equal(sub.images[0], 48);
  assert.equal(sub.images[12], 0);
  assert.notEqual(sub.images.buffer, ds.images.buffer);
  assert.deepEqual(sub.classNames, ['a', 'b', 'c']);
  assert.throws(() => subsetDataset(ds, [5]), /index 5 at position 0/);
  const joined = concatDatasets('joined', [ds, s]);
  assert.equal(joined.count, 7);
  assert.deepEqual(Array.from(joined.images.subarray(60)), Array.from(s.images));
  assert.deepEqual(classCounts(ds), [2, 2, 1]);
  assert.deepEqual(indicesByClass(ds).map((a) => Array.from(a)), [[0, 4], [1, 2], [3]]);
});

test('dataset file round-trips and rejects truncation, bit flips and bad magic', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-dsfile-'));
  try {
    const path = join(dir, 'tiny.emods');
    const ds = tiny();
    await writeDatasetFile(path, ds, { source: 'test' });
    const { dataset, header } = await readDatasetFile(path);
    assert.deepEqual(Array.from(dataset.images), Array.from(ds.images));
    assert.deepEqual(Array.from(dataset.labels), Array.from(ds.labels));
    assert.deepEqual(dataset.classNames, ['a', 'b', 'c']);
    assert.equal(header.meta.source, 'test');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 1));
    await assert.rejects(readDatasetFile(path), (e: Error) => e.message.includes(path) && /bytes, header says/.test(e.message));
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3] ^= 1;
    await writeFile(path, flipped);
    await assert.rejects(readDatasetFile(path), /sha256 .* does not match/);
    // Unverified read accepts it (the caller opted out).
    await readDatasetFile(path, { verifyChecksum: false });
    const bad = Buffer.from(bytes);
    bad[0] = 0x58;
    await writeFile(path, bad);
    await assert.rejects(readDatasetFile(path), /bad magic/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
