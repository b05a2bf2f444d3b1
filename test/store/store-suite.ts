/**
 * The one behavioural contract of ObjectStore. FileStore and S3Store are twins: each test file
 * calls runStoreSuite with a factory, and every case here must pass for both.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AlreadyExistsError,
  InvalidKeyError,
  NotFoundError,
  getJson,
  getText,
  putJson,
  type ObjectStore,
} from '../../src/store/object-store.ts';

export interface StoreSuiteOptions {
  /**
   * False for backends that accept `IfNoneMatch` but do not enforce it (s3rver); the create-only
   * cases are then skipped here and must be covered elsewhere for that backend.
   */
  readonly enforcesCreateOnly?: boolean;
  /** Size of the "large body" case; the S3 store switches to multipart above 8 MiB. */
  readonly largeBodyBytes?: number;
}

/** `makeStore` must return an empty store, isolated from the stores of other cases. */
export function runStoreSuite(
  name: string,
  makeStore: () => Promise<ObjectStore>,
  options: StoreSuiteOptions = {},
): void {
  const enforcesCreateOnly = options.enforcesCreateOnly ?? true;
  const largeBodyBytes = options.largeBodyBytes ?? 9 * 1024 * 1024 + 123;
  const skipCreateOnly = enforcesCreateOnly ? false : `${name} does not enforce IfNoneMatch`;

  describe(`ObjectStore contract: ${name}`, () => {
    it('has a location naming its backend', async () => {
      const store = await makeStore();
      assert.match(store.location, /^(file|s3):\/\/\S+$/);
    });

    it('round-trips every byte value, UTF-8 strings and empty bodies', async () => {
      const store = await makeStore();
      const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) % 256);
      await store.put('runs/r1/blob.bin', bytes);
      assert.deepEqual(await store.get('runs/r1/blob.bin'), bytes);

      const text = 'Grüße, 剪枝 🚀\nline two';
      await store.put('runs/r1/text.txt', text, { contentType: 'text/plain; charset=utf-8' });
      assert.equal(await getText(store, 'runs/r1/text.txt'), text);

      await store.put('runs/r1/empty', new Uint8Array());
      assert.equal((await store.get('runs/r1/empty')).byteLength, 0);
      assert.equal(await store.exists('runs/r1/empty'), true);
    });

    it('reads byte ranges: inside, clipped at the end, past the end, empty; missing keys and bad ranges fail', async () => {
      const store = await makeStore();
      const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 13 + 5) % 256);
      await store.put('datasets/d/train/shard-00000.bin', bytes);
      const key = 'datasets/d/train/shard-00000.bin';
      assert.deepEqual(await store.getRange(key, 0, 10), bytes.subarray(0, 10));
      assert.deepEqual(await store.getRange(key, 377, 150), bytes.subarray(377, 527));
      assert.deepEqual(await store.getRange(key, 990, 100), bytes.subarray(990), 'a range running past the end is clipped');
      assert.deepEqual(await store.getRange(key, 0, 1000), bytes);
      assert.equal((await store.getRange(key, 1000, 5)).byteLength, 0, 'a range starting at the end is empty');
      assert.equal((await store.getRange(key, 5000, 5)).byteLength, 0, 'a range starting past the end is empty');
      assert.equal((await store.getRange(key, 10, 0)).byteLength, 0);
      // Into a caller's buffer: the bytes land there and the result is a view of it.
      const into = new Uint8Array(200).fill(0xee);
      const landed = await store.getRange(key, 377, 150, into);
      assert.deepEqual(landed, bytes.subarray(377, 527));
      assert.equal(landed.buffer, into.buffer);
      assert.deepEqual(into.subarray(0, 150), bytes.subarray(377, 527));
      assert.equal(into[150], 0xee, 'nothing past the range is written');
      assert.deepEqual(await store.getRange(key, 990, 100, into), bytes.subarray(990));
      await assert.rejects(store.getRange(key, 0, 300, into), /target holds 200 bytes/);
      for (const length of [0, 10]) {
        await assert.rejects(store.getRange('datasets/d/missing.bin', 0, length), (error: unknown) => {
          assert.ok(error instanceof NotFoundError, `expected NotFoundError, got ${String(error)}`);
          assert.equal(error.key, 'datasets/d/missing.bin');
          return true;
        });
      }
      await assert.rejects(store.getRange(key, -1, 10), /invalid byte range .*shard-00000\.bin: offset -1/);
      await assert.rejects(store.getRange(key, 0, 1.5), /invalid byte range/);
    });

    it('round-trips JSON through putJson/getJson', async () => {
      const store = await makeStore();
      const value = { runId: 'r1', subnetworks: [0, 1, 2], nested: { ok: true } };
      await putJson(store, 'runs/r1/manifest.json', value);
      assert.deepEqual(await getJson(store, 'runs/r1/manifest.json'), value);
    });

    it('round-trips a large body intact', async () => {
      const store = await makeStore();
      const big = new Uint8Array(largeBodyBytes);
      for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) % 251;
      big[big.length - 1] = 42;
      await store.put('runs/r1/targets/t1/model/weights.bin', big);
      const back = await store.get('runs/r1/targets/t1/model/weights.bin');
      assert.equal(back.byteLength, big.byteLength);
      assert.ok(Buffer.compare(back, big) === 0, 'large body differs after round trip');
    });

    it('overwrites an existing key with a plain put', async () => {
      const store = await makeStore();
      await store.put('runs/r1/status.json', 'first');
      await store.put('runs/r1/status.json', 'second, longer than the first');
      assert.equal(await getText(store, 'runs/r1/status.json'), 'second, longer than the first');
      await store.put('runs/r1/status.json', 'x');
      assert.equal(await getText(store, 'runs/r1/status.json'), 'x');
      assert.deepEqual(await store.list('runs/r1/'), ['runs/r1/status.json']);
    });

    it('creates a missing key with ifNoneMatch', async () => {
      const store = await makeStore();
      await store.put('runs/r1/subnets/000/front.json', '{"front":[]}', { ifNoneMatch: true });
      assert.equal(await getText(store, 'runs/r1/subnets/000/front.json'), '{"front":[]}');
    });

    it('refuses a create-only put of an existing key and keeps the old body', { skip: skipCreateOnly }, async () => {
      const store = await makeStore();
      await store.put('runs/r1/merge/joint-front.json', 'original');
      await assert.rejects(
        store.put('runs/r1/merge/joint-front.json', 'replacement', { ifNoneMatch: true }),
        (error: unknown) => {
          assert.ok(error instanceof AlreadyExistsError, `expected AlreadyExistsError, got ${String(error)}`);
          assert.equal(error.key, 'runs/r1/merge/joint-front.json');
          assert.equal(error.location, store.location);
          return true;
        },
      );
      assert.equal(await getText(store, 'runs/r1/merge/joint-front.json'), 'original');
    });

    it('lets exactly one of several racing create-only writers win', { skip: skipCreateOnly }, async () => {
      const store = await makeStore();
      const writers = Array.from({ length: 8 }, (_, i) => `writer-${i}`);
      const results = await Promise.allSettled(
        writers.map((body) => store.put('runs/r1/report.json', body, { ifNoneMatch: true })),
      );
      const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [writers[i]] : []));
      assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
      for (const result of results) {
        if (result.status === 'rejected') assert.ok(result.reason instanceof AlreadyExistsError, 'expected: result.reason instanceof AlreadyExistsError');
      }
      assert.equal(await getText(store, 'runs/r1/report.json'), winners[0]);
    });

    it('lists by prefix, sorted in byte order, including nested keys', async () => {
      const store = await makeStore();
      const keys = [
        'runs/r1/subnets/010/front.json',
        'runs/r1/subnets/001/checkpoints/gen-000002.json',
        'runs/r1/subnets/001/checkpoints/gen-000010.json',
        'runs/r1/subnets/001/front.json',
        'runs/r1/spec.json',
        'runs/r10/spec.json',
        'runs/r1-b/spec.json',
        'runs/r1.b/spec.json',
        'registry/resnet20/prune.json',
        'a',
      ];
      await Promise.all(keys.map((key) => store.put(key, key)));

      // '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30): a walk of nested directories gives a
      // different order than byte order, so this checks the sort, not the walk.
      assert.deepEqual(await store.list('runs/r1'), [
        'runs/r1-b/spec.json',
        'runs/r1.b/spec.json',
        'runs/r1/spec.json',
        'runs/r1/subnets/001/checkpoints/gen-000002.json',
        'runs/r1/subnets/001/checkpoints/gen-000010.json',
        'runs/r1/subnets/001/front.json',
        'runs/r1/subnets/010/front.json',
        'runs/r10/spec.json',
      ]);
      assert.deepEqual(await store.list('runs/r1/'), [
        'runs/r1/spec.json',
        'runs/r1/subnets/001/checkpoints/gen-000002.json',
        'runs/r1/subnets/001/checkpoints/gen-000010.json',
        'runs/r1/subnets/001/front.json',
        'runs/r1/subnets/010/front.json',
      ]);
      // A prefix that ends inside a segment matches by string, not by directory.
      assert.deepEqual(await store.list('runs/r1/subnets/0'), [
        'runs/r1/subnets/001/checkpoints/gen-000002.json',
        'runs/r1/subnets/001/checkpoints/gen-000010.json',
        'runs/r1/subnets/001/front.json',
        'runs/r1/subnets/010/front.json',
      ]);
      assert.deepEqual(await store.list('runs/r1/subnets/001/checkpoints/gen-'), [
        'runs/r1/subnets/001/checkpoints/gen-000002.json',
        'runs/r1/subnets/001/checkpoints/gen-000010.json',
      ]);
      assert.deepEqual(await store.list(''), [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      assert.deepEqual(await store.list('runs/r1/spec.json'), ['runs/r1/spec.json']);
      assert.deepEqual(await store.list('runs/none/'), []);
      assert.deepEqual(await store.list('zzz'), []);
    });

    it('lists more than 1000 keys (one S3 page) completely and in order', async () => {
      const store = await makeStore();
      const count = 1003;
      const keys = Array.from({ length: count }, (_, i) => `runs/big/subnets/${String(i % 7).padStart(3, '0')}/f-${i}`);
      // Bounded parallelism: enough to be quick, not so much that an emulator drops connections.
      for (let i = 0; i < keys.length; i += 50) {
        await Promise.all(keys.slice(i, i + 50).map((key) => store.put(key, '')));
      }
      await store.put('runs/other/x', '');
      const listed = await store.list('runs/big/');
      assert.equal(listed.length, count);
      assert.deepEqual(listed, [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      assert.equal(new Set(listed).size, count, 'a page was listed twice');
    });

    it('reports existence and deletes', async () => {
      const store = await makeStore();
      assert.equal(await store.exists('runs/r1/spec.json'), false);
      await store.put('runs/r1/spec.json', '{}');
      await store.put('runs/r1/manifest.json', '{}');
      assert.equal(await store.exists('runs/r1/spec.json'), true);
      // A prefix of stored keys is not itself an object.
      assert.equal(await store.exists('runs/r1'), false);
      assert.equal(await store.exists('runs'), false);

      await store.delete('runs/r1/spec.json');
      assert.equal(await store.exists('runs/r1/spec.json'), false);
      await assert.rejects(store.get('runs/r1/spec.json'), NotFoundError);
      assert.deepEqual(await store.list('runs/'), ['runs/r1/manifest.json']);
      // Deleting what is not there is no error.
      await store.delete('runs/r1/spec.json');
      await store.delete('never/existed');

      // A deleted key can be created again, create-only.
      await store.put('runs/r1/spec.json', 'again', { ifNoneMatch: true });
      assert.equal(await getText(store, 'runs/r1/spec.json'), 'again');
    });

    it('throws NotFoundError naming key and location for a missing key', async () => {
      const store = await makeStore();
      await store.put('runs/r1/a/b', 'x');
      for (const key of ['runs/r1/missing.json', 'runs/r1/a', 'nothing']) {
        await assert.rejects(store.get(key), (error: unknown) => {
          assert.ok(error instanceof NotFoundError, `${key}: expected NotFoundError, got ${String(error)}`);
          assert.equal(error.key, key);
          assert.match(error.message, new RegExp(store.location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
          return true;
        });
      }
    });

    it('rejects keys that could escape the store or are ambiguous', async () => {
      const store = await makeStore();
      const invalid = ['../x', 'a/../../x', '/abs', 'a//b', 'a\\b', '..\\x', './a', 'a/.', '', 'a/', 'nul\0byte'];
      for (const key of invalid) {
        const label = JSON.stringify(key);
        await assert.rejects(store.put(key, 'x'), InvalidKeyError, `put ${label}`);
        await assert.rejects(store.put(key, 'x', { ifNoneMatch: true }), InvalidKeyError, `put create-only ${label}`);
        await assert.rejects(store.get(key), InvalidKeyError, `get ${label}`);
        await assert.rejects(store.exists(key), InvalidKeyError, `exists ${label}`);
        await assert.rejects(store.delete(key), InvalidKeyError, `delete ${label}`);
      }
      for (const prefix of ['../', '/abs', 'a//', 'a\\b', '..']) {
        await assert.rejects(store.list(prefix), InvalidKeyError, `list ${JSON.stringify(prefix)}`);
      }
      assert.deepEqual(await store.list(''), [], 'a rejected put wrote something');
    });
  });
}
