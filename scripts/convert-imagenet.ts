/**
 * Converts a class-subfolder JPEG tree (ImageNet layout root/<wnid>/*.JPEG) to emo-dir image
 * shards (src/data/image-shards.ts). Usage:
 *
 *   node --import tsx scripts/convert-imagenet.ts --root <dir> --out <dir> [--resize 256] [--crop 224]
 *     [--shard-size 1000] [--order shuffled|sorted] [--seed 0] [--concurrency 4]
 *     [--classes-from <train shard dir>] [--skip-unreadable] [--overwrite]
 *
 * Convert val with --classes-from <train out> so its labels use the training class list.
 */
import { parseArgs } from 'node:util';
import { convertImageFolder } from '../src/data/image-folder-convert.ts';
import { readShardIndex } from '../src/data/image-shards.ts';

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      out: { type: 'string' },
      resize: { type: 'string' },
      crop: { type: 'string' },
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
  if (!values.root || !values.out) throw new Error('usage: convert-imagenet --root <jpeg tree> --out <shard dir> [options]');
  const order = values.order ?? 'shuffled';
  if (order !== 'shuffled' && order !== 'sorted') throw new Error(`--order must be shuffled or sorted, got ${order}`);
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  const classes = values['classes-from'] ? (await readShardIndex(values['classes-from'])).classes : undefined;
  const started = performance.now();
  const index = await convertImageFolder({
    root: values.root,
    out: values.out,
    resize: positiveInt('resize', values.resize, 256),
    crop: positiveInt('crop', values.crop, 224),
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
    `${JSON.stringify({ out: values.out, count: index.count, classes: index.classes.length, shards: index.shards.length, skipped: index.skipped.length, seconds: Number(seconds.toFixed(1)) })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`convert-imagenet: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
