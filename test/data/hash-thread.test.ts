import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256HexShared, sharedBytes } from '../../src/data/hash-thread.ts';

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
