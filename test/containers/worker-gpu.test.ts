// The worker's GPU check (containers/worker.ts): a job that must run on a GPU and whose TensorFlow
// sees none exits at once with 78 and one line saying why, and 78 is not retried by the Batch
// retry rules. The worker runs as a child process exactly as a Batch job runs it; a module hook
// makes `@tensorflow/tfjs-node-gpu` resolve to a fake tensorflow backend (test/containers/fixtures)
// that reports a GPU or not, the way tfjs-node does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WORKER_NO_GPU_EXIT_CODE, gpuRequired } from '../../containers/worker.ts';
import { BATCH_RETRY_POLICY, CONTAINER_EXITED_REASON, WORKER_RETRY_EXIT_CODE, shouldRetry } from '../../src/local/job-runner.ts';

const WORKER = fileURLToPath(new URL('../../containers/worker.ts', import.meta.url));
const FAKE_GPU = fileURLToPath(new URL('./fixtures/fake-gpu-register.mjs', import.meta.url));

let store: string;

before(async () => {
  store = await mkdtemp(join(tmpdir(), 'emo-dir-worker-gpu-'));
});

after(async () => {
  await rm(store, { recursive: true, force: true });
});

interface WorkerRun {
  readonly code: number | null;
  readonly stderr: string;
}

/** Runs `worker search` on an empty store with the fake tfjs-node-gpu and `env` on top of a clean environment. */
function runWorker(env: Record<string, string>): Promise<WorkerRun> {
  const base: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(EMO_DIR_|AWS_BATCH_|NVIDIA_|FAKE_TF_)/.test(key)) continue;
    base[key] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', FAKE_GPU, WORKER, 'search', '--run-id', 'gpu-check', '--subnet', 'k1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...base, NODE_OPTIONS: '', EMO_DIR_STORE: store, ...env },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function refusal(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('worker: search refused'));
}

describe('worker GPU check', () => {
  test('EMO_DIR_REQUIRE_GPU=1 and TensorFlow sees no GPU: exit 78 with one line, before any work, not retried', async () => {
    const run = await runWorker({ EMO_DIR_REQUIRE_GPU: '1', FAKE_TF_GPU: '0' });
    assert.equal(run.code, WORKER_NO_GPU_EXIT_CODE, run.stderr);
    assert.match(run.stderr, /engine: backend=tensorflow via @tensorflow\/tfjs-node-gpu/, 'the fake tfjs-node-gpu was the backend');
    const lines = refusal(run.stderr);
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0], /no GPU: TensorFlow sees no GPU device, the engine runs on the CPU only \(backend tensorflow via @tensorflow\/tfjs-node-gpu, libtensorflow 2\.18\.0-fake\)/);
    assert.match(lines[0], /\(exit 78, not retried\)$/);
    assert.doesNotMatch(run.stderr, /manifest/, 'nothing was read from the store');
    // The Batch retry rules (mirrored by the local job runner) retry only 75: 78 ends the job.
    assert.notEqual(WORKER_NO_GPU_EXIT_CODE, WORKER_RETRY_EXIT_CODE);
    const attempt = { attempt: 1, startedAt: 0, stoppedAt: 1, exitCode: run.code, signal: null, reason: CONTAINER_EXITED_REASON, statusReason: CONTAINER_EXITED_REASON };
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, attempt), false);
  });

  test('a Batch job given GPUs requires one without EMO_DIR_REQUIRE_GPU; a wasm engine is refused too', async () => {
    const batch = await runWorker({ AWS_BATCH_JOB_ID: 'job-1', NVIDIA_VISIBLE_DEVICES: 'GPU-0d3f8b9e', FAKE_TF_GPU: '0' });
    assert.equal(batch.code, WORKER_NO_GPU_EXIT_CODE, batch.stderr);
    const wasm = await runWorker({ EMO_DIR_REQUIRE_GPU: '1', EMO_DIR_BACKEND: 'wasm' });
    assert.equal(wasm.code, WORKER_NO_GPU_EXIT_CODE, wasm.stderr);
    assert.match(refusal(wasm.stderr)[0], /the engine runs on the CPU only \(backend wasm via @tensorflow\/tfjs-backend-wasm\)/);
  });

  test('with a GPU visible (or the check off) the worker goes on to its work', async () => {
    const gpu = await runWorker({ EMO_DIR_REQUIRE_GPU: '1', FAKE_TF_GPU: '1' });
    assert.match(gpu.stderr, /device: GPU \(backend tensorflow via @tensorflow\/tfjs-node-gpu, libtensorflow 2\.18\.0-fake\) \(GPU required\)/);
    assert.deepEqual(refusal(gpu.stderr), []);
    // It got as far as the run's manifest, which this empty store does not have.
    assert.equal(gpu.code, 1, gpu.stderr);
    assert.match(gpu.stderr, /worker: search failed: .*manifest/);
    const off = await runWorker({ EMO_DIR_REQUIRE_GPU: '0', AWS_BATCH_JOB_ID: 'job-2', NVIDIA_VISIBLE_DEVICES: '0', FAKE_TF_GPU: '0' });
    assert.equal(off.code, 1, off.stderr);
    assert.match(off.stderr, /device: CPU only/);
  });

  test('gpuRequired: the flag decides, else a Batch GPU assignment; a bad flag is a usage error', () => {
    assert.equal(gpuRequired({}), false);
    assert.equal(gpuRequired({ EMO_DIR_REQUIRE_GPU: '1' }), true);
    assert.equal(gpuRequired({ EMO_DIR_REQUIRE_GPU: 'true' }), true);
    assert.equal(gpuRequired({ EMO_DIR_REQUIRE_GPU: '0', AWS_BATCH_JOB_ID: 'j', NVIDIA_VISIBLE_DEVICES: '0,1' }), false);
    assert.equal(gpuRequired({ AWS_BATCH_JOB_ID: 'j', NVIDIA_VISIBLE_DEVICES: '0,1' }), true);
    assert.equal(gpuRequired({ AWS_BATCH_JOB_ID: 'j', NVIDIA_VISIBLE_DEVICES: 'all' }), false, 'the image default is not an assignment');
    assert.equal(gpuRequired({ NVIDIA_VISIBLE_DEVICES: '0' }), false, 'outside Batch only the flag requires a GPU');
    assert.throws(() => gpuRequired({ EMO_DIR_REQUIRE_GPU: 'yes' }), /EMO_DIR_REQUIRE_GPU: expected 1 or 0, got 'yes'/);
  });
});
