// `emo-dir run --jobs docker` end to end with a real Docker engine: the CLI runs the state
// machine and the Lambda handlers, every Batch job is a container of the locally built worker
// image (containers/Dockerfile.cpu, scripts/docker-images.sh) on the host network, and the store
// is an S3 server on 127.0.0.1 (s3rver). Plan, two searches in parallel containers, merge,
// finalize, report; then the same run with the container of one search SIGKILLed mid-search:
// retried as attempt 2, resumed from its checkpoint, fronts byte-identical to the first run's.
//
// Skipped, saying why, without an engine or the image (tests never pull); failed instead where
// CI requires Docker (EMO_DIR_REQUIRE_DOCKER=1).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ATTEMPT_LABEL, JOB_LABEL } from '../../src/local/docker-jobs.ts';
import { parseReport } from '../../src/schema/report.ts';
import { S3Store } from '../../src/store/s3-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson } from '../../src/store/object-store.ts';
import { assertKilledThenRetried, parseSingleJson, runCli, tinySpec, type CliResult, type JobJson } from '../e2e/helpers.ts';
import { startS3rver, type RunningS3rver } from '../store/s3rver.ts';
import { startHoldingProxy } from './holding-proxy.ts';
import { WORKER_IMAGE, dockerReady } from './images.ts';

// The same run id in both stores: front.json names its run, so only then can the bytes match.
const RUN_ID = 'docker-e2e';
const SUBNETS = ['k1', 'k2'];
/** s3rver's fixed credentials; the CLI and (through `-e`) the containers take them from the environment. */
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

type Json = Record<string, unknown>;

const docker = async (args: readonly string[]): Promise<string> => (await promisify(execFile)('docker', [...args])).stdout.trim();

/** The job label of every container of the worker image the engine started in [from, to] (epoch ms). */
async function containersStarted(from: number, to: number): Promise<string[]> {
  const events = await docker([
    'events',
    '--since',
    String(Math.floor(from / 1000) - 1),
    '--until',
    String(Math.ceil(to / 1000) + 1),
    '--filter',
    'type=container',
    '--filter',
    'event=start',
    '--filter',
    `image=${WORKER_IMAGE}`,
    '--format',
    `{{index .Actor.Attributes "${JOB_LABEL}"}} #{{index .Actor.Attributes "${ATTEMPT_LABEL}"}}`,
  ]);
  return events.split('\n').filter((line) => line !== '').sort();
}

describe('emo-dir run --jobs docker (worker containers, S3 on 127.0.0.1)', () => {
  let dir: string;
  let specPath: string;
  let s3: RunningS3rver | undefined;
  let reference: { cli: CliResult; result: Json; startedAt: number; stoppedAt: number } | undefined;

  const store = (prefix: string): S3Store =>
    new S3Store({
      bucket: (s3 as RunningS3rver).bucket,
      prefix,
      endpoint: (s3 as RunningS3rver).endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
  const runArgs = (prefix: string, endpoint: string): string[] => [
    'run',
    specPath,
    '--store',
    `s3://${(s3 as RunningS3rver).bucket}/${prefix}`,
    '--endpoint',
    endpoint,
    '--jobs',
    'docker',
    '--image',
    WORKER_IMAGE,
    '--gpus',
    'none',
    '--workers',
    '2',
    '--json',
  ];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'emo-dir-docker-e2e-'));
    specPath = join(dir, 'spec.json');
    await writeFile(specPath, JSON.stringify(tinySpec(RUN_ID)));
  });
  after(async () => {
    await s3?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('plans, searches in two parallel containers, merges, finalizes and reports', async (t) => {
    if (!(await dockerReady(t, ['worker']))) return;
    s3 = await startS3rver('emo-dir-docker');
    const startedAt = Date.now();
    const cli = await runCli(runArgs('reference', s3.endpoint), { env: CREDENTIALS });
    const stoppedAt = Date.now();
    process.stderr.write(`docker e2e: emo-dir run --jobs docker took ${cli.wallSeconds.toFixed(1)} s wall (exit ${cli.code})\n`);
    assert.equal(cli.code, 0, `emo-dir run --jobs docker failed:\n${cli.stderr}`);
    const result = parseSingleJson(cli.stdout);
    reference = { cli, result, startedAt, stoppedAt };
    assert.equal(result.status, 'SUCCEEDED');
    assert.equal(result.store, `s3://${s3.bucket}/reference`);

    // Every Batch job ran as a container of the worker image (the engine's own records).
    assert.deepEqual(await containersStarted(startedAt, stoppedAt), ['finalize flops-30 #1', 'search k1 #1', 'search k2 #1']);
    const jobs = result.jobs as JobJson[];
    for (const job of jobs) assert.equal(job.status, 'SUCCEEDED', `${job.label} ${job.status}`);
    // Two workers: both searches were started before either finished (the runner's records).
    const [a, b] = SUBNETS.map((subnet) => jobs.find((job) => job.label === `search ${subnet}`)?.attempts[0]);
    assert.ok(a !== undefined && b !== undefined, JSON.stringify(jobs));
    assert.ok(a.startedAt < b.stoppedAt && b.startedAt < a.stoppedAt, `a search started only after the other had finished: ${JSON.stringify(jobs)}`);

    // What the containers wrote to S3: fronts, the target's model and metrics, the report.
    const reports = store('reference');
    const keys = runKeys(RUN_ID);
    for (const subnet of SUBNETS) assert.ok(await reports.exists(keys.subnet(subnet).front), `${subnet}/front.json is missing`);
    const metrics = (result.targets as Record<string, Json | null>)['flops-30'];
    assert.ok(metrics !== null && metrics !== undefined, 'flops-30 has no metrics');
    assert.ok((metrics.achieved as { flopsCut: number }).flopsCut >= 0.29, JSON.stringify(metrics.achieved));
    assert.ok(await reports.exists(`${keys.target('flops-30').modelPrefix}model.json`), 'the pruned model was not exported');
    assert.equal(result.reportJson, `s3://${s3.bucket}/reference/${keys.report.json}`);
    const report = parseReport(await getJson(reports, keys.report.json), 'report.json');
    assert.equal(report.status, 'succeeded');
    assert.equal(report.subnetworks.length, 2);
    assert.match(Buffer.from(await reports.get(keys.report.html)).toString('utf8'), /^<!DOCTYPE html>/);
  });

  it('retries a search container SIGKILLed mid-search from its checkpoint, fronts byte-identical', async (t) => {
    if (!(await dockerReady(t, ['worker']))) return;
    assert.ok(s3 !== undefined && reference !== undefined, 'the uninterrupted run (the test above) did not run');
    // k1's worker is held in the PUT of its last checkpoint (generation 2): generation 1's is
    // stored, the front is not. The proxy keeps that request unanswered while the test kills
    // the container, so the kill lands mid-search with certainty.
    const heldKey = `/${s3.bucket}/fault/${runKeys(RUN_ID).subnet('k1').checkpoint(2)}`;
    const proxy = await startHoldingProxy(s3.endpoint, (method, path) => method === 'PUT' && path === heldKey);
    let killed: string | undefined;
    try {
      const running = runCli(runArgs('fault', proxy.endpoint), { env: CREDENTIALS });
      const first = await Promise.race([proxy.held, running.then((cli) => cli)]);
      assert.equal(typeof first, 'string', `the run ended before k1 stored its last checkpoint:\n${(first as CliResult).stderr}`);
      const faults = store('fault');
      const keys = runKeys(RUN_ID);
      assert.ok(await faults.exists(keys.subnet('k1').checkpoint(1)), 'the checkpoint of generation 1 is stored');
      assert.equal(await faults.exists(keys.subnet('k1').front), false, 'k1 had finished before it was killed');
      const containers = await docker(['ps', '--filter', `ancestor=${WORKER_IMAGE}`, '--filter', `label=${JOB_LABEL}=search k1`, '--format', '{{.Names}}']);
      assert.equal(containers.split('\n').length, 1, `one container of search k1 expected: ${containers}`);
      killed = containers;
      await docker(['kill', '--signal', 'KILL', killed]);
      proxy.release();
      const cli = await running;
      assert.equal(cli.code, 0, `the run with a killed container failed:\n${cli.stderr}`);
      process.stderr.write(`docker e2e: killed container ${killed}; the run took ${cli.wallSeconds.toFixed(1)} s\n`);

      // The runner saw a host failure (docker run's exit 137) and retried: attempt 2 succeeded.
      assertKilledThenRetried(parseSingleJson(cli.stdout), 'search k1');
      // Attempt 2 resumed from the checkpoint instead of starting over.
      const stats = (await getJson(faults, keys.subnet('k1').stats)) as { resumedFrom: unknown };
      assert.notEqual(stats.resumedFrom, null, 'attempt 2 did not resume from a checkpoint');
      const references = store('reference');
      for (const subnet of SUBNETS) {
        const [expected, actual] = await Promise.all([references.get(keys.subnet(subnet).front), faults.get(keys.subnet(subnet).front)]);
        assert.ok(Buffer.from(expected).equals(Buffer.from(actual)), `${subnet}/front.json differs from the uninterrupted run's`);
      }
    } finally {
      await proxy.close();
    }
  });
});
