// The Docker-GPU job runner (src/local/docker-jobs.ts): the `docker run` command line and the
// container environment, checked without Docker; then a fake `docker` binary proves the runner
// passes every value through its own environment and retries as Batch does. The one test that
// needs a real engine is skipped, saying so, where `docker info` fails.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_WORKER_IMAGE,
  DockerJobRunner,
  containerEndpoint,
  containerEnvironment,
  containerName,
  dockerAvailable,
  dockerRunArgs,
  type DockerJobRunnerOptions,
} from '../../src/local/docker-jobs.ts';
import type { LocalJob } from '../../src/local/job-runner.ts';

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
  it('runs the worker image with GPUs, removed on exit, named per attempt, job command last', () => {
    const args = dockerRunArgs(localstack, job, 2);
    assert.deepEqual(args.slice(0, 4), ['run', '--rm', '--name', 'emo-dir-search-3f2c0a9e-1111-4222-8333-944455556666-2']);
    assert.deepEqual(args.slice(4, 6), ['--gpus', 'all']);
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
  it('runs a container through the runner', async (t) => {
    const docker = await dockerAvailable();
    if (!docker.ok) {
      t.skip(`no Docker engine here (${docker.reason}); the docker run command line is checked above without one`);
      return;
    }
    // A tiny public image stands in for the worker: the runner's contract is the exit code.
    const runner = new DockerJobRunner({ storeLocation: 's3://emo-dir/local', image: 'busybox:1.36', gpus: false, concurrency: 1 });
    const record = await runner.run({ ...job, command: ['sh', '-c', 'test "$EMO_DIR_SUBNET" = k1 && test "$AWS_BATCH_JOB_ATTEMPT" = 1'] });
    assert.equal(record.status, 'SUCCEEDED');
  });
});
