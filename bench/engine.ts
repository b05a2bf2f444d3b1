/**
 * Engine benchmark: training and inference throughput of the CIFAR ResNets on the active tfjs
 * backend, and on PyTorch CPU (bench/torch_engine.py) at the same thread count when python3
 * has torch.
 *
 *   npm run bench:engine [-- --json] [--models resnet20,resnet56] [--iters N] [--threads T]
 *                        [--backend wasm|cpu|tensorflow] [--no-torch] [--profile]
 *                        [--kernels fast|missing-only] [--conv-kernel auto|relaxed-simd|simd128|xnnpack]
 *
 * Train: one SGD-with-momentum step at batch 64 (BN in training mode, softmax cross-entropy),
 * timed after warm-up. Infer: model.predict at batch 128. `--json` prints one JSON object per
 * row on stdout (DESIGN.md §7) and logs to stderr; `--profile` also prints the kernels of one
 * train step by time; `--kernels missing-only` measures wasm with only the kernels tfjs lacks
 * (the stock baseline); `--conv-kernel xnnpack` (or EMO_DIR_CONV_KERNEL=xnnpack) keeps the other
 * fast kernels but turns off the native conv kernels (src/engine/native), for before/after.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineInfo, initEngine, parseBackendName, tf } from '../src/engine/backend.ts';
import type { BackendName } from '../src/engine/backend.ts';
import { buildModel, isZooName } from '../src/model/zoo.ts';
import { formatTable } from './lib/table.ts';

const TRAIN_BATCH = 64;
const INFER_BATCH = 128;
const CLASSES = 10;

export interface EngineRow {
  readonly backend: string;
  readonly model: string;
  readonly threads: number;
  readonly trainBatch: number;
  readonly trainImgPerSec: number;
  readonly inferBatch: number;
  readonly inferImgPerSec: number;
}

/** A row plus throughput per CPU-second (kept off the printed JSON row, whose shape is fixed). */
interface Measured {
  readonly row: EngineRow;
  readonly trainImgPerCpuSec: number;
  readonly inferImgPerCpuSec: number;
}

interface Options {
  readonly json: boolean;
  readonly models: string[];
  readonly iters: number;
  readonly threads: number;
  readonly backend: BackendName | undefined;
  readonly torch: boolean;
  readonly profile: boolean;
  readonly kernels: 'fast' | 'missing-only';
  /** Sets EMO_DIR_CONV_KERNEL (validated when the engine starts). */
  readonly convKernel: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      models: { type: 'string', default: 'resnet20,resnet56' },
      iters: { type: 'string', default: '5' },
      threads: { type: 'string', default: '1' },
      backend: { type: 'string' },
      'no-torch': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      kernels: { type: 'string', default: 'fast' },
      'conv-kernel': { type: 'string' },
    },
    strict: true,
  });
  const iters = Number(values.iters);
  const threads = Number(values.threads);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`bench:engine: --iters must be a positive integer, got '${values.iters}'`);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`bench:engine: --threads must be a positive integer, got '${values.threads}'`);
  const models = values.models.split(',').filter((m) => m !== '');
  for (const model of models) {
    if (!isZooName(model)) throw new Error(`bench:engine: --models: unknown model '${model}'`);
  }
  if (values.kernels !== 'fast' && values.kernels !== 'missing-only') {
    throw new Error(`bench:engine: --kernels must be fast or missing-only, got '${values.kernels}'`);
  }
  return {
    kernels: values.kernels,
    convKernel: values['conv-kernel'],
    json: values.json,
    models,
    iters,
    threads,
    backend: parseBackendName(values.backend, 'bench:engine --backend'),
    torch: !values['no-torch'],
    profile: values.profile,
  };
}

const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

interface Timing {
  /** Wall-clock seconds per call: the reported number. */
  readonly wall: number;
  /**
   * Process CPU seconds per call. With one compute thread it is what the wall time would be
   * on an idle core: the number to compare when other processes share the machine.
   */
  readonly cpu: number;
}

/** Seconds per call of `fn` over `iters` calls, after `warmup` untimed calls. */
function timePerCall(fn: () => void, warmup: number, iters: number): Timing {
  for (let i = 0; i < warmup; i++) fn();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < iters; i++) fn();
  const wall = (performance.now() - start) / 1000 / iters;
  const cpu = process.cpuUsage(cpuStart);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6 / iters };
}

async function benchTfjs(model: string, options: Options, backend: string, threads: number): Promise<Measured> {
  if (!isZooName(model)) throw new Error(`unknown model ${model}`);
  const net = buildModel(model, { inputShape: [32, 32, 3], classes: CLASSES });
  const optimizer = tf.train.momentum(0.01, 0.9);
  const [x, labels, xInfer] = tf.tidy(() => [
    tf.randomNormal([TRAIN_BATCH, 32, 32, 3]),
    tf.oneHot(tf.randomUniform([TRAIN_BATCH], 0, CLASSES, 'int32') as tf.Tensor1D, CLASSES),
    tf.randomNormal([INFER_BATCH, 32, 32, 3]),
  ]);
  const trainStep = (): void => {
    const loss = optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy(labels, net.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      true,
    );
    if (loss === null) throw new Error('optimizer.minimize returned no loss');
    loss.dataSync(); // wait for the step to finish (and fail on an async backend error)
    loss.dispose();
  };
  const inferStep = (): void => {
    const logits = net.predict(xInfer) as tf.Tensor;
    logits.dataSync();
    logits.dispose();
  };
  const tensorsBefore = tf.memory().numTensors;
  const trainSeconds = timePerCall(trainStep, 2, options.iters);
  // The optimizer's momentum slots appear in the first step; anything beyond is a leak.
  const leaked = tf.memory().numTensors - tensorsBefore - net.trainableWeights.length;
  if (leaked > 0) log(`warning: ${model} train step leaked ${leaked} tensors`);
  const inferSeconds = timePerCall(inferStep, 1, options.iters);
  log(
    `bench:engine: ${model} ${backend}: train ${(TRAIN_BATCH / trainSeconds.wall).toFixed(1)} img/s ` +
      `(${(TRAIN_BATCH / trainSeconds.cpu).toFixed(1)} per CPU-second), infer ${(INFER_BATCH / inferSeconds.wall).toFixed(1)} img/s ` +
      `(${(INFER_BATCH / inferSeconds.cpu).toFixed(1)} per CPU-second)`,
  );
  if (options.profile) await printProfile(model, trainStep);
  tf.dispose([x, labels, xInfer]);
  optimizer.dispose();
  net.dispose();
  return {
    row: {
      backend,
      model,
      threads,
      trainBatch: TRAIN_BATCH,
      trainImgPerSec: TRAIN_BATCH / trainSeconds.wall,
      inferBatch: INFER_BATCH,
      inferImgPerSec: INFER_BATCH / inferSeconds.wall,
    },
    trainImgPerCpuSec: TRAIN_BATCH / trainSeconds.cpu,
    inferImgPerCpuSec: INFER_BATCH / inferSeconds.cpu,
  };
}

async function printProfile(model: string, trainStep: () => void): Promise<void> {
  const profile = await tf.profile(trainStep);
  const byKernel = new Map<string, number>();
  for (const kernel of profile.kernels) {
    // Names ending in __op are customGrad wrappers whose time includes their inner kernels.
    if (kernel.name.endsWith('__op')) continue;
    const ms = typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
    byKernel.set(kernel.name, (byKernel.get(kernel.name) ?? 0) + ms);
  }
  const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
  const rows = [...byKernel]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20)
    .map(([name, ms]) => [name, ms, (100 * ms) / total]);
  log(`\nkernels of one ${model} train step (batch ${TRAIN_BATCH}), total ${total.toFixed(0)} ms:`);
  log(formatTable(['kernel', 'ms', '%'], rows));
}

/**
 * The first Python that imports torch: EMO_DIR_PYTHON if set, else `python3` on PATH, else the
 * system /usr/bin/python3 (Debian's python3-torch installs there, which a pyenv shim on PATH
 * would hide).
 */
function findTorchPython(): string | undefined {
  const candidates = process.env.EMO_DIR_PYTHON ? [process.env.EMO_DIR_PYTHON] : ['python3', '/usr/bin/python3'];
  return candidates.find((python) => spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
}

function benchTorch(python: string, model: string, threads: number, options: Options): Measured {
  const script = fileURLToPath(new URL('./torch_engine.py', import.meta.url));
  const args = [script, '--model', model, '--threads', String(threads), '--iters', String(options.iters)];
  args.push('--train-batch', String(TRAIN_BATCH), '--infer-batch', String(INFER_BATCH));
  const run = spawnSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) throw new Error(`bench/torch_engine.py ${model} exited with ${run.status ?? run.signal}`);
  const lines = run.stdout.trim().split('\n');
  const parsed = JSON.parse(lines[lines.length - 1]) as EngineRow & { trainImgPerCpuSec: number; inferImgPerCpuSec: number };
  const { trainImgPerCpuSec, inferImgPerCpuSec, ...row } = parsed;
  return { row, trainImgPerCpuSec, inferImgPerCpuSec };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.convKernel !== undefined) process.env.EMO_DIR_CONV_KERNEL = options.convKernel;
  await initEngine({ ...(options.backend ? { backend: options.backend } : {}), threads: options.threads, kernels: options.kernels, log });
  const info = engineInfo();
  if (info === undefined) throw new Error('engine did not initialise');
  const python = options.torch ? findTorchPython() : undefined;
  if (options.torch && python === undefined) log('bench:engine: no python3 can import torch; skipping the PyTorch rows');
  // PyTorch gets the threads tfjs really computes with (wasm in Node: 1), for a fair ratio.
  const threads = info.threads > 0 ? info.threads : options.threads;
  const measured: Measured[] = [];
  const emit = (m: Measured): void => {
    measured.push(m);
    if (options.json) process.stdout.write(`${JSON.stringify(m.row)}\n`);
  };
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
  for (const model of options.models) {
    log(`bench:engine: ${model} on ${info.backend} ...`);
    const tfjs = await benchTfjs(model, options, info.backend, threads);
    emit(tfjs);
    if (python !== undefined) {
      const torch = benchTorch(python, model, threads, options);
      emit(torch);
      log(
        `bench:engine: ${model} tfjs/pytorch wall-clock: train ${ratio(tfjs.row.trainImgPerSec, torch.row.trainImgPerSec)}, ` +
          `infer ${ratio(tfjs.row.inferImgPerSec, torch.row.inferImgPerSec)}; per CPU-second: ` +
          `train ${ratio(tfjs.trainImgPerCpuSec, torch.trainImgPerCpuSec)}, infer ${ratio(tfjs.inferImgPerCpuSec, torch.inferImgPerCpuSec)}`,
      );
    }
  }
  if (options.json) return;
  const torchOf = (model: string): Measured | undefined => measured.find((m) => m.row.backend === 'pytorch' && m.row.model === model);
  const table = measured.map((m) => {
    const r = m.row;
    const torch = r.backend === 'pytorch' ? undefined : torchOf(r.model);
    return [
      r.backend,
      r.model,
      r.threads,
      r.trainBatch,
      r.trainImgPerSec,
      m.trainImgPerCpuSec,
      torch ? m.trainImgPerCpuSec / torch.trainImgPerCpuSec : undefined,
      r.inferBatch,
      r.inferImgPerSec,
      m.inferImgPerCpuSec,
      torch ? m.inferImgPerCpuSec / torch.inferImgPerCpuSec : undefined,
    ];
  });
  const columns = [
    'backend',
    'model',
    'threads',
    'trainBatch',
    'train img/s',
    'per cpu-s',
    'vs torch',
    'inferBatch',
    'infer img/s',
    'per cpu-s',
    'vs torch',
  ];
  process.stdout.write(`${formatTable(columns, table)}\n`);
  process.stdout.write('(per cpu-s: images per CPU-second of the process, robust to a shared machine; vs torch: its ratio)\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
