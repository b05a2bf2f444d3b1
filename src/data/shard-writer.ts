/**
 * Writes a shard set (image-shards.ts) to a directory or a store prefix: shards one by one, then
 * index.json last, so a reader never sees an index that names shards not yet written. The JPEG
 * converter (image-folder-convert.ts) writes through it, and so can anything holding images in
 * memory (`writeImageShards`: a CIFAR or Fashion-MNIST split put into the store, the benchmarks'
 * synthetic sets).
 */
import { sha256Hex } from './fs-util.ts';
import type { ImageDataset } from './dataset.ts';
import { SHARD_INDEX_FILE, ShardIndexSchema, shardFileNames } from './image-shards.ts';
import type { ShardEntry, ShardIndex } from './image-shards.ts';
import { directoryFiles } from './data-files.ts';
import type { DataSink } from './data-files.ts';

export interface ShardSetFields {
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  /** Class ids in label order. */
  readonly classes: readonly string[];
  readonly classNames?: readonly string[];
  readonly preprocessing?: ShardIndex['preprocessing'];
  readonly order: ShardIndex['order'];
  readonly seed: number;
}

export class ShardWriter {
  readonly sink: DataSink;
  readonly #fields: ShardSetFields;
  readonly #shards: ShardEntry[] = [];
  readonly #perImage: number;

  constructor(out: string | DataSink, fields: ShardSetFields) {
    this.sink = typeof out === 'string' ? directoryFiles(out) : out;
    this.#fields = fields;
    this.#perImage = fields.height * fields.width * fields.channels;
    if (fields.classes.length > 65536) throw new Error(`shard set ${this.sink.location}: ${fields.classes.length} classes do not fit uint16 labels`);
  }

  /**
   * Refuses an existing index.json unless `overwrite`; otherwise removes it, so a crash while
   * overwriting leaves a set that reads as unfinished rather than an old index over new shards.
   */
  async begin(overwrite: boolean): Promise<void> {
    if (!overwrite && (await this.sink.exists(SHARD_INDEX_FILE))) {
      throw new Error(`${this.sink.path(SHARD_INDEX_FILE)} exists (pass overwrite to replace it)`);
    }
    await this.sink.remove(SHARD_INDEX_FILE);
  }

  get shards(): readonly ShardEntry[] {
    return this.#shards;
  }

  /** Writes the next shard: `images` NHWC uint8 of labels.length images. */
  async writeShard(images: Uint8Array, labels: ArrayLike<number>): Promise<ShardEntry> {
    const count = labels.length;
    if (count === 0 || images.length !== count * this.#perImage) {
      throw new Error(`shard set ${this.sink.location}: shard ${this.#shards.length} has ${images.length} pixel bytes for ${count} images of ${this.#perImage}`);
    }
    const labelBytes = new Uint8Array(count * 2);
    const view = new DataView(labelBytes.buffer);
    for (let i = 0; i < count; i++) {
      const label = labels[i];
      if (!Number.isInteger(label) || label < 0 || label >= this.#fields.classes.length) {
        throw new Error(`shard set ${this.sink.location}: image ${i} of shard ${this.#shards.length} has label ${label}, outside 0..${this.#fields.classes.length - 1}`);
      }
      view.setUint16(i * 2, label, true);
    }
    const names = shardFileNames(this.#shards.length);
    await this.sink.write(names.images, images);
    await this.sink.write(names.labels, labelBytes);
    const entry: ShardEntry = {
      images: names.images,
      labels: names.labels,
      count,
      imageBytes: images.length,
      labelBytes: labelBytes.length,
      imagesSha256: sha256Hex(images),
      labelsSha256: sha256Hex(labelBytes),
    };
    this.#shards.push(entry);
    return entry;
  }

  /** Writes index.json (validated by its one schema) and returns it. */
  async finish(skipped: readonly { file: string; reason: string }[] = []): Promise<ShardIndex> {
    const fields = this.#fields;
    const index: ShardIndex = ShardIndexSchema.parse({
      format: 'emo-dir-image-shards',
      version: 1,
      height: fields.height,
      width: fields.width,
      channels: fields.channels,
      labelEncoding: 'uint16le',
      ...(fields.preprocessing ? { preprocessing: fields.preprocessing } : {}),
      classes: [...fields.classes],
      ...(fields.classNames ? { classNames: [...fields.classNames] } : {}),
      count: this.#shards.reduce((sum, shard) => sum + shard.count, 0),
      order: fields.order,
      seed: fields.seed,
      shards: this.#shards,
      skipped: [...skipped],
    });
    await this.sink.write(SHARD_INDEX_FILE, Buffer.from(`${JSON.stringify(index, null, 2)}\n`));
    return index;
  }
}

export interface WriteImageShardsOptions {
  /** Images per shard. Default 1000. */
  readonly shardSize?: number;
  readonly overwrite?: boolean;
  /** Class ids (default '0', '1', ...; names from the data set's classNames). */
  readonly classes?: readonly string[];
}

/** Writes an in-memory image set (1 or 3 channels) as shards, in its own order. */
export async function writeImageShards(out: string | DataSink, dataset: ImageDataset, options: WriteImageShardsOptions = {}): Promise<ShardIndex> {
  const shardSize = options.shardSize ?? 1000;
  if (!Number.isInteger(shardSize) || shardSize < 1) throw new Error(`writeImageShards(${dataset.name}): shardSize must be a positive integer, got ${shardSize}`);
  if (dataset.channels !== 1 && dataset.channels !== 3) throw new Error(`writeImageShards(${dataset.name}): ${dataset.channels} channels (shards hold 1 or 3)`);
  const classes = options.classes ?? Array.from({ length: dataset.classes }, (_, i) => String(i));
  if (classes.length !== dataset.classes) throw new Error(`writeImageShards(${dataset.name}): ${classes.length} class ids for ${dataset.classes} classes`);
  const writer = new ShardWriter(out, {
    height: dataset.height,
    width: dataset.width,
    channels: dataset.channels,
    classes,
    ...(dataset.classNames ? { classNames: dataset.classNames } : {}),
    order: 'source',
    seed: 0,
  });
  await writer.begin(options.overwrite === true);
  const perImage = dataset.height * dataset.width * dataset.channels;
  for (let first = 0; first < dataset.count; first += shardSize) {
    const last = Math.min(dataset.count, first + shardSize);
    await writer.writeShard(dataset.images.subarray(first * perImage, last * perImage), dataset.labels.subarray(first, last));
  }
  return writer.finish();
}
