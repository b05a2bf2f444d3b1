import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { FileStore, S3Store, openStore, parseStoreLocation } from '../../src/store/index.ts';

describe('openStore', () => {
  it('opens s3:// locations as S3Store with bucket and prefix', () => {
    const store = openStore('s3://emo-bucket/team/a/', { s3: { region: 'eu-west-1' } });
    assert.ok(store instanceof S3Store, 'expected: store instanceof S3Store');
    assert.equal(store.bucket, 'emo-bucket');
    assert.equal(store.keyPrefix, 'team/a/');
    assert.equal(store.location, 's3://emo-bucket/team/a');
    store.client.destroy();
    const bare = openStore('s3://emo-bucket', { s3: { region: 'eu-west-1' } });
    assert.ok(bare instanceof S3Store, 'expected: bare instanceof S3Store');
    assert.equal(bare.keyPrefix, '');
    bare.client.destroy();
  });

  it('opens file:// URLs and plain paths as FileStore', () => {
    const fromUrl = openStore('file:///tmp/emo%20dir/store');
    assert.ok(fromUrl instanceof FileStore, 'expected: fromUrl instanceof FileStore');
    assert.equal(fromUrl.root, '/tmp/emo dir/store');
    assert.equal(fromUrl.location, 'file:///tmp/emo%20dir/store');
    const relative = openStore('.emo-dir/store');
    assert.ok(relative instanceof FileStore, 'expected: relative instanceof FileStore');
    assert.equal(relative.root, resolve('.emo-dir/store'));
    assert.equal((openStore('/abs/dir') as FileStore).root, '/abs/dir');
  });

  it('rejects what it cannot open, saying why', () => {
    assert.throws(() => openStore(''), /empty/);
    assert.throws(() => openStore('s3://'), /names no bucket/);
    assert.throws(() => openStore('s3://Bad_Bucket/x'), /invalid S3 bucket name/);
    assert.throws(() => openStore('s3://b-1/../x'), /invalid store key/);
    assert.throws(() => openStore('gs://bucket/x'), /unsupported scheme gs:\/\//);
    assert.throws(() => openStore('s3:bucket'), /malformed URL/);
    assert.throws(() => openStore('file://host/share'), /not a valid file URL/);
  });

  it('parses without opening', () => {
    assert.deepEqual(parseStoreLocation('s3://b-1/p/q'), { kind: 's3', bucket: 'b-1', prefix: 'p/q' });
    assert.deepEqual(parseStoreLocation('./x'), { kind: 'file', path: './x' });
  });
});
