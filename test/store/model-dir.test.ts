// A local model directory is copied by content: symlinks (the directory itself, a sub-directory,
// a weights file) are followed, and a link that loops back is refused with its path.
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileStore } from '../../src/store/file-store.ts';
import { checkModelDirectory, listModelFiles, ModelDirectoryError, uploadDirectory } from '../../src/store/model-dir.ts';

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'emo-dir-model-dir-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * `<name>/data/v3/` holds model.json and shards/part-1.bin; the weights file weights.bin is a link
 * into a shared cache; `<name>/model` is a link to data/v3 (the common `model -> /data/models/v3`).
 */
async function linkedModel(name: string): Promise<{ link: string; real: string }> {
  const base = join(root, name);
  const real = join(base, 'data', 'v3');
  await mkdir(join(real, 'shards'), { recursive: true });
  await mkdir(join(base, 'cache'), { recursive: true });
  await writeFile(join(real, 'model.json'), '{"modelTopology":{}}');
  await writeFile(join(real, 'shards', 'part-1.bin'), Buffer.from([1, 2, 3]));
  await writeFile(join(base, 'cache', 'weights-abc.bin'), Buffer.from([9, 8, 7, 6]));
  await symlink(join(base, 'cache', 'weights-abc.bin'), join(real, 'weights.bin'));
  const link = join(base, 'model');
  await symlink(real, link);
  return { link, real };
}

describe('model directories', () => {
  it('lists the files of a symlinked directory through every link, as the files they point to', async () => {
    const { link } = await linkedModel('listed');
    const files = await listModelFiles(link);
    assert.deepEqual(
      files.map((file) => file.relative),
      ['model.json', 'shards/part-1.bin', 'weights.bin'],
    );
    assert.deepEqual(await readFile(files[2].path), Buffer.from([9, 8, 7, 6]));
  });

  it('copies by content into a file store: regular files, no links, model.json last', async () => {
    const { link } = await linkedModel('copied');
    const store = new FileStore(join(root, 'store'));
    const keys = await uploadDirectory(store, link, 'runs/r1/model/');
    assert.deepEqual(keys, ['runs/r1/model/shards/part-1.bin', 'runs/r1/model/weights.bin', 'runs/r1/model/model.json']);
    for (const key of keys) {
      const info = await lstat(join(store.root, ...key.split('/')));
      assert.ok(info.isFile() && !info.isSymbolicLink(), `${key} is a regular file`);
    }
    assert.deepEqual(Buffer.from(await store.get('runs/r1/model/weights.bin')), Buffer.from([9, 8, 7, 6]));
    // Copying again (a resumed run) finds the same bytes and succeeds.
    assert.deepEqual(await uploadDirectory(store, link, 'runs/r1/model/'), keys);
  });

  it('refuses a symlink cycle, naming the link and where it leads', async () => {
    const { real, link } = await linkedModel('cycle');
    await symlink('..', join(real, 'shards', 'up'));
    await assert.rejects(listModelFiles(link), (error: Error) => {
      assert.ok(error instanceof ModelDirectoryError, error.name);
      assert.match(error.message, new RegExp(`${join(link, 'shards', 'up').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} leads back to ${real.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}, which contains it \\(a symlink cycle\\)`));
      return true;
    });
  });

  it('refuses a broken link, naming it', async () => {
    const { real, link } = await linkedModel('broken');
    await symlink(join(root, 'nowhere'), join(real, 'extra.bin'));
    await assert.rejects(listModelFiles(link), /extra\.bin is a broken symlink \(ENOENT\)/);
  });

  it('says what a path is when it is not a model directory, with the accepted forms', async () => {
    const { real, link } = await linkedModel('checked');
    assert.equal(await checkModelDirectory(link), link);
    assert.equal(await checkModelDirectory(join(real, 'model.json')), real);
    const forms = /; use one of: zoo:<name> .*a local directory holding model\.json/;
    await assert.rejects(checkModelDirectory(join(real, 'shards', 'part-1.bin')), (error: Error) => {
      assert.match(error.message, /part-1\.bin is not a directory holding model\.json: it is a file, not a model/);
      assert.match(error.message, forms);
      return true;
    });
    await assert.rejects(checkModelDirectory(join(real, 'shards')), /shards is not a directory holding model\.json: the directory has no model\.json/);
    await assert.rejects(checkModelDirectory(join(root, 'missing')), /missing is not a directory holding model\.json: it does not exist/);
  });
});
