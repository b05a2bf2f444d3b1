// The worker-time estimate: documented rates reproduce the measurements they were fitted to, and
// the estimate is the formula of src/dir/estimate.ts over the real division of a model.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initEngine } from '../../src/engine/backend.ts';
import { estimateRun } from '../../src/dir/estimate.ts';
import type { Division } from '../../src/dir/divide.ts';
import { planSpec } from '../../src/dir/plan.ts';
import { BACKEND_THROUGHPUT, GPU_THROUGHPUT, gpuThroughput, secondsFor, type Throughput } from '../../src/dir/throughput.ts';
import { resolveModel } from '../../src/model/io.ts';
import { runSpecSchema, type RunSpec, type RunSpecInput } from '../../src/schema/spec.ts';

const input: RunSpecInput = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist', searchTrain: 1024, searchVal: 512, fineTuneLimit: 10_000, testLimit: 2000 },
  targets: [{ kind: 'flopsCut', value: 0.5 }],
  search: { population: 8, generations: 4, recoverySteps: 10, recoveryBatchSize: 64 },
};

/** A rate with no per-image overhead: seconds are MACs over it, easy to check by hand. */
const flat: Throughput = {
  id: 'flat',
  description: 'test',
  trainMacsPerSecond: 1e9,
  trainPerImageSeconds: 0,
  inferMacsPerSecond: 4e9,
  inferPerImageSeconds: 0,
};

let division: Division;
const parse = (extra: Partial<RunSpecInput> = {}): RunSpec => runSpecSchema.parse({ ...input, ...extra });

before(async () => {
  await initEngine({ backend: 'cpu' });
  const planned = await planSpec(parse(), { runId: 'e1', specKey: 'runs/e1/spec.json', loadModel: () => resolveModel('zoo:fmnist-resnet') });
  assert.deepEqual(planned.issues, []);
  division = planned.manifest!.division;
});

describe('throughput', () => {
  it('the wasm rates reproduce the bench:engine measurements they were fitted to', () => {
    const wasm = BACKEND_THROUGHPUT.wasm;
    const perImage = (mode: 'train' | 'infer', macs: number) => secondsFor(wasm, mode, 1, macs, macs);
    assert.ok(Math.abs(1 / perImage('train', 40_813_184) - 179.7) < 0.01);
    assert.ok(Math.abs(1 / perImage('train', 5_672_832) - 580.7) < 0.01);
    assert.ok(Math.abs(1 / perImage('infer', 40_813_184) - 667.0) < 0.01);
    assert.ok(Math.abs(1 / perImage('infer', 5_672_832) - 1661.1) < 0.01);
  });

  it('GPUs by id or EC2 instance type; an unknown one lists the known ones', () => {
    assert.equal(gpuThroughput(), GPU_THROUGHPUT.t4);
    assert.equal(gpuThroughput('g4dn.xlarge'), GPU_THROUGHPUT.t4);
    assert.equal(gpuThroughput('p3.2xlarge'), GPU_THROUGHPUT.v100);
    assert.equal(gpuThroughput('A100'), GPU_THROUGHPUT.a100);
    assert.throws(() => gpuThroughput('g5.xlarge'), /no documented throughput for GPU "g5\.xlarge": use t4, v100, a100 or an instance type of g4dn, p3, p4d/);
    // ResNet-50 at the published V100 FP32 training rate: 367 images per second.
    assert.ok(Math.abs(secondsFor(GPU_THROUGHPUT.v100, 'train', 367, 4_089_184_256, 4_089_184_256) - 1) < 1e-9);
  });
});

describe('estimateRun', () => {
  it('is the documented formula, sub-network by sub-network', () => {
    const spec = parse();
    const estimate = estimateRun(spec, division, [flat], { train: 60_000, test: 10_000 });
    const pieces = division.subnetworks;
    assert.equal(estimate.evaluations, 40 * pieces.length);
    pieces.forEach((piece, k) => {
      const before = pieces.slice(0, k).reduce((sum, p) => sum + p.macs, 0);
      const after = pieces.slice(k + 1).reduce((sum, p) => sum + p.macs, 0);
      const features = ((1024 + 512) * (before + piece.macs)) / 4e9;
      const recovery = (10 * 64 * (piece.macs + after)) / 1e9 + (4 * 64 * piece.macs) / 4e9;
      const score = (512 * (piece.macs + after)) / 4e9;
      const expected = features + 40 * (recovery + score);
      const row = estimate.subnetworks[k];
      assert.equal(row.id, piece.id);
      assert.equal(row.searchedChannels, piece.genomeLength);
      assert.ok(Math.abs(row.seconds.flat - expected) < 1e-9 * expected, `${piece.id}: ${row.seconds.flat} vs ${expected}`);
    });
    const sum = estimate.subnetworks.reduce((total, row) => total + row.seconds.flat, 0);
    assert.ok(Math.abs(estimate.searchSeconds.flat - sum) < 1e-9);
    assert.equal(estimate.searchWallSeconds.flat, Math.max(...estimate.subnetworks.map((row) => row.seconds.flat)));
    const finalize = estimate.finalizeSecondsPerTarget!.flat;
    assert.ok(finalize > 0);
    assert.ok(Math.abs(estimate.totalSeconds!.flat - (sum + finalize)) < 1e-9);
  });

  it('grows with the budget, and leaves finalize out when the split sizes are unknown', () => {
    const small = estimateRun(parse(), division, [flat]);
    const large = estimateRun(parse({ search: { ...input.search, generations: 9 } }), division, [flat]);
    assert.equal(large.evaluations, 2 * small.evaluations);
    assert.ok(large.searchSeconds.flat > 1.9 * small.searchSeconds.flat);
    assert.equal(small.finalizeSecondsPerTarget, undefined);
    assert.equal(small.totalSeconds, undefined);
  });
});
