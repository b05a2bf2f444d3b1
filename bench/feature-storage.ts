/**
 * Feature storage benchmark (README "Bounded memory"): what keeping boundary features out of the
 * worker's memory costs on the hot path, and what the alternative design would cost.
 *
 *   npm run bench:features [-- --json] [--model DIR] [--evaluations 5]
 *
 * On Fashion-MNIST with the spec's default search settings (2048 + 1024 images, 20 recovery steps
 * of 64, 4 BN batches), per sub-network:
 *   - CPU seconds per candidate evaluation with rows in memory, in spool files (float32) and in
 *     spool files (float16); the three are evaluated on the same genomes, interleaved in one
 *     process (separate runs on a shared machine differ by more than the effect); float32 spool
 *     results must equal the in-memory ones exactly, float16's largest impairment difference is
 *     reported;
 *   - the extra CPU seconds per evaluation of recomputing X_{k-1}/X_k from the images per batch
 *     (the prefix forward pass to X_k for the recovery rows, to X_{k-1} for the BN and search-val
 *     rows), timed after a warm-up pass.
 * Rows (`--json`): {subnet, storage, dtype, cpuSecondsPerEvaluation, evaluations,
 * identicalToMemory, maxImpairmentDelta} and {subnet, design: 'recompute', extraCpuSecondsPerEvaluation}.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../src/engine/backend.ts';
import { arrayBatches, epochOrder } from '../src/data/batches.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { analyzeChannels, genomeSlots } from '../src/model/groups.ts';
import { loadModel } from '../src/model/io.ts';
import { runSpecSchema } from '../src/schema/spec.ts';
import { createCandidateEvaluator } from '../src/dir/candidate.ts';
import type { CandidateEvaluator } from '../src/dir/candidate.ts';
import { divideNetwork } from '../src/dir/divide.ts';
import type { SubnetworkSpec } from '../src/dir/divide.ts';
import { computeBoundaryFeatures, drawSearchSubsets } from '../src/dir/features.ts';
import type { BoundaryFeatures, ComputeFeaturesOptions } from '../src/dir/features.ts';
import { candidateSettingsFromSpec } from '../src/dir/search-task.ts';
import { buildBoundaryModel, buildSubnetworkModel, buildTailModel } from '../src/dir/subnetwork.ts';
import { formatTable } from './lib/table.ts';

const { values } = parseArgs({
  args: process.argv.slice(2),
  strict: true,
  options: {
    json: { type: 'boolean', default: false },
    model: { type: 'string', default: fileURLToPath(new URL('../examples/fmnist-resnet/model', import.meta.url)) },
    evaluations: { type: 'string', default: '5' },
  },
});
const evaluations = Number(values.evaluations);
if (!Number.isInteger(evaluations) || evaluations < 2) throw new Error(`bench:features: --evaluations must be an integer >= 2, got '${values.evaluations}'`);
const log = (message: string): void => void process.stderr.write(`${message}\n`);
const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

await initEngine({ log });
const model = await loadModel(values.model);
const spec = runSpecSchema.parse({ model: 'zoo:fmnist-resnet', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] });
const division = divideNetwork(model, analyzeChannels(model));
const dataset = await loadFashionMnist({ split: 'train', log });
const subsets = drawSearchSubsets(dataset, { searchTrain: spec.dataset.searchTrain, searchVal: spec.dataset.searchVal, seed: spec.search.seed });
const storages: { name: string; storage: 'memory' | 'spool'; options: ComputeFeaturesOptions }[] = [
  { name: 'memory float32', storage: 'memory', options: { storage: 'memory' } },
  { name: 'spool float32', storage: 'spool', options: {} },
  { name: 'spool float16', storage: 'spool', options: { dtype: 'float16' } },
];
const featureSets: Map<string, BoundaryFeatures>[] = [];
for (const s of storages) featureSets.push(await computeBoundaryFeatures(model, division, dataset, subsets, { ...s.options, log }));
const settings = candidateSettingsFromSpec(spec);

/** CPU seconds of the prefix forward passes one evaluation would add if X_{k-1}/X_k were recomputed. */
function recomputeSeconds(subnet: SubnetworkSpec): number {
  const both = buildBoundaryModel(model, division, subnet.index > 1 ? [subnet.outputTensor, subnet.inputTensor] : [subnet.outputTensor]);
  const previous = subnet.index > 1 ? buildBoundaryModel(model, division, [subnet.inputTensor]) : undefined;
  const order = epochOrder(subsets.train.length, { shuffle: true, seed: settings.seed, epoch: 0 });
  const run = (m: tf.LayersModel, indices: Int32Array, batchSize: number): void => {
    for (const batch of arrayBatches(dataset, { batchSize, shuffle: false, indices })) {
      const outputs = tf.tidy(() => m.apply(tf.tensor4d(batch.x, [...batch.shape]), { training: false }) as tf.Tensor | tf.Tensor[]);
      for (const t of Array.isArray(outputs) ? outputs : [outputs]) {
        t.dataSync();
        t.dispose();
      }
    }
  };
  const rows = (start: number, count: number): Int32Array => Int32Array.from(order.subarray(start, start + count), (r) => subsets.train[r]);
  const pass = (): number => {
    const started = process.cpuUsage();
    for (let step = 0; step < settings.recoverySteps; step++) run(both, rows(step * settings.batchSize, settings.batchSize), settings.batchSize);
    if (previous) {
      run(previous, rows(0, settings.bnRecalibrationBatches * settings.batchSize), settings.batchSize);
      run(previous, subsets.val, settings.evalBatchSize ?? 256);
    }
    return cpuSeconds(started);
  };
  pass(); // warm-up
  const seconds = pass();
  both.dispose();
  previous?.dispose();
  return seconds;
}

const table: (string | number)[][] = [];
for (const subnet of division.subnetworks) {
  const subnetModel = buildSubnetworkModel(model, division, subnet.id);
  const tail = subnet.index === division.subnetworks.length ? null : buildTailModel(model, division, subnet.id);
  const analysis = analyzeChannels(subnetModel);
  const slots = genomeSlots(analysis, subnet.groupIds);
  const evaluators: CandidateEvaluator[] = featureSets.map((features) =>
    createCandidateEvaluator({ originalSubnet: subnetModel, tail, features: features.get(subnet.id)!, analysis, slots, settings }),
  );
  const seconds = storages.map(() => 0);
  const impairments: number[][] = storages.map(() => []);
  let state = 7; // seeded genomes keeping ~60% of the channels
  const random = (): number => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < evaluations; i++) {
    const genome = Uint8Array.from({ length: evaluators[0].genomeLength }, () => (random() < 0.6 ? 1 : 0));
    for (const slot of slots) genome[slot.start] = 1;
    evaluators.forEach((evaluator, s) => {
      const started = process.cpuUsage();
      impairments[s].push(evaluator.evaluate(genome).impairment);
      if (i > 0) seconds[s] += cpuSeconds(started); // the first round warms up
    });
  }
  storages.forEach((s, k) => {
    const row = {
      subnet: subnet.id,
      storage: s.storage,
      dtype: s.options.dtype ?? 'float32',
      cpuSecondsPerEvaluation: seconds[k] / (evaluations - 1),
      evaluations,
      identicalToMemory: impairments[k].every((v, i) => v === impairments[0][i]),
      maxImpairmentDelta: Math.max(...impairments[k].map((v, i) => Math.abs(v - impairments[0][i]))),
    };
    if (values.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    table.push([subnet.id, s.name, row.cpuSecondsPerEvaluation, row.identicalToMemory ? 'yes' : 'no', row.maxImpairmentDelta]);
  });
  const extra = recomputeSeconds(subnet);
  if (values.json) process.stdout.write(`${JSON.stringify({ subnet: subnet.id, design: 'recompute', extraCpuSecondsPerEvaluation: extra })}\n`);
  table.push([subnet.id, 'recompute X_{k-1}/X_k: extra', extra, '-', '-']);
  subnetModel.dispose();
  tail?.dispose();
}
for (const set of featureSets) for (const features of set.values()) features.release();
if (!values.json) console.log(formatTable(['subnet', 'rows', 'CPU s/eval', 'same as memory', 'max |d impairment|'], table));
