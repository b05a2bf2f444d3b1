import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StreamPlan, streamOrder } from '../../src/data/stream-order.ts';

const shardCounts = fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 8 });

test('streamOrder: every selected image exactly once, whatever the shards, buffer and seed', () => {
  fc.assert(
    fc.property(shardCounts, fc.integer({ min: 1, max: 60 }), fc.nat(1000), fc.nat(5), fc.boolean(), fc.double({ min: 0, max: 1, noNaN: true }), (counts, buffer, seed, epoch, shuffle, density) => {
      const total = counts.reduce((a, b) => a + b, 0);
      // A deterministic selection of about `density` of the images.
      const selected = Uint8Array.from({ length: total }, (_, i) => (((i * 2654435761) >>> 0) % 1000 < density * 1000 ? 1 : 0));
      const order = streamOrder({ shardCounts: counts, shuffle, seed, epoch, shuffleBuffer: buffer, selected });
      const expected = [...selected.keys()].filter((i) => selected[i] === 1);
      assert.deepEqual([...order].sort((a, b) => a - b), expected);
      if (!shuffle) assert.deepEqual([...order], expected, 'unshuffled streams are in index order');
    }),
    { numRuns: 200 },
  );
});

test('streamOrder: same seed and epoch give the same order; another seed or epoch another one', () => {
  const options = { shardCounts: [100, 100, 100, 57], shuffle: true, seed: 7, epoch: 0, shuffleBuffer: 64 };
  const order = streamOrder(options);
  assert.deepEqual(streamOrder(options), order);
  assert.notDeepEqual(streamOrder({ ...options, seed: 8 }), order);
  assert.notDeepEqual(streamOrder({ ...options, epoch: 1 }), order);
  // Shards mix: the first 100 images come from more than one shard (the buffer takes 64 of them
  // from the first shard visited, the rest are drawn while the next shards arrive).
  const shardOf = (i: number): number => Math.min(3, Math.floor(i / 100));
  assert.ok(new Set([...order.subarray(0, 100)].map(shardOf)).size > 1);
});

test('StreamPlan: the buffer never holds more than its capacity; memory does not depend on the set size', () => {
  for (const total of [500, 5000]) {
    const plan = new StreamPlan({ shardCounts: Array.from({ length: total / 100 }, () => 100), shuffle: true, seed: 1, epoch: 0, shuffleBuffer: 32 });
    assert.equal(plan.capacity, 32);
    let maxFilled = 0;
    let emitted = 0;
    for (const event of plan.events()) {
      maxFilled = Math.max(maxFilled, plan.filled);
      if (event.kind === 'emit') emitted++;
      if (event.kind === 'push') assert.ok(event.slot < 32);
    }
    assert.equal(maxFilled, 32);
    assert.equal(emitted, total);
  }
  // A buffer larger than the set is capped at the set's size.
  assert.equal(new StreamPlan({ shardCounts: [3, 4], shuffle: true, seed: 1, epoch: 0, shuffleBuffer: 1000 }).capacity, 7);
  assert.throws(() => new StreamPlan({ shardCounts: [3], shuffle: true, seed: 1, epoch: 0, shuffleBuffer: 0 }), /shuffleBuffer must be a positive integer/);
});
