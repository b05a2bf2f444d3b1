/**
 * `emo-dir run <spec>` (DESIGN §4, embedded mode): one run of the deployed workflow on this
 * machine. The spec goes to `runs/<runId>/spec.json` in a directory-backed store, exactly as
 * `emo-dir submit` writes it to S3; then statemachine/emo-dir.asl.json runs under
 * aws-local-stepfunctions with the Lambda handlers in-process and the Batch jobs as worker
 * processes (embedded-runner.ts, job-runner.ts).
 *
 * The handlers are parameters, not imports: the Lambda entry points (functions/) are wired by the
 * CLI, so this module owns no pipeline logic and tests can run the real definition with their own.
 */
import { writeReport } from '../report/build.ts';
import { timed, uncoveredMs, type Interval } from './timing.ts';
import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDefinition } from '../../statemachine/definition.ts';
import { timestampRunId } from '../cloud/names.ts';
import { classifyModelReference, ModelReferenceError } from '../model/reference.ts';
import { engineInfo, initEngine } from '../engine/backend.ts';
import { convertOnnxToStore } from '../model/onnx/convert.ts';
import { executionInputSchema, type FieldIssue, type RunStatusRecord } from '../schema/messages.ts';
import { runSpecSchema, type RunSpec } from '../schema/spec.ts';
import { isSweepSpec } from '../schema/sweep.ts';
import { parseWith } from '../schema/validate.ts';
import { FileStore } from '../store/file-store.ts';
import { runKeys } from '../store/keys.ts';
import { checkModelDirectory, localPath, ModelDirectoryError, uploadDirectory } from '../store/model-dir.ts';
import { putJson, type ObjectStore } from '../store/object-store.ts';
import { RunIdTakenError, sameBytes, writeOnce } from '../store/write-once.ts';
import { LOCAL_ARNS, LOCAL_SUBSTITUTIONS, runStateMachineLocally, type ExecutionStatus, type LambdaFunction } from './embedded-runner.ts';
import { DockerJobRunner, type DockerJobRunnerOptions } from './docker-jobs.ts';
import { LocalProcessJobRunner, type JobEvent, type JobRecord, type JobRunner, type LocalJob, type OutputStream, type RetryPolicy } from './job-runner.ts';
import { JobLogs } from './job-logs.ts';
import { ProgressDisplay, type ProgressMode, type ProgressStream } from './progress.ts';

/** The Lambda handlers of the workflow (functions/plan, merge, report). */
export interface LocalHandlers {
  readonly plan: LambdaFunction;
  readonly merge: LambdaFunction;
  /** Handles `{action: 'report'}` and, unless `recordFailure` is given, `{action: 'recordFailure'}`. */
  readonly report: LambdaFunction;
  /** The RecordFailure state's handler; in AWS it is the report function (statemachine/README.md). */
  readonly recordFailure?: LambdaFunction;
}

/** What a handler factory gets: the run's store and the environment the Lambdas would have. */
export interface HandlerContext {
  readonly store: ObjectStore;
  readonly env: Readonly<Record<string, string>>;
}

export interface RunLocalOptions {
  /** The run spec as parsed JSON; or give `specPath`. */
  readonly spec?: unknown;
  readonly specPath?: string;
  /** Directory of the store. Default `.emo-dir`. Ignored when `store` is given. */
  readonly storeDir?: string;
  /** A ready store instead of a directory (the LocalStack mode's S3Store). */
  readonly store?: ObjectStore;
  /** Worker processes at once. Default os.availableParallelism(). */
  readonly workers?: number;
  /** The execution input's maxConcurrency (Batch jobs per Map at once; the ASL defaults it). */
  readonly maxConcurrency?: number;
  /** The caller prints a JSON result on stdout: progress is reduced to important lines (on stderr). */
  readonly json?: boolean;
  readonly quiet?: boolean;
  readonly handlers: LocalHandlers | ((context: HandlerContext) => LocalHandlers);
  /** Runs the Batch jobs instead of worker processes (tests, other backends). */
  readonly jobRunner?: JobRunner;
  /**
   * Run the Batch jobs as `docker run` of the worker image (the LocalStack + Docker-GPU mode,
   * docker-jobs.ts) instead of local processes; the store must be one the containers reach (S3).
   */
  readonly docker?: Omit<DockerJobRunnerOptions, 'storeLocation' | 'concurrency' | 'retry' | 'killGraceMs' | 'onEvent' | 'onOutput' | 'log'>;
  /** The worker's command line, to which each job's command is appended. Default: node + tsx + containers/worker.ts. */
  readonly workerCommand?: readonly string[];
  /** Extra environment for the workers. */
  readonly workerEnv?: Readonly<Record<string, string>>;
  /** Default: the Batch job definitions' (job-runner.ts BATCH_RETRY_POLICY). */
  readonly retry?: RetryPolicy;
  /** Between SIGTERM and SIGKILL when workers are cancelled. Default 10 s. */
  readonly killGraceMs?: number;
  /** Where progress goes. Default process.stderr. */
  readonly progressStream?: ProgressStream;
  readonly progressMode?: ProgressMode;
  /** Worker output on screen too (on a TTY it otherwise goes only to the jobs' log files). */
  readonly verbose?: boolean;
  /** Aborting stops the execution and terminates the workers. */
  readonly signal?: AbortSignal;
  /** Names the run when the spec has no runId. Default: now. */
  readonly now?: Date;
  /** Milliseconds before each Step Functions retry, by state name (tests). */
  readonly retryIntervalOverrides?: Readonly<Record<string, number>>;
}

export interface RunLocalResult {
  readonly runId: string;
  /** `file:///abs/dir`: the store location, as EMO_DIR_STORE takes it. */
  readonly store: string;
  readonly specKey: string;
  readonly status: ExecutionStatus;
  readonly wallSeconds: number;
  /** Sum of every worker attempt's wall time (what Batch would bill). */
  readonly workerSeconds: number;
  /** Wall seconds in which no worker and no handler ran: the embedded runner's own cost. */
  readonly overheadSeconds: number;
  readonly output?: unknown;
  readonly error?: { readonly Error: string; readonly Cause: string };
  readonly jobs: readonly JobRecord[];
  /** The local directory the run's model was copied from (`runs/<runId>/model/`), if any. */
  readonly modelSource?: string;
  /** Each job's worker output (job label -> file path or object URL; job-logs.ts). */
  readonly jobLogs: Readonly<Record<string, string>>;
}

export { LOCAL_SUBSTITUTIONS };

/**
 * The worker command as containers/Dockerfile runs it, with absolute paths so that `emo-dir run`
 * works from any directory.
 */
export function defaultWorkerCommand(): string[] {
  return [
    process.execPath,
    '--import',
    import.meta.resolve('tsx'),
    fileURLToPath(new URL('../../containers/worker.ts', import.meta.url)),
  ];
}

export async function runLocal(options: RunLocalOptions): Promise<RunLocalResult> {
  const started = performance.now();
  const startedAtMs = Date.now();
  const source = options.specPath ?? 'spec';
  const rawSpec = options.spec ?? (await readSpecFile(options.specPath));
  if (isSweepSpec(rawSpec)) {
    throw new Error(`${source}: a sweep spec (with "models") cannot run locally as one run; run each model's spec, or submit the sweep`);
  }
  const parsed = parseWith(runSpecSchema, rawSpec, source);
  const baseDir = specBaseDir(options.specPath);
  const runId = runIdOf(parsed, baseDir, options.now ?? new Date());
  const store = options.store ?? new FileStore(options.storeDir ?? '.emo-dir');
  let model: string;
  let modelSource: string | undefined;
  try {
    ({ model, modelSource } = await resolveLocalModel(parsed.model, runId, store, baseDir));
  } catch (error) {
    if (!(error instanceof ModelReferenceError || error instanceof ModelDirectoryError)) throw error;
    await recordRejected(store, runId, source, { path: 'model', message: error.message });
    throw new Error(`${source}: field model: ${error.message}`, { cause: error });
  }
  const specKey = runKeys(runId).spec;
  await writeSpecOnce(store, specKey, `${JSON.stringify({ ...parsed, runId, model }, null, 2)}\n`);

  const env = { EMO_DIR_STORE: store.location };
  const handlers = typeof options.handlers === 'function' ? options.handlers({ store, env }) : options.handlers;
  const { report, recordFailure } = handlers;
  // Handler time is work the cloud would do too (in Lambdas); only what is left is overhead.
  const handlerIntervals: Interval[] = [];
  const lambdas: Record<string, LambdaFunction> = {
    [LOCAL_ARNS.PlanFunctionArn]: timed(handlers.plan, handlerIntervals),
    [LOCAL_ARNS.MergeFunctionArn]: timed(handlers.merge, handlerIntervals),
    // One function serves Report and RecordFailure in AWS; the event's `action` tells them apart.
    [LOCAL_ARNS.ReportFunctionArn]: timed(
      (event: unknown) =>
        recordFailure !== undefined && (event as { action?: unknown } | null)?.action === 'recordFailure' ? recordFailure(event) : report(event),
      handlerIntervals,
    ),
  };

  const display = new ProgressDisplay({
    stream: options.progressStream ?? process.stderr,
    ...(options.progressMode !== undefined
      ? { mode: options.progressMode }
      : options.json === true || options.quiet === true
        ? { mode: 'quiet' as const }
        : {}),
    ...(options.verbose === true ? { showWorkerOutput: true } : {}),
  });
  const jobLogs = new JobLogs(store, runId);
  const ownRunner = options.jobRunner === undefined;
  const hooks = {
    onEvent: (event: JobEvent): void => {
      jobLogs.onJobEvent(event);
      display.onJobEvent(event);
    },
    onOutput: (job: LocalJob, line: string, stream: OutputStream): void => {
      jobLogs.onOutput(job, line, stream);
      display.onOutput(job, line, stream);
    },
    log: display.log,
  };
  const jobRunner =
    options.jobRunner ??
    (options.docker !== undefined
      ? new DockerJobRunner({
          ...options.docker,
          storeLocation: store.location,
          ...(options.workers === undefined ? {} : { concurrency: options.workers }),
          ...(options.retry === undefined ? {} : { retry: options.retry }),
          ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
          ...hooks,
        })
      : undefined) ??
    new LocalProcessJobRunner({
      ...(options.workers === undefined ? {} : { concurrency: options.workers }),
      command: options.workerCommand ?? defaultWorkerCommand(),
      env: { ...options.workerEnv, ...env },
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
      ...hooks,
    });
  const onAbort = (): void => void jobRunner.stop();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const input = parseWith(
    executionInputSchema,
    { runId, specKey, ...(options.maxConcurrency === undefined ? {} : { maxConcurrency: options.maxConcurrency }) },
    'execution input',
  );
  display.log(`run ${runId}: store ${store.location}, ${jobRunner.concurrency} worker(s)`);
  try {
    const execution = await runStateMachineLocally({
      definition: loadDefinition(LOCAL_SUBSTITUTIONS),
      input,
      lambdas,
      jobRunner,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.retryIntervalOverrides === undefined ? {} : { retryIntervalOverrides: options.retryIntervalOverrides }),
      onEvent: (event) => {
        // Top-level Tasks and Maps only: the Map iterations' own states are the jobs' progress.
        if (event.type === 'StateEntered' && event.index === undefined && (event.state?.type === 'Task' || event.state?.type === 'Map')) {
          display.log(`> ${event.state.name}`);
        }
      },
    });
    const wallSeconds = (performance.now() - started) / 1000;
    const workerSeconds = execution.jobs.reduce((sum, record) => sum + record.workerSeconds, 0);
    const busy = [
      ...handlerIntervals,
      ...execution.jobs.flatMap((record) => record.attempts.map((attempt) => ({ start: attempt.startedAt, end: attempt.stoppedAt }))),
    ];
    const overheadSeconds = uncoveredMs(startedAtMs, startedAtMs + wallSeconds * 1000, busy) / 1000;
    if (execution.status === 'SUCCEEDED') {
      // The Report state ran before the run ended; render it again with the run's measured times.
      await writeReport(store, runId, { wallSeconds, workerSeconds, overheadSeconds, startedAt: new Date(startedAtMs) });
    }
    await jobLogs.close();
    for (const failure of jobLogs.failures) display.log(`cannot write a job log: ${failure}`);
    display.close();
    display.log(
      `run ${runId}: ${execution.status} in ${wallSeconds.toFixed(1)} s wall, ${workerSeconds.toFixed(1)} worker-seconds, ` +
        `runner overhead ${overheadSeconds.toFixed(1)} s (${((100 * overheadSeconds) / Math.max(wallSeconds, 1e-9)).toFixed(1)}%)` +
        (execution.error === undefined ? '' : ` (${execution.error.Error})`),
    );
    return {
      runId,
      store: store.location,
      specKey,
      status: execution.status,
      wallSeconds,
      workerSeconds,
      overheadSeconds,
      ...(execution.output === undefined ? {} : { output: execution.output }),
      ...(execution.error === undefined ? {} : { error: execution.error }),
      jobs: execution.jobs,
      ...(modelSource === undefined ? {} : { modelSource }),
      jobLogs: jobLogs.written,
    };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    display.close();
    if (ownRunner) await jobRunner.stop();
    await jobLogs.close();
  }
}

/** The directory a spec's relative paths are relative to: the spec file's (the working directory without one). */
export function specBaseDir(specPath: string | undefined): string {
  return specPath === undefined ? process.cwd() : dirname(resolve(specPath));
}

/** The spec's runId, else `<model name>-<UTC timestamp>`. */
export function runIdOf(spec: RunSpec, baseDir: string, now: Date): string {
  // `./model` next to the spec names the run after its folder (`fmnist-resnet-...`), not `model-...`.
  // `./model.onnx` names it after its folder as well.
  const nameSource = (spec.model.startsWith('.') ? resolve(baseDir, spec.model) : spec.model).replace(/\.onnx$/i, '');
  return spec.runId ?? timestampRunId(nameSource, now);
}

export async function readSpecFile(specPath: string | undefined): Promise<unknown> {
  if (specPath === undefined) throw new Error('runLocal needs a spec or a specPath');
  const text = await readFile(specPath, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`${specPath} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** writeOnce (as `emo-dir submit`), where the same spec with its keys in another order also counts as identical. */
async function writeSpecOnce(store: ObjectStore, key: string, text: string): Promise<void> {
  // A resumed run re-reads the spec, which may come back with its keys in another order.
  const sameSpec = (existing: Uint8Array, fresh: Uint8Array): boolean =>
    sameBytes(existing, fresh) || isDeepStrictEqual(safeJson(Buffer.from(existing).toString('utf8')), JSON.parse(text));
  try {
    await writeOnce(store, key, text, { contentType: 'application/json', same: sameSpec });
  } catch (error) {
    if (!(error instanceof RunIdTakenError)) throw error;
    throw new Error(`${key} (in ${store.location}) already exists with a different spec: that run id is taken (choose another runId, or omit it)`, {
      cause: error,
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * A spec's model as the pipeline reads it (src/model/reference.ts lists the forms): `zoo:<name>`
 * and store prefixes stay as they are (Plan checks them); a local directory is copied by content
 * to `runs/<runId>/model/` (model-dir.ts: symlinks followed, cycles refused), and a local `.onnx`
 * file is imported and saved there, so the run reads its model from the store as in the cloud. A
 * reference in no accepted form is refused here, with the forms, before anything is written.
 */
async function resolveLocalModel(ref: string, runId: string, store: ObjectStore, baseDir: string): Promise<{ model: string; modelSource?: string }> {
  const kind = classifyModelReference(ref).kind;
  if (kind === 'onnx-file') {
    // Imported once here; the steps read the converted model from the store (it remembers its ONNX origin).
    const file = localPath(ref, baseDir);
    const prefix = `${runKeys(runId).prefix}model/`;
    if (engineInfo() === undefined) await initEngine(process.env.EMO_DIR_BACKEND ? {} : { backend: 'cpu' });
    await convertOnnxToStore(file, store, prefix);
    return { model: prefix, modelSource: file };
  }
  if (kind !== 'directory') return { model: ref };
  const dir = await checkModelDirectory(localPath(ref, baseDir));
  const prefix = `${runKeys(runId).prefix}model/`;
  if (!(await store.exists(`${prefix}model.json`))) await uploadDirectory(store, dir, prefix);
  return { model: prefix, modelSource: dir };
}

/**
 * `runs/<runId>/status.json` for a run refused before its execution started (its model cannot be
 * read), as the registry trigger records a refused upload. Only for a run id that names no run
 * yet: an existing spec means the id is another run's (or this run's, being resumed), whose
 * record is not ours to replace.
 */
async function recordRejected(store: ObjectStore, runId: string, source: string, issue: FieldIssue): Promise<void> {
  const keys = runKeys(runId);
  if (await store.exists(keys.spec)) return;
  const record: RunStatusRecord = {
    runId,
    state: 'rejected',
    at: new Date().toISOString(),
    message: `${source}: field ${issue.path}: ${issue.message}`,
    source,
    issues: [issue],
  };
  await putJson(store, keys.status, record);
}
