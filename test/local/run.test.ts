// The embedded mode end to end: the REAL statemachine/emo-dir.asl.json under
// aws-local-stepfunctions, test handlers for the Lambdas (writing to a temporary FileStore) and a
// LocalProcessJobRunner that spawns test/local/fixtures/fake-worker.mjs per Batch job.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runLocal, type LocalHandlers, type RunLocalOptions } from '../../src/local/run.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { getJson, putJson } from '../../src/store/object-store.ts';
import { runKeys } from '../../src/store/keys.ts';

const FAKE_WORKER = fileURLToPath(new URL('./fixtures/fake-worker.mjs', import.meta.url));
const SUBNETS = ['000', '001'];
const TARGETS = ['flops-50', 'flops-70'];

type Json = Record<string, unknown>;
const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

interface Calls {
  plan: Json[];
  merge: Json[];
  report: Json[];
  recordFailure: Json[];
  /** When each Lambda ran, to check the order against the jobs' time windows. */
  at: Record<string, number>;
}

function handlersFor(store: FileStore, calls: Calls): LocalHandlers {
  return {
    plan: async (event) => {
      const { runId, specKey } = event as { runId: string; specKey: string };
      calls.plan.push(event as Json);
      calls.at.plan = Date.now();
      const spec = (await getJson(store, specKey)) as Json;
      const keys = runKeys(runId);
      await putJson(store, keys.manifest, { model: spec.model, subnetworks: SUBNETS });
      return { manifestKey: keys.manifest, subnetworks: SUBNETS, ignored: 'dropped by the ResultSelector' };
    },
    merge: async (event) => {
      const { runId } = event as { runId: string };
      calls.merge.push(event as Json);
      calls.at.merge = Date.now();
      const keys = runKeys(runId);
      // The searches' results must all be there when Merge runs.
      const fronts = await Promise.all(SUBNETS.map((subnet) => getJson(store, keys.subnet(subnet).front)));
      await putJson(store, keys.merge.jointFront, { fronts: fronts.length });
      return { jointFrontKey: keys.merge.jointFront, targets: TARGETS };
    },
    report: async (event) => {
      const { runId } = event as { runId: string };
      calls.report.push(event as Json);
      calls.at.report = Date.now();
      const keys = runKeys(runId);
      await putJson(store, keys.report.json, { ok: true });
      await store.put(keys.report.html, '<html></html>');
      await putJson(store, keys.status, { runId, state: 'succeeded', at: new Date().toISOString(), message: 'done' });
      return { reportKey: keys.report.json, htmlKey: keys.report.html };
    },
    recordFailure: async (event) => {
      const { runId, error } = event as { runId: string; error: { Error: string; Cause: string } };
      calls.recordFailure.push(event as Json);
      await putJson(store, runKeys(runId).status, { runId, state: 'failed', at: new Date().toISOString(), message: error.Error, cause: error.Cause });
      return {};
    },
  };
}

async function run(options: { mode?: string; workers?: number; runId?: string; barrier?: number; extra?: Partial<RunLocalOptions> } = {}) {
  const storeDir = await mkdtemp(join(tmpdir(), 'emo-dir-local-'));
  dirs.push(storeDir);
  const calls: Calls = { plan: [], merge: [], report: [], recordFailure: [], at: {} };
  const progress: string[] = [];
  const runId = options.runId ?? 'local-test';
  const result = await runLocal({
    spec: { runId, model: 'zoo:resnet20', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] },
    storeDir,
    workers: options.workers ?? 4,
    handlers: ({ store }) => handlersFor(store as FileStore, calls),
    workerCommand: [process.execPath, FAKE_WORKER],
    // NODE_OPTIONS: the test runner's `--import tsx` would cost every plain-JS worker ~0.5 s.
    workerEnv: { FAKE_WORKER_MODE: options.mode ?? '', FAKE_WORKER_DELAY_MS: '300', FAKE_WORKER_BARRIER: String(options.barrier ?? 0), NODE_OPTIONS: '' },
    killGraceMs: 500,
    progressStream: { write: (text: string) => progress.push(text) },
    progressMode: 'plain',
    ...options.extra,
  });
  const store = new FileStore(storeDir);
  return { result, calls, store, storeDir, progress: progress.join(''), keys: runKeys(runId) };
}

interface WorkerOutput {
  attempt: number;
  startedAt: number;
  endedAt: number;
  barrierMet: boolean | null;
  jobId: string;
  subnetEnv: string | null;
  targetEnv: string | null;
}

describe('runLocal with the real state machine definition', () => {
  it('runs Plan -> parallel searches -> Merge -> finalize per target -> Report', async () => {
    // Each search waits in the fake worker until both have started: overlap by construction.
    const { result, calls, store, keys, progress } = await run({ barrier: SUBNETS.length });
    assert.equal(result.status, 'SUCCEEDED', JSON.stringify(result.error));
    assert.equal(result.store, store.location);
    assert.deepEqual(await getJson(store, keys.spec).then((spec) => (spec as Json).runId), 'local-test');

    assert.equal(calls.plan.length, 1);
    assert.deepEqual(calls.plan[0], { runId: 'local-test', specKey: keys.spec });
    const fronts = (await Promise.all(SUBNETS.map((subnet) => getJson(store, keys.subnet(subnet).front)))) as WorkerOutput[];
    // The Batch environment overrides of the ASL reached the worker.
    assert.deepEqual(fronts.map((front) => front.subnetEnv), SUBNETS);
    assert.ok(fronts.every((front) => front.attempt === 1));
    // Both searches ran at once: each was still running when the other started (the barrier),
    // so their time windows overlap.
    assert.deepEqual(fronts.map((front) => front.barrierMet), [true, true], 'a search never saw the other start');
    const [a, b] = fronts;
    assert.ok(a.startedAt < b.endedAt && b.startedAt < a.endedAt, `search windows do not overlap: ${JSON.stringify(fronts)}`);
    // Plan before the searches, Merge after both, finalize after Merge, Report last.
    assert.ok(calls.at.plan <= Math.min(a.startedAt, b.startedAt));
    assert.ok(calls.at.merge >= Math.max(a.endedAt, b.endedAt));
    const metrics = (await Promise.all(TARGETS.map((target) => getJson(store, keys.target(target).metrics)))) as WorkerOutput[];
    assert.deepEqual(metrics.map((m) => m.targetEnv), TARGETS);
    assert.ok(metrics.every((m) => m.startedAt >= calls.at.merge));
    assert.ok(calls.at.report >= Math.max(...metrics.map((m) => m.endedAt)));

    // Report got the jobs as the ResultSelector keeps them: only job id and status.
    const report = calls.report[0];
    assert.equal(report.action, 'report');
    const searchJobs = report.searchJobs as { subnet: string; job: Json }[];
    assert.deepEqual(searchJobs.map((item) => item.subnet), SUBNETS);
    for (const item of searchJobs) assert.deepEqual(Object.keys(item.job).sort(), ['jobId', 'status']);
    assert.deepEqual(searchJobs.map((item) => item.job.status), ['SUCCEEDED', 'SUCCEEDED']);
    assert.deepEqual(
      new Set(searchJobs.map((item) => item.job.jobId)),
      new Set(fronts.map((front) => front.jobId)),
      'the job ids the state machine saw are the AWS_BATCH_JOB_ID the workers saw',
    );
    assert.equal((report.finalizeJobs as unknown[]).length, 2);
    assert.deepEqual(result.output && (result.output as Json).report, { reportKey: keys.report.json, htmlKey: keys.report.html });
    assert.equal(calls.recordFailure.length, 0);

    assert.equal(result.jobs.length, 4);
    // Every job works 300 ms; the worker-seconds are the sum of the jobs' attempts, and the run
    // lasted at least as long as its longest job.
    assert.ok(result.workerSeconds >= 4 * 0.3, `worker-seconds ${result.workerSeconds}`);
    const attemptSeconds = result.jobs.flatMap((job) => job.attempts.map((attempt) => (attempt.stoppedAt - attempt.startedAt) / 1000));
    assert.ok(Math.abs(result.workerSeconds - attemptSeconds.reduce((sum, seconds) => sum + seconds, 0)) < 1e-6);
    assert.ok(result.wallSeconds >= Math.max(...attemptSeconds) - 0.002, `wall ${result.wallSeconds} s, longest job ${Math.max(...attemptSeconds)} s`);
    assert.match(progress, /search 000: generation 3\/3, 12 evaluations, hypervolume 0\.300/);
    assert.match(progress, /> Merge/);
  });

  it('retries a worker killed by a signal with AWS_BATCH_JOB_ATTEMPT=2, and the run succeeds', async () => {
    const { result, store, keys, storeDir, progress } = await run({ mode: 'crash-once:001' });
    assert.equal(result.status, 'SUCCEEDED', JSON.stringify(result.error));
    const front = (await getJson(store, keys.subnet('001').front)) as WorkerOutput;
    assert.equal(front.attempt, 2, 'the second attempt wrote the result');
    const crashed = JSON.parse(await readFile(join(storeDir, 'scratch', 'local-test', 'search', '001', 'crashed-attempt-1.json'), 'utf8'));
    assert.equal(crashed.attempt, 1);
    const record = result.jobs.find((job) => job.job.label === 'search 001');
    assert.ok(record !== undefined);
    assert.deepEqual(record.attempts.map((attempt) => [attempt.signal, attempt.exitCode]), [['SIGKILL', null], [null, 0]]);
    assert.match(progress, /search 001: attempt 1 failed \(killed by SIGKILL, Host EC2 .*\), retrying/);
    assert.equal((await getJson(store, keys.subnet('000').front) as WorkerOutput).attempt, 1);
  });

  it('does not retry an application error: the run takes the failure path and records status.json', async () => {
    const { result, calls, store, keys } = await run({ mode: 'fail:001' });
    assert.equal(result.status, 'FAILED');
    assert.equal(result.error?.Error, 'States.TaskFailed');
    const failed = result.jobs.find((job) => job.job.label === 'search 001');
    assert.equal(failed?.status, 'FAILED');
    assert.equal(failed?.attempts.length, 1, 'exit code 1 is not retried');
    assert.equal(calls.merge.length, 0);
    assert.equal(calls.report.length, 0);
    assert.equal(calls.recordFailure.length, 1);
    const status = (await getJson(store, keys.status)) as Json;
    assert.equal(status.state, 'failed');
    assert.equal(status.message, 'States.TaskFailed');
    // The Cause is the job description, as Step Functions reports a failed Batch job.
    const cause = JSON.parse(String(status.cause)) as Json;
    assert.equal(cause.Status, 'FAILED');
    assert.equal(cause.JobName, 'emo-dir-search');
    assert.deepEqual((cause.Attempts as Json[]).map((attempt) => (attempt.Container as Json).ExitCode), [1]);
    assert.ok((cause.LocalLogTail as string[]).some((line) => line.includes('simulated application error')));
  });

  it('respects the worker limit: with one worker the searches run one after the other', async () => {
    const { result, store, keys } = await run({ workers: 1 });
    assert.equal(result.status, 'SUCCEEDED', JSON.stringify(result.error));
    const [a, b] = (await Promise.all(SUBNETS.map((subnet) => getJson(store, keys.subnet(subnet).front)))) as WorkerOutput[];
    assert.ok(a.endedAt <= b.startedAt || b.endedAt <= a.startedAt, `windows overlap: ${JSON.stringify([a, b])}`);
  });

  it('terminates the other searches of a failed Map instead of waiting for them', async () => {
    const { result, calls } = await run({ mode: 'hang:000,fail:001' });
    assert.equal(result.status, 'FAILED');
    const hung = result.jobs.find((job) => job.job.label === 'search 000');
    assert.equal(hung?.status, 'CANCELLED');
    // Ended by the runner's signal (SIGTERM, or SIGKILL once it ignored that), not by waiting
    // out its minute of sleep (which would have ended with exit code 0).
    assert.equal(hung.attempts.length, 1);
    assert.ok(['SIGTERM', 'SIGKILL'].includes(hung.attempts[0].signal ?? ''), `the hanging search ended with ${JSON.stringify(hung.attempts[0])}`);
    assert.equal(calls.recordFailure.length, 1);
  });

  it('refuses a run id that is taken by a different spec', async () => {
    const first = await run({ runId: 'taken' });
    await assert.rejects(
      runLocal({
        spec: { runId: 'taken', model: 'zoo:resnet32', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] },
        storeDir: first.storeDir,
        handlers: handlersFor(first.store, { plan: [], merge: [], report: [], recordFailure: [], at: {} }),
        progressStream: { write: () => true },
      }),
      /already exists with a different spec/,
    );
  });
});
