import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDataset } from '../../src/data/dataset.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import {
  arrayBatches,
  batchCount,
  computeChannelStats,
  epochOrder,
  pixelMap,
  transformImage,
} from '../../src/data/batches.ts';
import type { ArrayBatch, BatchOptions } from '../../src/data/batches.ts';

/** n images of h x w x c where pixel (i, y, x, ch) = (i*7 + y*5 + x*3 + ch*11) % 256, label i % classes. */
function synthetic(n: number, h: number, w: number, c: number, classes = 3): ImageDataset {
  const images = new Uint8Array(n * h * w * c);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) images[((i * h + y) * w + x) * c + ch] = (i * 7 + y * 5 + x * 3 + ch * 11) % 256;
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  return createDataset({ name: 'synthetic', images, labels, height: h, width: w, channels: c, classes });
}

function collect(dataset: ImageDataset, options: BatchOptions): ArrayBatch[] {
  return [...arrayBatches(dataset, options)];
}

test('every index appears exactly once per epoch; sizes and dropLast', () => {
  const ds = synthetic(103, 4, 4, 1);
  for (const dropLast of [false, true]) {
    const got = collect(ds, { batchSize: 10, seed: 1, epoch: 2, dropLast });
    assert.equal(got.length, batchCount(103, 10, dropLast));
    assert.equal(got.length, dropLast ? 10 : 11);
    const seen = new Uint8Array(103);
    for (const b of got) {
      assert.equal(b.x.length, b.indices.length * 16);
      assert.deepEqual(b.shape, [b.indices.length, 4, 4, 1]);
      for (const i of b.indices) seen[i]++;
    }
    const total = seen.reduce((a, v) => a + v, 0);
    assert.equal(total, dropLast ? 100 : 103);
    assert.ok(seen.every((v) => v <= 1));
  }
});

test('same seed + epoch gives identical batches (with augmentation); other epochs differ', () => {
  const ds = synthetic(50, 8, 8, 3);
  const options: BatchOptions = { batchSize: 16, seed: 5, epoch: 3, augment: { cropPadding: 2, flip: true } };
  const a = collect(ds, options);
  const b = collect(ds, options);
  assert.deepEqual(a, b);
  const other = collect(ds, { ...options, epoch: 4 });
  assert.notDeepEqual(a[0].indices, other[0].indices);
  // Augmentation does not change the order (separate RNG streams).
  const plain = collect(ds, { ...options, augment: false });
  assert.deepEqual(plain.map((x) => x.indices), a.map((x) => x.indices));
  // Resuming mid-epoch yields the same tail.
  const resumed = collect(ds, { ...options, startBatch: 2 });
  assert.deepEqual(resumed, a.slice(2));
});

test('no shuffle keeps data set order; indices option restricts and validates', () => {
  const ds = synthetic(10, 2, 2, 1);
  const [batch] = collect(ds, { batchSize: 10, shuffle: false });
  assert.deepEqual(Array.from(batch.indices), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(Array.from(batch.y), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
  assert.ok(Math.abs(batch.x[4] - ds.images[4] / 255) < 1e-6);
  const sub = epochOrder(10, { indices: [7, 3, 5], seed: 1 });
  assert.deepEqual(Array.from(sub).sort(), [3, 5, 7]);
  assert.throws(() => epochOrder(10, { indices: [10] }), /outside 0\.\.9/);
});

test('transformImage: crop offsets, zero padding and flip land pixels where expected', () => {
  const h = 5;
  const w = 6;
  const c = 2;
  const src = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) src[(y * w + x) * c + ch] = 1 + y * 40 + x * 6 + ch;
  const px = (y: number, x: number, ch: number) => (y < 0 || y >= h || x < 0 || x >= w ? 0 : src[(y * w + x) * c + ch]);
  const map = pixelMap('raw', c);
  const out = new Float32Array(h * w * c);
  for (const t of [
    { dy: 0, dx: 0, flip: false },
    { dy: 2, dx: -1, flip: false },
    { dy: -2, dx: 3, flip: true },
    { dy: 0, dx: 0, flip: true },
  ]) {
    transformImage(src, 0, h, w, c, t, map, out, 0);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) {
          const sx = (t.flip ? w - 1 - x : x) + t.dx;
          assert.equal(out[(y * w + x) * c + ch], px(y + t.dy, sx, ch), `transform ${JSON.stringify(t)} at ${y},${x},${ch}`);
        }
  }
  // Pure flip: first column is the source's last column.
  transformImage(src, 0, h, w, c, { dy: 0, dx: 0, flip: true }, map, out, 0);
  assert.equal(out[0], src[(w - 1) * c]);
  // Padding is raw 0, i.e. the bias after normalisation.
  const norm = pixelMap({ mean: [0.5, 0.25], std: [0.5, 0.25] }, c);
  transformImage(src, 0, h, w, c, { dy: -1, dx: 0, flip: false }, norm, out, 0);
  assert.equal(out[0], -1);
  assert.equal(out[1], -1);
  assert.ok(Math.abs(out[w * c] - (src[0] / 255 - 0.5) / 0.5) < 1e-6);
});

test('augmented batches are crops/flips of the right image within the padding', () => {
  const ds = synthetic(20, 6, 6, 1);
  const pad = 2;
  const map = pixelMap('raw', 1);
  const candidate = new Float32Array(36);
  let flips = 0;
  let shifted = 0;
  for (const batch of arrayBatches(ds, { batchSize: 7, seed: 11, augment: { cropPadding: pad, flip: true }, normalize: 'raw' })) {
    batch.indices.forEach((index, i) => {
      const got = batch.x.subarray(i * 36, (i + 1) * 36);
      let matched = false;
      for (let dy = -pad; dy <= pad && !matched; dy++)
        for (let dx = -pad; dx <= pad && !matched; dx++)
          for (const flip of [false, true]) {
            transformImage(ds.images, index * 36, 6, 6, 1, { dy, dx, flip }, map, candidate, 0);
            if (candidate.every((v, k) => v === got[k])) {
              matched = true;
              if (flip) flips++;
              if (dy !== 0 || dx !== 0) shifted++;
              break;
            }
          }
      assert.ok(matched, `image ${index} is not a pad-${pad} crop/flip of the source`);
    });
  }
  assert.ok(flips > 2 && flips < 18, `flips ${flips} of 20`);
  assert.ok(shifted > 10, `only ${shifted} of 20 images were shifted`);
});

test('normalisation: computed stats give zero mean and unit std per channel', () => {
  const ds = synthetic(40, 8, 8, 3);
  const stats = computeChannelStats(ds);
  // Brute-force reference for channel 1.
  let sum = 0;
  let sumSq = 0;
  for (let p = 1; p < ds.images.length; p += 3) {
    sum += ds.images[p] / 255;
    sumSq += (ds.images[p] / 255) ** 2;
  }
  const n = ds.images.length / 3;
  assert.ok(Math.abs(stats.mean[1] - sum / n) < 1e-9);
  assert.ok(Math.abs(stats.std[1] - Math.sqrt(sumSq / n - (sum / n) ** 2)) < 1e-9);
  const [batch] = collect(ds, { batchSize: 40, normalize: stats, shuffle: false });
  for (let ch = 0; ch < 3; ch++) {
    let m = 0;
    let s = 0;
    for (let p = ch; p < batch.x.length; p += 3) m += batch.x[p];
    m /= n;
    for (let p = ch; p < batch.x.length; p += 3) s += (batch.x[p] - m) ** 2;
    assert.ok(Math.abs(m) < 1e-4, `channel ${ch} mean ${m}`);
    assert.ok(Math.abs(Math.sqrt(s / n) - 1) < 1e-4, `channel ${ch} std ${Math.sqrt(s / n)}`);
  }
  assert.throws(() => pixelMap({ mean: [0], std: [1] }, 3), /3-channel/);
  assert.throws(() => pixelMap({ mean: [0], std: [0] }, 1), /std must be > 0/);
  assert.throws(() => collect(ds, { batchSize: 4, augment: { cropPadding: 8 } }), /cropPadding/);
});
