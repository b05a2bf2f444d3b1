/**
 * CIFAR-10 / CIFAR-100 readers for the official *binary* distributions
 * (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):
 *
 *   CIFAR-10  cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, batches.meta.txt
 *             record = 1 label byte + 3072 pixel bytes                      (3073 bytes)
 *   CIFAR-100 cifar-100-binary/{train,test}.bin, fine_label_names.txt, coarse_label_names.txt
 *             record = 1 coarse label byte + 1 fine label byte + 3072 bytes (3074 bytes)
 *
 * The 3072 pixel bytes are channel-major planes (1024 R, then 1024 G, then 1024 B, each
 * row-major 32x32); they are converted to the NHWC layout of ImageDataset here, once.
 * `dir` may be the batches directory itself or its parent (the extracted archive root), on local
 * disk or under a store prefix (data-files.ts: `cifar10:datasets/cifar10` in a run's store).
 */
import { concatDatasets, createDataset } from './dataset.ts';
import type { ImageDataset } from './dataset.ts';
import { directoryFiles } from './data-files.ts';
import type { DataFiles } from './data-files.ts';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXEL_BYTES = 3 * PLANE;
const LABEL_BYTES = { cifar10: 1, cifar100: 2 } as const;
/** Records per file of the official binary distributions. */
const OFFICIAL_RECORDS: Record<string, number> = { 'train.bin': 50_000, 'test.bin': 10_000 };

export type CifarSplit = 'train' | 'test';

export const CIFAR10_TRAIN_FILES: readonly string[] = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
export const CIFAR10_TEST_FILES: readonly string[] = ['test_batch.bin'];

/**
 * Decodes CIFAR binary records: `labelBytes` label bytes then 3072 planar pixel bytes each;
 * the label used is byte `labelIndex` of the record. Throws naming `path` when the size is not a
 * whole number of records or a label is >= `classes`.
 */
export function decodeCifarRecords(
  path: string,
  bytes: Uint8Array,
  labelBytes: number,
  labelIndex: number,
  classes: number,
): { images: Uint8Array; labels: Int32Array } {
  const recordBytes = labelBytes + PIXEL_BYTES;
  if (bytes.length === 0 || bytes.length % recordBytes !== 0) {
    throw new Error(
      `CIFAR file ${path}: size ${bytes.length} bytes is not a positive multiple of the ${recordBytes}-byte record ` +
        `(${labelBytes} label byte${labelBytes > 1 ? 's' : ''} + 3072 pixels); wrong file or truncated download?`,
    );
  }
  const count = bytes.length / recordBytes;
  const images = new Uint8Array(count * PIXEL_BYTES);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const record = i * recordBytes;
    const label = bytes[record + labelIndex];
    if (label >= classes) {
      throw new Error(`CIFAR file ${path}: record ${i} has label ${label}, expected 0..${classes - 1}`);
    }
    labels[i] = label;
    const pixels = record + labelBytes;
    const out = i * PIXEL_BYTES;
    // Planar (CHW) to interleaved (HWC): pixel p of plane c goes to out[p*3 + c].
    for (let p = 0; p < PLANE; p++) {
      images[out + p * 3] = bytes[pixels + p];
      images[out + p * 3 + 1] = bytes[pixels + PLANE + p];
      images[out + p * 3 + 2] = bytes[pixels + 2 * PLANE + p];
    }
  }
  return { images, labels };
}

/** `dir` if it holds `probe`, else `dir/<subdir>` if that does; else an error listing both. */
async function resolveDir(dir: DataFiles, subdir: string, probe: string, kind: string): Promise<DataFiles> {
  if (await dir.exists(probe)) return dir;
  const nested = dir.sub(subdir);
  if (await nested.exists(probe)) return nested;
  throw new Error(`${kind}: no ${probe} in ${dir.location} or ${nested.location} (expected the extracted binary version of the data set)`);
}

/** Non-empty trimmed lines of a class-name file, or undefined when the file is absent. */
async function readClassNames(dir: DataFiles, name: string, classes: number): Promise<string[] | undefined> {
  const bytes = await dir.read(name);
  if (bytes === undefined) return undefined;
  const names = new TextDecoder()
    .decode(bytes)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (names.length !== classes) throw new Error(`class-name file ${dir.path(name)} has ${names.length} names, expected ${classes}`);
  return names;
}

async function readRecordFile(dir: DataFiles, name: string, labelBytes: number, labelIndex: number, classes: number): Promise<{ images: Uint8Array; labels: Int32Array }> {
  const path = dir.path(name);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await dir.read(name);
  } catch (error) {
    throw new Error(`CIFAR file ${path}: cannot read (${(error as Error).message})`, { cause: error });
  }
  if (bytes === undefined) throw new Error(`CIFAR file ${path}: missing`);
  return decodeCifarRecords(path, bytes, labelBytes, labelIndex, classes);
}

function filesOf(dir: string | DataFiles): DataFiles {
  return typeof dir === 'string' ? directoryFiles(dir) : dir;
}

/**
 * Images of a CIFAR split without reading a pixel (what Plan checks before any job starts): from
 * the files' sizes where they are cheap to get (a directory), else (a store prefix) from the
 * official distribution's record counts once every file is found. Throws naming the missing file,
 * or the one whose size is not whole records.
 */
export async function countCifarImages(dir: string | DataFiles, kind: 'cifar10' | 'cifar100', split: CifarSplit): Promise<{ root: string; images: number }> {
  const files = kind === 'cifar10' ? (split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES) : [split === 'train' ? 'train.bin' : 'test.bin'];
  const root = await resolveDir(filesOf(dir), kind === 'cifar10' ? 'cifar-10-batches-bin' : 'cifar-100-binary', files[0], kind);
  const recordBytes = LABEL_BYTES[kind] + PIXEL_BYTES;
  let images = 0;
  for (const file of files) {
    if (!root.size) {
      if (!(await root.exists(file))) throw new Error(`${kind}: missing ${root.path(file)}`);
      images += OFFICIAL_RECORDS[file] ?? 10_000;
      continue;
    }
    const size = await root.size(file);
    if (size === undefined) throw new Error(`${kind}: missing ${root.path(file)}`);
    if (size === 0 || size % recordBytes !== 0) {
      throw new Error(`CIFAR file ${root.path(file)}: size ${size} bytes is not a positive multiple of the ${recordBytes}-byte record; wrong file or truncated download?`);
    }
    images += size / recordBytes;
  }
  return { root: root.location, images };
}

export interface Cifar10Options {
  readonly split?: CifarSplit;
}

/** CIFAR-10 train (data_batch_1..5, 50k) or test (test_batch, 10k) from the binary version. */
export async function readCifar10(dir: string | DataFiles, options: Cifar10Options = {}): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  const files = split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const root = await resolveDir(filesOf(dir), 'cifar-10-batches-bin', files[0], 'cifar10');
  const classNames = await readClassNames(root, 'batches.meta.txt', 10);
  // Check every batch exists before reading 150 MB, so a partial download fails at once.
  for (const file of files) {
    if (!(await root.exists(file))) throw new Error(`cifar10: missing ${root.path(file)}`);
  }
  const parts: ImageDataset[] = [];
  for (const file of files) {
    const { images, labels } = await readRecordFile(root, file, 1, 0, 10);
    parts.push(
      createDataset({ name: `cifar10/${file}`, images, labels, height: SIDE, width: SIDE, channels: 3, classes: 10, ...(classNames ? { classNames } : {}) }),
    );
  }
  return parts.length === 1 ? { ...parts[0], name: `cifar10/${split}` } : concatDatasets(`cifar10/${split}`, parts);
}

export interface Cifar100Options {
  readonly split?: CifarSplit;
  /** 'fine' (100 classes, the usual benchmark) or 'coarse' (20 superclasses). Default 'fine'. */
  readonly labels?: 'fine' | 'coarse';
}

/** CIFAR-100 train (train.bin, 50k) or test (test.bin, 10k) from the binary version. */
export async function readCifar100(dir: string | DataFiles, options: Cifar100Options = {}): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  const granularity = options.labels ?? 'fine';
  const file = split === 'train' ? 'train.bin' : 'test.bin';
  const root = await resolveDir(filesOf(dir), 'cifar-100-binary', file, 'cifar100');
  const classes = granularity === 'fine' ? 100 : 20;
  const classNames = await readClassNames(root, `${granularity}_label_names.txt`, classes);
  // Byte 0 is the coarse label, byte 1 the fine label.
  const { images, labels } = await readRecordFile(root, file, 2, granularity === 'fine' ? 1 : 0, classes);
  return createDataset({
    name: granularity === 'fine' ? `cifar100/${split}` : `cifar100-coarse/${split}`,
    images,
    labels,
    height: SIDE,
    width: SIDE,
    channels: 3,
    classes,
    ...(classNames ? { classNames } : {}),
  });
}
