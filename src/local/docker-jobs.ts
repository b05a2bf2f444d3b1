/**
 * The LocalStack + Docker-GPU mode's stand-in for AWS Batch (DESIGN §3 "LocalStack note", §4):
 * each job attempt is `docker run --rm --gpus all ... <image> <job command>` of the real worker
 * image (containers/Dockerfile), through the same queue, concurrency limit and Batch retry rules
 * as the embedded mode's local processes (job-runner.ts): only how one attempt starts differs.
 *
 * - The container's environment is what Batch would give it: EMO_DIR_STORE, the job's
 *   environment overrides and AWS_BATCH_JOB_ID / AWS_BATCH_JOB_ATTEMPT / AWS_BATCH_JQ_NAME, plus
 *   AWS_ENDPOINT_URL and credentials for LocalStack. Values are passed as `-e NAME` (docker copies
 *   them from its own environment), so secrets never appear on a command line or in `ps`.
 * - A loopback endpoint (`http://localhost:4566`, the compose file's port) is reachable from a
 *   container only on the host network, so such an endpoint runs the container with
 *   `--network host` and the endpoint as `http://127.0.0.1:<port>`. An IP endpoint also makes the
 *   AWS SDK use path-style S3 URLs, which LocalStack needs without DNS tricks (the worker opens
 *   its store from EMO_DIR_STORE alone and cannot be told `forcePathStyle`).
 * - Cancellation: the docker CLI is signalled (it forwards SIGTERM to the container) and
 *   `docker stop -t <grace>` is sent to the named container, so a container never outlives the run.
 * - `--pull never`: the worker image is built locally (containers/), never pulled; a missing
 *   image fails the attempt at once instead of reaching a registry.
 * - Outcomes in Batch's terms: `docker run` reports a container killed by signal N as exit code
 *   128+N, so such an attempt is recorded as killed by that signal (a `docker kill` or the OOM
 *   killer is the local analogue of a host failure, retried as in job-runner.ts); exit code 125
 *   (the daemon could not create or start the container) is Batch's CannotStartContainerError.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { AttemptContext, AttemptOutcome, LocalJob, LocalProcessJobRunnerOptions } from './job-runner.ts';
import { HOST_TERMINATED_STATUS_REASON, LocalProcessJobRunner } from './job-runner.ts';

export const DEFAULT_WORKER_IMAGE = 'emo-dir-worker:latest';

export interface DockerJobRunnerOptions extends Omit<LocalProcessJobRunnerOptions, 'command' | 'env'> {
  /** The worker image (containers/Dockerfile). Default `emo-dir-worker:latest`. */
  readonly image?: string;
  /** The docker binary. Default `docker`. */
  readonly docker?: string;
  /** `--gpus all` (default true); false for the CPU image (containers/Dockerfile.cpu). */
  readonly gpus?: boolean;
  /** `--network <name>`; default `host` when the endpoint is a loopback address, else none. */
  readonly network?: string;
  /** The store location the containers open (EMO_DIR_STORE), e.g. `s3://emo-dir/runs-local`. */
  readonly storeLocation: string;
  /** The S3 endpoint as the host sees it, e.g. `http://localhost:4566` (LocalStack). */
  readonly endpoint?: string;
  /** More environment for the containers (names become `-e NAME` flags). */
  readonly env?: Readonly<Record<string, string>>;
  /** Where the docker CLI's environment comes from (credentials pass through). Default process.env. */
  readonly hostEnv?: Readonly<Record<string, string | undefined>>;
}

/** Credentials and region passed through from the host when set (LocalStack accepts any). */
const PASS_THROUGH = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION'] as const;
/** What every Batch container gets (set per attempt by the job runner). */
const BATCH_VARIABLES = ['AWS_BATCH_JOB_ID', 'AWS_BATCH_JOB_ATTEMPT', 'AWS_BATCH_JQ_NAME'] as const;

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '::1' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** The endpoint as a container sees it, and the network that makes it reachable. */
export function containerEndpoint(endpoint: string, network?: string): { endpoint: string; network?: string } {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (error) {
    throw new Error(`--endpoint ${JSON.stringify(endpoint)} is not a URL (e.g. http://localhost:4566)`, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`--endpoint ${JSON.stringify(endpoint)} is not an http(s) URL (e.g. http://localhost:4566)`);
  }
  if (!isLoopback(url.hostname)) return { endpoint, ...(network === undefined ? {} : { network }) };
  if (network !== undefined && network !== 'host') {
    throw new Error(`--endpoint ${endpoint} is a loopback address, which a container on network ${network} cannot reach; use the host network or the endpoint's IP`);
  }
  url.hostname = '127.0.0.1';
  return { endpoint: url.toString().replace(/\/$/, ''), network: 'host' };
}

/** The environment every container gets (besides the job's own and Batch's variables). */
export function containerEnvironment(options: DockerJobRunnerOptions): Record<string, string> {
  const hostEnv = options.hostEnv ?? process.env;
  const env: Record<string, string> = { EMO_DIR_STORE: options.storeLocation };
  if (options.endpoint !== undefined) {
    env.AWS_ENDPOINT_URL = containerEndpoint(options.endpoint, options.network).endpoint;
    // Emulators reject the SDK's default trailing checksums (as S3Store does for custom endpoints).
    env.AWS_REQUEST_CHECKSUM_CALCULATION = 'WHEN_REQUIRED';
    env.AWS_RESPONSE_CHECKSUM_VALIDATION = 'WHEN_REQUIRED';
    // LocalStack takes any credentials; without some the SDK would not sign at all.
    env.AWS_ACCESS_KEY_ID = hostEnv.AWS_ACCESS_KEY_ID ?? 'test';
    env.AWS_SECRET_ACCESS_KEY = hostEnv.AWS_SECRET_ACCESS_KEY ?? 'test';
    env.AWS_REGION = hostEnv.AWS_REGION ?? hostEnv.AWS_DEFAULT_REGION ?? 'us-east-1';
  }
  for (const name of PASS_THROUGH) {
    const value = hostEnv[name];
    if (value !== undefined && env[name] === undefined) env[name] = value;
  }
  return { ...env, ...options.env };
}

/** A container name unique per job attempt (docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]). */
export function containerName(job: LocalJob, attempt: number): string {
  return `emo-dir-${job.definition}-${job.jobId.replace(/[^A-Za-z0-9_.-]/g, '')}-${attempt}`;
}

/** Labels of every container: which job and attempt it runs (`docker ps --filter label=...`). */
export const JOB_LABEL = 'emo-dir.job';
export const ATTEMPT_LABEL = 'emo-dir.attempt';

/**
 * `docker` arguments for one attempt: `run --rm --pull never --name ... --label ...
 * [--gpus all] [--network N] -e NAME... <image> <job command>`. The values come from the docker
 * CLI's environment.
 */
export function dockerRunArgs(options: DockerJobRunnerOptions, job: LocalJob, attempt: number): string[] {
  const network = options.endpoint === undefined ? options.network : containerEndpoint(options.endpoint, options.network).network;
  const names = [...new Set([...Object.keys(containerEnvironment(options)), ...Object.keys(job.environment), ...BATCH_VARIABLES])];
  return [
    'run',
    '--rm',
    '--pull',
    'never',
    '--name',
    containerName(job, attempt),
    '--label',
    `${JOB_LABEL}=${job.label}`,
    '--label',
    `${ATTEMPT_LABEL}=${attempt}`,
    ...(options.gpus === false ? [] : ['--gpus', 'all']),
    ...(network === undefined ? [] : ['--network', network]),
    ...names.flatMap((name) => ['-e', name]),
    options.image ?? DEFAULT_WORKER_IMAGE,
    ...job.command,
  ];
}

/** Batch jobs as `docker run` of the worker image; the queue and retries of job-runner.ts. */
export class DockerJobRunner extends LocalProcessJobRunner {
  readonly #options: DockerJobRunnerOptions;
  readonly #docker: string;
  readonly #graceSeconds: number;

  constructor(options: DockerJobRunnerOptions) {
    const env = containerEnvironment(options);
    super({ ...options, command: [options.docker ?? 'docker'], env, queueName: options.queueName ?? 'local-docker' });
    this.#options = options;
    this.#docker = options.docker ?? 'docker';
    this.#graceSeconds = Math.ceil((options.killGraceMs ?? 10_000) / 1000);
  }

  protected override runAttempt(job: LocalJob, context: AttemptContext): Promise<AttemptOutcome> {
    const name = containerName(job, context.attempt);
    let stopped: Promise<void> | undefined;
    const onAbort = (): void => {
      // The CLI forwards SIGTERM, but a killed CLI would leave the container running: stop it by
      // name too, and end the attempt only once the container is gone.
      stopped = new Promise<void>((resolve) => {
        const stop = spawn(this.#docker, ['stop', '-t', String(this.#graceSeconds), name], { stdio: 'ignore' });
        stop.once('error', () => resolve());
        stop.once('close', () => resolve());
      });
    };
    context.signal.addEventListener('abort', onAbort, { once: true });
    if (context.signal.aborted) onAbort();
    const dockerJob: LocalJob = { ...job, command: dockerRunArgs(this.#options, job, context.attempt) };
    return super
      .runAttempt(dockerJob, context)
      .then(async (outcome) => {
        await stopped;
        return containerOutcome(outcome, context.signal.aborted);
      })
      .finally(() => context.signal.removeEventListener('abort', onAbort));
  }
}

/** `docker run` exits with this when the daemon cannot create or start the container. */
export const DOCKER_RUN_FAILED_EXIT_CODE = 125;

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/**
 * What the `docker run` CLI's exit says about the container, in Batch's terms: 128+N is the
 * container's process killed by signal N (by us when the job was cancelled, else by something
 * else: a host failure), 125 a container that never started.
 */
export function containerOutcome(outcome: AttemptOutcome, cancelled: boolean): AttemptOutcome {
  const code = outcome.exitCode;
  if (outcome.signal !== null || code === null) return outcome;
  if (code === DOCKER_RUN_FAILED_EXIT_CODE) {
    return {
      exitCode: null,
      signal: null,
      reason: 'CannotStartContainerError: docker run exited 125 (the daemon could not create or start the container; its message is in the job\'s last output)',
      statusReason: 'Task failed to start',
    };
  }
  const signal = code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
  if (signal === undefined) return outcome;
  return {
    exitCode: null,
    signal,
    reason: `Container killed by ${signal}`,
    statusReason: cancelled ? 'Job cancelled' : HOST_TERMINATED_STATUS_REASON,
  };
}

/** Whether a Docker engine answers (`docker info`); the reason when it does not. */
export function dockerAvailable(docker = 'docker', timeoutMs = 60_000): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn(docker, ['info', '--format', '{{.ServerVersion}}'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ ok: false, reason: `${docker} info did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `${docker} cannot be run: ${error.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? { ok: true } : { ok: false, reason: `${docker} info failed (exit ${code}): ${stderr.trim().split('\n')[0] ?? ''}` });
    });
  });
}
