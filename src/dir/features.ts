/**
 * Boundary features (DESIGN §2): for sub-network S_k, its input X_{k-1}, its output X_k and the
 * labels y, computed by the ORIGINAL network in inference mode on two fixed, seeded, disjoint
 * subsets of the TRAINING data: the search-train subset (recovery trains on it) and the
 * search-validation subset (impairment is measured on it). A candidate evaluation then never
 * runs the prefix S_1..S_{k-1}. Also stored: the original network's CE loss and accuracy on the
 * search-validation subset, the baseline of impairment = CE(pruned) - CE(original), and
 * Var(X_k) over the search-train subset, the normaliser of the recovery's MSE term.
 *
 * CACHE LAYOUT (through the ObjectStore only; prefix = runKeys(runId).subnet(id).features):
 *   index.json                         shapes, dtype, counts, subset indices, sha256 per shard
 *   <split>-<array>-<nnnnn>.bin        split in {train, val}, array in {input, output, labels}
 * Arrays are raw little-endian float32 (features, NHWC) or int32 (labels), cut into shards of
 * whole rows of at most `maxShardBytes` (64 MiB: comfortably below single-PUT limits and small
 * enough to stream). Shards are written first and index.json last, so an index that exists
 * names a complete set; loading checks every shard's size and sha256 and fails naming the key.
 * Features are a deterministic function of (model, data, subsets), so a retried write of the
 * same key writes the same bytes; a corrupt cache is recomputed by `ensureBoundaryFeatures`.
 *
 * One pass or per k: `computeBoundaryFeatures` runs the network once per batch and captures
 * every requested boundary tensor; asked for one k it computes only the prefix up to X_k on
 * the search-train subset (the search-validation subset always runs the whole network, for
 * the baseline, and is small).
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { z } from 'zod';
import { tf } from '../engine/backend.ts';
import { arrayBatches, epochOrder } from '../data/batches.ts';
import type { Normalization } from '../data/batches.ts';
import type { ImageDataset } from '../data/dataset.ts';
import { stratifiedSample } from '../data/sampling.ts';
import { runKeys } from '../store/keys.ts';
import { NotFoundError, getJson, putJson } from '../store/object-store.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { outputKind } from '../train/losses.ts';
import type { OutputKind } from '../train/losses.ts';
import { findSubnetwork } from './divide.ts';
import type { Division, SubnetworkSpec } from './divide.ts';
import { buildBoundaryModel } from './subnetwork.ts';

export const FEATURES_FORMAT = 'emo-dir-boundary-features';
export const FEATURES_VERSION = 1;
export const FEATURES_INDEX = 'index.json';
export const DEFAULT_MAX_SHARD_BYTES = 64 * 1024 * 1024;

if (endianness() !== 'LE') {
  // Shards are the in-memory bytes of Float32Array/Int32Array, which are little-endian only on LE hosts.
  throw new Error('emo-dir boundary features: a little-endian host is required (shards are raw LE arrays)');
}

export class FeatureCacheError extends Error {
  constructor(
    readonly key: string,
    readonly location: string,
    problem: string,
  ) {
    super(`${key} (in ${location}): ${problem}`);
    this.name = 'FeatureCacheError';
  }
}

// ---- subsets ----

/** The fixed search subsets: indices into the training set, disjoint, sorted ascending. */
export interface SearchSubsets {
  readonly dataset: string;
  readonly seed: number;
  readonly train: Int32Array;
  readonly val: Int32Array;
}

export interface SearchSubsetOptions {
  /** Images of the search-train subset (class-stratified). */
  readonly searchTrain: number;
  /** Images of the search-validation subset (class-stratified, disjoint from search-train). */
  readonly searchVal: number;
  readonly seed: number;
}

/** Draws the search-train and search-validation subsets of `dataset` (the training split). */
export function drawSearchSubsets(dataset: ImageDataset, options: SearchSubsetOptions): SearchSubsets {
  if (options.searchTrain + options.searchVal > dataset.count) {
    throw new Error(
      `search subsets of ${dataset.name}: searchTrain ${options.searchTrain} + searchVal ${options.searchVal} exceed its ${dataset.count} images`,
    );
  }
  const train = stratifiedSample(dataset, { total: options.searchTrain, seed: options.seed });
  // The validation draw excludes the train indices; a different seed stream keeps it independent.
  const val = stratifiedSample(dataset, { total: options.searchVal, seed: options.seed + 0x76616c, exclude: train });
  return { dataset: dataset.name, seed: options.seed, train, val };
}

// ---- in-memory features ----

export interface FeatureSplit {
  readonly count: number;
  /** Training-set indices of the rows, in row order. */
  readonly indices: Int32Array;
  /** X_{k-1}: count * prod(inputShape) float32, NHWC. */
  readonly input: Float32Array;
  /** X_k: count * prod(outputShape) float32. */
  readonly output: Float32Array;
  readonly labels: Int32Array;
  /** Variance of X_k over all its elements (population variance). */
  readonly outputVariance: number;
}

export interface Metrics {
  /** Mean softmax cross-entropy. */
  readonly loss: number;
  /** Top-1 accuracy. */
  readonly accuracy: number;
  readonly count: number;
}

export interface BoundaryFeatures {
  readonly subnet: string;
  readonly index: number;
  readonly model: string;
  readonly inputTensor: string;
  readonly outputTensor: string;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly classes: number;
  /** Whether the network's output is logits or probabilities (for CE on T_k's output). */
  readonly outputKind: OutputKind;
  readonly normalize: Normalization;
  readonly dataset: string;
  readonly seed: number;
  readonly train: FeatureSplit;
  readonly val: FeatureSplit;
  /** The original network on the search-validation subset: the impairment baseline. */
  readonly baseline: Metrics;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Population variance in float64 (Welford would be overkill: values are O(1) features). */
function variance(values: Float32Array): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  const mean = sum / values.length;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    const d = values[i] - mean;
    squares += d * d;
  }
  return squares / values.length;
}

/**
 * Mean CE and top-1 accuracy of network outputs [count, classes] against labels, in float64 on
 * the host (deterministic, independent of the backend's reduction order).
 */
export function outputMetrics(outputs: Float32Array, labels: Int32Array, classes: number, kind: OutputKind = 'logits'): Metrics {
  const count = labels.length;
  if (outputs.length !== count * classes) {
    throw new Error(`outputMetrics: ${outputs.length} outputs for ${count} labels x ${classes} classes`);
  }
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < count; i++) {
    const row = outputs.subarray(i * classes, (i + 1) * classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
    if (best === labels[i]) correct++;
    if (kind === 'probabilities') {
      loss -= Math.log(Math.min(1, Math.max(row[labels[i]], 1e-7)));
    } else {
      let max = -Infinity;
      for (let c = 0; c < classes; c++) max = Math.max(max, row[c]);
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(row[c] - max);
      loss -= row[labels[i]] - max - Math.log(sum);
    }
  }
  return { loss: count > 0 ? loss / count : NaN, accuracy: count > 0 ? correct / count : NaN, count };
}

export interface ComputeFeaturesOptions {
  /** Sub-networks to compute (ids or 1-based indices); default all. */
  readonly subnets?: readonly (string | number)[];
  /** Images per forward pass. Default 64. */
  readonly batchSize?: number;
  /** The network's input normalisation (as in training). Default 'unit'. */
  readonly normalize?: Normalization;
  readonly log?: (message: string) => void;
}

function defaultLog(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * Runs the original network (inference mode) over `indices` of `dataset` and returns, per
 * requested layer, its outputs for every row (the network input under the input layer's name).
 */
function captureTensors(
  model: tf.LayersModel,
  division: Division,
  dataset: ImageDataset,
  indices: Int32Array,
  layers: readonly string[],
  options: { batchSize: number; normalize: Normalization },
): Map<string, Float32Array> {
  const inputName = model.inputs[0].sourceLayer.name;
  const computed = layers.filter((l) => l !== inputName);
  const sizes = new Map<string, number>();
  const arrays = new Map<string, Float32Array>();
  const boundary = computed.length > 0 ? buildBoundaryModel(model, division, computed) : undefined;
  const shapeOf = (tensor: tf.SymbolicTensor): number => product(tensor.shape.slice(1) as number[]);
  if (layers.includes(inputName)) sizes.set(inputName, shapeOf(model.inputs[0]));
  if (boundary) boundary.outputs.forEach((t, i) => sizes.set(computed[i], shapeOf(t)));
  for (const [name, size] of sizes) arrays.set(name, new Float32Array(indices.length * size));
  try {
    let row = 0;
    for (const batch of arrayBatches(dataset, { batchSize: options.batchSize, shuffle: false, indices, normalize: options.normalize })) {
      const n = batch.y.length;
      if (layers.includes(inputName)) arrays.get(inputName)!.set(batch.x, row * sizes.get(inputName)!);
      if (boundary) {
        const outputs = tf.tidy(() => {
          const x = tf.tensor4d(batch.x, [...batch.shape], 'float32');
          const result = boundary.apply(x, { training: false });
          return Array.isArray(result) ? (result as tf.Tensor[]) : [result as tf.Tensor];
        });
        try {
          outputs.forEach((tensor, i) => {
            const name = computed[i];
            arrays.get(name)!.set(tensor.dataSync() as Float32Array, row * sizes.get(name)!);
          });
        } finally {
          tf.dispose(outputs);
        }
      }
      row += n;
    }
  } finally {
    // Releases this model's use of the shared layers (never the original weights).
    boundary?.dispose();
  }
  return arrays;
}

function labelsOf(dataset: ImageDataset, indices: Int32Array): Int32Array {
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) labels[i] = dataset.labels[indices[i]];
  return labels;
}

/**
 * Boundary features of the requested sub-networks, computed in one pass per subset. Arrays of a
 * tensor shared by two sub-networks (X_k is S_k's output and S_{k+1}'s input) are shared too.
 */
export function computeBoundaryFeatures(
  model: tf.LayersModel,
  division: Division,
  dataset: ImageDataset,
  subsets: SearchSubsets,
  options: ComputeFeaturesOptions = {},
): Map<string, BoundaryFeatures> {
  const batchSize = options.batchSize ?? 64;
  const normalize = options.normalize ?? 'unit';
  const log = options.log ?? defaultLog;
  const specs: SubnetworkSpec[] = (options.subnets ?? division.subnetworks.map((s) => s.id)).map((s) => findSubnetwork(division, s));
  if (subsets.dataset !== dataset.name) {
    throw new Error(`computeBoundaryFeatures: the subsets were drawn from '${subsets.dataset}', not from '${dataset.name}'`);
  }
  const outputLayer = model.outputs[0].sourceLayer.name;
  const needed = [...new Set(specs.flatMap((s) => [s.inputTensor, s.outputTensor]))];
  const started = Date.now();
  const train = captureTensors(model, division, dataset, subsets.train, needed, { batchSize, normalize });
  // The validation pass always includes the network output: the baseline needs it.
  const val = captureTensors(model, division, dataset, subsets.val, [...new Set([...needed, outputLayer])], { batchSize, normalize });
  const classes = model.outputs[0].shape[model.outputs[0].shape.length - 1] as number;
  const kind = outputKind(model);
  const trainLabels = labelsOf(dataset, subsets.train);
  const valLabels = labelsOf(dataset, subsets.val);
  const baseline = outputMetrics(val.get(outputLayer)!, valLabels, classes, kind);
  const variances = new Map<string, number>();
  const result = new Map<string, BoundaryFeatures>();
  for (const spec of specs) {
    if (!variances.has(spec.outputTensor)) variances.set(spec.outputTensor, variance(train.get(spec.outputTensor)!));
    const split = (arrays: Map<string, Float32Array>, indices: Int32Array, labels: Int32Array, outputVariance: number): FeatureSplit => ({
      count: indices.length,
      indices,
      input: arrays.get(spec.inputTensor)!,
      output: arrays.get(spec.outputTensor)!,
      labels,
      outputVariance,
    });
    const trainVariance = variances.get(spec.outputTensor)!;
    result.set(spec.id, {
      subnet: spec.id,
      index: spec.index,
      model: division.model,
      inputTensor: spec.inputTensor,
      outputTensor: spec.outputTensor,
      inputShape: spec.inputShape,
      outputShape: spec.outputShape,
      classes,
      outputKind: kind,
      normalize,
      dataset: dataset.name,
      seed: subsets.seed,
      train: split(train, subsets.train, trainLabels, trainVariance),
      val: split(val, subsets.val, valLabels, variance(val.get(spec.outputTensor)!)),
      baseline,
    });
  }
  log(
    `boundary features of ${division.model} [${specs.map((s) => s.id).join(', ')}]: ${subsets.train.length} search-train + ` +
      `${subsets.val.length} search-val images in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
      `baseline CE ${baseline.loss.toFixed(4)} acc ${(baseline.accuracy * 100).toFixed(2)}%`,
  );
  return result;
}

// ---- batches for recovery / evaluation ----

export interface FeatureBatch {
  /** X_{k-1} rows [n, ...inputShape]. */
  readonly input: tf.Tensor;
  /** X_k rows [n, ...outputShape]. */
  readonly output: tf.Tensor;
  /** [n] int32. */
  readonly labels: tf.Tensor1D;
  /** Row numbers of the split in this batch. */
  readonly rows: Int32Array;
  dispose(): void;
}

export interface FeatureBatchOptions {
  readonly batchSize: number;
  /** Seeded order per (seed, epoch). Default false (row order). */
  readonly shuffle?: boolean;
  readonly seed?: number;
  readonly epoch?: number;
  readonly dropLast?: boolean;
}

function gatherRows(source: Float32Array, rowSize: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * rowSize);
  for (let i = 0; i < rows.length; i++) out.set(source.subarray(rows[i] * rowSize, (rows[i] + 1) * rowSize), i * rowSize);
  return out;
}

/** Mini-batches of (X_{k-1}, X_k, y) from a cached split; the caller disposes each batch. */
export function* featureBatches(features: BoundaryFeatures, split: 'train' | 'val', options: FeatureBatchOptions): Generator<FeatureBatch> {
  const data = features[split];
  const order = epochOrder(data.count, { shuffle: options.shuffle ?? false, seed: options.seed ?? 0, epoch: options.epoch ?? 0 });
  const inSize = product(features.inputShape);
  const outSize = product(features.outputShape);
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`featureBatches: batchSize must be a positive integer, got ${batchSize}`);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.subarray(start, Math.min(order.length, start + batchSize));
    if (options.dropLast && rows.length < batchSize) break;
    // Tensors are made on first use: scoring reads only the inputs, BN re-estimation only the
    // inputs, and gathering and uploading the unused X_k rows would double their cost.
    // tf.keep: a first use inside a tidy (a loss closure) must not end the batch's tensor there.
    const made: tf.Tensor[] = [];
    let disposed = false;
    const once = <T extends tf.Tensor>(make: () => T): (() => T) => {
      let tensor: T | undefined;
      return () => {
        if (disposed) throw new Error(`featureBatches(${features.subnet}): batch used after dispose()`);
        if (tensor === undefined) {
          tensor = tf.keep(make());
          made.push(tensor);
        }
        return tensor;
      };
    };
    const input = once(() => tf.tensor(gatherRows(data.input, inSize, rows), [rows.length, ...features.inputShape], 'float32'));
    const output = once(() => tf.tensor(gatherRows(data.output, outSize, rows), [rows.length, ...features.outputShape], 'float32'));
    const labels = once(() => tf.tensor1d(Int32Array.from(rows, (r) => data.labels[r]), 'int32'));
    yield {
      get input() {
        return input();
      },
      get output() {
        return output();
      },
      get labels() {
        return labels();
      },
      rows,
      dispose(): void {
        if (disposed) return;
        disposed = true;
        tf.dispose(made);
      },
    };
  }
}

/**
 * CE and accuracy of `forward` (e.g. T_k, or T_k after S_k') applied to the split's X_{k-1}
 * (`from: 'input'`) or X_k (`from: 'output'`), in inference mode. The impairment of a candidate
 * is `metrics.loss - features.baseline.loss`.
 */
export function evaluateOnFeatures(
  forward: tf.LayersModel | ((x: tf.Tensor) => tf.Tensor),
  features: BoundaryFeatures,
  split: 'train' | 'val',
  from: 'input' | 'output',
  batchSize = 128,
): Metrics {
  const apply = typeof forward === 'function' ? forward : (x: tf.Tensor) => forward.apply(x, { training: false }) as tf.Tensor;
  const data = features[split];
  const outputs = new Float32Array(data.count * features.classes);
  for (const batch of featureBatches(features, split, { batchSize })) {
    try {
      const logits = tf.tidy(() => apply(from === 'input' ? batch.input : batch.output));
      try {
        if (logits.size !== batch.rows.length * features.classes) {
          throw new Error(`evaluateOnFeatures(${features.subnet}): model output [${logits.shape.join(', ')}] is not [batch, ${features.classes}]`);
        }
        outputs.set(logits.dataSync() as Float32Array, batch.rows[0] * features.classes);
      } finally {
        logits.dispose();
      }
    } finally {
      batch.dispose();
    }
  }
  return outputMetrics(outputs, data.labels, features.classes, features.outputKind);
}

// ---- the store cache ----

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
const shardSchema = z.strictObject({
  key: z.string().min(1),
  rows: z.number().int().min(0),
  bytes: z.number().int().min(0),
  sha256: sha256Schema,
});
const arraySchema = z.strictObject({
  dtype: z.enum(['float32', 'int32']),
  /** Full shape, rows first. */
  shape: z.array(z.number().int().min(0)).min(1),
  bytes: z.number().int().min(0),
  shards: z.array(shardSchema),
});
const splitSchema = z.strictObject({
  count: z.number().int().min(0),
  indices: z.array(z.number().int().min(0)),
  outputVariance: z.number(),
  arrays: z.strictObject({ input: arraySchema, output: arraySchema, labels: arraySchema }),
});
const normalizationSchema = z.union([
  z.literal('unit'),
  z.literal('raw'),
  z.strictObject({ mean: z.array(z.number()), std: z.array(z.number()) }),
]);
const metricsSchema = z.strictObject({ loss: z.number(), accuracy: z.number(), count: z.number().int() });
export const featureIndexSchema = z.strictObject({
  format: z.literal(FEATURES_FORMAT),
  version: z.literal(FEATURES_VERSION),
  subnet: z.string(),
  index: z.number().int().min(1),
  model: z.string(),
  inputTensor: z.string(),
  outputTensor: z.string(),
  inputShape: z.array(z.number().int().min(1)),
  outputShape: z.array(z.number().int().min(1)),
  classes: z.number().int().min(1),
  outputKind: z.enum(['logits', 'probabilities']),
  normalize: normalizationSchema,
  dataset: z.string(),
  seed: z.number(),
  baseline: metricsSchema,
  totalBytes: z.number().int().min(0),
  splits: z.strictObject({ train: splitSchema, val: splitSchema }),
});
export type FeatureIndex = z.infer<typeof featureIndexSchema>;
type ArrayEntry = z.infer<typeof arraySchema>;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The prefix of sub-network `subnet`'s cached features. */
export function featuresPrefix(runId: string, subnet: string): string {
  return runKeys(runId).subnet(subnet).features;
}

export interface SaveFeaturesOptions {
  /** Largest shard in bytes (whole rows; a single row larger than this gets its own shard). */
  readonly maxShardBytes?: number;
  readonly log?: (message: string) => void;
}

async function putArray(
  store: ObjectStore,
  prefix: string,
  name: string,
  array: Float32Array | Int32Array,
  rowShape: readonly number[],
  count: number,
  maxShardBytes: number,
): Promise<ArrayEntry> {
  const rowBytes = product(rowShape) * 4;
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (bytes.length !== rowBytes * count) throw new Error(`${prefix}${name}: ${bytes.length} bytes for ${count} rows of ${rowBytes}`);
  const rowsPerShard = Math.max(1, Math.floor(maxShardBytes / Math.max(rowBytes, 1)));
  const shards: ArrayEntry['shards'] = [];
  // At least one shard, also for zero rows, so every array has a key to check.
  const shardTotal = Math.max(1, Math.ceil(count / rowsPerShard));
  for (let n = 0; n < shardTotal; n++) {
    const start = n * rowsPerShard;
    const rows = Math.min(rowsPerShard, count - start);
    const body = bytes.subarray(start * rowBytes, (start + rows) * rowBytes);
    const key = `${prefix}${name}-${String(n).padStart(5, '0')}.bin`;
    await store.put(key, body, { contentType: 'application/octet-stream' });
    shards.push({ key, rows, bytes: body.length, sha256: sha256(body) });
  }
  return { dtype: array instanceof Int32Array ? 'int32' : 'float32', shape: [count, ...rowShape], bytes: bytes.length, shards };
}

/** Writes one sub-network's features (shards first, index.json last). Returns the index. */
export async function saveBoundaryFeatures(
  store: ObjectStore,
  runId: string,
  features: BoundaryFeatures,
  options: SaveFeaturesOptions = {},
): Promise<FeatureIndex> {
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isInteger(maxShardBytes) || maxShardBytes < 4) throw new Error(`saveBoundaryFeatures: maxShardBytes must be an integer >= 4, got ${maxShardBytes}`);
  const log = options.log ?? defaultLog;
  const prefix = featuresPrefix(runId, features.subnet);
  const splits = {} as FeatureIndex['splits'];
  let totalBytes = 0;
  let shardCount = 0;
  for (const name of ['train', 'val'] as const) {
    const split = features[name];
    const arrays = {
      input: await putArray(store, prefix, `${name}-input`, split.input, features.inputShape, split.count, maxShardBytes),
      output: await putArray(store, prefix, `${name}-output`, split.output, features.outputShape, split.count, maxShardBytes),
      labels: await putArray(store, prefix, `${name}-labels`, split.labels, [], split.count, maxShardBytes),
    };
    for (const entry of Object.values(arrays)) {
      totalBytes += entry.bytes;
      shardCount += entry.shards.length;
    }
    splits[name] = { count: split.count, indices: Array.from(split.indices), outputVariance: split.outputVariance, arrays };
  }
  const index: FeatureIndex = {
    format: FEATURES_FORMAT,
    version: FEATURES_VERSION,
    subnet: features.subnet,
    index: features.index,
    model: features.model,
    inputTensor: features.inputTensor,
    outputTensor: features.outputTensor,
    inputShape: [...features.inputShape],
    outputShape: [...features.outputShape],
    classes: features.classes,
    outputKind: features.outputKind,
    normalize:
      typeof features.normalize === 'string'
        ? features.normalize
        : { mean: [...features.normalize.mean], std: [...features.normalize.std] },
    dataset: features.dataset,
    seed: features.seed,
    baseline: { ...features.baseline },
    totalBytes,
    splits,
  };
  await putJson(store, `${prefix}${FEATURES_INDEX}`, index);
  log(
    `boundary features ${features.subnet}: wrote ${totalBytes} bytes in ${shardCount} shards under ${prefix} (in ${store.location}); ` +
      `train ${describeSplit(index, 'train')}, val ${describeSplit(index, 'val')}`,
  );
  return index;
}

function describeSplit(index: FeatureIndex, name: 'train' | 'val'): string {
  const s = index.splits[name];
  return `${s.count} rows (input ${s.arrays.input.bytes} B, output ${s.arrays.output.bytes} B, labels ${s.arrays.labels.bytes} B)`;
}

async function readArray(store: ObjectStore, entry: ArrayEntry, what: string, indexKey: string): Promise<Uint8Array> {
  const out = new Uint8Array(entry.bytes);
  let at = 0;
  const rowBytes = product(entry.shape.slice(1)) * 4;
  let rows = 0;
  for (const shard of entry.shards) {
    let body: Uint8Array;
    try {
      body = await store.get(shard.key);
    } catch (error) {
      if (error instanceof NotFoundError) throw new FeatureCacheError(shard.key, store.location, `shard of ${what} listed in ${indexKey} is missing`);
      throw error;
    }
    if (body.length !== shard.bytes || body.length !== shard.rows * rowBytes) {
      throw new FeatureCacheError(
        shard.key,
        store.location,
        `shard of ${what} has ${body.length} bytes, ${indexKey} says ${shard.bytes} (${shard.rows} rows of ${rowBytes} bytes)`,
      );
    }
    if (at + body.length > out.length) throw new FeatureCacheError(shard.key, store.location, `shards of ${what} hold more than the ${entry.bytes} bytes ${indexKey} declares`);
    const digest = sha256(body);
    if (digest !== shard.sha256) {
      throw new FeatureCacheError(shard.key, store.location, `shard of ${what} is corrupt: sha256 ${digest}, ${indexKey} says ${shard.sha256}`);
    }
    out.set(body, at);
    at += body.length;
    rows += shard.rows;
  }
  if (at !== entry.bytes || rows !== entry.shape[0]) {
    throw new FeatureCacheError(indexKey, store.location, `${what}: shards hold ${at} bytes / ${rows} rows, expected ${entry.bytes} / ${entry.shape[0]}`);
  }
  return out;
}

export interface LoadFeaturesOptions {
  /** When given, the cache must be of this division's sub-network (model, boundary tensors, shapes). */
  readonly division?: Division;
}

/**
 * Loads and validates one sub-network's cached features. NotFoundError (from the store) when
 * there is no index.json; FeatureCacheError naming the key for an invalid index, a missing,
 * truncated or corrupt shard, or (with `division`) features of another model or cut.
 */
export async function loadBoundaryFeatures(
  store: ObjectStore,
  runId: string,
  subnet: string,
  options: LoadFeaturesOptions = {},
): Promise<BoundaryFeatures> {
  const prefix = featuresPrefix(runId, subnet);
  const indexKey = `${prefix}${FEATURES_INDEX}`;
  const raw = await getJson(store, indexKey);
  const parsed = featureIndexSchema.safeParse(raw);
  if (!parsed.success) throw new FeatureCacheError(indexKey, store.location, `invalid feature index: ${z.prettifyError(parsed.error)}`);
  const index = parsed.data;
  if (index.subnet !== subnet) throw new FeatureCacheError(indexKey, store.location, `index is of sub-network '${index.subnet}', expected '${subnet}'`);
  if (options.division) {
    const spec = findSubnetwork(options.division, subnet);
    const cached = `${index.model} ${index.inputTensor} [${index.inputShape.join(',')}] -> ${index.outputTensor} [${index.outputShape.join(',')}]`;
    const wanted = `${options.division.model} ${spec.inputTensor} [${spec.inputShape.join(',')}] -> ${spec.outputTensor} [${spec.outputShape.join(',')}]`;
    if (cached !== wanted) throw new FeatureCacheError(indexKey, store.location, `features are of ${cached}, the division needs ${wanted}`);
  }
  const load = async (name: 'train' | 'val'): Promise<FeatureSplit> => {
    const s = index.splits[name];
    const expect = (entry: ArrayEntry, what: string, rowShape: readonly number[], dtype: 'float32' | 'int32'): void => {
      const shape = [s.count, ...rowShape];
      if (entry.dtype !== dtype || entry.shape.join(',') !== shape.join(',') || entry.bytes !== product(shape) * 4) {
        throw new FeatureCacheError(
          indexKey,
          store.location,
          `${name} ${what}: ${entry.dtype} [${entry.shape.join(', ')}] ${entry.bytes} bytes, expected ${dtype} [${shape.join(', ')}] ${product(shape) * 4} bytes`,
        );
      }
    };
    expect(s.arrays.input, 'input', index.inputShape, 'float32');
    expect(s.arrays.output, 'output', index.outputShape, 'float32');
    expect(s.arrays.labels, 'labels', [], 'int32');
    if (s.indices.length !== s.count) throw new FeatureCacheError(indexKey, store.location, `${name}: ${s.indices.length} indices for ${s.count} rows`);
    const input = await readArray(store, s.arrays.input, `${name} input`, indexKey);
    const output = await readArray(store, s.arrays.output, `${name} output`, indexKey);
    const labels = await readArray(store, s.arrays.labels, `${name} labels`, indexKey);
    // readArray returns fresh, 4-aligned buffers of exactly the declared size.
    return {
      count: s.count,
      indices: Int32Array.from(s.indices),
      input: new Float32Array(input.buffer, input.byteOffset, input.byteLength / 4),
      output: new Float32Array(output.buffer, output.byteOffset, output.byteLength / 4),
      labels: new Int32Array(labels.buffer, labels.byteOffset, labels.byteLength / 4),
      outputVariance: s.outputVariance,
    };
  };
  return {
    subnet: index.subnet,
    index: index.index,
    model: index.model,
    inputTensor: index.inputTensor,
    outputTensor: index.outputTensor,
    inputShape: index.inputShape,
    outputShape: index.outputShape,
    classes: index.classes,
    outputKind: index.outputKind,
    normalize: index.normalize,
    dataset: index.dataset,
    seed: index.seed,
    train: await load('train'),
    val: await load('val'),
    baseline: index.baseline,
  };
}

export interface EnsureFeaturesOptions extends SaveFeaturesOptions, LoadFeaturesOptions {
  /** What to do when the cache exists but is invalid: recompute (default) or throw. */
  readonly onCorrupt?: 'recompute' | 'throw';
}

/**
 * The cached features of `subnet` when present and valid; otherwise `compute()` (usually
 * `computeBoundaryFeatures(...).get(subnet)`), saved, and returned.
 */
export async function ensureBoundaryFeatures(
  store: ObjectStore,
  runId: string,
  subnet: string,
  compute: () => BoundaryFeatures | Promise<BoundaryFeatures>,
  options: EnsureFeaturesOptions = {},
): Promise<BoundaryFeatures> {
  const log = options.log ?? defaultLog;
  try {
    const cached = await loadBoundaryFeatures(store, runId, subnet, options);
    log(`boundary features ${subnet}: loaded from ${featuresPrefix(runId, subnet)} (in ${store.location})`);
    return cached;
  } catch (error) {
    if (error instanceof FeatureCacheError && options.onCorrupt !== 'throw') {
      log(`boundary features ${subnet}: cache invalid, recomputing (${error.message})`);
    } else if (!(error instanceof NotFoundError)) {
      throw error;
    }
  }
  const features = await compute();
  if (features.subnet !== subnet) throw new Error(`ensureBoundaryFeatures: compute() returned features of '${features.subnet}', expected '${subnet}'`);
  await saveBoundaryFeatures(store, runId, features, options);
  return features;
}

/**
 * The in-memory side of the cache: one load-or-compute per (store, run, sub-network) per
 * process, shared by concurrent callers (a failed attempt is forgotten so it can be retried).
 */
export class BoundaryFeatureCache {
  private readonly entries = new Map<string, Promise<BoundaryFeatures>>();

  get(
    store: ObjectStore,
    runId: string,
    subnet: string,
    compute: () => BoundaryFeatures | Promise<BoundaryFeatures>,
    options: EnsureFeaturesOptions = {},
  ): Promise<BoundaryFeatures> {
    const key = `${store.location}|${runId}|${subnet}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = ensureBoundaryFeatures(store, runId, subnet, compute, options);
      this.entries.set(key, entry);
      entry.catch(() => this.entries.delete(key));
    }
    return entry;
  }

  /** Drops every entry (the arrays are freed once no caller holds them). */
  clear(): void {
    this.entries.clear();
  }
}
