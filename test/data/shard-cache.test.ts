import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardCache } from '../../src/data/shard-cache.ts';

const sha = (c: string): string => c.repeat(64);

test('shard cache: entries by content hash; least recently used go first past the budget; damaged entries are dropped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-shard-cache-'));
  try {
    const logs: string[] = [];
    const cache = new ShardCache({ dir, maxBytes: 1000, log: (m) => logs.push(m) });
    const bytes = (value: number): Uint8Array => new Uint8Array(300).fill(value);
    assert.equal(await cache.writeFile(sha('a'), bytes(1)), true);
    assert.equal(await cache.writeFile(sha('b'), bytes(2)), true);
    assert.equal(await cache.writeImage(sha('c'), 7, bytes(3)), true);
    // Ages: a oldest, then b, then c (set explicitly: mtimes of quick writes can tie).
    await utimes(join(dir, 'files', sha('a')), 1000, 1000);
    await utimes(join(dir, 'files', sha('b')), 2000, 2000);
    await utimes(join(dir, 'images', sha('c'), '7'), 3000, 3000);
    // Reading a makes it the most recently used.
    assert.deepEqual(await cache.readFile(sha('a'), 300), bytes(1));
    // 1200 bytes > 1000: evict down to 800 by age: b, then c go; a (just used) and d stay.
    assert.equal(await cache.writeFile(sha('d'), bytes(4)), true);
    assert.deepEqual(await cache.readFile(sha('a'), 300), bytes(1));
    assert.deepEqual(await cache.readFile(sha('d'), 300), bytes(4));
    assert.equal(await cache.readFile(sha('b'), 300), undefined);
    assert.equal(await cache.readImage(sha('c'), 7, 300), undefined);
    assert.match(logs.join('\n'), /evicted 2 least recently used entries/);
    // Ranges of a cached file; a size that does not match the index is not served.
    assert.deepEqual(await cache.readFileRange(sha('d'), 300, 10, 5), new Uint8Array(5).fill(4));
    assert.equal(await cache.readFileRange(sha('d'), 301, 10, 5), undefined);
    await writeFile(join(dir, 'files', sha('a')), new Uint8Array(299));
    assert.equal(await cache.readFile(sha('a'), 300), undefined, 'a damaged entry is a miss');
    assert.deepEqual(await readdir(join(dir, 'files')), [sha('d')], 'and is removed');
    // Larger than the whole budget: not cached at all.
    assert.equal(await cache.writeFile(sha('e'), new Uint8Array(1001)), false);
    assert.throws(() => new ShardCache({ dir, maxBytes: -1 }), /maxBytes must be a non-negative integer/);
    await assert.rejects(cache.readFile('../etc/passwd', 1), /is not a sha256 hex digest/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
