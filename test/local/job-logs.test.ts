import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { JobLogs } from '../../src/local/job-logs.ts';
import type { JobAttempt, JobRecord, LocalJob } from '../../src/local/job-runner.ts';
import { getText, type ObjectStore } from '../../src/store/object-store.ts';
import { tempStore } from '../cloud/helpers.ts';

const job = (label: string): LocalJob => ({ jobId: `id-${label}`, jobName: 'emo-dir-search', definition: 'search', command: [], environment: {}, label });
const attempt = (number: number): JobAttempt => ({
  attempt: number, startedAt: 0, stoppedAt: 1, exitCode: null, signal: 'SIGKILL', reason: 'Container killed by SIGKILL', statusReason: 'Host EC2 (instance local) terminated.',
});
const record = (of: LocalJob, status: JobRecord['status'], attempts: JobAttempt[]): JobRecord => ({
  job: of, status, statusReason: status === 'SUCCEEDED' ? 'Essential container in task exited' : 'the job runner was stopped', attempts, createdAt: 0, stoppedAt: 1, workerSeconds: 1, logTail: [],
});

const stores: (() => Promise<void>)[] = [];
after(() => Promise.all(stores.map((cleanup) => cleanup())));

async function fileStore() {
  const made = await tempStore();
  stores.push(made.cleanup);
  return made.store;
}

/** A store that is not a directory (as an S3 store): logs are buffered and put whole. */
function objectStore(inner: ObjectStore, puts: string[]): ObjectStore {
  return {
    location: 's3://bucket/prefix',
    get: (key) => inner.get(key),
    getRange: (key, offset, length, into) => inner.getRange(key, offset, length, into),
    exists: (key) => inner.exists(key),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
    put: async (key, body, options) => {
      puts.push(key);
      await inner.put(key, body, options);
    },
  };
}

describe('JobLogs', () => {
  it('appends each job\'s output to runs/<runId>/logs/<label>.log in a file store, with attempt and end markers', async () => {
    const store = await fileStore();
    const logs = new JobLogs(store, 'r1');
    const search = job('search k1');
    logs.onJobEvent({ type: 'started', job: search, attempt: 1 });
    logs.onOutput(search, 'epoch 1', 'stdout');
    logs.onOutput(search, 'warning: slow', 'stderr');
    logs.onJobEvent({ type: 'attempt-failed', job: search, attempt: attempt(1), willRetry: true });
    logs.onJobEvent({ type: 'started', job: search, attempt: 2 });
    logs.onOutput(search, 'resumed from generation 3', 'stdout');
    logs.onJobEvent({ type: 'succeeded', job: search, record: record(search, 'SUCCEEDED', [attempt(1), attempt(2)]) });
    // Cancelled before it started: no log.
    const queued = job('finalize t50');
    logs.onJobEvent({ type: 'cancelled', job: queued, record: record(queued, 'CANCELLED', []) });
    await logs.close();
    const path = logs.locationOf('search k1');
    assert.ok(path.startsWith(store.root) && path.endsWith('/runs/r1/logs/search-k1.log'), path);
    assert.deepEqual(logs.written, { 'search k1': path });
    const lines = (await readFile(path, 'utf8')).split('\n');
    assert.match(lines[0], /^--- search k1: attempt 1 started \d{4}-\d\d-\d\dT/);
    assert.deepEqual(lines.slice(1, 4), [
      'epoch 1',
      '[stderr] warning: slow',
      '--- search k1: attempt 1 failed: Host EC2 (instance local) terminated. (Container killed by SIGKILL), retrying ---',
    ]);
    assert.equal(lines[5], 'resumed from generation 3');
    assert.equal(lines[6], '--- search k1: SUCCEEDED Essential container in task exited ---');
    assert.deepEqual(await store.list('runs/r1/logs/'), ['runs/r1/logs/search-k1.log']);
  });

  it('in another store, keeps the newest lines up to the limit and writes at each attempt\'s end', async () => {
    const inner = await fileStore();
    const puts: string[] = [];
    const store = objectStore(inner, puts);
    const logs = new JobLogs(store, 'r1', { maxBytes: 40 });
    const search = job('search k2');
    logs.onJobEvent({ type: 'started', job: search, attempt: 1 });
    for (let line = 1; line <= 6; line++) logs.onOutput(search, `line ${line}`, 'stdout');
    logs.onJobEvent({ type: 'attempt-failed', job: search, attempt: attempt(1), willRetry: false });
    logs.onJobEvent({ type: 'failed', job: search, record: record(search, 'FAILED', [attempt(1)]) });
    await logs.close();
    assert.equal(logs.locationOf('search k2'), 's3://bucket/prefix/runs/r1/logs/search-k2.log');
    assert.deepEqual(puts, ['runs/r1/logs/search-k2.log', 'runs/r1/logs/search-k2.log'], 'one write per attempt end and job end, none at close');
    const text = await getText(inner, 'runs/r1/logs/search-k2.log');
    assert.match(text, /^--- \d+ earlier lines dropped \(over 40 bytes\) ---\n/);
    assert.match(text, /\n--- search k2: FAILED the job runner was stopped ---\n$/);
    assert.ok(!text.includes('line 1\n'));
  });
});
