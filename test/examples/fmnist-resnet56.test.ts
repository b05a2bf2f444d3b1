// examples/fmnist-resnet56: the network PyTorch trains (train_torch.py, TF 'same' padding
// reproduced) computes what the zoo-built tfjs model computes once the exported weights are
// loaded by layer name (torch-weights.ts). Checked on an untrained network with random BN
// parameters and statistics, so a swapped weight, a transposed kernel or a shifted stride-2
// window all show. Needs PyTorch (Debian's python3-torch); skipped with a message without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { sliceDataset } from '../../src/data/dataset.ts';
import { countTotals } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { loadModel } from '../../src/model/io.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { buildFmnistResNet56 } from '../../examples/fmnist-resnet56/model.ts';
import { loadTorchWeights } from '../../examples/fmnist-resnet56/torch-weights.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../examples/fmnist-resnet56/train_torch.py', import.meta.url));
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const IMAGES = 16;
const SHIPPED = fileURLToPath(new URL('../../examples/fmnist-resnet56/model', import.meta.url));

test('fmnist-resnet56 is a 56-layer ResNet of 6.67M MACs', async () => {
  await initEngine();
  const model = buildFmnistResNet56();
  try {
    const conv = model.layers.filter((l) => l.getClassName() === 'Conv2D' && !l.name.includes('shortcut'));
    assert.equal(conv.length + 1, 56, 'stem + 27 blocks x 2 convs + head');
    assert.deepEqual(countTotals(analyzeChannels(model)), { macs: 6_672_064, params: 217_362 });
  } finally {
    model.dispose();
  }
});

test('PyTorch and tfjs compute the same function from the exported weights', { skip: hasTorch ? false : `${PYTHON} has no torch (apt-get install python3-torch)` }, async () => {
  await initEngine();
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-r56-'));
  const model = buildFmnistResNet56();
  try {
    const test = sliceDataset(await loadFashionMnist({ split: 'test' }), 0, IMAGES);
    // train_torch.py reads train-* too; one image is enough.
    await writeFile(join(dir, 'train-images.u8'), test.images.subarray(0, 784));
    await writeFile(join(dir, 'train-labels.u8'), Uint8Array.from(test.labels.subarray(0, 1)));
    await writeFile(join(dir, 'test-images.u8'), test.images);
    await writeFile(join(dir, 'test-labels.u8'), Uint8Array.from(test.labels));
    const run = spawnSync(PYTHON, [SCRIPT, '--data', dir, '--out', dir, '--check', String(IMAGES), '--threads', '1'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    await loadTorchWeights(model, dir);
    const bytes = await readFile(join(dir, 'logits.bin'));
    const expected = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const x = tf.tensor4d(Float32Array.from(test.images, (p) => p / 255), [IMAGES, 28, 28, 1]);
    const logits = model.predict(x) as tf.Tensor;
    const actual = logits.dataSync();
    tf.dispose([x, logits]);
    assert.equal(actual.length, expected.length);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < actual.length; i++) {
      worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
      scale = Math.max(scale, Math.abs(expected[i]));
    }
    assert.ok(worst <= 1e-4 * Math.max(1, scale), `largest logit difference ${worst} (logits up to ${scale})`);
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

// bench:quality's second model: the checked-in weights are the zoo architecture and score what
// their training record says (a stale or mismatched model.json/weights.bin pair fails here).
test('the shipped fmnist-resnet56 is the zoo network and scores its recorded test top-1', async () => {
  await initEngine();
  const record = JSON.parse(await readFile(join(SHIPPED, 'training.json'), 'utf8')) as { test: { top1: number; count: number } };
  const model = await loadModel(SHIPPED);
  try {
    assert.deepEqual(countTotals(analyzeChannels(model)), { macs: 6_672_064, params: 217_362 });
    const testSet = await loadFashionMnist({ split: 'test' });
    assert.equal(testSet.count, record.test.count);
    const result = evaluate(model, testSet, { batchSize: 500 });
    // Another CPU's float rounding may flip a few images (0.0005 = 5 of 10,000), not more.
    assert.ok(Math.abs(result.top1 - record.test.top1) <= 0.0005, `top-1 ${result.top1} vs recorded ${record.test.top1}`);
    assert.ok(result.top1 > 0.92, `top-1 ${result.top1}`);
  } finally {
    model.dispose();
  }
});
