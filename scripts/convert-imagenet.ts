/**
 * Converts a class-subfolder image tree (ImageNet layout root/<wnid>/*.JPEG) to emo-dir image
 * shards (src/data/image-shards.ts), in a local directory or straight into a store. Usage:
 *
 *   node --import tsx scripts/convert-imagenet.ts --root <dir> --out <dir | s3://bucket/datasets/<name>/train>
 *     [--store <location> --prefix <key prefix>] [--endpoint <url>] [--resize 256] [--crop 224 | --crop 160x128]
 *     [--channels 3|1] [--shard-size 1000] [--order shuffled|sorted] [--seed 0] [--concurrency 4]
 *     [--classes-from <train shard set>] [--skip-unreadable] [--overwrite]
 *
 * `--out s3://bucket/<prefix>` writes the shards under that key prefix of the bucket (the workers
 * read `imagenet:s3://bucket/datasets/<name>` or `imagenet:datasets/<name>` from their store);
 * `--store`/`--prefix` say the same for any store location (a directory, file:///dir,
 * s3://bucket/prefix), `--endpoint` points at an S3 emulator (LocalStack). `--crop` is a side or
 * HEIGHTxWIDTH; `--channels 1` stores grey images. Convert val with --classes-from <train set> so its
 * labels use the training class list.
 */
import { parseArgs } from 'node:util';
import { convertImageFolder } from '../src/data/image-folder-convert.ts';
import type { CropSize } from '../src/data/image-folder-convert.ts';
import { readShardIndex } from '../src/data/image-shards.ts';
import { directoryFiles, storeFiles } from '../src/data/data-files.ts';
import type { DataFiles, DataSink } from '../src/data/data-files.ts';
import { commandStore } from '../src/local/command.ts';
import { parseStoreLocation } from '../src/store/index.ts';

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

function cropOption(value: string | undefined): CropSize {
  if (value === undefined) return 224;
  const match = /^(\d+)x(\d+)$/.exec(value);
  if (match) return { height: positiveInt('crop', match[1], 0), width: positiveInt('crop', match[2], 0) };
  return positiveInt('crop', value, 224);
}

/** A shard set named by a directory, an `s3://bucket/prefix` URL, or a store location plus a key prefix. */
function shardSet(where: string, endpoint: string | undefined): DataFiles & DataSink {
  if (!/^s3:\/\//i.test(where)) return directoryFiles(where);
  const { bucket, prefix } = parseStoreLocation(where);
  if (!prefix) throw new Error(`${where}: give a key prefix under the bucket, e.g. s3://${bucket}/datasets/<name>/train`);
  return storeFiles(commandStore(`s3://${bucket}`, endpoint), prefix);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      out: { type: 'string' },
      store: { type: 'string' },
      prefix: { type: 'string' },
      endpoint: { type: 'string' },
      resize: { type: 'string' },
      crop: { type: 'string' },
      channels: { type: 'string' },
      'shard-size': { type: 'string' },
      order: { type: 'string' },
      seed: { type: 'string' },
      concurrency: { type: 'string' },
      'classes-from': { type: 'string' },
      'skip-unreadable': { type: 'boolean' },
      overwrite: { type: 'boolean' },
    },
    strict: true,
  });
  const usage = 'usage: convert-imagenet --root <jpeg tree> (--out <dir | s3://bucket/prefix> | --store <location> --prefix <key prefix>) [options]';
  if (!values.root || (values.out === undefined) === (values.store === undefined)) throw new Error(usage);
  if (values.store !== undefined && !values.prefix) throw new Error(`--store needs --prefix (e.g. datasets/imagenet/train); ${usage}`);
  const out =
    values.store !== undefined ? storeFiles(commandStore(values.store, values.endpoint), values.prefix as string) : shardSet(values.out as string, values.endpoint);
  const order = values.order ?? 'shuffled';
  if (order !== 'shuffled' && order !== 'sorted') throw new Error(`--order must be shuffled or sorted, got ${order}`);
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  const channels = positiveInt('channels', values.channels, 3);
  if (channels !== 1 && channels !== 3) throw new Error(`--channels must be 1 or 3, got ${channels}`);
  const classes = values['classes-from'] ? (await readShardIndex(shardSet(values['classes-from'], values.endpoint))).classes : undefined;
  const started = performance.now();
  const index = await convertImageFolder({
    root: values.root,
    out,
    resize: positiveInt('resize', values.resize, 256),
    crop: cropOption(values.crop),
    channels,
    shardSize: positiveInt('shard-size', values['shard-size'], 1000),
    concurrency: positiveInt('concurrency', values.concurrency, 4),
    order,
    seed,
    ...(classes ? { classes } : {}),
    onUnreadable: values['skip-unreadable'] ? 'skip' : 'throw',
    overwrite: values.overwrite === true,
    log: (message) => process.stderr.write(`${message}\n`),
  });
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${JSON.stringify({ out: out.location, count: index.count, classes: index.classes.length, shards: index.shards.length, skipped: index.skipped.length, seconds: Number(seconds.toFixed(1)) })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`convert-imagenet: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
