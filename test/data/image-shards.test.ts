import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { storeFiles } from '../../src/data/data-files.ts';
import { convertImageFolder, preprocessImage } from '../../src/data/image-folder-convert.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { readImageShards, readShardIndex } from '../../src/data/image-shards.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';

const COLOURS: Record<string, [number, number, number]> = {
  n01000001: [220, 30, 30],
  n02000002: [30, 200, 40],
  n03000003: [40, 50, 210],
};
const SIZES: [number, number][] = [
  [40, 30],
  [30, 50],
  [64, 64],
  [20, 80],
];

async function solidJpeg(path: string, width: number, height: number, rgb: [number, number, number]): Promise<void> {
  await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .jpeg({ quality: 95 })
    .toFile(path);
}

/** 3 classes x 4 solid-colour JPEGs of different sizes; extension case varies like ImageNet's. */
async function makeTree(root: string): Promise<void> {
  for (const [wnid, rgb] of Object.entries(COLOURS)) {
    await mkdir(join(root, wnid), { recursive: true });
    for (const [k, [w, h]] of SIZES.entries()) await solidJpeg(join(root, wnid, `${wnid}_${k}.${k % 2 ? 'jpg' : 'JPEG'}`), w, h, rgb);
    await writeFile(join(root, wnid, 'README.txt'), 'not an image');
  }
}

function meanColour(ds: ImageDataset, i: number): number[] {
  const size = ds.height * ds.width * 3;
  const sum = [0, 0, 0];
  for (let p = 0; p < size; p++) sum[p % 3] += ds.images[i * size + p];
  return sum.map((s) => s / (size / 3));
}

test('image-folder tree -> shards -> dataset: labels follow sorted wnids, solid colours survive', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-shards-'));
  try {
    const root = join(dir, 'train');
    await makeTree(root);
    const out = join(dir, 'shards');
    const index = await convertImageFolder({ root, out, resize: 20, crop: 16, shardSize: 5, concurrency: 2 });
    assert.deepEqual(index.classes, Object.keys(COLOURS).sort());
    assert.equal(index.count, 12);
    assert.deepEqual(index.shards.map((s) => s.count), [5, 5, 2]);
    assert.equal(index.shards[0].imageBytes, 5 * 16 * 16 * 3);
    assert.deepEqual(await readShardIndex(out), index);

    const ds = await readImageShards(out);
    assert.equal(ds.count, 12);
    assert.deepEqual([ds.height, ds.width, ds.channels, ds.classes], [16, 16, 3, 3]);
    const perClass = [0, 0, 0];
    for (let i = 0; i < ds.count; i++) {
      const expected = COLOURS[index.classes[ds.labels[i]]];
      const got = meanColour(ds, i);
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[c] - expected[c]) <= 6, `image ${i} label ${ds.labels[i]}: colour ${got} vs ${expected}`);
      // Every pixel, not just the mean, stays within JPEG tolerance of the solid colour.
      for (let p = 0; p < 16 * 16 * 3; p++) assert.ok(Math.abs(ds.images[i * 768 + p] - expected[p % 3]) <= 12);
      perClass[ds.labels[i]]++;
    }
    assert.deepEqual(perClass, [4, 4, 4]);
    // Shuffled by default: the first shard mixes classes.
    assert.ok(new Set(ds.labels.subarray(0, 5)).size > 1);

    // Range read: shards [1, 3) are images 5..11.
    const tail = await readImageShards(out, { start: 1, end: 3 });
    assert.equal(tail.count, 7);
    assert.deepEqual(Array.from(tail.labels), Array.from(ds.labels.subarray(5)));
    assert.deepEqual(tail.images, ds.images.subarray(5 * 768));

    // Deterministic: a second conversion is byte-identical.
    const again = await convertImageFolder({ root, out: join(dir, 'again'), resize: 20, crop: 16, shardSize: 5, concurrency: 3 });
    assert.deepEqual(again.shards.map((s) => s.imagesSha256), index.shards.map((s) => s.imagesSha256));
    await assert.rejects(convertImageFolder({ root, out, resize: 20, crop: 16 }), /index\.json exists/);

    // Integrity: a flipped byte fails the checksum, a truncated shard the size check, both naming the file.
    const shard1 = join(out, index.shards[1].images);
    const bytes = await readFile(shard1);
    bytes[10] ^= 0xff;
    await writeFile(shard1, bytes);
    await assert.rejects(readImageShards(out), (e: Error) => e.message.includes('shard-00001.bin') && /sha256/.test(e.message));
    await readImageShards(out, { verify: 'size' });
    await readImageShards(out, { start: 2 }); // the damaged shard is not read
    await writeFile(shard1, bytes.subarray(1));
    await assert.rejects(readImageShards(out, { verify: 'size' }), /shard-00001\.bin: truncated: shorter than the 3840 bytes index\.json says/);
    await assert.rejects(readImageShards(out, { start: 2, end: 4 }), /shard range 2\.\.4 is outside 0\.\.3/);
    await rm(join(out, 'index.json'));
    await assert.rejects(readImageShards(out), /index\.json: missing/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('preprocessImage: shorter side resize then centre crop; greyscale and alpha become RGB', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-prep-'));
  try {
    // 100x50, left 50 columns black, right 50 white. Shorter side 50 -> 16: 32x16, crop 16 keeps
    // resized columns 8..23, i.e. source 25..74: left half black, right half white.
    const raw = Buffer.alloc(100 * 50 * 3);
    for (let y = 0; y < 50; y++) for (let x = 50; x < 100; x++) raw.fill(255, (y * 100 + x) * 3, (y * 100 + x) * 3 + 3);
    const halves = join(dir, 'halves.png');
    await sharp(raw, { raw: { width: 100, height: 50, channels: 3 } }).png().toFile(halves);
    const px = await preprocessImage(halves, 16, 16);
    assert.equal(px.length, 16 * 16 * 3);
    assert.ok(px[(8 * 16 + 2) * 3] < 10 && px[(8 * 16 + 13) * 3] > 245, `left ${px[(8 * 16 + 2) * 3]} right ${px[(8 * 16 + 13) * 3]}`);

    // EXIF orientation 6 (display rotated 90 degrees clockwise). Stored 100x50 with vertical stripes
    // black 0-24 | white 25-74 | black 75-99, so it displays as 50x100 with horizontal stripes.
    // Auto-orient, shorter side 50 -> 16 (16x32), centre crop rows 8..23 = display rows 25..74:
    // all white. Ignoring the orientation would squash all three stripes into the crop.
    const stripes = Buffer.alloc(100 * 50 * 3);
    for (let y = 0; y < 50; y++) for (let x = 25; x < 75; x++) stripes.fill(255, (y * 100 + x) * 3, (y * 100 + x) * 3 + 3);
    const rotated = join(dir, 'rotated.jpg');
    await sharp(stripes, { raw: { width: 100, height: 50, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toFile(rotated);
    const r = await preprocessImage(rotated, 16, 16);
    assert.ok(Math.min(...r) > 235, `rotated crop should be all white, min ${Math.min(...r)}`);

    const grey = join(dir, 'grey.jpg');
    await sharp({ create: { width: 30, height: 30, channels: 3, background: { r: 128, g: 128, b: 128 } } }).toColourspace('b-w').jpeg().toFile(grey);
    assert.equal((await sharp(grey).metadata()).channels, 1);
    const g = await preprocessImage(grey, 20, 20);
    assert.equal(g.length, 20 * 20 * 3);
    assert.ok(Math.abs(g[0] - 128) <= 3 && g[0] === g[1] && g[1] === g[2]);

    const alpha = join(dir, 'alpha.png');
    await sharp({ create: { width: 24, height: 24, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } }).png().toFile(alpha);
    const a = await preprocessImage(alpha, 24, 24);
    assert.equal(a.length, 24 * 24 * 3);

    const broken = join(dir, 'broken.JPEG');
    await writeFile(broken, 'not a jpeg');
    await assert.rejects(preprocessImage(broken, 16, 16), /image .*broken\.JPEG/);
    // With onUnreadable 'skip' the bad file is listed, not fatal.
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'n1'), { recursive: true });
    await writeFile(join(tree, 'n1', 'broken.JPEG'), 'not a jpeg');
    await solidJpeg(join(tree, 'n1', 'ok.JPEG'), 20, 20, [1, 2, 3]);
    await assert.rejects(convertImageFolder({ root: tree, out: join(dir, 'o1'), resize: 16, crop: 16 }), /broken\.JPEG/);
    const index = await convertImageFolder({ root: tree, out: join(dir, 'o2'), resize: 16, crop: 16, onUnreadable: 'skip' });
    assert.equal(index.count, 1);
    assert.equal(index.skipped.length, 1);
    assert.match(index.skipped[0].file, /broken\.JPEG$/);
    await assert.rejects(convertImageFolder({ root: tree, out: join(dir, 'o3'), resize: 16, crop: 20 }), /crop 20 is larger/);
    await assert.rejects(convertImageFolder({ root: tree, out: join(dir, 'o4'), classes: ['n0'] }), /n1 is not in the given class list/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('converter: grey and rectangular crops, written straight into a store prefix and read back from it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-convert-store-'));
  try {
    const root = join(dir, 'train');
    await makeTree(root);
    const store = new FileStore(join(dir, 'store'));
    const out = storeFiles(store, 'datasets/tiny/train');
    const index = await convertImageFolder({ root, out, resize: 24, crop: { height: 12, width: 20 }, channels: 1, shardSize: 5, concurrency: 2 });
    assert.deepEqual([index.height, index.width, index.channels], [12, 20, 1]);
    assert.deepEqual(index.preprocessing, { resizeShorterSide: 24, centreCrop: { height: 12, width: 20 }, colourspace: 'b-w' });
    assert.deepEqual(await store.list('datasets/tiny/train/'), [
      'datasets/tiny/train/index.json',
      ...['00000', '00001', '00002'].flatMap((n) => [`datasets/tiny/train/shard-${n}.bin`, `datasets/tiny/train/shard-${n}.labels`]),
    ]);
    const ds = await readImageShards(out);
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [12, 12, 20, 1]);
    for (let i = 0; i < ds.count; i++) {
      // Every pixel is libvips' grey of the class colour, within JPEG error.
      const [r, g, b] = COLOURS[index.classes[ds.labels[i]]];
      const grey = (await sharp(Buffer.from([r, g, b]), { raw: { width: 1, height: 1, channels: 3 } }).toColourspace('b-w').raw().toBuffer())[0];
      for (const value of ds.images.subarray(i * 240, (i + 1) * 240)) assert.ok(Math.abs(value - grey) <= 8, `image ${i}: ${value}, expected about ${grey}`);
    }
    // The same tree in RGB at another size: 16x16 from a shorter side of 16.
    const rgb = await convertImageFolder({ root, out: storeFiles(store, 'datasets/tiny-rgb/train'), resize: 16, crop: 16, shardSize: 12 });
    assert.deepEqual([rgb.channels, rgb.preprocessing?.colourspace, rgb.shards.length], [3, 'srgb', 1]);
    await assert.rejects(convertImageFolder({ root, out, resize: 24, crop: 12, channels: 1 }), /datasets\/tiny\/train\/index\.json exists/);
    await assert.rejects(convertImageFolder({ root, out: join(dir, 'x'), resize: 16, crop: { height: 12, width: 20 } }), /crop 12x20 is larger than the resized shorter side 16/);
    await assert.rejects(convertImageFolder({ root, out: join(dir, 'y'), channels: 2 as 3 }), /channels must be 1 or 3/);
    // An index whose crop or colourspace contradicts its geometry is refused, naming the field.
    const bad = { ...index, preprocessing: { ...index.preprocessing, colourspace: 'srgb' } };
    await store.put('datasets/tiny/train/index.json', JSON.stringify(bad));
    await assert.rejects(readShardIndex(out), /index\.json: invalid: preprocessing\.colourspace is srgb for 1-channel images/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('convert-imagenet script: --out s3-style store locations and --store/--prefix, --crop HxW, --channels 1', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-convert-cli-'));
  try {
    const root = join(dir, 'train');
    await makeTree(root);
    const storeDir = join(dir, 'store');
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'scripts/convert-imagenet.ts', ...args], { encoding: 'utf8', cwd: process.cwd() });
    const ok = run(['--root', root, '--store', storeDir, '--prefix', 'datasets/cli/train', '--resize', '20', '--crop', '10x16', '--channels', '1', '--shard-size', '4']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).count, 12);
    const index = await readShardIndex(storeFiles(new FileStore(storeDir), 'datasets/cli/train'));
    assert.deepEqual([index.height, index.width, index.channels, index.shards.length], [10, 16, 1, 3]);
    const val = run(['--root', root, '--out', join(dir, 'val'), '--classes-from', join(storeDir, 'datasets/cli/train'), '--resize', '16', '--crop', '16']);
    assert.equal(val.status, 0, val.stderr);
    assert.deepEqual((await readShardIndex(join(dir, 'val'))).classes, index.classes);
    const bad = run(['--root', root, '--out', join(dir, 'z'), '--channels', '2']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--channels must be 1 or 3, got 2/);
    const noPrefix = run(['--root', root, '--out', 's3://some-bucket']);
    assert.match(noPrefix.stderr, /give a key prefix under the bucket/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
