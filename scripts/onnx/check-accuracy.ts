/**
 * Runs each target's exported `model.onnx` of a finished run with onnxruntime-node on the test
 * images the run measured (the same split, subset and pixel scaling as Finalize) and compares its
 * top-1 with the accuracy metrics.json reports. Prints one row per target; exits 1 when a target
 * differs by more than 0.1 point or has no model.onnx.
 *
 *   node --import tsx scripts/onnx/check-accuracy.ts <runId> [--store DIR] [--original FILE.onnx] [--json]
 *
 * With --original (the .onnx file the run started from), a first row runs it the same way and
 * compares with the unpruned accuracy metrics.json reports (the imported model's, in tfjs).
 *
 * onnxruntime-node is a dev dependency: this is a check, not part of the pipeline.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { arrayBatches } from '../../src/data/batches.ts';
import { loadDataset } from '../../src/data/load.ts';
import { stratifiedSample } from '../../src/data/sampling.ts';
import { finalizeMetricsSchema } from '../../src/dir/finalize.ts';
import { readRunSpec } from '../../src/dir/plan.ts';
import { parseWith } from '../../src/schema/validate.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson, type ObjectStore } from '../../src/store/object-store.ts';
import { readManifest } from '../../src/dir/manifest.ts';

type Ort = typeof import('onnxruntime-node');
const ort = createRequire(import.meta.url)('onnxruntime-node') as Ort;

export interface TargetCheck {
  readonly target: string;
  readonly onnxModelKey: string | null;
  /** Top-1 of model.onnx in onnxruntime on the run's test images. */
  readonly onnxAccuracy: number | null;
  /** metrics.json's accuracy.afterFineTune (the tfjs model's). */
  readonly reportedAccuracy: number;
  readonly testCount: number;
  readonly agrees: boolean;
}

/** Top-1 of an ONNX classifier (NCHW input) on `indices` of a data set, pixels / 255. */
async function onnxTop1(bytes: Uint8Array, dataset: Awaited<ReturnType<typeof loadDataset>>, indices: ArrayLike<number> | undefined): Promise<{ top1: number; count: number }> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    let correct = 0;
    let count = 0;
    for (const batch of arrayBatches(dataset, { batchSize: 256, shuffle: false, normalize: 'unit', ...(indices ? { indices } : {}) })) {
      const [n, h, w, c] = batch.shape;
      const nchw = new Float32Array(batch.x.length);
      for (let i = 0; i < n; i++) {
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) nchw[((i * c + k) * h + y) * w + x] = batch.x[((i * h + y) * w + x) * c + k];
      }
      const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', nchw, [n, c, h, w]) });
      const logits = result[session.outputNames[0]].data as Float32Array;
      const classes = logits.length / n;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let k = 1; k < classes; k++) if (logits[i * classes + k] > logits[i * classes + best]) best = k;
        if (best === batch.y[i]) correct++;
      }
      count += n;
    }
    return { top1: correct / count, count };
  } finally {
    await session.release();
  }
}

/** Checks every finalized target of `runId` (and the original file, when given; see the module comment). */
export async function checkRun(store: ObjectStore, runId: string, original?: Uint8Array): Promise<TargetCheck[]> {
  const manifest = await readManifest(store, runId);
  const spec = await readRunSpec(store, manifest.specKey);
  const testSet = await loadDataset(spec.dataset.name, { split: 'test' });
  // Finalize's test subset (src/dir/finalize.ts): a stratified sample of testLimit images, seeded by search.seed.
  const indices =
    spec.dataset.testLimit !== undefined && spec.dataset.testLimit < testSet.count
      ? stratifiedSample(testSet, { total: spec.dataset.testLimit, seed: spec.search.seed })
      : undefined;
  const checks: TargetCheck[] = [];
  let originalChecked = original === undefined;
  for (const target of manifest.targets) {
    const keys = runKeys(runId).target(target.name);
    if (!(await store.exists(keys.metrics))) continue;
    const metrics = parseWith(finalizeMetricsSchema, await getJson(store, keys.metrics), keys.metrics);
    const reported = metrics.accuracy.afterFineTune;
    if (!originalChecked && original !== undefined && metrics.accuracy.original !== undefined) {
      const { top1, count } = await onnxTop1(original, testSet, indices);
      const expected = metrics.accuracy.original;
      checks.push({ target: '(original)', onnxModelKey: null, onnxAccuracy: top1, reportedAccuracy: expected, testCount: count, agrees: count === metrics.testCount && Math.abs(top1 - expected) <= 0.001 });
      originalChecked = true;
    }
    if (metrics.onnxModelKey === undefined) {
      checks.push({ target: target.name, onnxModelKey: null, onnxAccuracy: null, reportedAccuracy: reported, testCount: metrics.testCount, agrees: false });
      continue;
    }
    const { top1, count } = await onnxTop1(await store.get(metrics.onnxModelKey), testSet, indices);
    checks.push({
      target: target.name,
      onnxModelKey: metrics.onnxModelKey,
      onnxAccuracy: top1,
      reportedAccuracy: reported,
      testCount: count,
      agrees: count === metrics.testCount && Math.abs(top1 - reported) <= 0.001,
    });
  }
  return checks;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { store: { type: 'string', default: '.emo-dir' }, original: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node --import tsx scripts/onnx/check-accuracy.ts <runId> [--store DIR] [--original FILE.onnx] [--json]\n');
    process.exit(2);
  }
  const original = values.original === undefined ? undefined : await readFile(values.original);
  const checks = await checkRun(new FileStore(values.store), positionals[0], original);
  if (values.json) {
    for (const check of checks) process.stdout.write(`${JSON.stringify(check)}\n`);
  } else {
    const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(2)}%`);
    process.stdout.write('target           test images  metrics.json (tfjs)  model.onnx (onnxruntime)  agrees\n');
    for (const c of checks) {
      process.stdout.write(`${c.target.padEnd(16)} ${String(c.testCount).padStart(11)}  ${pct(c.reportedAccuracy).padStart(19)}  ${pct(c.onnxAccuracy).padStart(24)}  ${c.agrees ? 'yes' : 'NO'}\n`);
    }
  }
  if (checks.length === 0 || checks.some((c) => !c.agrees)) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
