import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { FileStore } from '../../src/store/file-store.ts';
import { InvalidKeyError, getText } from '../../src/store/object-store.ts';
import { runStoreSuite } from './store-suite.ts';

const base = await mkdtemp(join(tmpdir(), 'emo-dir-file-store-'));
after(() => rm(base, { recursive: true, force: true }));
let counter = 0;
const freshRoot = (): string => join(base, `store-${counter++}`);

runStoreSuite('FileStore', async () => new FileStore(freshRoot()));

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}

describe('FileStore specifics', () => {
  it('uses a file:// URL of the absolute root as its location, and creates the root lazily', async () => {
    const root = freshRoot();
    const store = new FileStore(root);
    assert.equal(store.location, pathToFileURL(root).href);
    assert.deepEqual(await store.list(''), []);
    assert.equal(await store.exists('a'), false);
    await store.put('a', 'x');
    assert.deepEqual(await readdir(root), ['a']);
  });

  it('leaves no temporary files behind after puts, create-only refusals and races', async () => {
    const root = freshRoot();
    const store = new FileStore(root);
    await store.put('runs/r/x.json', 'one');
    await store.put('runs/r/x.json', 'two');
    await store.put('runs/r/y.json', 'one', { ifNoneMatch: true });
    await store.put('runs/r/y.json', 'two', { ifNoneMatch: true }).catch(() => undefined);
    await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.put('runs/r/z.json', `${i}`, { ifNoneMatch: true })),
    );
    assert.deepEqual((await allFiles(root)).sort(), ['x.json', 'y.json', 'z.json']);
  });

  it('hides in-flight temporary files from list and refuses keys named like them', async () => {
    const root = freshRoot();
    const store = new FileStore(root);
    await store.put('runs/r/front.json', '{}');
    // What a put looks like between its write and its rename.
    await writeFile(join(root, 'runs/r/.front.json.emo-tmp-0123456789abcdef'), 'partial');
    assert.deepEqual(await store.list('runs/'), ['runs/r/front.json']);
    await assert.rejects(store.put('runs/r/.x.emo-tmp-0123456789abcdef', 'y'), InvalidKeyError);
    // Ordinary dot-files are valid keys.
    await store.put('runs/r/.hidden', 'h');
    assert.deepEqual(await store.list('runs/'), ['runs/r/.hidden', 'runs/r/front.json']);
  });

  it('never reads or writes through a symlinked directory that leads outside the root', async () => {
    const root = freshRoot();
    const outside = freshRoot();
    await mkdir(root, { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret'), 'secret');
    await symlink(outside, join(root, 'escape'));
    const store = new FileStore(root);
    await assert.rejects(store.get('escape/secret'), InvalidKeyError);
    await assert.rejects(store.put('escape/planted', 'x'), InvalidKeyError);
    await assert.rejects(store.put('escape/deeper/planted', 'x'), InvalidKeyError);
    await assert.rejects(store.delete('escape/secret'), InvalidKeyError);
    assert.deepEqual(await readdir(outside), ['secret']);
    // Symlinks are not objects, so list does not follow or show them.
    assert.deepEqual(await store.list(''), []);
  });

  it('works when the root itself is reached through a symlink', async () => {
    const real = freshRoot();
    await mkdir(real, { recursive: true });
    const link = `${real}-link`;
    await symlink(real, link);
    const store = new FileStore(link);
    await store.put('a/b', 'ok');
    assert.equal(await getText(store, 'a/b'), 'ok');
  });

  it('removes directories left empty by delete, so a key can later become a file', async () => {
    const root = freshRoot();
    const store = new FileStore(root);
    await store.put('a/b/c', 'x');
    await store.delete('a/b/c');
    assert.deepEqual(await readdir(root), []);
    await store.put('a', 'now a file');
    assert.equal(await getText(store, 'a'), 'now a file');
  });

  it('explains a key that collides with a directory of other keys', async () => {
    const store = new FileStore(freshRoot());
    await store.put('runs/r/model/weights.bin', 'w');
    await assert.rejects(store.put('runs/r/model', 'x'), /other keys are stored under runs\/r\/model\//);
    await assert.rejects(store.put('runs/r/model', 'x', { ifNoneMatch: true }), /other keys are stored under/);
    await assert.rejects(store.put('runs/r/model/weights.bin/inner', 'x'), /already stored as an object/);
  });

  it('never shows a reader a partial body while a large object is overwritten', async () => {
    const store = new FileStore(freshRoot());
    const a = new Uint8Array(4 * 1024 * 1024).fill(0x61);
    const b = new Uint8Array(4 * 1024 * 1024).fill(0x62);
    await store.put('blob', a);
    const writes = (async () => {
      for (let i = 0; i < 6; i++) await store.put('blob', i % 2 === 0 ? b : a);
    })();
    let reads = 0;
    let done = false;
    void writes.finally(() => {
      done = true;
    });
    while (!done) {
      const body = await store.get('blob');
      assert.equal(body.byteLength, a.byteLength);
      assert.ok(body[0] === body[body.length - 1], 'read a mix of two versions');
      reads++;
    }
    await writes;
    assert.ok(reads > 0, 'expected: reads > 0');
  });
});
