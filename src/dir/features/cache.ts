/**
 * The store cache of boundary features: computed once per run and sub-network, reloaded by a
 * retried job and by finalize.
 *
 * LAYOUT (through the ObjectStore only; prefix = runKeys(runId).subnet(id).features):
 *   index.json                         shapes, dtypes, counts, subset indices, sha256 per shard
 *   <split>-<array>-<nnnnn>.bin        split in {train, val}, array in {input, output, labels}
 * Arrays are raw little-endian float32 or float16 (features, NHWC; the dtype is recorded per
 * array) or int32 (labels), cut into shards of whole rows of at most `maxShardBytes` (64 MiB:
 * below single-PUT limits, and the most a save or load holds in memory at once). Shards are
 * written first and index.json last, so an index that exists names a complete set; loading
 * checks every shard's size and sha256 and fails naming the key. Features are a deterministic
 * function of (model, data, subsets, dtype), so a retried write of a key writes the same bytes.
 *
 * Loading streams shard by shard into the rows' storage (spool files by default): a worker
 * never holds a whole array in memory.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { z } from 'zod';
import { runKeys } from '../../store/keys.ts';
import { NotFoundError, getJson, putJson } from '../../store/object-store.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { findSubnetwork } from '../divide.ts';
import type { Division } from '../divide.ts';
import { FEATURE_DTYPES, bytesPerValue, createRowsWriter } from './rows.ts';
import type { FeatureDtype, FeatureRows } from './rows.ts';
import { FeatureSpool } from './spool.ts';
import type { FeatureStorage } from './spool.ts';
import { product } from './types.ts';
import type { BoundaryFeatures, FeatureSplit } from './types.ts';

export const FEATURES_FORMAT = 'emo-dir-boundary-features';
export const FEATURES_VERSION = 1;
export const FEATURES_INDEX = 'index.json';
export const DEFAULT_MAX_SHARD_BYTES = 64 * 1024 * 1024;

if (endianness() !== 'LE') {
  // Shards are the in-memory bytes of typed arrays, which are little-endian only on LE hosts.
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

/** Valid cached features of another storage dtype than the run asks for: never silently recomputed. */
export class FeatureDtypeMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeatureDtypeMismatchError';
  }
}

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
const shardSchema = z.strictObject({
  key: z.string().min(1),
  rows: z.number().int().min(0),
  bytes: z.number().int().min(0),
  sha256: sha256Schema,
});
const arraySchema = z.strictObject({
  dtype: z.enum(['float32', 'float16', 'int32']),
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
type ArrayDtype = ArrayEntry['dtype'];

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesPer(dtype: ArrayDtype): number {
  return dtype === 'int32' ? 4 : bytesPerValue(dtype);
}

function defaultLog(message: string): void {
  process.stderr.write(`${message}\n`);
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

/** Rows [start, start + count) of an array as stored bytes. */
type RowBytes = (start: number, count: number) => Uint8Array;

async function putArray(
  store: ObjectStore,
  key: (shard: number) => string,
  rowBytesOf: RowBytes,
  entry: { dtype: ArrayDtype; rowShape: readonly number[]; count: number },
  maxShardBytes: number,
): Promise<ArrayEntry> {
  const rowBytes = product(entry.rowShape) * bytesPer(entry.dtype);
  const rowsPerShard = Math.max(1, Math.floor(maxShardBytes / Math.max(rowBytes, 1)));
  const shards: ArrayEntry['shards'] = [];
  // At least one shard, also for zero rows, so every array has a key to check.
  const shardTotal = Math.max(1, Math.ceil(entry.count / rowsPerShard));
  for (let n = 0; n < shardTotal; n++) {
    const start = n * rowsPerShard;
    const rows = Math.min(rowsPerShard, entry.count - start);
    const body = rowBytesOf(start, rows);
    await store.put(key(n), body, { contentType: 'application/octet-stream' });
    shards.push({ key: key(n), rows, bytes: body.length, sha256: sha256(body) });
  }
  return { dtype: entry.dtype, shape: [entry.count, ...entry.rowShape], bytes: rowBytes * entry.count, shards };
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
    const keyOf = (array: string) => (n: number) => `${prefix}${name}-${array}-${String(n).padStart(5, '0')}.bin`;
    const rowsArray = (rows: FeatureRows, rowShape: readonly number[], array: string) =>
      putArray(store, keyOf(array), (start, count) => rows.readBytes(start, count), { dtype: rows.dtype, rowShape, count: split.count }, maxShardBytes);
    const labelBytes: RowBytes = (start, count) => new Uint8Array(split.labels.buffer, split.labels.byteOffset + start * 4, count * 4);
    const arrays = {
      input: await rowsArray(split.input, features.inputShape, 'input'),
      output: await rowsArray(split.output, features.outputShape, 'output'),
      labels: await putArray(store, keyOf('labels'), labelBytes, { dtype: 'int32', rowShape: [], count: split.count }, maxShardBytes),
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
  return `${s.count} rows (input ${s.arrays.input.bytes} B ${s.arrays.input.dtype}, output ${s.arrays.output.bytes} B, labels ${s.arrays.labels.bytes} B)`;
}

/** Reads an array's shards in order, checking each one, and hands each body to `consume`. */
async function readShards(store: ObjectStore, entry: ArrayEntry, what: string, indexKey: string, consume: (body: Uint8Array) => void): Promise<void> {
  const rowBytes = product(entry.shape.slice(1)) * bytesPer(entry.dtype);
  let at = 0;
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
    if (at + body.length > entry.bytes) throw new FeatureCacheError(shard.key, store.location, `shards of ${what} hold more than the ${entry.bytes} bytes ${indexKey} declares`);
    const digest = sha256(body);
    if (digest !== shard.sha256) {
      throw new FeatureCacheError(shard.key, store.location, `shard of ${what} is corrupt: sha256 ${digest}, ${indexKey} says ${shard.sha256}`);
    }
    consume(body);
    at += body.length;
    rows += shard.rows;
  }
  if (at !== entry.bytes || rows !== entry.shape[0]) {
    throw new FeatureCacheError(indexKey, store.location, `${what}: shards hold ${at} bytes / ${rows} rows, expected ${entry.bytes} / ${entry.shape[0]}`);
  }
}

export interface LoadFeaturesOptions {
  /** When given, the cache must be of this division's sub-network (model, boundary tensors, shapes). */
  readonly division?: Division;
  /** Where the loaded rows are kept. Default: spool files in the OS temp directory. */
  readonly storage?: FeatureStorage;
}

/** The parsed, checked index.json of one sub-network's cache. */
async function readIndex(store: ObjectStore, runId: string, subnet: string, options: LoadFeaturesOptions): Promise<{ index: FeatureIndex; indexKey: string }> {
  const indexKey = `${featuresPrefix(runId, subnet)}${FEATURES_INDEX}`;
  const parsed = featureIndexSchema.safeParse(await getJson(store, indexKey));
  if (!parsed.success) throw new FeatureCacheError(indexKey, store.location, `invalid feature index: ${z.prettifyError(parsed.error)}`);
  const index = parsed.data;
  if (index.subnet !== subnet) throw new FeatureCacheError(indexKey, store.location, `index is of sub-network '${index.subnet}', expected '${subnet}'`);
  if (options.division) {
    const spec = findSubnetwork(options.division, subnet);
    const cached = `${index.model} ${index.inputTensor} [${index.inputShape.join(',')}] -> ${index.outputTensor} [${index.outputShape.join(',')}]`;
    const wanted = `${options.division.model} ${spec.inputTensor} [${spec.inputShape.join(',')}] -> ${spec.outputTensor} [${spec.outputShape.join(',')}]`;
    if (cached !== wanted) throw new FeatureCacheError(indexKey, store.location, `features are of ${cached}, the division needs ${wanted}`);
  }
  const dtypes = new Set<string>();
  for (const name of ['train', 'val'] as const) {
    const s = index.splits[name];
    const expect = (entry: ArrayEntry, what: string, rowShape: readonly number[], allowed: readonly ArrayDtype[]): void => {
      const shape = [s.count, ...rowShape];
      const bytes = allowed.includes(entry.dtype) ? product(shape) * bytesPer(entry.dtype) : -1;
      if (bytes < 0 || entry.shape.join(',') !== shape.join(',') || entry.bytes !== bytes) {
        throw new FeatureCacheError(
          indexKey,
          store.location,
          `${name} ${what}: ${entry.dtype} [${entry.shape.join(', ')}] ${entry.bytes} bytes, expected ${allowed.join(' or ')} [${shape.join(', ')}]` +
            (bytes >= 0 ? ` ${bytes} bytes` : ''),
        );
      }
    };
    expect(s.arrays.input, 'input', index.inputShape, FEATURE_DTYPES);
    expect(s.arrays.output, 'output', index.outputShape, FEATURE_DTYPES);
    expect(s.arrays.labels, 'labels', [], ['int32']);
    dtypes.add(s.arrays.input.dtype).add(s.arrays.output.dtype);
    if (s.indices.length !== s.count) throw new FeatureCacheError(indexKey, store.location, `${name}: ${s.indices.length} indices for ${s.count} rows`);
  }
  if (dtypes.size !== 1) throw new FeatureCacheError(indexKey, store.location, `feature arrays mix dtypes ${[...dtypes].join(', ')}`);
  return { index, indexKey };
}

/**
 * Loads and validates one sub-network's cached features, shard by shard into the rows' storage.
 * NotFoundError (from the store) when there is no index.json; FeatureCacheError naming the key
 * for an invalid index, a missing, truncated or corrupt shard, or (with `division`) features of
 * another model or cut.
 */
export async function loadBoundaryFeatures(
  store: ObjectStore,
  runId: string,
  subnet: string,
  options: LoadFeaturesOptions = {},
): Promise<BoundaryFeatures> {
  const { index, indexKey } = await readIndex(store, runId, subnet, options);
  const dtype = index.splits.train.arrays.input.dtype as FeatureDtype;
  const spool = FeatureSpool.open(options.storage);
  try {
    const loadRows = async (entry: ArrayEntry, what: string, rowShape: readonly number[]): Promise<FeatureRows> => {
      const writer = createRowsWriter(spool, { count: entry.shape[0], rowLength: product(rowShape), dtype, name: what.replace(' ', '-') });
      await readShards(store, entry, what, indexKey, (body) => writer.appendBytes(body));
      return writer.finish();
    };
    const load = async (name: 'train' | 'val'): Promise<FeatureSplit> => {
      const s = index.splits[name];
      const labels = new Int32Array(s.count);
      let at = 0;
      await readShards(store, s.arrays.labels, `${name} labels`, indexKey, (body) => {
        labels.set(new Int32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), at);
        at += body.byteLength / 4;
      });
      return {
        count: s.count,
        indices: Int32Array.from(s.indices),
        input: await loadRows(s.arrays.input, `${name} input`, index.inputShape),
        output: await loadRows(s.arrays.output, `${name} output`, index.outputShape),
        labels,
        outputVariance: s.outputVariance,
      };
    };
    const train = await load('train');
    const val = await load('val');
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
      dtype,
      train,
      val,
      baseline: index.baseline,
      release: spool.holder(),
    };
  } finally {
    spool.release(); // the loader's hold; the returned features hold their own
  }
}

export interface EnsureFeaturesOptions extends SaveFeaturesOptions, LoadFeaturesOptions {
  /** What to do when the cache exists but is invalid: recompute (default) or throw. */
  readonly onCorrupt?: 'recompute' | 'throw';
  /**
   * The storage dtype the run asks for: a valid cache of another dtype is an error (features,
   * hence every evaluation, would silently change under the same run id). Default: any.
   */
  readonly dtype?: FeatureDtype;
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
    if (options.dtype !== undefined && cached.dtype !== options.dtype) {
      cached.release();
      throw new FeatureDtypeMismatchError(
        `${featuresPrefix(runId, subnet)}${FEATURES_INDEX} (in ${store.location}): the cached features are ${cached.dtype}, ` +
          `this run asks for ${options.dtype} (search.featureDtype); use a new run id or delete the run's scratch features`,
      );
    }
    log(`boundary features ${subnet}: loaded ${cached.dtype} rows from ${featuresPrefix(runId, subnet)} (in ${store.location})`);
    return cached;
  } catch (error) {
    if (error instanceof FeatureCacheError && options.onCorrupt !== 'throw') {
      log(`boundary features ${subnet}: cache invalid, recomputing (${error.message})`);
    } else if (!(error instanceof NotFoundError)) {
      throw error;
    }
  }
  const features = await compute();
  try {
    if (features.subnet !== subnet) throw new Error(`ensureBoundaryFeatures: compute() returned features of '${features.subnet}', expected '${subnet}'`);
    await saveBoundaryFeatures(store, runId, features, options);
  } catch (error) {
    features.release();
    throw error;
  }
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

  /** Forgets every entry (callers release the features they hold). */
  clear(): void {
    this.entries.clear();
  }
}
