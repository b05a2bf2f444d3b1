import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDataset, classCounts, subsetDataset } from '../../src/data/dataset.ts';
import { stratifiedSample } from '../../src/data/sampling.ts';

const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 70 ? i % 3 : 2));
const ds = createDataset({ name: 'imbalanced', images: new Uint8Array(100), labels, height: 1, width: 1, channels: 1, classes: 4 });

test('stratifiedSample: per-class counts, deterministic, sorted, disjoint with exclude', () => {
  const a = stratifiedSample(ds, { perClass: 10, seed: 3 });
  assert.deepEqual(classCounts(subsetDataset(ds, a)), [10, 10, 10, 0]);
  assert.deepEqual(a, stratifiedSample(ds, { perClass: 10, seed: 3 }));
  assert.notDeepEqual(a, stratifiedSample(ds, { perClass: 10, seed: 4 }));
  assert.deepEqual(Array.from(a), Array.from(a).sort((x, y) => x - y));
  const b = stratifiedSample(ds, { perClass: 10, seed: 3, exclude: a });
  assert.equal(b.length, 30);
  const inA = new Set(a);
  assert.ok(b.every((i) => !inA.has(i)));
  // Classes with fewer images than perClass give all they have.
  assert.deepEqual(classCounts(subsetDataset(ds, stratifiedSample(ds, { perClass: 40 }))), [24, 23, 40, 0]);
  assert.throws(() => stratifiedSample(ds, { perClass: 0 }), /perClass must be a positive integer/);
  assert.throws(() => stratifiedSample(ds, { perClass: 1, exclude: [100] }), /exclude\[0\] = 100/);
});

test('stratifiedSample total: even split, remainder to low classes, shortfall redistributed', () => {
  // 31 over 4 classes: quotas 8,8,8,7; class 3 has no images, so its 7 go round-robin from class 0.
  assert.deepEqual(classCounts(subsetDataset(ds, stratifiedSample(ds, { total: 31 }))), [11, 10, 10, 0]);
  assert.deepEqual(classCounts(subsetDataset(ds, stratifiedSample(ds, { total: 30 }))), [10, 10, 10, 0]);
  const big = stratifiedSample(ds, { total: 90 });
  assert.deepEqual(classCounts(subsetDataset(ds, big)), [24, 23, 43, 0]);
  assert.equal(stratifiedSample(ds, { total: 1000 }).length, 100);
  assert.throws(() => stratifiedSample(ds, { total: 5, perClass: 5 }), /exactly one of perClass and total/);
});
