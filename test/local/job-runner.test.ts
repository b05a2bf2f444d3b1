import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import * as batch from 'aws-cdk-lib/aws-batch';
import {
  BATCH_RETRY_POLICY,
  FunctionJobRunner,
  JobCancelledError,
  JobFailedError,
  LocalProcessJobRunner,
  SimulatedKillError,
  WORKER_RETRY_EXIT_CODE,
  shouldRetry,
  type JobAttempt,
  type JobEvent,
  type LocalJob,
} from '../../src/local/job-runner.ts';
import { WORKER_RETRY_EXIT_CODE as CDK_WORKER_RETRY_EXIT_CODE } from '../../cdk/constructs/batch.ts';

const FAKE_WORKER = fileURLToPath(new URL('./fixtures/fake-worker.mjs', import.meta.url));
const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

function job(id: string, stage: 'search' | 'finalize' = 'search'): LocalJob {
  const flag = stage === 'search' ? '--subnet' : '--target';
  return {
    jobId: `job-${id}`,
    jobName: `emo-dir-${stage}`,
    definition: stage,
    command: [stage, '--run-id', 'r1', flag, id],
    environment: stage === 'search' ? { EMO_DIR_SUBNET: id } : { EMO_DIR_TARGET: id },
    label: `${stage} ${id}`,
  };
}

function attempt(fields: Partial<JobAttempt>): JobAttempt {
  return { attempt: 1, startedAt: 0, stoppedAt: 1, exitCode: 1, signal: null, reason: 'Essential container in task exited', statusReason: 'Essential container in task exited', ...fields };
}

describe('the retry policy mirrors the Batch job definitions', () => {
  it('uses the CDK construct\'s reasons, exit code and default attempts', async () => {
    // The rules are Batch's own objects: SPOT_INSTANCE_RECLAIMED and CANNOT_PULL_CONTAINER.
    const fields = (reason: batch.Reason): object => JSON.parse(JSON.stringify(reason)) as object;
    assert.deepEqual(BATCH_RETRY_POLICY.retryOn[0], { action: 'RETRY', ...fields(batch.Reason.SPOT_INSTANCE_RECLAIMED) });
    assert.deepEqual(BATCH_RETRY_POLICY.retryOn[1], { action: 'RETRY', ...fields(batch.Reason.CANNOT_PULL_CONTAINER) });
    assert.equal(WORKER_RETRY_EXIT_CODE, CDK_WORKER_RETRY_EXIT_CODE);
    // The construct's rule list and default attempts, read from its source (they live in a method).
    const source = await readFile(new URL('../../cdk/constructs/batch.ts', import.meta.url), 'utf8');
    const rules = [...source.matchAll(/RetryStrategy\.of\(batch\.Action\.(RETRY|EXIT), (.*)\),?$/gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(rules.map(([action]) => action), BATCH_RETRY_POLICY.retryOn.map((rule) => rule.action));
    assert.match(rules[2][1], /onExitCode: String\(WORKER_RETRY_EXIT_CODE\)/);
    assert.match(rules[3][1], /onReason: '\*'/);
    assert.match(source, /Attempts including spot reclaims and host failures\. Default 5\./);
    assert.equal(BATCH_RETRY_POLICY.attempts, 5);
  });

  it('retries host failures and exit code 75, not application exits, and stops at the attempt limit', () => {
    const killed = attempt({ exitCode: null, signal: 'SIGKILL', reason: 'Container killed by SIGKILL', statusReason: 'Host EC2 (instance local) terminated.' });
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, killed), true);
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, attempt({ exitCode: WORKER_RETRY_EXIT_CODE })), true);
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, attempt({ exitCode: 1 })), false);
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, attempt({ exitCode: 750 })), false, 'exit codes match exactly');
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, attempt({ exitCode: null, reason: 'CannotStartContainerError: spawn ENOENT' })), false);
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, { ...killed, attempt: 5 }), false, 'attempt 5 of 5 is the last');
    // Batch: an attempt that no rule matches is retried.
    assert.equal(shouldRetry({ attempts: 3, retryOn: [{ action: 'EXIT', onExitCode: '2' }] }, attempt({ exitCode: 1 })), true);
  });
});

describe('FunctionJobRunner', () => {
  it('never runs more jobs at once than its concurrency, and runs them all', async () => {
    let running = 0;
    let peak = 0;
    const runner = new FunctionJobRunner({
      concurrency: 2,
      log: () => {},
      fn: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running--;
      },
    });
    const records = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((id) => runner.run(job(id))));
    assert.equal(peak, 2);
    assert.equal(records.length, 6);
    assert.ok(records.every((record) => record.status === 'SUCCEEDED' && record.attempts.length === 1));
    assert.ok(records.every((record) => record.workerSeconds >= 0.015));
  });

  it('retries a simulated host failure and fails an exception without retry', async () => {
    const events: string[] = [];
    const runner = new FunctionJobRunner({
      concurrency: 1,
      log: () => {},
      onEvent: (event: JobEvent) => events.push(`${event.type}:${event.job.label}`),
      fn: async (current, { attempt: number }) => {
        if (current.label === 'search k' && number === 1) throw new SimulatedKillError();
        if (current.label === 'search x') throw new Error('boom');
      },
    });
    const record = await runner.run(job('k'));
    assert.equal(record.attempts.length, 2);
    await assert.rejects(runner.run(job('x')), (error: unknown) => {
      assert.ok(error instanceof JobFailedError);
      assert.equal(error.record.attempts.length, 1);
      assert.match(error.message, /boom/);
      return true;
    });
    assert.deepEqual(events, [
      'queued:search k', 'started:search k', 'attempt-failed:search k', 'started:search k', 'succeeded:search k',
      'queued:search x', 'started:search x', 'attempt-failed:search x', 'failed:search x',
    ]);
  });

  it('cancels a queued job when its signal aborts, without running it', async () => {
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const runner = new FunctionJobRunner({ concurrency: 1, log: () => {}, fn: async (current) => { ran.push(current.label); await gate; } });
    const first = runner.run(job('a'));
    const controller = new AbortController();
    const second = runner.run(job('b'), { signal: controller.signal });
    controller.abort(new Error('no longer needed'));
    await assert.rejects(second, (error: unknown) => error instanceof JobCancelledError && /no longer needed/.test(error.message));
    release();
    await first;
    assert.deepEqual(ran, ['search a']);
  });
});

describe('LocalProcessJobRunner', () => {
  async function storeDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'emo-dir-jobs-'));
    dirs.push(dir);
    return dir;
  }

  function runner(dir: string, mode: string, extra: Partial<ConstructorParameters<typeof LocalProcessJobRunner>[0]> = {}) {
    const lines: string[] = [];
    const jobRunner = new LocalProcessJobRunner({
      concurrency: 2,
      command: [process.execPath, FAKE_WORKER],
      env: { EMO_DIR_STORE: pathToFileURL(dir).href, FAKE_WORKER_MODE: mode, FAKE_WORKER_DELAY_MS: '50', NODE_OPTIONS: '' },
      log: (line) => lines.push(line),
      killGraceMs: 300,
      ...extra,
    });
    return { jobRunner, lines };
  }

  it('runs the command with the job appended, Batch variables set, output prefixed by the job', async () => {
    const dir = await storeDir();
    const { jobRunner, lines } = runner(dir, '');
    const record = await jobRunner.run(job('007'));
    assert.equal(record.status, 'SUCCEEDED');
    const front = JSON.parse(await readFile(join(dir, 'runs', 'r1', 'subnets', '007', 'front.json'), 'utf8'));
    assert.equal(front.attempt, 1);
    assert.equal(front.jobId, 'job-007');
    assert.equal(front.subnetEnv, '007');
    assert.ok(lines.includes('[search 007] plain output of search 007 attempt 1'), lines.join('\n'));
    assert.ok(lines.some((line) => line.startsWith('[search 007] {"event":"generation"')));
  });

  it('retries a worker that killed itself with SIGKILL, as attempt 2', async () => {
    const dir = await storeDir();
    const { jobRunner, lines } = runner(dir, 'crash-once:001');
    const record = await jobRunner.run(job('001'));
    assert.deepEqual(record.attempts.map((a) => a.signal), ['SIGKILL', null]);
    assert.match(record.attempts[0].statusReason, /^Host EC2/);
    const front = JSON.parse(await readFile(join(dir, 'runs', 'r1', 'subnets', '001', 'front.json'), 'utf8'));
    assert.equal(front.attempt, 2);
    assert.ok(lines.some((line) => /attempt 1 failed .*killed by SIGKILL.*retrying as attempt 2 of 5/.test(line)), lines.join('\n'));
  });

  it('fails an application error once, with the worker\'s last stderr lines', async () => {
    const dir = await storeDir();
    const { jobRunner } = runner(dir, 'fail:x');
    await assert.rejects(jobRunner.run(job('x', 'finalize')), (error: unknown) => {
      assert.ok(error instanceof JobFailedError);
      assert.equal(error.record.attempts.length, 1);
      assert.equal(error.record.attempts[0].exitCode, 1);
      assert.match(error.message, /simulated application error/);
      return true;
    });
  });

  it('reports a command that cannot start, without retrying it', async () => {
    const dir = await storeDir();
    const { jobRunner } = runner(dir, '', { command: [join(dir, 'no-such-worker')] });
    await assert.rejects(jobRunner.run(job('a')), (error: unknown) => {
      assert.ok(error instanceof JobFailedError);
      assert.equal(error.record.attempts.length, 1);
      assert.match(error.record.attempts[0].reason, /CannotStartContainerError: .*ENOENT/);
      return true;
    });
  });

  it('kills its workers when the runner\'s process exits without stopping them', async () => {
    const dir = await storeDir();
    const script = `
      const { LocalProcessJobRunner } = await import(${JSON.stringify(new URL('../../src/local/job-runner.ts', import.meta.url).href)});
      const runner = new LocalProcessJobRunner({
        command: [process.execPath, ${JSON.stringify(FAKE_WORKER)}],
        env: { EMO_DIR_STORE: ${JSON.stringify(dir)}, FAKE_WORKER_MODE: 'hang:h', NODE_OPTIONS: '' },
        log: () => {},
      });
      runner.run(${JSON.stringify(job('h'))}).catch(() => {});
      // Exit (without stopping the runner) once the worker runs and ignores SIGTERM.
      const { existsSync } = await import('node:fs');
      setInterval(() => existsSync(${JSON.stringify(join(dir, 'scratch', 'r1', 'search', 'h', 'hanging.json'))}) && process.exit(3), 20);
    `;
    const { spawnSync } = await import('node:child_process');
    const parent = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 10 * 60_000 });
    assert.equal(parent.status, 3, parent.stderr);
    const { pid } = JSON.parse(await readFile(join(dir, 'scratch', 'r1', 'search', 'h', 'hanging.json'), 'utf8')) as { pid: number };
    // Gone, or a zombie waiting for whoever inherited it to reap it (not every init does at once).
    const alive = async (): Promise<boolean> => {
      try {
        process.kill(pid, 0);
      } catch {
        return false;
      }
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      return !/^\d+ \(.*\) Z/.test(stat);
    };
    // SIGKILL takes effect at once; the deadline only ends the wait for a worker nobody killed.
    const deadline = Date.now() + 60_000;
    while ((await alive()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await alive(), false, `worker ${pid} outlived its runner`);
  });

  it('stop() rejects queued jobs and kills running ones that ignore SIGTERM after the grace period', async () => {
    const dir = await storeDir();
    const { jobRunner } = runner(dir, 'hang:a,hang:b', { concurrency: 2 });
    const jobs = ['a', 'b', 'c'].map((id) => jobRunner.run(job(id)));
    let ended = false;
    const settled = Promise.allSettled(jobs).finally(() => (ended = true));
    // Both running workers ignore SIGTERM once they have written hanging.json; a fixed wait
    // raced their start-up on a loaded machine (stop then killed them at once).
    const hanging = (id: string): Promise<boolean> =>
      readFile(join(dir, 'scratch', 'r1', 'search', id, 'hanging.json')).then(
        () => true,
        () => false,
      );
    while (!ended && !((await hanging('a')) && (await hanging('b')))) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(ended, false, 'the workers ended before they were stopped');
    const started = Date.now();
    await jobRunner.stop();
    // Not sooner than the 300 ms grace (SIGTERM is ignored); how much later is the scheduler's.
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250, `stop took ${elapsed} ms`);
    const results = await settled;
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof JobCancelledError);
    }
    const [a, , c] = results.map((result) => (result as PromiseRejectedResult).reason as JobCancelledError);
    assert.equal(a.record.attempts[0].signal, 'SIGKILL', 'SIGTERM was ignored, SIGKILL ended it');
    assert.equal(c.record.attempts.length, 0, 'the queued job never started');
    await assert.rejects(jobRunner.run(job('d')), JobCancelledError);
  });
});
