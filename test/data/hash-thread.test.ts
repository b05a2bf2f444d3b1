import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { prefaultShared, sha256HexShared, sharedBytes } from '../../src/data/hash-thread.ts';

const reference = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

test('sha256 on the helper thread: the digest of exactly the view given, concurrent digests each get their own', async () => {
  const shared = sharedBytes(1 << 20);
  assert.ok(shared.buffer instanceof SharedArrayBuffer);
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 2654435761) >>> 24;
  // Views at an offset into the shared buffer (a shard's images inside a larger pooled buffer),
  // an empty one, and ordinary memory (hashed on the calling thread).
  const views = [shared, shared.subarray(3, 70_001), shared.subarray(1 << 19), shared.subarray(5, 5), Uint8Array.from(shared.subarray(0, 4096))];
  const digests = await Promise.all(views.map((view) => sha256HexShared(view)));
  assert.deepEqual(digests, views.map(reference));
  assert.equal(new Set(digests).size, views.length);
  // The thread outlives a round of digests: a later one is still answered.
  assert.equal(await sha256HexShared(shared.subarray(11, 12)), reference(shared.subarray(11, 12)));
});

test('prefaulting on the helper thread leaves the bytes as they are, including ones written meanwhile', async () => {
  const shared = sharedBytes(3 * 4096 + 17);
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 31 + 7) & 0xff;
  const before = reference(shared);
  const prefaulting = prefaultShared(shared);
  // Written while the helper may be touching the same pages (a stream using a buffer being faulted in).
  shared[4096] = 0x5a;
  shared[shared.length - 1] = 0xa5;
  await prefaulting;
  assert.equal(shared[4096], 0x5a);
  assert.equal(shared[shared.length - 1], 0xa5);
  shared[4096] = (4096 * 31 + 7) & 0xff;
  shared[shared.length - 1] = ((shared.length - 1) * 31 + 7) & 0xff;
  assert.equal(reference(shared), before);
  await prefaultShared(shared.subarray(5, 5));
  await assert.rejects(prefaultShared(new Uint8Array(8)), /must live in a SharedArrayBuffer/);
});
