/**
 * GPU check (issue 11, README "GPU stack"): the one command to run the day a GPU machine is
 * available, inside the worker image or with @tensorflow/tfjs-node-gpu installed.
 *
 *   npm run bench:gpu [-- --json] [--subnets k1,k2,k3,k4] [--evaluations 3] [--input-size 224]
 *                     [--search-train 1280] [--search-val 1024] [--recovery-steps 20]
 *                     [--recovery-batch 64] [--feature-dtype float32|float16] [--engine-iters 20]
 *                     [--backend tensorflow|wasm|cpu] [--allow-no-gpu] [--keep]
 *
 * Prints, as JSON rows with `--json` (one object per line on stdout, logs on stderr):
 *   1. {kind: 'device', backend, provider, gpu, tensorflowVersion, description, nvidiaSmi}
 *   2. bench:engine on the same backend (its rows, kind 'engine'), CIFAR ResNets, no PyTorch
 *   3. per sub-network of ResNet-50 at 224x224 (kind 'evaluation'): seconds per candidate
 *      evaluation at the spec's default search settings (20 recovery steps of 64, 4 BN batches,
 *      1024 search-val images), the MACs it does (counted from the graph) and the rate achieved,
 *      on synthetic images: the numbers README's cost model needs.
 * Exits 1 without computing anything when TensorFlow sees no GPU, unless `--allow-no-gpu` (a dry
 * run on another backend: `--backend wasm --allow-no-gpu --input-size 64 ...`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { deviceReport, initEngine, parseBackendName } from '../src/engine/backend.ts';
import type { BackendName, DeviceReport } from '../src/engine/backend.ts';
import { analyzeChannels } from '../src/model/groups.ts';
import type { GenomeSlot } from '../src/model/groups.ts';
import { buildModel } from '../src/model/zoo.ts';
import { runSpecSchema } from '../src/schema/spec.ts';
import { FileStore } from '../src/store/file-store.ts';
import { divideNetwork } from '../src/dir/divide.ts';
import { prepareSubnetworkSearch } from '../src/dir/search-task.ts';
import { SCALE_MODEL, evaluationMacs } from './lib/scale-search.ts';
import { shardImageSource, writeSyntheticShards } from './lib/synthetic-shards.ts';
import { formatTable } from './lib/table.ts';

interface Options {
  readonly json: boolean;
  readonly backend: BackendName;
  readonly allowNoGpu: boolean;
  readonly subnets: string[];
  readonly evaluations: number;
  readonly inputSize: number;
  readonly searchTrain: number;
  readonly searchVal: number;
  readonly recoverySteps: number;
  readonly recoveryBatch: number;
  readonly featureDtype: 'float32' | 'float16';
  readonly engineIters: number;
  readonly keep: boolean;
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench:gpu: ${flag} must be a positive integer, got '${value}'`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      json: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'tensorflow' },
      'allow-no-gpu': { type: 'boolean', default: false },
      subnets: { type: 'string', default: 'k1,k2,k3,k4' },
      evaluations: { type: 'string', default: '3' },
      'input-size': { type: 'string', default: '224' },
      'search-train': { type: 'string', default: '1280' },
      'search-val': { type: 'string', default: '1024' },
      'recovery-steps': { type: 'string', default: '20' },
      'recovery-batch': { type: 'string', default: '64' },
      'feature-dtype': { type: 'string', default: 'float32' },
      'engine-iters': { type: 'string', default: '20' },
      keep: { type: 'boolean', default: false },
    },
  });
  const dtype = values['feature-dtype'];
  if (dtype !== 'float32' && dtype !== 'float16') throw new Error(`bench:gpu: --feature-dtype must be float32 or float16, got '${dtype}'`);
  return {
    json: values.json,
    backend: parseBackendName(values.backend, 'bench:gpu --backend')!,
    allowNoGpu: values['allow-no-gpu'],
    subnets: values.subnets.split(',').map((s) => s.trim()),
    evaluations: positive(values.evaluations, '--evaluations'),
    inputSize: positive(values['input-size'], '--input-size'),
    searchTrain: positive(values['search-train'], '--search-train'),
    searchVal: positive(values['search-val'], '--search-val'),
    recoverySteps: positive(values['recovery-steps'], '--recovery-steps'),
    recoveryBatch: positive(values['recovery-batch'], '--recovery-batch'),
    featureDtype: dtype,
    engineIters: positive(values['engine-iters'], '--engine-iters'),
    keep: values.keep,
  };
}

const log = (message: string): void => void process.stderr.write(`${message}\n`);

/** `nvidia-smi`'s view of the GPUs, when the tool is there (it comes with the driver). */
function nvidiaSmi(): string[] | undefined {
  const run = spawnSync('nvidia-smi', ['--query-gpu=name,compute_cap,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' });
  if (run.error || run.status !== 0) return undefined;
  return run.stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}

/** bench:engine's rows on the same backend, from a child process (the engine is per process). */
function engineRows(options: Options): Promise<Record<string, unknown>[]> {
  const script = fileURLToPath(new URL('./engine.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', script, '--json', '--no-torch', '--backend', options.backend, '--iters', String(options.engineIters), '--models', 'resnet20,resnet56'],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`bench:engine exited with ${code}`));
      else resolve(stdout.split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}

interface EvaluationRow {
  readonly kind: 'evaluation';
  readonly model: string;
  readonly subnet: string;
  readonly inputSize: number;
  readonly backend: string;
  readonly gpu: boolean;
  readonly recoverySteps: number;
  readonly recoveryBatch: number;
  readonly searchVal: number;
  readonly featureDtype: string;
  readonly evaluations: number;
  /** Mean wall seconds of the evaluations after the first (which includes kernel selection / JIT). */
  readonly secondsPerEvaluation: number;
  readonly firstEvaluationSeconds: number;
  readonly featureSeconds: number;
  readonly macsPerEvaluation: number;
  /** 2 x MACs per second, in TFLOPS. */
  readonly achievedTflops: number;
}

/** Keeps the `fraction` most important channels (L1) of every group. */
function keepTop(slots: readonly GenomeSlot[], importance: Readonly<Record<string, Float32Array>>, length: number, fraction: number): Uint8Array {
  const genome = new Uint8Array(length);
  for (const slot of slots) {
    const order = Array.from(importance[slot.group], (v, c) => ({ v, c })).sort((a, b) => b.v - a.v || a.c - b.c);
    for (let j = 0; j < Math.max(1, Math.round(fraction * slot.channels)); j++) genome[slot.start + order[j].c] = 1;
  }
  return genome;
}

async function evaluationRows(options: Options, device: DeviceReport, workDir: string, onRow: (row: EvaluationRow) => void): Promise<void> {
  const size = options.inputSize;
  const shardsDir = join(workDir, 'shards');
  await writeSyntheticShards(shardsDir, { count: options.searchTrain + options.searchVal + 64, height: size, width: size, classes: 1000, seed: 11 });
  const source = await shardImageSource(shardsDir, 'synthetic-imagenet');
  const model = buildModel(SCALE_MODEL, { seed: 1, inputShape: [size, size, 3] });
  try {
    const analysis = analyzeChannels(model);
    const division = divideNetwork(model, analysis);
    const spec = runSpecSchema.parse({
      model: `zoo:${SCALE_MODEL}`,
      dataset: { name: 'synthetic-imagenet', searchTrain: options.searchTrain, searchVal: options.searchVal },
      targets: [{ kind: 'flopsCut', value: 0.5 }],
      search: { recoverySteps: options.recoverySteps, recoveryBatchSize: options.recoveryBatch, featureDtype: options.featureDtype },
    });
    const store = new FileStore(join(workDir, 'store'));
    for (const subnet of options.subnets) {
      const started = performance.now();
      const context = await prepareSubnetworkSearch({ store, runId: 'bench-gpu', subnet, spec, model, division, analysis, dataset: source, log });
      const featureSeconds = (performance.now() - started) / 1000;
      try {
        const { evaluator } = context;
        const seconds: number[] = [];
        let macs = 0;
        for (let i = 0; i < options.evaluations; i++) {
          // Different keep ratios so no evaluation is a repeat (0.7, 0.6, 0.5, ...).
          const genome = keepTop(context.slots, context.importance, evaluator.genomeLength, Math.max(0.2, 0.7 - 0.1 * i));
          const result = evaluator.evaluate(genome);
          seconds.push(result.seconds);
          macs += result.macs / evaluator.original.macs;
          log(`  ${subnet} evaluation ${i + 1}: ${result.seconds.toFixed(2)} s (keeps ${(result.flops * 100).toFixed(0)}% of its MACs)`);
        }
        const later = seconds.length > 1 ? seconds.slice(1) : seconds;
        const secondsPerEvaluation = later.reduce((a, b) => a + b, 0) / later.length;
        const s = spec.search;
        const macsPerEvaluation = evaluationMacs(division, subnet, {
          recoverySteps: s.recoverySteps,
          recoveryBatchSize: s.recoveryBatchSize,
          bnRecalibrationBatches: s.bnRecalibrationBatches,
          beta: s.beta,
          searchVal: options.searchVal,
          keptMacsRatio: macs / options.evaluations,
        });
        onRow({
          kind: 'evaluation',
          model: SCALE_MODEL,
          subnet,
          inputSize: size,
          backend: device.backend,
          gpu: device.gpu,
          recoverySteps: s.recoverySteps,
          recoveryBatch: s.recoveryBatchSize,
          searchVal: options.searchVal,
          featureDtype: options.featureDtype,
          evaluations: options.evaluations,
          secondsPerEvaluation,
          firstEvaluationSeconds: seconds[0],
          featureSeconds,
          macsPerEvaluation,
          achievedTflops: (2 * macsPerEvaluation) / secondsPerEvaluation / 1e12,
        });
      } finally {
        context.dispose();
      }
    }
  } finally {
    model.dispose();
    source.close();
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const emit = (row: Record<string, unknown>): void => {
    if (options.json) process.stdout.write(`${JSON.stringify(row)}\n`);
  };
  await initEngine({ backend: options.backend, log });
  const device = deviceReport();
  const smi = nvidiaSmi();
  emit({ kind: 'device', backend: device.backend, provider: device.provider, gpu: device.gpu, tensorflowVersion: device.tensorflowVersion ?? null, description: device.description, nvidiaSmi: smi ?? null });
  log(`bench:gpu: ${device.description}${smi ? `; nvidia-smi: ${smi.join(' | ')}` : '; nvidia-smi not available'}`);
  if (!device.gpu && !options.allowNoGpu) {
    log('bench:gpu: TensorFlow sees no GPU; nothing measured (--allow-no-gpu runs anyway, for a dry run)');
    process.exitCode = 1;
    return;
  }
  const engine = await engineRows(options);
  for (const row of engine) emit({ kind: 'engine', ...row });
  const workDir = await mkdtemp(join(tmpdir(), 'emo-dir-gpu-'));
  const evaluations: EvaluationRow[] = [];
  try {
    await evaluationRows(options, device, workDir, (row) => {
      evaluations.push(row);
      emit({ ...row });
    });
  } finally {
    if (options.keep) log(`bench:gpu: kept ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
  if (!options.json) {
    console.log(`\ndevice: ${device.description}${smi ? `\nnvidia-smi: ${smi.join(' | ')}` : ''}`);
    console.log(formatTable(['model', 'train img/s', 'infer img/s'], engine.map((r) => [String(r.model), Number(r.trainImgPerSec), Number(r.inferImgPerSec)])));
    console.log(`\n${SCALE_MODEL} at ${options.inputSize}x${options.inputSize}, ${options.recoverySteps} recovery steps of ${options.recoveryBatch}, ${options.searchVal} search-val images`);
    console.log(
      formatTable(
        ['subnet', 's/eval', 'first s', 'features s', 'TMACs/eval', 'TFLOPS'],
        evaluations.map((r) => [r.subnet, r.secondsPerEvaluation, r.firstEvaluationSeconds, r.featureSeconds, r.macsPerEvaluation / 1e12, r.achievedTflops]),
      ),
    );
  }
}

await main();
