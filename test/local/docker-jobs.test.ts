// The Docker-GPU job runner (src/local/docker-jobs.ts): the `docker run` command line and the
// container environment, checked without Docker; then a fake `docker` binary proves the runner
// passes every value through its own environment and retries as Batch does; then a real engine
// runs containers of the locally built base image (skipped, saying why, where there is no engine
// or no such image; failed instead where CI requires Docker).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_WORKER_IMAGE,
  DockerJobRunner,
  ATTEMPT_LABEL,
  JOB_LABEL,
  containerEndpoint,
  containerEnvironment,
  containerName,
  containerOutcome,
  dockerRunArgs,
  type DockerJobRunnerOptions,
} from '../../src/local/docker-jobs.ts';
import {
  BATCH_RETRY_POLICY,
  CONTAINER_EXITED_REASON,
  HOST_TERMINATED_STATUS_REASON,
  JobCancelledError,
  JobFailedError,
  shouldRetry,
  type AttemptOutcome,
  type LocalJob,
} from '../../src/local/job-runner.ts';
import { BASE_IMAGE, dockerReady } from '../docker/images.ts';

const job: LocalJob = {
  jobId: '3f2c0a9e-1111-4222-8333-944455556666',
  jobName: 'emo-dir-search',
  definition: 'search',
  command: ['search', '--run-id', 'r1', '--subnet', 'k1'],
  environment: { EMO_DIR_RUN_ID: 'r1', EMO_DIR_SUBNET: 'k1' },
  label: 'search k1',
};

const localstack: DockerJobRunnerOptions = {
  storeLocation: 's3://emo-dir/local',
  endpoint: 'http://localhost:4566',
  hostEnv: {},
};

/** The values of `-e` flags, in order. */
function envFlags(args: readonly string[]): string[] {
  return args.flatMap((arg, index) => (args[index - 1] === '-e' ? [arg] : []));
}

describe('docker run command line', () => {
  it('runs the worker image with GPUs, never pulled, removed on exit, named and labelled per attempt, job command last', () => {
    const args = dockerRunArgs(localstack, job, 2);
    assert.deepEqual(args.slice(0, 10), [
      'run',
      '--rm',
      '--pull',
      'never',
      '--name',
      'emo-dir-search-3f2c0a9e-1111-4222-8333-944455556666-2',
      '--label',
      'emo-dir.job=search k1',
      '--label',
      'emo-dir.attempt=2',
    ]);
    assert.deepEqual(args.slice(10, 12), ['--gpus', 'all']);
    const image = args.indexOf(DEFAULT_WORKER_IMAGE);
    assert.ok(image > 0);
    assert.deepEqual(args.slice(image + 1), job.command);
    assert.notEqual(containerName(job, 1), containerName(job, 2));
  });

  it('passes the store, the endpoint, credentials, the job and Batch variables by name only', () => {
    const args = dockerRunArgs({ ...localstack, hostEnv: { AWS_SECRET_ACCESS_KEY: 'very-secret' } }, job, 1);
    const names = envFlags(args);
    for (const name of [
      'EMO_DIR_STORE',
      'AWS_ENDPOINT_URL',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_REGION',
      'EMO_DIR_RUN_ID',
      'EMO_DIR_SUBNET',
      'AWS_BATCH_JOB_ID',
      'AWS_BATCH_JOB_ATTEMPT',
      'AWS_BATCH_JQ_NAME',
    ]) {
      assert.ok(names.includes(name), `-e ${name} missing from ${args.join(' ')}`);
    }
    assert.ok(names.every((name) => !name.includes('=')), 'values must not be on the command line');
    assert.ok(!args.join(' ').includes('very-secret'));
  });

  it('reaches a loopback endpoint through the host network, as an IP (path-style S3)', () => {
    const args = dockerRunArgs(localstack, job, 1);
    assert.deepEqual(args.slice(args.indexOf('--network'), args.indexOf('--network') + 2), ['--network', 'host']);
    assert.deepEqual(containerEndpoint('http://localhost:4566'), { endpoint: 'http://127.0.0.1:4566', network: 'host' });
    assert.deepEqual(containerEndpoint('http://10.0.0.5:4566'), { endpoint: 'http://10.0.0.5:4566' });
    assert.deepEqual(containerEndpoint('http://localstack:4566', 'emo-dir_default'), { endpoint: 'http://localstack:4566', network: 'emo-dir_default' });
    assert.throws(() => containerEndpoint('http://localhost:4566', 'bridge'), /loopback address, which a container on network bridge cannot reach/);
    assert.throws(() => containerEndpoint('not a url'), /is not a URL/);
    assert.throws(() => containerEndpoint('localhost:4566'), /is not an http\(s\) URL/);
  });

  it('leaves out --gpus for the CPU image and the endpoint for real S3', () => {
    const args = dockerRunArgs({ storeLocation: 's3://bucket', gpus: false, image: 'emo-dir-worker:cpu', hostEnv: {} }, job, 1);
    assert.ok(!args.includes('--gpus'));
    assert.ok(!args.includes('--network'));
    assert.ok(args.includes('emo-dir-worker:cpu'));
    assert.ok(!envFlags(args).includes('AWS_ENDPOINT_URL'));
  });

  it('builds the container environment: endpoint as the container sees it, LocalStack defaults, host credentials win', () => {
    assert.deepEqual(containerEnvironment(localstack), {
      EMO_DIR_STORE: 's3://emo-dir/local',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:4566',
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
    });
    const real = containerEnvironment({
      storeLocation: 's3://bucket/p',
      hostEnv: { AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 't', AWS_REGION: 'eu-west-1', HOME: '/root' },
      env: { EMO_DIR_BACKEND: 'tensorflow' },
    });
    assert.deepEqual(real, {
      EMO_DIR_STORE: 's3://bucket/p',
      AWS_ACCESS_KEY_ID: 'AKIA1',
      AWS_SECRET_ACCESS_KEY: 's',
      AWS_SESSION_TOKEN: 't',
      AWS_REGION: 'eu-west-1',
      EMO_DIR_BACKEND: 'tensorflow',
    });
  });
});

describe('what docker run\'s exit says about the container', () => {
  const exited = (exitCode: number): AttemptOutcome => ({ exitCode, signal: null, reason: CONTAINER_EXITED_REASON, statusReason: CONTAINER_EXITED_REASON });

  it('reads 128+N as killed by signal N: a host failure, or the cancel when the job was cancelled', () => {
    assert.deepEqual(containerOutcome(exited(137), false), {
      exitCode: null,
      signal: 'SIGKILL',
      reason: 'Container killed by SIGKILL',
      statusReason: HOST_TERMINATED_STATUS_REASON,
    });
    assert.equal(containerOutcome(exited(143), true).signal, 'SIGTERM');
    assert.equal(containerOutcome(exited(143), true).statusReason, 'Job cancelled');
    // The Batch retry rules see what they see for a killed worker process: retried.
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, { attempt: 1, startedAt: 0, stoppedAt: 1, ...containerOutcome(exited(137), false) }), true);
  });

  it('keeps application exits and reads 125 as a container that never started (not retried)', () => {
    for (const code of [0, 1, 2, 75, 128]) assert.deepEqual(containerOutcome(exited(code), false), exited(code));
    const failed = containerOutcome(exited(125), false);
    assert.match(failed.reason, /^CannotStartContainerError: docker run exited 125/);
    assert.equal(shouldRetry(BATCH_RETRY_POLICY, { attempt: 1, startedAt: 0, stoppedAt: 1, ...failed }), false);
  });
});

describe('DockerJobRunner with a fake docker binary', () => {
  let dir: string;
  let fakeDocker: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'emo-dir-docker-'));
    fakeDocker = join(dir, 'docker');
    // Records each call (argv and the environment docker would copy into the container), and
    // fails attempt 1 with the worker's "retry me" exit code.
    await writeFile(
      fakeDocker,
      [
        '#!/bin/sh',
        `out="${dir}/call-$AWS_BATCH_JOB_ATTEMPT"`,
        'printf "%s\\n" "$@" > "$out.argv"',
        'env > "$out.env"',
        'echo "fake docker attempt $AWS_BATCH_JOB_ATTEMPT" >&2',
        '[ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 75',
        'exit 0',
      ].join('\n'),
    );
    await chmod(fakeDocker, 0o755);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs each attempt as docker run with the values in its environment, retrying exit 75 as attempt 2', async () => {
    const lines: string[] = [];
    const runner = new DockerJobRunner({ ...localstack, docker: fakeDocker, concurrency: 1, log: (line) => lines.push(line) });
    const record = await runner.run(job);
    assert.equal(record.status, 'SUCCEEDED');
    assert.deepEqual(
      record.attempts.map((attempt) => attempt.exitCode),
      [75, 0],
    );
    const argv = (await readFile(join(dir, 'call-2.argv'), 'utf8')).trim().split('\n');
    assert.deepEqual(argv, dockerRunArgs(localstack, job, 2));
    const env = Object.fromEntries(
      (await readFile(join(dir, 'call-2.env'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    assert.equal(env.EMO_DIR_STORE, 's3://emo-dir/local');
    assert.equal(env.AWS_ENDPOINT_URL, 'http://127.0.0.1:4566');
    assert.equal(env.AWS_BATCH_JOB_ATTEMPT, '2');
    assert.equal(env.AWS_BATCH_JOB_ID, job.jobId);
    assert.equal(env.AWS_BATCH_JQ_NAME, 'local-docker');
    assert.equal(env.EMO_DIR_SUBNET, 'k1');
    assert.ok(lines.some((line) => /\[search k1\] attempt 1 failed .*retrying as attempt 2/.test(line)), lines.join('\n'));
  });
});

describe('DockerJobRunner with a Docker engine', () => {
  // The local base image (Debian + Node, no registry needed; scripts/docker-images.sh) stands in
  // for the worker: the runner's contract is the container's environment and exit.
  const base = { storeLocation: 's3://emo-dir/local', image: BASE_IMAGE, gpus: false, concurrency: 1, hostEnv: {}, log: () => undefined } as const;
  /** A job of its own per test: its label finds its containers, and only its own, on a shared engine. */
  const engineJob = (command: string[]): LocalJob => {
    const id = randomUUID();
    return { ...job, jobId: id, label: `engine-test ${id.slice(0, 8)}`, command };
  };

  it('runs a container with the Batch environment on the host network, reaching 127.0.0.1', async (t) => {
    if (!(await dockerReady(t, ['base']))) return;
    // A server on the host's loopback, as LocalStack or s3rver would be: reachable from the
    // container only through --network host (the endpoint is given as `localhost`).
    const probes: string[] = [];
    const server = createServer((request, response) => {
      probes.push(`${request.method} ${request.url}`);
      response.writeHead(204).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const script = [
        'test "$EMO_DIR_SUBNET" = k1',
        'test "$AWS_BATCH_JOB_ATTEMPT" = 1',
        `test "$AWS_ENDPOINT_URL" = http://127.0.0.1:${port}`,
        'echo "in container $(cat /etc/debian_version)" >&2',
        `node --input-type=module -e "const r = await fetch(process.env.AWS_ENDPOINT_URL + '/probe'); process.exit(r.status === 204 ? 0 : 1)"`,
      ].join(' && ');
      const runner = new DockerJobRunner({ ...base, endpoint: `http://localhost:${port}` });
      const record = await runner.run(engineJob(['sh', '-c', script]));
      assert.equal(record.status, 'SUCCEEDED', record.logTail.join('\n'));
      assert.match(record.logTail.join('\n'), /in container 12\./);
      assert.deepEqual(probes, ['GET /probe']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const missing = new DockerJobRunner({ ...base, image: 'emo-dir-no-such-image:never-built' });
    await assert.rejects(missing.run(engineJob(['true'])), (error: unknown) => {
      assert.ok(error instanceof JobFailedError);
      assert.equal(error.record.attempts.length, 1, 'a missing image is not retried (and never pulled)');
      assert.match(error.record.attempts[0].reason, /^CannotStartContainerError: docker run exited 125/);
      return true;
    });
  });

  it('records a container killed by SIGKILL as a host failure and retries it as attempt 2', async (t) => {
    if (!(await dockerReady(t, ['base']))) return;
    const runner = new DockerJobRunner(base);
    // Attempt 1 waits to be killed (`docker kill`, as the OOM killer or a lost host would); attempt 2 succeeds.
    const killed = engineJob(['sh', '-c', 'if [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ]; then exec sleep 600; fi; exit 0']);
    const record = runner.run(killed);
    await waitUntilListed(killed, 1);
    await docker(['kill', '--signal', 'KILL', containerName(killed, 1)]);
    const done = await record;
    assert.equal(done.status, 'SUCCEEDED');
    assert.deepEqual(
      done.attempts.map((attempt) => [attempt.signal, attempt.exitCode, attempt.statusReason]),
      [
        ['SIGKILL', null, HOST_TERMINATED_STATUS_REASON],
        [null, 0, CONTAINER_EXITED_REASON],
      ],
    );
  });

  it('stop() stops a running container and cancels the job', async (t) => {
    if (!(await dockerReady(t, ['base']))) return;
    const runner = new DockerJobRunner({ ...base, killGraceMs: 1_000 });
    // `sleep` as the container's PID 1 ignores SIGTERM: `docker stop` must kill it.
    const stopped = engineJob(['sh', '-c', 'exec sleep 600']);
    const running = runner.run(stopped);
    await waitUntilListed(stopped, 1);
    await runner.stop();
    await assert.rejects(running, JobCancelledError);
    assert.equal(await listed(stopped), '', 'the container outlived the stopped runner');
  });
});

const docker = async (args: string[]): Promise<string> => (await promisify(execFile)('docker', args)).stdout.trim();

/** Names of the running containers of `job` (its label), one a line. */
const listed = (of: LocalJob, attempt?: number): Promise<string> =>
  docker(['ps', '--filter', `label=${JOB_LABEL}=${of.label}`, ...(attempt === undefined ? [] : ['--filter', `label=${ATTEMPT_LABEL}=${attempt}`]), '--format', '{{.Names}}']);

/** Waits until the container of the attempt runs (not for a guessed time). */
async function waitUntilListed(of: LocalJob, attempt: number): Promise<void> {
  while ((await listed(of, attempt)) !== containerName(of, attempt)) await new Promise((resolve) => setTimeout(resolve, 100));
}
