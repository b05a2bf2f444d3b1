/**
 * The one in-memory image data set type every loader returns and every consumer (training,
 * boundary-feature caching, evaluation) reads.
 *
 * Pixels stay uint8 NHWC in one flat array: 60k Fashion-MNIST images are 47 MB this way and
 * 188 MB as float32, and the batch iterator converts (and augments) only the batch it needs.
 */
export interface ImageDataset {
  /** Where it came from, for logs and errors: `fashion-mnist/train`, `cifar10/test`, ... */
  readonly name: string;
  /** count * height * width * channels bytes, NHWC, 0..255. */
  readonly images: Uint8Array;
  /** One class index per image, 0 <= label < classes. Int32 because tf's int32 takes it as is. */
  readonly labels: Int32Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classes: number;
  /** Human-readable class names (length === classes) when the source provides them. */
  readonly classNames?: readonly string[];
}

export interface DatasetFields {
  readonly name: string;
  readonly images: Uint8Array;
  readonly labels: Int32Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classes: number;
  readonly classNames?: readonly string[];
}

/** Bytes of one image. */
export function imageBytes(dataset: Pick<ImageDataset, 'height' | 'width' | 'channels'>): number {
  return dataset.height * dataset.width * dataset.channels;
}

function assertPositiveInt(value: number, field: string, name: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`dataset ${name}: ${field} must be a positive integer, got ${value}`);
  }
}

/**
 * Builds an ImageDataset after checking every invariant consumers rely on (sizes agree, labels in
 * range), so a bad loader fails here with the data set's name instead of as NaN loss later.
 */
export function createDataset(fields: DatasetFields): ImageDataset {
  const { name, images, labels, height, width, channels, classes, classNames } = fields;
  assertPositiveInt(height, 'height', name);
  assertPositiveInt(width, 'width', name);
  assertPositiveInt(channels, 'channels', name);
  assertPositiveInt(classes, 'classes', name);
  const count = labels.length;
  const perImage = height * width * channels;
  if (images.length !== count * perImage) {
    throw new Error(
      `dataset ${name}: images has ${images.length} bytes, expected ${count} labels x ${height}x${width}x${channels} = ${count * perImage}`,
    );
  }
  for (let i = 0; i < count; i++) {
    const label = labels[i];
    if (!(label >= 0 && label < classes)) {
      throw new Error(`dataset ${name}: label ${label} of image ${i} is outside 0..${classes - 1}`);
    }
  }
  if (classNames !== undefined && classNames.length !== classes) {
    throw new Error(`dataset ${name}: ${classNames.length} class names for ${classes} classes`);
  }
  return classNames === undefined
    ? { name, images, labels, count, height, width, channels, classes }
    : { name, images, labels, count, height, width, channels, classes, classNames };
}

/** Same geometry and classes, new pixels/labels. No re-validation: callers only view or gather
 * images of an already validated data set, which keeps sizes and labels valid. */
function withData(dataset: ImageDataset, name: string, images: Uint8Array, labels: Int32Array): ImageDataset {
  return { ...dataset, name, images, labels, count: labels.length };
}

/**
 * Images [start, end) as views on the same memory (no copy): cheap, but writes to either show in
 * both. Bounds are clamped like Array.prototype.slice (negative values are not supported).
 */
export function sliceDataset(dataset: ImageDataset, start: number, end: number = dataset.count): ImageDataset {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < 0) {
    throw new Error(`sliceDataset(${dataset.name}): start/end must be non-negative integers, got ${start}..${end}`);
  }
  const from = Math.min(start, dataset.count);
  const to = Math.max(from, Math.min(end, dataset.count));
  const size = imageBytes(dataset);
  return withData(
    dataset,
    `${dataset.name}[${from}:${to}]`,
    dataset.images.subarray(from * size, to * size),
    dataset.labels.subarray(from, to),
  );
}

/** A copy holding the images at `indices` (in that order; repeats allowed). */
export function subsetDataset(
  dataset: ImageDataset,
  indices: ArrayLike<number>,
  name = `${dataset.name}[subset ${indices.length}]`,
): ImageDataset {
  const size = imageBytes(dataset);
  const images = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    if (!Number.isInteger(index) || index < 0 || index >= dataset.count) {
      throw new Error(`subsetDataset(${dataset.name}): index ${index} at position ${i} is outside 0..${dataset.count - 1}`);
    }
    images.set(dataset.images.subarray(index * size, (index + 1) * size), i * size);
    labels[i] = dataset.labels[index];
  }
  return withData(dataset, name, images, labels);
}

/** Concatenates data sets of identical geometry and class count (e.g. CIFAR's five batches). */
export function concatDatasets(name: string, parts: readonly ImageDataset[]): ImageDataset {
  if (parts.length === 0) throw new Error(`concatDatasets(${name}): no parts`);
  const first = parts[0];
  let count = 0;
  for (const part of parts) {
    if (part.height !== first.height || part.width !== first.width || part.channels !== first.channels || part.classes !== first.classes) {
      throw new Error(
        `concatDatasets(${name}): ${part.name} is ${part.height}x${part.width}x${part.channels}/${part.classes} classes, ` +
          `${first.name} is ${first.height}x${first.width}x${first.channels}/${first.classes} classes`,
      );
    }
    count += part.count;
  }
  const size = imageBytes(first);
  const images = new Uint8Array(count * size);
  const labels = new Int32Array(count);
  let at = 0;
  for (const part of parts) {
    images.set(part.images, at * size);
    labels.set(part.labels, at);
    at += part.count;
  }
  return withData(first, name, images, labels);
}

/** What class-level helpers need of a data set: its labels (an ImageDataset or an ImageSource). */
export type LabelledSet = Pick<ImageDataset, 'name' | 'count' | 'classes' | 'labels'>;

/** How many images of each class. */
export function classCounts(dataset: LabelledSet): number[] {
  const counts = new Array<number>(dataset.classes).fill(0);
  for (let i = 0; i < dataset.count; i++) counts[dataset.labels[i]]++;
  return counts;
}

/** The indices of each class, in data set order. */
export function indicesByClass(dataset: LabelledSet): Int32Array[] {
  const counts = classCounts(dataset);
  const byClass = counts.map((n) => new Int32Array(n));
  const fill = new Array<number>(dataset.classes).fill(0);
  for (let i = 0; i < dataset.count; i++) {
    const label = dataset.labels[i];
    byClass[label][fill[label]++] = i;
  }
  return byClass;
}
