/** The data module's public surface: data sets, loaders, batching. See each file for details. */
export type { ImageDataset, DatasetFields, LabelledSet } from './dataset.ts';
export {
  createDataset,
  sliceDataset,
  subsetDataset,
  concatDatasets,
  classCounts,
  indicesByClass,
  imageBytes,
} from './dataset.ts';
export type { Rng } from './prng.ts';
export { createRng, rngFromState, mixSeed, permutation, shuffleInPlace } from './prng.ts';
export type {
  ArrayBatch,
  AugmentOptions,
  BatchOptions,
  ChannelStats,
  ImageTransform,
  Normalization,
  PixelMap,
} from './batches.ts';
export {
  arrayBatches,
  augmentRng,
  batchCount,
  computeChannelStats,
  drawTransform,
  epochOrder,
  pixelMap,
  transformImage,
} from './batches.ts';
export type { TensorBatch } from './tensor-batches.ts';
export { batches, forEachBatch, sourceTensorBatches, toTensorBatch } from './tensor-batches.ts';
export type { ImageSource, ShardedImageSource } from './image-source.ts';
export { inMemorySource, isShardedSource } from './image-source.ts';
export type { SourceBatchOptions } from './stream-batches.ts';
export { sourceBatches, DEFAULT_SHUFFLE_BUFFER } from './stream-batches.ts';
export type { StreamEvent, StreamOrderOptions } from './stream-order.ts';
export { StreamPlan, streamOrder } from './stream-order.ts';
export type { DataFiles, DataSink } from './data-files.ts';
export { DataReadError, directoryFiles, storeFiles } from './data-files.ts';
export type { ShardCacheOptions } from './shard-cache.ts';
export { ShardCache, DEFAULT_CACHE_BYTES } from './shard-cache.ts';
export type { ShardSource, ShardSourceOptions } from './shard-source.ts';
export { openShardSource } from './shard-source.ts';
export type { ShardSetFields, WriteImageShardsOptions } from './shard-writer.ts';
export { ShardWriter, writeImageShards } from './shard-writer.ts';
export type { DatasetFileHeader, ReadDatasetFileOptions } from './dataset-file.ts';
export { readDatasetFile, writeDatasetFile, DatasetFileError } from './dataset-file.ts';
export type { FashionMnistOptions, Split } from './fashion-mnist.ts';
export {
  loadFashionMnist,
  parseFashionMnist,
  defaultCacheDir,
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_TRAIN_PER_CLASS,
  FASHION_MNIST_TEST_PER_CLASS,
} from './fashion-mnist.ts';
export type { Cifar10Options, Cifar100Options, CifarSplit } from './cifar.ts';
export { readCifar10, readCifar100, decodeCifarRecords } from './cifar.ts';
export type { ShardEntry, ShardIndex, ReadShardsOptions } from './image-shards.ts';
export { readImageShards, readShardIndex, ShardIndexSchema, ShardError, SHARD_INDEX_FILE } from './image-shards.ts';
// The JPEG converter (image-folder-convert.ts) is deliberately not re-exported: it loads sharp's
// native library, which only the conversion CLI needs.
export type { DatasetKind, DatasetSpec, ResolvedDatasetSpec, LoadDatasetOptions, OpenDatasetSourceOptions } from './load.ts';
export { loadDataset, openDatasetSource, readDatasetShardIndex, dataFilesAt, parseDatasetSpec, DatasetSpecSchema, DATASET_KINDS } from './load.ts';
export type { StratifiedSampleOptions } from './sampling.ts';
export { stratifiedSample } from './sampling.ts';
