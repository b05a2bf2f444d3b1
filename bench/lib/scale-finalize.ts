/**
 * bench:scale, finalize stage: does a finalize worker's memory stay flat as its data set grows,
 * and does streaming cost training throughput?
 *
 * Synthetic shard sets (deterministic noise images at 224x224x3 in the converter's format,
 * 250-image shards, 10 classes) of two sizes are written into a FileStore under
 * `datasets/scale-<N>/{train,val}` (val: N/4 images). A stream holds at most its shuffle buffer
 * (1024 images, 154 MB here) and ~4 shards (current, 2 prefetched, one being recycled): with
 * 250-image shards (38 MB) that bound is reached well inside 2k images, so "flat from 2k to 8k"
 * tests the bound, not the size of the smaller set. With the converter's default 1000-image
 * shards (150 MB) the plateau is ~750 MB of buffers and starts at ~5k images. Each measurement is ONE CHILD PROCESS doing
 * what a finalize worker does with its data (src/dir/finalize.ts): open both splits, fine-tune
 * one epoch (`fineTuneAndEvaluate`: SGD, cosine, augmentation) and evaluate before and after;
 * it reports its peak RSS (`process.resourceUsage().maxRSS`) and the fine-tune's images/s.
 *   - `stream`: the splits opened as a worker opens `imagenet:datasets/scale-<N>` (shard-source.ts:
 *     streamed epochs through the shuffle buffer, shards prefetched);
 *   - `in-memory`: both splits loaded whole first (`loadDataset`), what finalize did before.
 * Throughput is compared on the smaller set with the runs interleaved (stream, in-memory, stream,
 * in-memory, ...; 3 pairs by default) because the machine is shared and its speed drifts; the
 * ratio is also given per CPU-second of the worker, which other tenants disturb less.
 *
 * The model is a small 224x224 CNN (two strided convs): on this machine's one-thread WASM a
 * ResNet at 224 trains at ~10-25 img/s, which would make the 8k run take most of an hour. A fast
 * model is also the stricter test of the data path: its per-image training time is smallest, so
 * any streaming overhead shows most.
 *
 *   node --import tsx bench/lib/scale-finalize.ts [--json] [--sizes 2000,8000] [--repeats 2]
 *     [--shard-size 250] [--batch-size 32] [--dir <data dir>] [--keep-data]
 *
 * `--json` prints the rows on stdout and the summary (RSS growth, throughput ratios) on stderr.
 * `runScaleFinalize` is what `bench/scale.ts --stage finalize` calls.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { storeFiles } from '../../src/data/data-files.ts';
import { loadDataset, openDatasetSource } from '../../src/data/load.ts';
import { fineTuneAndEvaluate } from '../../src/dir/finalize.ts';
import { readShardIndex } from '../../src/data/image-shards.ts';
import { ShardWriter } from '../../src/data/shard-writer.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { formatTable } from './table.ts';

export const FINALIZE_MODEL = 'cnn224-tiny';
const SIDE = 224;
const CLASSES = 10;

export interface ScaleFinalizeRow {
  readonly model: string;
  readonly stage: 'finalize';
  /** Training images (the val split is a quarter of it). */
  readonly datasetImages: number;
  readonly peakRssBytes: number;
  /** Fine-tune throughput (training images per second of the epoch). */
  readonly imagesPerSec: number;
  /** How the worker held its data: streamed shards, or both splits loaded whole. */
  readonly data: 'stream' | 'in-memory';
}

export interface ScaleFinalizeOptions {
  readonly sizes?: readonly number[];
  /** Interleaved stream/in-memory pairs on the smallest size. Default 2. */
  readonly repeats?: number;
  readonly shardSize?: number;
  readonly batchSize?: number;
  /** Where the synthetic sets are written (default under the OS temp dir); kept with keepData. */
  readonly dir?: string;
  readonly keepData?: boolean;
  readonly log?: (message: string) => void;
}

interface ChildRequest {
  readonly store: string;
  readonly datasetImages: number;
  readonly data: 'stream' | 'in-memory';
  readonly batchSize: number;
}

interface ChildResult {
  readonly peakRssBytes: number;
  readonly imagesPerSec: number;
  /** Training images per CPU-second of the whole process during the fine-tune (threads included). */
  readonly imagesPerCpuSec: number;
  readonly trainImages: number;
  readonly seconds: number;
  readonly accuracy: number;
}

/** Deterministic noise images (xorshift32 words), one shard in memory at a time; labels cycle over the classes. */
async function writeSyntheticSplit(store: FileStore, prefix: string, count: number, seed: number, shardSize: number): Promise<void> {
  const writer = new ShardWriter(storeFiles(store, prefix), { height: SIDE, width: SIDE, channels: 3, classes: Array.from({ length: CLASSES }, (_, c) => `class${c}`), order: 'source', seed });
  await writer.begin(true);
  const perImage = SIDE * SIDE * 3;
  let state = seed >>> 0 || 1;
  for (let first = 0; first < count; first += shardSize) {
    const images = Math.min(shardSize, count - first);
    const words = new Uint32Array((images * perImage) / 4);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state >>> 0;
    }
    await writer.writeShard(new Uint8Array(words.buffer), Int32Array.from({ length: images }, (_, i) => ((first + i) * 7 + seed) % CLASSES));
  }
  await writer.finish();
}

/** Writes datasets/scale-<N>/{train,val} unless a complete set of that size is there already. */
async function ensureSyntheticSet(store: FileStore, size: number, shardSize: number, log: (message: string) => void): Promise<void> {
  const train = `datasets/scale-${size}/train`;
  const val = `datasets/scale-${size}/val`;
  const complete = async (prefix: string, count: number): Promise<boolean> => {
    try {
      const index = await readShardIndex(storeFiles(store, prefix));
      return index.count === count && index.shards[0]?.count === Math.min(shardSize, count);
    } catch {
      return false;
    }
  };
  if ((await complete(train, size)) && (await complete(val, size / 4))) return;
  const started = performance.now();
  await writeSyntheticSplit(store, train, size, size, shardSize);
  await writeSyntheticSplit(store, val, size / 4, size + 1, shardSize);
  log(`scale-finalize: wrote ${size} + ${size / 4} synthetic images at ${SIDE}x${SIDE} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** Runs one measurement in a fresh process (so peak RSS is that worker's alone). */
function runChild(request: ChildRequest, log: (message: string) => void): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const script = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, ['--import', 'tsx', script, '--child', JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`scale-finalize child (${request.data}, ${request.datasetImages}) exited with ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`));
        return;
      }
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as ChildResult);
      } catch {
        reject(new Error(`scale-finalize child printed no result: ${stdout} ${stderr}`));
      }
      if (stderr.includes('img/s')) log(stderr.trim().split('\n').filter((line) => line.startsWith('fine-tune:')).join('\n'));
    });
  });
}

/** The child: a finalize worker's data path on the synthetic set. */
async function child(request: ChildRequest): Promise<ChildResult> {
  await initEngine({ log: (message) => process.stderr.write(`${message}\n`) });
  const store = new FileStore(request.store);
  const name = `imagenet:datasets/scale-${request.datasetImages}`;
  const [train, test] =
    request.data === 'stream'
      ? await Promise.all([openDatasetSource(name, { store, split: 'train' }), openDatasetSource(name, { store, split: 'test' })])
      : await Promise.all([loadDataset(name, { store, split: 'train' }), loadDataset(name, { store, split: 'test' })]);
  // conv 3x3/4 (8) -> BN -> relu -> conv 3x3/2 (16) -> BN -> relu -> GAP -> dense(10).
  const input = tf.input({ shape: [SIDE, SIDE, 3] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 4, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({}).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({}).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: CLASSES, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output, name: FINALIZE_MODEL });
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const tuned = await fineTuneAndEvaluate(model, model, train, test, {
    epochs: 1,
    batchSize: request.batchSize,
    learningRate: 0.05,
    weightDecay: 5e-4,
    distillWeight: 0,
    distillTemperature: 4,
    augment: true,
    seed: 1,
    skipOriginal: true,
    log: (message) => process.stderr.write(`${message}\n`),
  });
  const cpu = process.cpuUsage(cpuBefore);
  const trainImages = tuned.steps * request.batchSize;
  return {
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    imagesPerSec: trainImages / tuned.seconds,
    imagesPerCpuSec: trainImages / ((cpu.user + cpu.system) / 1e6),
    trainImages,
    seconds: (performance.now() - started) / 1000,
    accuracy: tuned.afterFineTune.top1,
  };
}

export interface ScaleFinalizeSummary {
  /** Peak RSS of the largest streamed run minus that of the smallest (max over repeats each). */
  readonly rssGrowthBytes: number;
  /** Mean of stream/in-memory images per second over the interleaved pairs. */
  readonly throughputRatio: number;
  readonly pairs: readonly number[];
  /** The same ratio in training images per CPU-second of the worker (less sensitive to a shared machine). */
  readonly cpuThroughputRatio: number;
}

/** The finalize rows of bench:scale and their summary (see the module comment). */
export async function runScaleFinalize(options: ScaleFinalizeOptions = {}): Promise<{ rows: ScaleFinalizeRow[]; summary: ScaleFinalizeSummary }> {
  const sizes = [...(options.sizes ?? [2000, 8000])].sort((a, b) => a - b);
  const repeats = options.repeats ?? 3;
  const shardSize = options.shardSize ?? 250;
  const batchSize = options.batchSize ?? 32;
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`scale-finalize: repeats must be a positive integer, got ${repeats}`);
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < 4 * batchSize || size % 4 !== 0) throw new Error(`scale-finalize: size ${size} must be a multiple of 4 and at least ${4 * batchSize}`);
  }
  const dir = options.dir ?? join(tmpdir(), 'emo-dir-bench-scale-finalize');
  const store = new FileStore(dir);
  const runs: { row: ScaleFinalizeRow; imagesPerCpuSec: number }[] = [];
  try {
    for (const size of sizes) await ensureSyntheticSet(store, size, shardSize, log);
    const measure = async (size: number, data: ScaleFinalizeRow['data']): Promise<void> => {
      const result = await runChild({ store: dir, datasetImages: size, data, batchSize }, log);
      log(
        `scale-finalize: ${data} ${size}: peak RSS ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ${result.imagesPerSec.toFixed(1)} img/s, ` +
          `${result.imagesPerCpuSec.toFixed(1)} img/cpu-s, ${result.seconds.toFixed(0)} s`,
      );
      runs.push({ row: { model: FINALIZE_MODEL, stage: 'finalize', datasetImages: size, peakRssBytes: result.peakRssBytes, imagesPerSec: result.imagesPerSec, data }, imagesPerCpuSec: result.imagesPerCpuSec });
    };
    // Interleaved on the smallest size: stream, in-memory, stream, in-memory, ...
    for (let r = 0; r < repeats; r++) {
      await measure(sizes[0], 'stream');
      await measure(sizes[0], 'in-memory');
    }
    for (const size of sizes.slice(1)) {
      await measure(size, 'stream');
      await measure(size, 'in-memory');
    }
  } finally {
    if (!options.keepData) await rm(dir, { recursive: true, force: true });
  }
  const rows = runs.map((run) => run.row);
  const stream = rows.filter((row) => row.data === 'stream');
  const peak = (size: number): number => Math.max(...stream.filter((row) => row.datasetImages === size).map((row) => row.peakRssBytes));
  // Run 2r is the stream half of pair r, run 2r + 1 its in-memory half.
  const pairs = Array.from({ length: repeats }, (_, r) => runs[2 * r].row.imagesPerSec / runs[2 * r + 1].row.imagesPerSec);
  const cpuPairs = Array.from({ length: repeats }, (_, r) => runs[2 * r].imagesPerCpuSec / runs[2 * r + 1].imagesPerCpuSec);
  const mean = (values: readonly number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;
  const summary: ScaleFinalizeSummary = {
    rssGrowthBytes: peak(sizes[sizes.length - 1]) - peak(sizes[0]),
    throughputRatio: mean(pairs),
    pairs,
    cpuThroughputRatio: mean(cpuPairs),
  };
  return { rows, summary };
}

/** Prints the rows and the summary: a table and a line, or (json) one JSON object per row and one for the summary. */
export function reportScaleFinalize(rows: readonly ScaleFinalizeRow[], summary: ScaleFinalizeSummary, json: boolean): void {
  if (json) {
    for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
    process.stdout.write(`${JSON.stringify({ model: FINALIZE_MODEL, stage: 'finalize', summary })}\n`);
    return;
  }
  const table = rows.map((row) => [row.model, row.stage, row.data, row.datasetImages, row.peakRssBytes / 2 ** 20, row.imagesPerSec]);
  process.stdout.write(`${formatTable(['model', 'stage', 'data', 'datasetImages', 'peakRss MiB', 'img/s'], table)}\n`);
  process.stdout.write(
    `stream peak RSS growth ${(summary.rssGrowthBytes / 2 ** 20).toFixed(1)} MiB from the smallest to the largest set; ` +
      `stream/in-memory throughput ${summary.throughputRatio.toFixed(3)} (interleaved pairs ${summary.pairs.map((p) => p.toFixed(3)).join(', ')}), ` +
      `per cpu-second ${summary.cpuThroughputRatio.toFixed(3)}\n`,
  );
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      repeats: { type: 'string' },
      'shard-size': { type: 'string' },
      'batch-size': { type: 'string' },
      dir: { type: 'string' },
      'keep-data': { type: 'boolean', default: false },
      child: { type: 'string' },
    },
    strict: true,
  });
  if (values.child !== undefined) {
    process.stdout.write(`${JSON.stringify(await child(JSON.parse(values.child) as ChildRequest))}\n`);
    return;
  }
  const int = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
    return parsed;
  };
  const { rows, summary } = await runScaleFinalize({
    ...(values.sizes !== undefined ? { sizes: values.sizes.split(',').map((size) => int('sizes', size) as number) } : {}),
    ...(values.repeats !== undefined ? { repeats: int('repeats', values.repeats) } : {}),
    ...(values['shard-size'] !== undefined ? { shardSize: int('shard-size', values['shard-size']) } : {}),
    ...(values['batch-size'] !== undefined ? { batchSize: int('batch-size', values['batch-size']) } : {}),
    ...(values.dir !== undefined ? { dir: values.dir } : {}),
    keepData: values['keep-data'],
  });
  reportScaleFinalize(rows, summary, values.json);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`scale-finalize: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
