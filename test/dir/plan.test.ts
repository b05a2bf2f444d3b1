import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { saveModel } from '../../src/model/io.ts';
import { manifestSchema } from '../../src/dir/manifest.ts';
import { PlanError, planRun, readManifest } from '../../src/dir/plan.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import { FileStore, getJson, putJson } from '../../src/store/index.ts';
import type { RunSpecInput } from '../../src/schema/spec.ts';

const spec: RunSpecInput = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist' },
  targets: [{ kind: 'flopsCut', value: 0.5 }, { kind: 'paramsBudget', value: 100_000, name: 'small' }],
};

let dir: string;
let store: FileStore;

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-plan-'));
  store = new FileStore(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('planRun', () => {
  test('writes a valid manifest for zoo:fmnist-resnet with 3 sub-networks and returns only keys and ids', async () => {
    await putJson(store, 'runs/r1/spec.json', spec);
    const logged: string[] = [];
    const result = await planRun(store, 'r1', { log: (message) => logged.push(message), now: new Date('2026-01-01T00:00:00Z') });
    assert.deepEqual(result, {
      runId: 'r1',
      manifestKey: 'runs/r1/manifest.json',
      subnetworks: ['k1', 'k2', 'k3'],
      targets: ['flops-50', 'small'],
    });
    assert.deepEqual(logged, ['manifest written']);
    const manifest = manifestSchema.parse(await getJson(store, 'runs/r1/manifest.json'));
    assert.equal(manifest.model.name, 'fmnist-resnet');
    assert.deepEqual(manifest.model.inputShape, [28, 28, 1]);
    assert.equal(manifest.model.classes, 10);
    assert.equal(manifest.specKey, 'runs/r1/spec.json');
    assert.equal(manifest.division.subnetworks.length, 3);
    // The division's costs add up to the model's: pieces partition it, fixed + prunable = total.
    assert.equal(manifest.division.subnetworks.reduce((sum, s) => sum + s.macs, 0), manifest.model.macs);
    assert.equal(
      manifest.division.fixedMacs + manifest.division.subnetworks.reduce((sum, s) => sum + s.prunableMacs, 0),
      manifest.model.macs,
    );
    assert.deepEqual(manifest.targets, [
      { name: 'flops-50', kind: 'flopsCut', value: 0.5 },
      { name: 'small', kind: 'paramsBudget', value: 100_000 },
    ]);
    assert.equal((await readManifest(store, 'r1')).createdAt, '2026-01-01T00:00:00.000Z');
  });

  test('is idempotent: a retry with the same spec succeeds and keeps the first manifest', async () => {
    const before = await store.get('runs/r1/manifest.json');
    const logged: string[] = [];
    const again = await planRun(store, 'r1', { log: (message) => logged.push(message), now: new Date('2026-02-02T00:00:00Z') });
    assert.deepEqual(again.subnetworks, ['k1', 'k2', 'k3']);
    assert.match(logged[0], /same content/);
    assert.deepEqual(await store.get('runs/r1/manifest.json'), before);
  });

  test('a different manifest under the same run id is refused, naming the key and the fields', async () => {
    await putJson(store, 'runs/r2/spec.json', spec);
    await planRun(store, 'r2');
    // Changing the spec under the same run id changes the division.
    await store.put('runs/r2/spec.json', JSON.stringify({ ...spec, divide: { subnetworks: 2 } }));
    await assert.rejects(planRun(store, 'r2'), (error: Error) => {
      assert.ok(error instanceof PlanError, error.name);
      assert.match(error.message, /runs\/r2\/manifest\.json .*already exists with different content \(fields: division, subnetworks\)/);
      return true;
    });
  });

  test('a bad spec fails with the key and every bad field path', async () => {
    await putJson(store, 'runs/bad/spec.json', { model: 'zoo:fmnist-resnet', dataset: {}, targets: [{ kind: 'flopsCut', value: 1.5 }] });
    await assert.rejects(planRun(store, 'bad'), (error: Error) => {
      assert.ok(error instanceof ValidationError, error.name);
      assert.match(error.message, /runs\/bad\/spec\.json/);
      assert.match(error.message, /dataset\.name/);
      assert.match(error.message, /targets\[0\]\.value/);
      return true;
    });
  });

  test('a missing spec names its key', async () => {
    await assert.rejects(planRun(store, 'nospec'), /no run spec: runs\/nospec\/spec\.json does not exist/);
  });

  test('a missing model names the model and the key it looked for', async () => {
    await putJson(store, 'runs/m1/spec.json', { ...spec, model: 'registry/ghost/model/' });
    await assert.rejects(planRun(store, 'm1'), /field model: model 'registry\/ghost\/model\/' not found: registry\/ghost\/model\/model\.json does not exist/);
    await putJson(store, 'runs/m2/spec.json', { ...spec, model: 'zoo:nosuchnet' });
    await assert.rejects(planRun(store, 'm2'), /field model: unknown zoo model in 'zoo:nosuchnet'/);
    assert.equal(await store.exists('runs/m1/manifest.json'), false);
  });

  test('a division the model cannot have fails with the model name', async () => {
    await putJson(store, 'runs/d1/spec.json', { ...spec, divide: { subnetworks: 40 } });
    await assert.rejects(planRun(store, 'd1'), /model 'zoo:fmnist-resnet'.*cannot divide into 40 sub-networks/);
  });

  test('a model with a layer the analysis does not support fails naming the model and the layer', async () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as tf.SymbolicTensor;
    const up = tf.layers.permute({ dims: [3, 1, 2], name: 'odd_permute' }).apply(conv) as tf.SymbolicTensor;
    const flat = tf.layers.flatten().apply(up) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'head' }).apply(flat) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out, name: 'odd' });
    await saveModel(model, { store, prefix: 'registry/odd/model/' });
    model.dispose();
    await putJson(store, 'runs/u1/spec.json', { ...spec, model: 'registry/odd/model/' });
    await assert.rejects(planRun(store, 'u1'), /model 'registry\/odd\/model\/'.*odd_permute.*Permute.*moves the channel axis/s);
  });

  test('a spec that cannot succeed is refused before any job: one line per field, no manifest', async () => {
    await putJson(store, 'runs/c1/spec.json', {
      ...spec,
      dataset: { name: 'fashion-mnist', searchTrain: 1_000_000_000 },
      search: { population: 1_000_000_000 },
    });
    await assert.rejects(planRun(store, 'c1'), (error: Error) => {
      assert.ok(error instanceof PlanError, error.name);
      assert.deepEqual(error.message.split('\n').map((line) => /^run spec runs\/c1\/spec\.json: field (\S+): /.exec(line)?.[1]), [
        'dataset.searchTrain',
        'search.population',
      ]);
      assert.match(error.message, /exceed the 60000 images of fashion-mnist's training split/);
      return true;
    });
    assert.equal(await store.exists('runs/c1/manifest.json'), false);
    // The same budget on purpose passes the budget check (the subsets must still fit the data).
    await putJson(store, 'runs/c2/spec.json', { ...spec, search: { population: 600, generations: 1, allowLargeBudget: true } });
    assert.deepEqual((await planRun(store, 'c2')).subnetworks, ['k1', 'k2', 'k3']);
  });

  test('a data set the model cannot use is named; files a Lambda cannot see are not probed', async () => {
    await putJson(store, 'runs/g1/spec.json', { ...spec, model: 'zoo:resnet20' });
    await assert.rejects(planRun(store, 'g1'), /field dataset\.name: data set fashion-mnist has 28x28x1 images, the model takes 32x32x3/);
    await putJson(store, 'runs/g2/spec.json', { ...spec, dataset: { name: 'cifar10:/does/not/exist' }, model: 'zoo:resnet20' });
    await assert.rejects(planRun(store, 'g2'), /field dataset\.name: cifar10: no data_batch_1\.bin in \/does\/not\/exist/);
    // In AWS the data is inside the worker image: Plan checks only what the form fixes.
    assert.deepEqual((await planRun(store, 'g2', { dataFiles: false })).subnetworks.length > 0, true);
  });

  test('a spec whose runId differs from the run is refused', async () => {
    await putJson(store, 'runs/x1/spec.json', { ...spec, runId: 'other' });
    await assert.rejects(planRun(store, 'x1'), /field runId is 'other', but this is run 'x1'/);
  });
});
