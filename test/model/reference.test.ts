import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyModelReference, MODEL_REFERENCE_FORMS, ModelReferenceError } from '../../src/model/reference.ts';

/** Every accepted form appears in a refusal, so the user sees what to write instead. */
function assertListsEveryForm(error: unknown): true {
  assert.ok(error instanceof ModelReferenceError, String(error));
  for (const row of MODEL_REFERENCE_FORMS) assert.ok(error.message.includes(row.form), `missing "${row.form}" in: ${error.message}`);
  assert.doesNotMatch(error.message, /\n/, 'one line');
  return true;
}

describe('classifyModelReference', () => {
  it('recognises each accepted form', () => {
    assert.deepEqual(classifyModelReference('zoo:resnet20'), { kind: 'zoo', ref: 'zoo:resnet20', name: 'resnet20' });
    for (const ref of ['./model', '../models/v3', '/data/models/v3', '~/models/v3', 'file:///data/models/v3']) {
      assert.equal(classifyModelReference(ref).kind, 'directory', ref);
    }
    assert.equal(classifyModelReference('s3://bucket/registry/r/model/').kind, 'store-url');
    assert.deepEqual(classifyModelReference('registry/r/model'), { kind: 'store-prefix', ref: 'registry/r/model', prefix: 'registry/r/model/' });
    assert.deepEqual(classifyModelReference('runs/x/model/'), { kind: 'store-prefix', ref: 'runs/x/model/', prefix: 'runs/x/model/' });
  });

  it('refuses URLs, saying models are not downloaded and listing the accepted forms', () => {
    for (const ref of ['http://example.com/model', 'https://example.com/model.json', 'ftp://host/m']) {
      assert.throws(() => classifyModelReference(ref), (error: Error) => {
        assert.match(error.message, new RegExp(`^"${ref.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" is a URL: models are not downloaded`));
        return assertListsEveryForm(error);
      });
    }
    assert.throws(() => classifyModelReference('gs://bucket/model'), (error: Error) => {
      assert.match(error.message, /has the scheme gs:, which is not a model reference/);
      return assertListsEveryForm(error);
    });
  });

  it('names the known zoo models for an unknown one', () => {
    assert.throws(() => classifyModelReference('zoo:nosuchnet'), /unknown zoo model in 'zoo:nosuchnet' \(known: resnet20, .*fmnist-resnet, .*unet\)/);
  });
});
