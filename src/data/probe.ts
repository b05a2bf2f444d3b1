/**
 * What a data set holds, read from headers, indices and file sizes without loading an image: the
 * split sizes, the class count and the image shape. Plan (src/dir/plan-checks.ts) compares them
 * with the spec and the model before any job starts, so a missing directory or a search subset
 * larger than the training split fails in seconds instead of in every search worker.
 *
 * The forms (load.ts): `fashion-mnist[:<dir>]`, `cifar10:<where>`, `cifar100[-coarse]:<where>`,
 * `imagenet:<where>`, where `<where>` is a directory or a location in the run's store.
 *
 * `files: false` is for a Plan that cannot see the workers' local files (a Lambda, while the data
 * is inside the worker image or its mounts): for a local directory it returns only what the form
 * itself fixes (Fashion-MNIST's split, CIFAR's geometry and official split sizes), or undefined
 * when that is nothing. A location in the run's store is probed either way: Plan reads the store.
 */
import { countCifarImages } from './cifar.ts';
import {
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_TEST_PER_CLASS,
  FASHION_MNIST_TRAIN_PER_CLASS,
  defaultFashionMnistSourceDir,
  sourceFingerprint,
} from './fashion-mnist.ts';
import { checkShardFiles, readShardIndex } from './image-shards.ts';
import { dataFilesAt, imagenetSplitFiles, inRunStore, parseDatasetSpec, type DatasetKind } from './load.ts';
import type { ObjectStore } from '../store/object-store.ts';

export interface SplitProbe {
  readonly images: number;
  /** The directory (or file set) the split is read from, for messages. */
  readonly location: string;
}

export interface DatasetProbe {
  /** As the spec names it (`cifar10:/data/cifar`). */
  readonly name: string;
  readonly kind: DatasetKind;
  /** [height, width, channels] of every image. */
  readonly imageShape: readonly [number, number, number];
  readonly classes: number;
  readonly train: SplitProbe;
  readonly test: SplitProbe;
  /** False: the files were not looked at, the sizes are the form's (see `files`). */
  readonly filesChecked: boolean;
}

export interface ProbeOptions {
  /** Look at local files (default). False: only what the form fixes, without any I/O. */
  readonly files?: boolean;
  /** The run's store: data set locations inside it are read from it (load.ts). */
  readonly store?: ObjectStore;
}

/** The official binary distributions' split sizes (cifar.ts). */
const CIFAR_SPLITS = { train: 50_000, test: 10_000 } as const;

/**
 * Probes the data set `name` (a spec's `dataset.name`); throws naming what is missing or wrong.
 * Undefined only with `files: false` for a form that fixes nothing (imagenet).
 */
export async function probeDataset(name: string, options: ProbeOptions = {}): Promise<DatasetProbe | undefined> {
  const spec = parseDatasetSpec(name);
  const { store } = options;
  const files = (options.files ?? true) || (spec.path !== undefined && inRunStore(spec.path, store));
  const unchecked = '(files not checked)';
  switch (spec.kind) {
    case 'fashion-mnist': {
      const sourceDir = files ? (spec.path ?? defaultFashionMnistSourceDir()) : unchecked;
      // The loader asserts exactly this many rows per class file when it decodes them.
      if (files) await sourceFingerprint(sourceDir);
      const classes = FASHION_MNIST_CLASS_NAMES.length;
      return {
        name,
        kind: spec.kind,
        imageShape: [28, 28, 1],
        classes,
        train: { images: classes * FASHION_MNIST_TRAIN_PER_CLASS, location: sourceDir },
        test: { images: classes * FASHION_MNIST_TEST_PER_CLASS, location: sourceDir },
        filesChecked: files,
      };
    }
    case 'cifar10':
    case 'cifar100':
    case 'cifar100-coarse': {
      const format = spec.kind === 'cifar10' ? 'cifar10' : 'cifar100';
      const where = spec.path as string;
      const official = (split: 'train' | 'test') => ({ root: unchecked, images: CIFAR_SPLITS[split] });
      const train = files ? await countCifarImages(dataFilesAt(where, store), format, 'train') : official('train');
      const test = files ? await countCifarImages(dataFilesAt(where, store), format, 'test') : official('test');
      return {
        name,
        kind: spec.kind,
        imageShape: [32, 32, 3],
        classes: spec.kind === 'cifar10' ? 10 : spec.kind === 'cifar100' ? 100 : 20,
        train: { images: train.images, location: train.root },
        test: { images: test.images, location: test.root },
        filesChecked: files,
      };
    }
    case 'imagenet': {
      if (!files) return undefined;
      const dir = spec.path as string;
      const splits = [];
      for (const split of ['train', 'test'] as const) {
        const splitFiles = await imagenetSplitFiles(dir, split, store);
        const index = await readShardIndex(splitFiles);
        // The same shard range the loader reads (load.ts applies it to either split).
        const shards = index.shards.slice(spec.shards?.start ?? 0, spec.shards?.end ?? index.shards.length);
        await checkShardFiles(splitFiles, shards);
        splits.push({ index, images: shards.reduce((sum, shard) => sum + shard.count, 0), location: splitFiles.location });
      }
      const [train, test] = splits;
      if (train.index.classes.length !== test.index.classes.length || train.index.height !== test.index.height || train.index.width !== test.index.width) {
        throw new Error(
          `imagenet ${dir}: the train shards (${train.location}: ${train.index.classes.length} classes, ${train.index.height}x${train.index.width}) ` +
            `and the test shards (${test.location}: ${test.index.classes.length} classes, ${test.index.height}x${test.index.width}) differ`,
        );
      }
      return {
        name,
        kind: spec.kind,
        imageShape: [train.index.height, train.index.width, train.index.channels],
        classes: train.index.classes.length,
        train: { images: train.images, location: train.location },
        test: { images: test.images, location: test.location },
        filesChecked: true,
      };
    }
  }
}
