/**
 * Trains the deeper benchmark model fmnist-resnet56 (model.ts) and writes it to
 * examples/fmnist-resnet56/model/ (model.json + weights.bin + training.json).
 *
 *   node --import tsx examples/fmnist-resnet56/train.ts [--epochs 15] [--bn-holdout 5000]
 *     [--work /tmp/emo-dir-resnet56] [--out examples/fmnist-resnet56/model] [--python /usr/bin/python3]
 *     [--threads 1] [--resume] [--import-only]
 *
 * Training 6435 steps of a 56-layer network on the wasm engine would take hours on one core, so
 * the training runs in PyTorch (train_torch.py, Debian's python3-torch) on exactly the same
 * function (TF 'same' padding reproduced, same BN constants), and this script:
 *   1. exports the project's Fashion-MNIST split (src/data/fashion-mnist.ts): the training split
 *      minus its last `--bn-holdout` images, and the test split, as raw bytes under --work;
 *   2. runs train_torch.py (skipped with --import-only; --resume continues its checkpoint);
 *   3. loads the exported weights into the zoo-built tfjs model by layer name (torch-weights.ts)
 *      and checks that the tfjs model's test accuracy equals PyTorch's (within 0.1 point: the
 *      engines round differently, which may flip an image or two);
 *   4. chooses EMA or recalibrated BN statistics on the held-out training images
 *      (examples/lib/bn-choice.ts), evaluates on test, saves.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineInfo, initEngine } from '../../src/engine/backend.ts';
import { sliceDataset } from '../../src/data/dataset.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { saveModel } from '../../src/model/io.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import { chooseBatchNormStatistics } from '../lib/bn-choice.ts';
import { buildFmnistResNet56, MODEL_NAME } from './model.ts';
import { loadTorchWeights } from './torch-weights.ts';

const here = dirname(fileURLToPath(import.meta.url));

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString()}] ${message}\n`);
}

interface TorchHistory {
  readonly options: Record<string, unknown>;
  readonly torch: string;
  readonly history: readonly { epoch: number; loss: number; seconds: number; cpuSeconds: number; test: { top1: number; loss: number } }[];
  readonly test: { loss: number; top1: number; count: number };
}

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' } });
    child.on('error', (error) => fail(new Error(`cannot start ${command}: ${error.message} (install Debian's python3-torch, or pass --python)`)));
    child.on('exit', (code, signal) => (code === 0 ? done() : fail(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}`))));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      epochs: { type: 'string', default: '15' },
      'bn-holdout': { type: 'string', default: '5000' },
      work: { type: 'string', default: '/tmp/emo-dir-resnet56' },
      out: { type: 'string', default: join(here, 'model') },
      python: { type: 'string', default: '/usr/bin/python3' },
      threads: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      resume: { type: 'boolean', default: false },
      'import-only': { type: 'boolean', default: false },
    },
  });
  const epochs = Number(values.epochs);
  const holdout = Number(values['bn-holdout']);
  const seed = Number(values.seed);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs: expected a positive integer, got ${values.epochs}`);
  const work = resolve(values.work);
  const out = resolve(values.out);
  const dataDir = join(work, 'data');
  const torchDir = join(work, 'torch');

  await initEngine({ log });
  const trainFull = await loadFashionMnist({ split: 'train', log });
  const test = await loadFashionMnist({ split: 'test', log });
  if (!Number.isInteger(holdout) || holdout < 1 || holdout >= trainFull.count) throw new Error(`--bn-holdout: expected 1..${trainFull.count - 1}, got ${values['bn-holdout']}`);
  const train = sliceDataset(trainFull, 0, trainFull.count - holdout);
  const heldOut = sliceDataset(trainFull, trainFull.count - holdout);

  if (!values['import-only']) {
    await mkdir(dataDir, { recursive: true });
    await mkdir(torchDir, { recursive: true });
    await writeFile(join(dataDir, 'train-images.u8'), train.images);
    await writeFile(join(dataDir, 'train-labels.u8'), Uint8Array.from(train.labels));
    await writeFile(join(dataDir, 'test-images.u8'), test.images);
    await writeFile(join(dataDir, 'test-labels.u8'), Uint8Array.from(test.labels));
    log(`exported ${train.count} training and ${test.count} test images to ${dataDir}; training in PyTorch`);
    await run(values.python, [
      join(here, 'train_torch.py'),
      '--data', dataDir,
      '--out', torchDir,
      '--epochs', String(epochs),
      '--threads', values.threads,
      '--seed', String(seed),
      ...(values.resume ? ['--resume'] : []),
    ]);
  }
  const historyPath = join(torchDir, 'history.json');
  if (!existsSync(historyPath)) throw new Error(`${historyPath} does not exist: the PyTorch training has not finished (rerun with --resume)`);
  const torch = JSON.parse(await readFile(historyPath, 'utf8')) as TorchHistory;

  const model = buildFmnistResNet56(seed);
  try {
    await loadTorchWeights(model, torchDir);
    const tfjsTest = evaluate(model, test, { batchSize: 500 });
    const gap = Math.abs(tfjsTest.top1 - torch.test.top1);
    log(`test top-1: PyTorch ${(torch.test.top1 * 100).toFixed(2)}%, tfjs ${(tfjsTest.top1 * 100).toFixed(2)}% (loss ${torch.test.loss.toFixed(4)} / ${tfjsTest.loss.toFixed(4)})`);
    if (gap > 0.001) throw new Error(`the tfjs model does not compute what PyTorch trained: test top-1 ${tfjsTest.top1} vs ${torch.test.top1}`);
    const choice = chooseBatchNormStatistics(model, train, heldOut, seed);
    log(`held-out CE: EMA ${choice.heldOutEma.loss.toFixed(4)}, recalibrated ${choice.heldOutRecalibrated.loss.toFixed(4)} -> keeping ${choice.recalibrated ? 'recalibrated' : 'EMA'}`);
    const final = evaluate(model, test, { batchSize: 500 });
    await mkdir(out, { recursive: true });
    const saved = await saveModel(model, out);
    const info = engineInfo();
    const record = {
      model: MODEL_NAME,
      dataset: 'fashion-mnist',
      normalize: 'unit',
      trainedWith: `PyTorch ${torch.torch} (train_torch.py), imported into tfjs by layer name`,
      options: { ...torch.options, trainImages: train.count, bnHoldoutImages: heldOut.count, testImages: test.count },
      history: torch.history,
      torchTest: torch.test,
      tfjsTestBeforeBnChoice: tfjsTest,
      bnRecalibrated: choice.recalibrated,
      bnChoice: { heldOutImages: heldOut.count, ema: choice.heldOutEma, recalibrated: choice.heldOutRecalibrated },
      test: final,
      backend: info ? `${info.backend} (${info.provider})` : 'unknown',
      trainingSeconds: torch.history.reduce((s, h) => s + h.seconds, 0),
      trainingCpuSeconds: torch.history.reduce((s, h) => s + h.cpuSeconds, 0),
      finished: true,
    };
    await writeFile(join(out, 'training.json'), `${JSON.stringify(record, null, 2)}\n`);
    log(`saved ${saved.modelJson}: test loss ${final.loss.toFixed(4)} top-1 ${(final.top1 * 100).toFixed(2)}% on ${final.count} images`);
  } finally {
    model.dispose();
  }
}

main().catch((error: unknown) => {
  log(`train failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
