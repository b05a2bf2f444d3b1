/**
 * Synthetic image shards for scale benchmarks: deterministic noise images in the project's shard
 * format (src/data/image-shards.ts: index.json + raw uint8 NHWC shards + uint16 labels, sha256 of
 * every file), not a real data set. And an ImageSource that serves them with positioned reads,
 * so a benchmark worker holds only the images it asked for (the labels, 2 bytes per image, stay
 * in memory).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng } from '../../src/data/prng.ts';
import type { ImageSource } from '../../src/data/image-source.ts';
import { SHARD_INDEX_FILE, readShardIndex, shardFileNames } from '../../src/data/image-shards.ts';
import type { ShardIndex } from '../../src/data/image-shards.ts';

export interface SyntheticShardOptions {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly classes: number;
  readonly seed: number;
  /** Images per shard file. Default 256. */
  readonly imagesPerShard?: number;
}

/** Writes `count` noise images (labels i mod classes) as a shard directory; returns its index. */
export async function writeSyntheticShards(dir: string, options: SyntheticShardOptions): Promise<ShardIndex> {
  const { count, height, width, classes, seed } = options;
  const channels = 3;
  const perShard = options.imagesPerShard ?? 256;
  const perImage = height * width * channels;
  await mkdir(dir, { recursive: true });
  const shards: ShardIndex['shards'] = [];
  for (let shard = 0, first = 0; first < count; shard++, first += perShard) {
    const n = Math.min(perShard, count - first);
    const pixels = new Uint8Array(n * perImage);
    const words = new Uint32Array(pixels.buffer, 0, Math.floor(pixels.length / 4));
    const rng = createRng(seed, shard);
    for (let i = 0; i < words.length; i++) words[i] = rng.nextUint32();
    const labels = new Uint16Array(n);
    for (let i = 0; i < n; i++) labels[i] = (first + i) % classes;
    const labelBytes = new Uint8Array(labels.buffer);
    const names = shardFileNames(shard);
    await writeFile(join(dir, names.images), pixels);
    await writeFile(join(dir, names.labels), labelBytes);
    shards.push({
      images: names.images,
      labels: names.labels,
      count: n,
      imageBytes: pixels.length,
      labelBytes: labelBytes.length,
      imagesSha256: createHash('sha256').update(pixels).digest('hex'),
      labelsSha256: createHash('sha256').update(labelBytes).digest('hex'),
    });
  }
  const index: ShardIndex = {
    format: 'emo-dir-image-shards',
    version: 1,
    height,
    width,
    channels,
    labelEncoding: 'uint16le',
    preprocessing: { resizeShorterSide: Math.min(height, width), centreCrop: Math.min(height, width), colourspace: 'srgb' },
    classes: Array.from({ length: classes }, (_, c) => `synthetic${String(c).padStart(4, '0')}`),
    count,
    order: 'shuffled',
    seed,
    shards,
    skipped: [],
  };
  await writeFile(join(dir, SHARD_INDEX_FILE), `${JSON.stringify(index)}\n`);
  return index;
}

/** The shard directory as an ImageSource: labels in memory, pixels read per request. */
export async function shardImageSource(dir: string, name: string): Promise<ImageSource & { close(): void }> {
  const index = await readShardIndex(dir);
  const perImage = index.height * index.width * index.channels;
  const labels = new Int32Array(index.count);
  const fds: number[] = [];
  const shardOf = new Int32Array(index.count);
  const firstOf: number[] = [];
  let at = 0;
  for (const [s, shard] of index.shards.entries()) {
    const bytes = await readFile(join(dir, shard.labels));
    if (bytes.length !== shard.labelBytes) throw new Error(`${join(dir, shard.labels)}: ${bytes.length} bytes, index.json says ${shard.labelBytes}`);
    for (let i = 0; i < shard.count; i++) {
      labels[at + i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
      shardOf[at + i] = s;
    }
    firstOf.push(at);
    fds.push(openSync(join(dir, shard.images), 'r'));
    at += shard.count;
  }
  return {
    name,
    count: index.count,
    height: index.height,
    width: index.width,
    channels: index.channels,
    classes: index.classes.length,
    labels,
    readImages(indices) {
      const out = new Uint8Array(indices.length * perImage);
      for (let i = 0; i < indices.length; i++) {
        const image = indices[i];
        if (!Number.isInteger(image) || image < 0 || image >= index.count) {
          return Promise.reject(new RangeError(`${name}: image index ${image} is out of range (0..${index.count - 1})`));
        }
        const s = shardOf[image];
        const target = out.subarray(i * perImage, (i + 1) * perImage);
        const read = readSync(fds[s], target, 0, perImage, (image - firstOf[s]) * perImage);
        if (read !== perImage) return Promise.reject(new Error(`${join(dir, index.shards[s].images)}: short read of image ${image}`));
      }
      return Promise.resolve(out);
    },
    close() {
      for (const fd of fds.splice(0)) closeSync(fd);
    },
  };
}
