// The data set probe reads split sizes, classes and geometry from file sizes and indices (no
// pixels), on files written here in the real formats, and names what is missing.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { convertImageFolder } from '../../src/data/image-folder-convert.ts';
import { loadDataset } from '../../src/data/load.ts';
import { probeDataset } from '../../src/data/probe.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-probe-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `count` CIFAR records with `labelBytes` label bytes each (all labels 0). */
function records(count: number, labelBytes: number): Buffer {
  return Buffer.alloc(count * (labelBytes + 3072), 0);
}

describe('probeDataset', () => {
  it('fashion-mnist: the split rule fixes the sizes; the package files are checked', async () => {
    const probe = await probeDataset('fashion-mnist');
    assert.ok(probe !== undefined);
    assert.deepEqual([probe.train.images, probe.test.images, probe.classes, probe.imageShape, probe.filesChecked], [60_000, 10_000, 10, [28, 28, 1], true]);
    await mkdir(join(dir, 'fm-empty'));
    await assert.rejects(probeDataset(`fashion-mnist:${join(dir, 'fm-empty')}`), /fashion-mnist: missing source file .*fm-empty\/0\.json/);
  });

  it('cifar10 and cifar100: images counted from the record sizes, equal to what the loader reads', async () => {
    const c10 = join(dir, 'c10', 'cifar-10-batches-bin');
    await mkdir(c10, { recursive: true });
    for (let b = 1; b <= 5; b++) await writeFile(join(c10, `data_batch_${b}.bin`), records(b, 1));
    await writeFile(join(c10, 'test_batch.bin'), records(4, 1));
    const probe = await probeDataset(`cifar10:${join(dir, 'c10')}`);
    assert.deepEqual([probe?.train.images, probe?.test.images, probe?.classes, probe?.imageShape, probe?.train.location], [15, 4, 10, [32, 32, 3], c10]);
    assert.equal((await loadDataset(`cifar10:${join(dir, 'c10')}`)).count, 15);

    const c100 = join(dir, 'c100');
    await mkdir(c100);
    await writeFile(join(c100, 'train.bin'), records(6, 2));
    await writeFile(join(c100, 'test.bin'), records(2, 2));
    assert.deepEqual((await probeDataset(`cifar100:${c100}`))?.classes, 100);
    assert.deepEqual((await probeDataset(`cifar100-coarse:${c100}`))?.classes, 20);
    assert.equal((await probeDataset(`cifar100:${c100}`))?.train.images, 6);

    await truncate(join(c100, 'test.bin'), 3000);
    await assert.rejects(probeDataset(`cifar100:${c100}`), /CIFAR file .*c100\/test\.bin: size 3000 bytes is not a positive multiple of the 3074-byte record/);
    await unlink(join(c10, 'data_batch_3.bin'));
    await assert.rejects(probeDataset(`cifar10:${join(dir, 'c10')}`), /cifar10: missing .*data_batch_3\.bin/);
    await assert.rejects(probeDataset('cifar10:/does/not/exist'), /cifar10: no data_batch_1\.bin in \/does\/not\/exist or \/does\/not\/exist\/cifar-10-batches-bin/);
  });

  it('imagenet: counts and classes from index.json; a missing shard file is named', async () => {
    const tree = join(dir, 'jpeg');
    for (const wnid of ['n1', 'n2', 'n3']) {
      await mkdir(join(tree, wnid), { recursive: true });
      for (const name of ['a', 'b']) {
        await sharp({ create: { width: 20, height: 20, channels: 3, background: '#808080' } }).jpeg().toFile(join(tree, wnid, `${name}.JPEG`));
      }
    }
    const imagenet = join(dir, 'imagenet');
    await convertImageFolder({ root: tree, out: join(imagenet, 'train'), resize: 16, crop: 16, shardSize: 4 });
    await convertImageFolder({ root: tree, out: join(imagenet, 'val'), resize: 16, crop: 16, classes: ['n1', 'n2', 'n3'] });
    const probe = await probeDataset(`imagenet:${imagenet}`);
    assert.deepEqual([probe?.train.images, probe?.test.images, probe?.classes, probe?.imageShape], [6, 6, 3, [16, 16, 3]]);
    await unlink(join(imagenet, 'train', 'shard-00001.labels'));
    await assert.rejects(probeDataset(`imagenet:${imagenet}`), /image shards .*train\/shard-00001\.labels: missing/);
    await assert.rejects(probeDataset(`imagenet:${join(dir, 'nothing')}`), /imagenet train: no index\.json in/);
  });

  it('files: false reads nothing and returns only what the form fixes', async () => {
    const cifar = await probeDataset('cifar10:/does/not/exist', { files: false });
    assert.deepEqual([cifar?.train.images, cifar?.test.images, cifar?.classes, cifar?.filesChecked], [50_000, 10_000, 10, false]);
    assert.equal((await probeDataset('fashion-mnist:/does/not/exist', { files: false }))?.train.images, 60_000);
    assert.equal(await probeDataset('imagenet:/does/not/exist', { files: false }), undefined);
  });
});
