/**
 * Trains the example model (zoo `fmnist-resnet`) on the 60k Fashion-MNIST training split and
 * saves it, with its test metrics, to examples/fmnist-resnet/model/ (model.json + weights.bin +
 * training.json). The pruning example and the quality benchmark start from this model.
 *
 *   node --import tsx examples/fmnist-resnet/train.ts [--epochs 15] [--batch-size 128] [--lr 0.1]
 *     [--weight-decay 5e-4] [--label-smoothing 0.05] [--augment crop+flip|flip|none] [--seed 1]
 *     [--train-limit 60000] [--test-limit 10000] [--bn-holdout 5000] [--eval-every 1] [--out examples/fmnist-resnet/model]
 *     [--resume] [--backend wasm|cpu|tensorflow]
 *
 * Recipe (see README.md): SGD, Nesterov momentum 0.9, L2 5e-4 on conv/dense kernels only,
 * cosine learning rate with a short linear warm-up, random crop (2 px padding) + horizontal
 * flip, label smoothing 0.05, inputs scaled to [0, 1] ('unit', the data module's default, so a
 * consumer that does not know this model's recipe feeds it the right inputs).
 *
 * After every epoch the model is saved to <out>/ and progress to <out>/training.json, so an
 * interrupted run can be continued with --resume (weights and epoch are restored; the
 * optimiser's momentum restarts from zero, a small deviation from an uninterrupted run).
 * Finally the BN statistics are recalibrated on 2048 training images (precise BN) when that
 * lowers the cross-entropy on the last `--bn-holdout` images of the training split, which are
 * held out of training for that choice (examples/lib/bn-choice.ts; never chosen on test), and
 * the final model is saved.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineInfo, initEngine, tf } from '../../src/engine/backend.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { sliceDataset } from '../../src/data/dataset.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { loadModel, saveModel } from '../../src/model/io.ts';
import { fit } from '../../src/train/fit.ts';
import type { EpochInfo } from '../../src/train/fit.ts';
import { evaluate } from '../../src/train/evaluate.ts';
import type { EvaluationResult } from '../../src/train/evaluate.ts';
import { chooseBatchNormStatistics } from '../lib/bn-choice.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** What training.json records: enough to reproduce the run and to feed the model correctly. */
interface TrainingRecord {
  readonly model: 'fmnist-resnet';
  readonly dataset: 'fashion-mnist';
  /** Input scaling the model expects: pixels / 255 (src/data `normalize: 'unit'`). */
  readonly normalize: 'unit';
  readonly epochsDone: number;
  readonly options: Record<string, number | string | boolean>;
  readonly backend: string;
  readonly history: readonly Omit<EpochInfo, 'validation'>[];
  readonly test?: EvaluationResult;
  readonly bnRecalibrated?: boolean;
  /** Held-out (end of the training split) metrics the BN choice was made on. */
  readonly bnChoice?: { readonly heldOutImages: number; readonly ema: EvaluationResult; readonly recalibrated: EvaluationResult };
  readonly finished: boolean;
  readonly seconds: number;
}

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString()}] ${message}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      epochs: { type: 'string', default: '15' },
      'batch-size': { type: 'string', default: '128' },
      lr: { type: 'string', default: '0.1' },
      'weight-decay': { type: 'string', default: '5e-4' },
      'label-smoothing': { type: 'string', default: '0.05' },
      seed: { type: 'string', default: '1' },
      'train-limit': { type: 'string', default: '60000' },
      'test-limit': { type: 'string', default: '10000' },
      'bn-holdout': { type: 'string', default: '5000' },
      'eval-every': { type: 'string', default: '1' },
      augment: { type: 'string', default: 'crop+flip' },
      out: { type: 'string', default: join(here, 'model') },
      resume: { type: 'boolean', default: false },
      backend: { type: 'string' },
    },
  });
  const number = (name: keyof typeof values): number => {
    const value = Number(values[name]);
    if (!Number.isFinite(value)) throw new Error(`--${name}: not a number: ${String(values[name])}`);
    return value;
  };
  const epochs = number('epochs');
  const batchSize = number('batch-size');
  const lr = number('lr');
  const weightDecay = number('weight-decay');
  const labelSmoothing = number('label-smoothing');
  const seed = number('seed');
  const trainLimit = number('train-limit');
  const testLimit = number('test-limit');
  const bnHoldout = number('bn-holdout');
  const evalEvery = number('eval-every');
  const out = resolve(String(values.out));
  const augmentName = String(values.augment);
  if (!['crop+flip', 'flip', 'none'].includes(augmentName)) throw new Error(`--augment: expected crop+flip|flip|none, got ${augmentName}`);
  const augment = augmentName === 'none' ? false : { cropPadding: augmentName === 'crop+flip' ? 2 : 0, flip: true };
  const backend = values.backend as 'wasm' | 'cpu' | 'tensorflow' | undefined;

  await initEngine({ log, ...(backend ? { backend } : {}) });
  const info = engineInfo();
  const trainFull = await loadFashionMnist({ split: 'train', log });
  if (!Number.isInteger(bnHoldout) || bnHoldout < 1 || bnHoldout >= trainFull.count) throw new Error(`--bn-holdout: expected 1..${trainFull.count - 1}, got ${bnHoldout}`);
  // The last images of the split (class-balanced: the split interleaves classes) are held out.
  const heldOut = sliceDataset(trainFull, trainFull.count - bnHoldout);
  const train = sliceDataset(trainFull, 0, Math.min(trainLimit, trainFull.count - bnHoldout));
  const testFull = await loadFashionMnist({ split: 'test', log });
  const test = testLimit < testFull.count ? sliceDataset(testFull, 0, testLimit) : testFull;
  const options = { epochs, batchSize, lr, weightDecay, labelSmoothing, seed, trainImages: train.count, bnHoldoutImages: heldOut.count, testImages: test.count, augment: augmentName, schedule: `cosine, warm-up ${Math.min(0.5, epochs / 10)} epoch` };

  let model: tf.LayersModel;
  let startEpoch = 0;
  let history: Omit<EpochInfo, 'validation'>[] = [];
  let secondsBefore = 0;
  const recordPath = join(out, 'training.json');
  if (values.resume && existsSync(recordPath)) {
    const record = JSON.parse(await readFile(recordPath, 'utf8')) as TrainingRecord;
    if (record.finished) {
      log(`${out} holds a finished run (test top1 ${record.test?.top1}); nothing to resume`);
      return;
    }
    model = await loadModel(out);
    startEpoch = record.epochsDone;
    history = [...record.history];
    secondsBefore = record.seconds;
    log(`resuming at epoch ${startEpoch + 1}/${epochs} from ${out}`);
  } else {
    model = buildModel('fmnist-resnet', { seed });
  }

  const started = performance.now();
  const writeRecord = async (extra: Partial<TrainingRecord>): Promise<void> => {
    const record: TrainingRecord = {
      model: 'fmnist-resnet',
      dataset: 'fashion-mnist',
      normalize: 'unit',
      epochsDone: history.length,
      options,
      backend: info ? `${info.backend} (${info.provider}, ${info.threads} thread${info.threads === 1 ? '' : 's'})` : 'unknown',
      history,
      finished: false,
      seconds: secondsBefore + (performance.now() - started) / 1000,
      ...extra,
    };
    await writeFile(recordPath, `${JSON.stringify(record, null, 2)}\n`);
  };

  await fit(model, train, {
    epochs,
    startEpoch,
    batchSize,
    seed,
    optimizer: { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay },
    schedule: { kind: 'cosine', lr, warmupEpochs: Math.min(0.5, epochs / 10) },
    augment,
    labelSmoothing,
    validation: { data: test, batchSize: 500, every: evalEvery },
    logEverySteps: 50,
    log,
    onEpoch: async (epochInfo) => {
      const { validation: _validation, ...rest } = epochInfo;
      history.push(rest);
      await saveModel(model, out);
      await writeRecord({ test: epochInfo.validation });
    },
  });

  // Precise BN: the EMA (momentum 0.9) mostly reflects the last ~10 batches; pooled statistics
  // over 2048 images are usually as good or slightly better. Chosen on the held-out images.
  const choice = chooseBatchNormStatistics(model, train, heldOut, seed);
  const final = evaluate(model, test, { batchSize: 500 });
  log(
    `held-out CE: EMA statistics ${choice.heldOutEma.loss.toFixed(4)}, recalibrated ${choice.heldOutRecalibrated.loss.toFixed(4)} -> keeping ${choice.recalibrated ? 'recalibrated' : 'EMA'}`,
  );
  const saved = await saveModel(model, out);
  await writeRecord({
    test: final,
    bnRecalibrated: choice.recalibrated,
    bnChoice: { heldOutImages: heldOut.count, ema: choice.heldOutEma, recalibrated: choice.heldOutRecalibrated },
    finished: true,
  });
  log(`saved ${saved.modelJson} (${(saved.weightBytes / 1024).toFixed(0)} KiB weights): test loss ${final.loss.toFixed(4)} top1 ${(final.top1 * 100).toFixed(2)}% top5 ${(final.top5 * 100).toFixed(2)}% on ${final.count} images`);
}

main().catch((error: unknown) => {
  log(`train failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
