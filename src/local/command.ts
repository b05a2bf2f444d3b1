/**
 * The `emo-dir run <spec>` command line over runLocal (src/cli/main.ts loads it). The Lambda
 * handlers come from `loadHandlers`, so this module does not import functions/ itself:
 *
 *   run: { summary: RUN_SUMMARY, load: async () => ({ run: (argv) => runCommand(argv, { loadHandlers }) }) }
 *
 * With --json, stdout holds one JSON object (DESIGN §7): run id, store, status, report path and
 * per-target metrics; without, a run ends with a table per target and the report's path
 * (summary.ts). Progress goes to stderr either way; on a TTY the workers' own output goes only to
 * their log files in the store (job-logs.ts; paths printed on failure) unless --verbose. Ctrl-C stops the run gracefully (the
 * workers get SIGTERM and resume from their checkpoints when the run is started again); a second
 * Ctrl-C exits at once.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseStoreLocation, openStore } from '../store/index.ts';
import { FileStore } from '../store/file-store.ts';
import { containerEnvironment } from './docker-jobs.ts';
import { previewPlan } from './plan-preview.ts';
import { writePlan } from './plan-text.ts';
import { resumeLocal } from './resume.ts';
import { assertValidName, runKeys } from '../store/keys.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { runLocal, type HandlerContext, type LocalHandlers, type RunLocalOptions, type RunLocalResult } from './run.ts';
import { formatRunSummary, readRunSummary, storeObjectPath } from './summary.ts';

export const RUN_SUMMARY =
  'run <spec.json> [--store DIR|s3://B/P] [--endpoint URL] [--jobs local|docker] [--workers N] [--json] [--quiet] [--verbose] [--dry-run]   run the workflow on this machine';
export const RESUME_SUMMARY =
  'resume <runId> [--store DIR|s3://B/P] [--endpoint URL] [--jobs local|docker] [--workers N] [--json]   continue a stopped or failed local run';

const COMMON_OPTIONS = `  --store LOC            the store: a directory (default .emo-dir) or s3://bucket/prefix
  --endpoint URL         S3 endpoint for an s3:// store, e.g. LocalStack's http://localhost:4566
  --jobs local|docker    Batch jobs as local processes (default) or \`docker run --gpus all\` of --image
  --image IMAGE          the worker image for --jobs docker (default emo-dir-worker:latest)
  --gpus all|none        --jobs docker: \`--gpus all\` (default) or none (the CPU image, containers/Dockerfile.cpu)
  --workers N            jobs at once (default: the number of CPUs)
  --max-concurrency N    Batch jobs per Map at once, as in the cloud (default 16)
  --json                 print one JSON object with the result on stdout
  --quiet                only job ends, retries and failures on stderr
  --verbose              the workers' output on screen too (on a terminal it otherwise goes only
                         to runs/<runId>/logs/<job>.log in the store)
`;
const USAGE = `usage: emo-dir run <spec.json> [options]
${COMMON_OPTIONS}  --dry-run              check the spec and print the plan and its estimate (as \`emo-dir plan\`); run nothing
`;
const RESUME_USAGE = `usage: emo-dir resume <runId> [options]
  Runs the workflow again on the run's stored spec (runs/<runId>/spec.json): finished fronts and
  metrics are kept (writes are create-only) and searches continue from their checkpoints.
${COMMON_OPTIONS}`;

export interface RunCommandDependencies {
  readonly loadHandlers: () => Promise<LocalHandlers | ((context: HandlerContext) => LocalHandlers)>;
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
  /** More options for runLocal (tests: a fake worker command, a progress stream). */
  readonly runOptions?: Partial<Omit<RunLocalOptions, 'handlers' | 'specPath' | 'signal'>>;
  /** Where SIGINT/SIGTERM come from (tests pass an EventEmitter). Default: process. */
  readonly signals?: Pick<NodeJS.Process, 'on' | 'off'>;
}

function positiveInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** The --json result: what DESIGN §7 promises, read back from the store. */
export async function jsonResult(result: RunLocalResult, runStore?: ObjectStore): Promise<Record<string, unknown>> {
  const store = runStore ?? new FileStore(fileURLToPath(result.store));
  const output = (result.output ?? {}) as { report?: { reportKey?: string; htmlKey?: string } };
  // Every target of the spec: its metrics.json (src/schema/metrics.ts), or null without a result.
  const summary = await readRunSummary(store, result.runId);
  const targets = Object.fromEntries(summary.targets.map((target) => [target.name, target.metrics ?? null]));
  // A file path for a local store; the object's URL (s3://bucket/prefix/key) for S3.
  const path = (key: string | undefined): string | undefined => (key === undefined ? undefined : storeObjectPath(store, key));
  return {
    runId: result.runId,
    store: result.store,
    status: result.status,
    report: path(output.report?.htmlKey),
    reportJson: path(output.report?.reportKey),
    targets,
    wallSeconds: result.wallSeconds,
    workerSeconds: result.workerSeconds,
    overheadSeconds: result.overheadSeconds,
    // Each Batch job's attempts with their times (epoch ms): when workers ran, and in parallel.
    jobs: result.jobs.map((record) => ({
      label: record.job.label,
      status: record.status,
      workerSeconds: record.workerSeconds,
      attempts: record.attempts.map((attempt) => ({
        attempt: attempt.attempt,
        startedAt: attempt.startedAt,
        stoppedAt: attempt.stoppedAt,
        exitCode: attempt.exitCode,
        signal: attempt.signal,
        statusReason: attempt.statusReason,
      })),
    })),
    ...(result.error === undefined ? {} : { error: result.error }),
  };
}

/**
 * One readable paragraph for a run that did not succeed: a Lambda's error message without its
 * JSON envelope and stack trace, a Batch job's status reason with the worker's last lines, and
 * for a stopped run the command that continues it.
 */
export function describeRunFailure(result: Pick<RunLocalResult, 'runId' | 'store' | 'status' | 'error' | 'modelSource'>): string {
  const storeArg = result.store.startsWith('file:') ? fileURLToPath(result.store) : result.store;
  const resume = `continue it with: emo-dir resume ${result.runId} --store ${storeArg}`;
  if (result.status === 'ABORTED') return `run ${result.runId} was stopped; ${resume}`;
  if (result.error === undefined) return `run ${result.runId} ${result.status}`;
  let message = `${result.error.Error}: ${result.error.Cause}`;
  try {
    const cause = JSON.parse(result.error.Cause) as { errorMessage?: unknown; JobName?: unknown; StatusReason?: unknown; LocalLogTail?: unknown };
    if (typeof cause.errorMessage === 'string') {
      message = `${result.error.Error}: ${cause.errorMessage}`;
    } else if (typeof cause.StatusReason === 'string') {
      const tail = Array.isArray(cause.LocalLogTail) ? cause.LocalLogTail.filter((line): line is string => typeof line === 'string').slice(-5) : [];
      message = `${result.error.Error}: Batch job ${String(cause.JobName)} failed: ${cause.StatusReason}${tail.length > 0 ? `\n  last output:\n    ${tail.join('\n    ')}` : ''}`;
    }
  } catch {
    // Not JSON: the cause is already a message.
  }
  // The run reads a copy of a local model: say which directory the store's copy came from.
  const copy = `${runKeys(result.runId).prefix}model/`;
  if (result.modelSource !== undefined && message.includes(copy)) message += `\n  (${copy} is the run's copy of ${result.modelSource})`;
  // Plan refused the spec: no job ran. Resuming re-reads the stored spec, so it only helps when files were missing.
  if (result.error.Error === 'PlanError') {
    return `run ${result.runId} ${result.status}: ${message}\n  no job was started; fix the spec and run it again (under another runId if it sets one), or, if only files were missing, ${resume}`;
  }
  const retryable = result.status === 'FAILED' || result.status === 'TIMED_OUT';
  return `run ${result.runId} ${result.status}: ${message}${retryable ? `\n  after fixing the cause, ${resume}` : ''}`;
}

/** `  full log of search k2: <path>` for every job that failed (their output is not on screen). */
export function failedJobLogs(result: Pick<RunLocalResult, 'jobs' | 'jobLogs'>): string {
  return result.jobs
    .filter((record) => record.status === 'FAILED' && result.jobLogs[record.job.label] !== undefined)
    .map((record) => `  full log of ${record.job.label}: ${result.jobLogs[record.job.label]}\n`)
    .join('');
}

export async function runCommand(argv: string[], deps: RunCommandDependencies): Promise<number> {
  return executeCommand('run', argv, deps);
}

/**
 * `emo-dir resume <runId>`: the same options as `run`, on the run's stored spec (resume.ts).
 * src/cli/main.ts wires it as `run` is wired, with the real handlers of src/cli/run.ts.
 */
export function resumeCommand(argv: string[], deps: RunCommandDependencies): Promise<number> {
  return executeCommand('resume', argv, deps);
}

/** Options of both `run` and `resume`. */
const COMMAND_OPTIONS = {
  store: { type: 'string' },
  workers: { type: 'string' },
  'max-concurrency': { type: 'string' },
  endpoint: { type: 'string' },
  jobs: { type: 'string' },
  image: { type: 'string' },
  gpus: { type: 'string' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * The store of `--store` (a directory, file:///dir or s3://bucket/prefix) and, with --endpoint,
 * an S3 emulator such as LocalStack (path-style URLs, which LocalStack and s3rver need).
 */
export function commandStore(location: string | undefined, endpoint: string | undefined): ObjectStore {
  const where = location ?? '.emo-dir';
  const parsed = parseStoreLocation(where);
  if (parsed.kind === 'file') {
    if (endpoint !== undefined) throw new Error(`--endpoint is for an s3:// --store, but the store is the directory ${where}`);
    return new FileStore(parsed.path ?? where);
  }
  if (endpoint === undefined) return openStore(where);
  const env = containerEnvironment({ storeLocation: where, endpoint });
  return openStore(where, {
    // An emulator takes any credentials: LocalStack's `test` unless the environment has some.
    s3: {
      endpoint,
      forcePathStyle: true,
      region: env.AWS_REGION,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN === undefined ? {} : { sessionToken: env.AWS_SESSION_TOKEN }) },
    },
  });
}

/** Fails early, with the endpoint in the message, when an S3 store cannot be reached. */
async function checkStoreReachable(store: ObjectStore, endpoint: string | undefined): Promise<void> {
  if (store instanceof FileStore) return;
  try {
    await store.list('runs/.emo-dir-probe/');
  } catch (error) {
    const where = endpoint === undefined ? '' : ` at ${endpoint}`;
    const hint = endpoint === undefined ? '' : ' (is LocalStack running? `docker compose up -d` starts it and creates the bucket emo-dir)';
    throw new Error(`cannot use the store ${store.location}${where}: ${(error as Error).name}: ${(error as Error).message}${hint}`, { cause: error });
  }
}

/** `run --dry-run`: the plan and its estimate (plan-preview.ts), nothing started or written. */
async function dryRun(specPath: string, store: ObjectStore, json: boolean, out: (text: string) => void, err: (text: string) => void): Promise<number> {
  try {
    return writePlan(await previewPlan({ specPath, store }), json, out);
  } catch (error) {
    err(`emo-dir run: ${(error as Error).message}\n`);
    return 1;
  }
}

export async function executeCommand(name: 'run' | 'resume', argv: string[], deps: RunCommandDependencies): Promise<number> {
  const out = deps.out ?? ((text) => process.stdout.write(text));
  const err = deps.err ?? ((text) => process.stderr.write(text));
  const usage = name === 'run' ? USAGE : RESUME_USAGE;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: COMMAND_OPTIONS }));
    if (values.help === true) {
      out(usage);
      return 0;
    }
    if (positionals.length !== 1) throw new Error(`expected one ${name === 'run' ? '<spec.json>' : '<runId>'}, got ${positionals.length}`);
  } catch (error) {
    err(`emo-dir ${name}: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  let workers: number | undefined;
  let maxConcurrency: number | undefined;
  let store: ObjectStore;
  const endpoint = values.endpoint as string | undefined;
  const jobs = (values.jobs as string | undefined) ?? 'local';
  try {
    workers = positiveInteger('workers', values.workers as string | undefined);
    maxConcurrency = positiveInteger('max-concurrency', values['max-concurrency'] as string | undefined);
    if (jobs !== 'local' && jobs !== 'docker') throw new Error(`--jobs must be local or docker, got ${JSON.stringify(jobs)}`);
    if (values.image !== undefined && jobs !== 'docker') throw new Error('--image needs --jobs docker');
    if (values.gpus !== undefined && jobs !== 'docker') throw new Error('--gpus needs --jobs docker');
    if (values.gpus !== undefined && values.gpus !== 'all' && values.gpus !== 'none') throw new Error(`--gpus must be all or none, got ${JSON.stringify(values.gpus)}`);
    store = commandStore(values.store as string | undefined, endpoint);
    if (jobs === 'docker' && store instanceof FileStore) {
      throw new Error('--jobs docker needs an s3:// --store (the worker containers cannot see a local directory); e.g. --store s3://emo-dir/local --endpoint http://localhost:4566');
    }
    if (name === 'resume') assertValidName('run id', positionals[0]);
    if (values['dry-run'] === true && name !== 'run') throw new Error('--dry-run is for emo-dir run (a resumed run was planned already)');
  } catch (error) {
    err(`emo-dir ${name}: ${(error as Error).message}\n`);
    return 2;
  }
  if (values['dry-run'] === true) return dryRun(positionals[0], store, values.json === true, out, err);

  const signals = deps.signals ?? process;
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts === 1) {
      err(`emo-dir ${name}: stopping the workers (Ctrl-C again to exit at once)\n`);
      controller.abort(new Error('interrupted'));
    } else {
      process.exit(130);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    await checkStoreReachable(store, endpoint);
    // Local worker processes open the store from EMO_DIR_STORE; with an emulator they also need
    // its endpoint (as containers do, docker-jobs.ts), since they cannot be given a client.
    const workerEnv = endpoint === undefined ? {} : containerEnvironment({ storeLocation: store.location, endpoint });
    const options = {
      ...deps.runOptions,
      store,
      ...(workers === undefined ? {} : { workers }),
      ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
      ...(jobs === 'docker'
        ? {
            docker: {
              ...(endpoint === undefined ? {} : { endpoint }),
              ...(values.image === undefined ? {} : { image: values.image as string }),
              ...(values.gpus === 'none' ? { gpus: false } : {}),
            },
          }
        : { workerEnv: { ...workerEnv, ...deps.runOptions?.workerEnv } }),
      json: values.json === true,
      quiet: values.quiet === true,
      verbose: values.verbose === true,
      handlers: await deps.loadHandlers(),
      signal: controller.signal,
    };
    const result =
      name === 'run' ? await runLocal({ ...options, specPath: positionals[0] }) : await resumeLocal({ ...options, runId: positionals[0] });
    if (values.json === true) out(`${JSON.stringify(await jsonResult(result, store))}\n`);
    else if (result.status === 'SUCCEEDED') {
      const reportKey = (result.output as { report?: { htmlKey?: string } } | undefined)?.report?.htmlKey;
      out(formatRunSummary(await readRunSummary(store, result.runId, reportKey)));
    } else err(`emo-dir ${name}: ${describeRunFailure(result)}\n${failedJobLogs(result)}`);
    return result.status === 'SUCCEEDED' ? 0 : 1;
  } catch (error) {
    // A run that cannot start (an invalid spec, a missing model, an unreachable store): the
    // message names the file and field; no stack trace unless EMO_DIR_DEBUG is set.
    err(`emo-dir ${name}: ${(error as Error).message}\n`);
    if (process.env.EMO_DIR_DEBUG) err(`${(error as Error).stack ?? ''}\n`);
    return 1;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  }
}
