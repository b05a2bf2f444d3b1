/**
 * Random access to a labelled image set without holding all of its pixels: the interface a
 * search worker (which reads only its search subsets) and a streaming fine-tune read through.
 * ImageNet-1k's training split is ~190 GB at 224x224x3; its labels are 5 MB, so labels stay in
 * memory and pixels are read per request.
 *
 * Small sets (Fashion-MNIST, CIFAR) are in memory anyway: `inMemorySource` serves them through
 * the same interface.
 */
import { imageBytes } from './dataset.ts';
import type { ImageDataset } from './dataset.ts';

export interface ImageSource {
  /** Where it came from, for logs and errors: `fashion-mnist/train`, `imagenet/val`, ... */
  readonly name: string;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classes: number;
  readonly classNames?: readonly string[];
  /** One class index per image (all of them: 4 bytes each). */
  readonly labels: Int32Array;
  /**
   * The pixels of the images at `indices`, in that order: a new array of
   * `indices.length * height * width * channels` bytes, NHWC, 0..255. Rejects (naming the image
   * and the file) when an index is out of range or the data behind it is unreadable.
   */
  readImages(indices: Int32Array): Promise<Uint8Array>;
}

/** An in-memory data set as an ImageSource (no copy of the pixels until `readImages`). */
export function inMemorySource(dataset: ImageDataset): ImageSource {
  const bytes = imageBytes(dataset);
  return {
    name: dataset.name,
    count: dataset.count,
    height: dataset.height,
    width: dataset.width,
    channels: dataset.channels,
    classes: dataset.classes,
    ...(dataset.classNames ? { classNames: dataset.classNames } : {}),
    labels: dataset.labels,
    readImages(indices: Int32Array): Promise<Uint8Array> {
      const out = new Uint8Array(indices.length * bytes);
      for (let i = 0; i < indices.length; i++) {
        const index = indices[i];
        if (!Number.isInteger(index) || index < 0 || index >= dataset.count) {
          return Promise.reject(new RangeError(`${dataset.name}: image index ${index} is out of range (0..${dataset.count - 1})`));
        }
        out.set(dataset.images.subarray(index * bytes, (index + 1) * bytes), i * bytes);
      }
      return Promise.resolve(out);
    },
  };
}

/**
 * An ImageSource stored as shards (image-shards.ts) that can also hand out a whole shard: what a
 * streamed epoch reads (stream-batches.ts), one large sequential read per shard instead of one
 * small random read per image.
 */
export interface ShardedImageSource extends ImageSource {
  /** Images per shard, in index order: image i of shard s is global index (sum of earlier counts) + i. */
  readonly shardCounts: readonly number[];
  /**
   * Shard `shard`'s pixels, `shardCounts[shard]` images, checked against the index. With `into`
   * (at least that many bytes) they are read into it and the result is a view of it: a stream
   * recycles a few shard buffers instead of faulting in fresh memory for every shard.
   */
  readShard(shard: number, into?: Uint8Array): Promise<Uint8Array>;
}

export function isShardedSource(source: ImageSource): source is ShardedImageSource {
  return Array.isArray((source as Partial<ShardedImageSource>).shardCounts) && typeof (source as Partial<ShardedImageSource>).readShard === 'function';
}
