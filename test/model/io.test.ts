import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { ModelFileError } from '../../src/model/errors.ts';
import {
  MODEL_JSON,
  WEIGHTS_FILE,
  directoryHandler,
  loadModel,
  parseZooRef,
  resolveModel,
  saveModel,
  storeHandler,
  type StoreLocation,
} from '../../src/model/io.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { NotFoundError, assertValidKey, type ObjectStore } from '../../src/store/object-store.ts';

/** The smallest ObjectStore that honours the interface's contract (tests only). */
class MemoryStore implements ObjectStore {
  readonly location = 'memory://test';
  readonly objects = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array> {
    assertValidKey(key);
    const body = this.objects.get(key);
    if (body === undefined) throw new NotFoundError(key, this.location);
    return body.slice();
  }

  async getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const bytes = (await this.get(key)).slice(offset, offset + length);
    if (!into) return bytes;
    into.set(bytes);
    return into.subarray(0, bytes.length);
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    assertValidKey(key);
    this.objects.set(key, typeof body === 'string' ? new TextEncoder().encode(body) : body.slice());
  }

  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }

  async list(prefix: string): Promise<string[]> {
    assertValidKey(prefix, true);
    return [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

let root: string;
let counter = 0;
/** A fresh directory under the test's temp root. */
function freshDir(): string {
  counter += 1;
  return join(root, `case-${counter}`);
}

/**
 * A model whose every weight (BN statistics included) is non-trivial, so that a round trip that
 * dropped or reordered weights would change the predictions. Variances stay positive.
 */
function trainedLookingModel(seed: number, widthMultiplier = 1): tf.LayersModel {
  const model = buildModel('fmnist-resnet', { seed, widthMultiplier });
  const values = model.getWeights().map((weight, i) => tf.randomUniform(weight.shape, 0.5, 1.5, 'float32', seed * 1000 + i));
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

const input = (): tf.Tensor => tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 42);

function maxAbsDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() => {
    const x = input();
    const ya = a.predict(x) as tf.Tensor;
    const yb = b.predict(x) as tf.Tensor;
    return tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0];
  });
}

/** Asserts a ModelFileError whose `file` contains `file` and whose message matches `problem`. */
async function rejectsNaming(promise: Promise<unknown>, file: string, problem: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelFileError, `expected ModelFileError, got ${String(error)}`);
    assert.ok(error.file.includes(file), `error names '${error.file}', expected it to name '${file}'`);
    assert.match(error.message, problem);
    return true;
  });
}

let reference: tf.LayersModel;

before(async () => {
  await initEngine({ log: () => undefined });
  root = await mkdtemp(join(tmpdir(), 'emo-dir-io-'));
  reference = trainedLookingModel(3);
});

after(async () => {
  reference.dispose();
  await rm(root, { recursive: true, force: true });
});

describe('model io: round trips', () => {
  test('directory: identical predictions, standard file layout', async () => {
    const dir = freshDir();
    reference.setUserDefinedMetadata({ emoDir: { note: 'kept' } });
    const saved = await saveModel(reference, dir);
    assert.equal(saved.modelJson, join(dir, MODEL_JSON));
    assert.equal(saved.weights, join(dir, WEIGHTS_FILE));
    assert.equal(saved.weightBytes, reference.countParams() * 4);
    assert.deepEqual((await readdir(dir)).sort(), [MODEL_JSON, WEIGHTS_FILE]);
    const json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as {
      format: string;
      weightsManifest: { paths: string[] }[];
    };
    assert.equal(json.format, 'layers-model');
    assert.deepEqual(json.weightsManifest.map((group) => group.paths), [[WEIGHTS_FILE]]);

    const loaded = await loadModel(dir);
    try {
      assert.equal(maxAbsDiff(reference, loaded), 0);
      assert.deepEqual(
        loaded.layers.map((layer) => layer.name),
        reference.layers.map((layer) => layer.name),
      );
      assert.deepEqual(loaded.getUserDefinedMetadata(), { emoDir: { note: 'kept' } });
    } finally {
      loaded.dispose();
    }
  });

  test('directory: the handler works with plain tf.loadLayersModel, and model.json paths are accepted', async () => {
    const dir = freshDir();
    await reference.save(directoryHandler(dir));
    const viaTf = await tf.loadLayersModel(directoryHandler(dir));
    const viaJsonPath = await loadModel(join(dir, MODEL_JSON));
    try {
      assert.equal(maxAbsDiff(reference, viaTf), 0);
      assert.equal(maxAbsDiff(reference, viaJsonPath), 0);
    } finally {
      viaTf.dispose();
      viaJsonPath.dispose();
    }
  });

  test('store: identical predictions under a key prefix, exactly two objects', async () => {
    const store = new MemoryStore();
    const location: StoreLocation = { store, prefix: 'runs/x/targets/50/model/' };
    const saved = await saveModel(reference, location);
    assert.equal(saved.modelJson, 'runs/x/targets/50/model/model.json (in memory://test)');
    assert.deepEqual(await store.list(''), ['runs/x/targets/50/model/model.json', 'runs/x/targets/50/model/weights.bin']);
    const tensorsBefore = tf.memory().numTensors;
    // A prefix without the trailing '/' names the same model.
    const loaded = await loadModel({ store, prefix: 'runs/x/targets/50/model' });
    try {
      assert.equal(maxAbsDiff(reference, loaded), 0);
    } finally {
      loaded.dispose();
    }
    // Decoded weight tensors are released: loading leaks nothing.
    assert.equal(tf.memory().numTensors, tensorsBefore);
  });

  test('resnet20 round trip through the store handler (a zoo model with projection shortcuts)', async () => {
    const store = new MemoryStore();
    const model = buildModel('resnet20', { seed: 5 });
    await model.save(storeHandler({ store, prefix: 'm' }));
    const loaded = await loadModel({ store, prefix: 'm' });
    try {
      const diff = tf.tidy(() => {
        const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 9);
        return tf.max(tf.abs(tf.sub(model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor))).dataSync()[0];
      });
      assert.equal(diff, 0);
    } finally {
      model.dispose();
      loaded.dispose();
    }
  });

  test('resolveModel: zoo:, directory and store references', async () => {
    const dir = freshDir();
    await saveModel(reference, dir);
    const store = new MemoryStore();
    await saveModel(reference, { store, prefix: 'p/' });

    const zoo = await resolveModel('zoo:resnet20', { classes: 7 });
    const fromDir = await resolveModel(dir);
    const fromStore = await resolveModel({ store, prefix: 'p/' });
    try {
      assert.equal(zoo.origin, 'zoo');
      assert.equal(zoo.location, 'zoo:resnet20');
      assert.deepEqual(zoo.model.outputs[0].shape, [null, 7]);
      assert.equal(fromDir.origin, 'directory');
      assert.equal(fromDir.location, dir);
      assert.equal(maxAbsDiff(reference, fromDir.model), 0);
      assert.equal(fromStore.origin, 'store');
      assert.equal(fromStore.location, 'memory://test/p/');
    } finally {
      zoo.model.dispose();
      fromDir.model.dispose();
      fromStore.model.dispose();
    }
    assert.equal(parseZooRef('./models/zoo'), undefined);
    assert.throws(() => parseZooRef('zoo:resnet21'), /unknown zoo model in 'zoo:resnet21'.*zoo:resnet56/);
  });
});

describe('model io: corrupt or missing files are refused, naming the file', () => {
  test('missing directory', async () => {
    const dir = join(root, 'does-not-exist');
    await rejectsNaming(loadModel(dir), dir, /model directory does not exist/);
  });

  test('directory without model.json', async () => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await rejectsNaming(loadModel(dir), join(dir, MODEL_JSON), /file not found/);
  });

  test('model.json that is not JSON, or lacks the manifest', async () => {
    const dir = freshDir();
    await saveModel(reference, dir);
    const path = join(dir, MODEL_JSON);
    const good = await readFile(path, 'utf8');
    await writeFile(path, good.slice(0, good.length / 2));
    await rejectsNaming(loadModel(dir), path, /is not valid JSON/);
    const parsed = JSON.parse(good) as Record<string, unknown>;
    delete parsed.weightsManifest;
    await writeFile(path, JSON.stringify(parsed));
    await rejectsNaming(loadModel(dir), path, /'weightsManifest' is missing/);
  });

  test('weights file truncated, padded or missing', async () => {
    const dir = freshDir();
    await saveModel(reference, dir);
    const path = join(dir, WEIGHTS_FILE);
    const weights = await readFile(path);
    await writeFile(path, weights.subarray(0, weights.length - 4));
    await rejectsNaming(loadModel(dir), path, new RegExp(`holds ${weights.length - 4} bytes.*expects ${weights.length} bytes.*truncated`));
    await writeFile(path, Buffer.concat([weights, Buffer.alloc(8)]));
    await rejectsNaming(loadModel(dir), path, /too long/);
    await rm(path);
    await rejectsNaming(loadModel(dir), path, /file not found/);
  });

  test('store: missing model.json and truncated weights name the key and the store', async () => {
    const store = new MemoryStore();
    await rejectsNaming(loadModel({ store, prefix: 'nothing/here' }), 'nothing/here/model.json (in memory://test)', /object not found/);
    await saveModel(reference, { store, prefix: 'm' });
    const weights = await store.get('m/weights.bin');
    await store.put('m/weights.bin', weights.subarray(0, 100));
    await rejectsNaming(loadModel({ store, prefix: 'm' }), 'm/weights.bin (in memory://test)', /holds 100 bytes/);
  });

  test('a manifest that does not match the topology names model.json, the layer and the weight', async () => {
    // Topology of the full-width model, manifest + weights of a half-width one: every file is
    // self-consistent (sizes match), only the pairing is wrong.
    const narrow = trainedLookingModel(4, 0.5);
    const wideDir = freshDir();
    const narrowDir = freshDir();
    try {
      await saveModel(reference, wideDir);
      await saveModel(narrow, narrowDir);
    } finally {
      narrow.dispose();
    }
    const wide = JSON.parse(await readFile(join(wideDir, MODEL_JSON), 'utf8')) as Record<string, unknown>;
    const narrowJson = JSON.parse(await readFile(join(narrowDir, MODEL_JSON), 'utf8')) as Record<string, unknown>;
    const path = join(narrowDir, MODEL_JSON);
    await writeFile(path, JSON.stringify({ ...narrowJson, modelTopology: wide.modelTopology }));
    const tensorsBefore = tf.memory().numTensors;
    await rejectsNaming(
      loadModel(narrowDir),
      path,
      /weightsManifest does not match the model topology: layer 'stem_conv': weight 'stem_conv\/kernel' has shape \[3,3,1,8\] in the manifest, the topology needs \[3,3,1,16\]/,
    );
    // The model built from the topology is disposed when its weights are refused.
    assert.equal(tf.memory().numTensors, tensorsBefore);

    // A renamed weight: missing on one side, unknown on the other.
    const manifest = (wide.weightsManifest as { weights: { name: string }[] }[])[0].weights;
    const head = manifest.find((entry) => entry.name === 'head_dense/kernel');
    assert.ok(head);
    head.name = 'head_dense/kernel_renamed';
    await writeFile(join(wideDir, MODEL_JSON), JSON.stringify(wide));
    await rejectsNaming(
      loadModel(wideDir),
      join(wideDir, MODEL_JSON),
      /layer 'head_dense': weight 'head_dense\/kernel' \[64,10\] is not in the manifest.*'head_dense\/kernel_renamed' belongs to no layer/,
    );
  });

  test('weight paths that leave the model directory are refused', async () => {
    const dir = freshDir();
    await saveModel(reference, dir);
    const path = join(dir, MODEL_JSON);
    const json = JSON.parse(await readFile(path, 'utf8')) as { weightsManifest: { paths: string[] }[] };
    json.weightsManifest[0].paths = ['../outside.bin'];
    await writeFile(path, JSON.stringify(json));
    await rejectsNaming(loadModel(dir), path, /weightsManifest\[0\]\.paths\[0\] = "\.\.\/outside\.bin" is not a relative path/);
  });

  test('sharded manifests (as written by tensorflowjs_converter) load', async () => {
    const dir = freshDir();
    await saveModel(reference, dir);
    const weights = await readFile(join(dir, WEIGHTS_FILE));
    const cut = 1000;
    await writeFile(join(dir, 'group1-shard1of2.bin'), weights.subarray(0, cut));
    await writeFile(join(dir, 'group1-shard2of2.bin'), weights.subarray(cut));
    await rm(join(dir, WEIGHTS_FILE));
    const path = join(dir, MODEL_JSON);
    const json = JSON.parse(await readFile(path, 'utf8')) as { weightsManifest: { paths: string[] }[] };
    json.weightsManifest[0].paths = ['group1-shard1of2.bin', 'group1-shard2of2.bin'];
    await writeFile(path, JSON.stringify(json));
    const loaded = await loadModel(dir);
    try {
      assert.equal(maxAbsDiff(reference, loaded), 0);
    } finally {
      loaded.dispose();
    }
  });
});
