/**
 * The embedded mode's stand-in for AWS Batch (DESIGN §4): a queue with a concurrency limit that
 * runs each job as a child process, exactly as Batch runs the worker container's command, and
 * re-runs failed attempts by the same rules as the Batch job definitions' retry strategy
 * (cdk/constructs/batch.ts).
 *
 * What is mirrored from Batch, and why:
 * - one job = one command line + environment (ContainerOverrides), `AWS_BATCH_JOB_ID`,
 *   `AWS_BATCH_JOB_ATTEMPT` (1, 2, ...) and `AWS_BATCH_JQ_NAME` set, so the worker behaves as in
 *   the cloud (it resumes from its checkpoint when the attempt is > 1);
 * - exit code 0 succeeds, anything else fails the attempt;
 * - the retry strategy is a list of Batch `evaluateOnExit` rules, evaluated in order with Batch's
 *   glob semantics, first match decides, no match retries. The defaults are the job definition's
 *   rules verbatim. A local attempt's outcome is described in Batch's terms so those rules apply
 *   unchanged: a worker killed by a signal it was not sent by us (the OOM killer, `kill -9`: the
 *   local analogue of a spot reclaim or host failure) gets the status reason `Host EC2 ...
 *   terminated.` that Batch gives a reclaimed instance; an application exit gets Batch's
 *   `Essential container in task exited`; a command that cannot start gets
 *   `CannotStartContainerError`, which Batch does not retry either.
 * - cancellation is SIGTERM, then SIGKILL after a grace period (ECS's stop timeout).
 *
 * Every attempt's wall time is recorded: their sum over all jobs is the run's worker-seconds.
 * `FunctionJobRunner` runs an async function per job through the same queue and retry rules
 * (tests; measuring the orchestration overhead without process start-up).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

export type JobDefinitionName = 'search' | 'finalize';

/** One Batch job as the local runner sees it (translated from SubmitJob by embedded-runner.ts). */
export interface LocalJob {
  /** Unique per job (Batch's JobId, a UUID). */
  readonly jobId: string;
  /** Batch's JobName (not unique: every search job is `emo-dir-search`). */
  readonly jobName: string;
  readonly definition: JobDefinitionName;
  /** Arguments appended to the runner's command: the container's command override. */
  readonly command: readonly string[];
  /** The container's environment overrides. */
  readonly environment: Readonly<Record<string, string>>;
  /** Short, unique-in-a-run name for logs and progress, e.g. `search 000`. */
  readonly label: string;
  readonly jobQueue?: string;
}

/** One try of a job, in Batch's terms (DescribeJobs `attempts[]`). */
export interface JobAttempt {
  /** 1-based; what the worker saw as AWS_BATCH_JOB_ATTEMPT. */
  readonly attempt: number;
  /** Epoch milliseconds, as Batch reports them. */
  readonly startedAt: number;
  readonly stoppedAt: number;
  /** null when the process was killed by a signal or never started. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Batch's `container.reason`, e.g. `Essential container in task exited`. */
  readonly reason: string;
  /** Batch's attempt `statusReason`. */
  readonly statusReason: string;
}

export type JobStatus = 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

/** A finished job: what the report needs (attempts, times) and what a failure message needs. */
export interface JobRecord {
  readonly job: LocalJob;
  readonly status: JobStatus;
  readonly statusReason: string;
  readonly attempts: readonly JobAttempt[];
  /** Epoch ms the job was submitted to the queue. */
  readonly createdAt: number;
  /** Epoch ms the first attempt started (undefined: cancelled while queued). */
  readonly startedAt?: number;
  readonly stoppedAt: number;
  /** Sum of all attempts' wall times, in seconds (failed attempts cost compute too). */
  readonly workerSeconds: number;
  /** The last lines the worker wrote to stderr, for error messages (there is no CloudWatch). */
  readonly logTail: readonly string[];
}

export class JobFailedError extends Error {
  constructor(readonly record: JobRecord) {
    const tail = record.logTail.length > 0 ? `\n  last output:\n    ${record.logTail.join('\n    ')}` : '';
    super(
      `job ${record.job.label} (${record.job.jobId}) failed after ${record.attempts.length} attempt(s): ${record.statusReason}${tail}`,
    );
    this.name = 'JobFailedError';
  }
}

export class JobCancelledError extends Error {
  constructor(readonly record: JobRecord) {
    super(`job ${record.job.label} (${record.job.jobId}) was cancelled: ${record.statusReason}`);
    this.name = 'JobCancelledError';
  }
}

/** One Batch `evaluateOnExit` rule. Patterns match exactly, or by prefix when they end with `*`. */
export interface RetryRule {
  readonly action: 'RETRY' | 'EXIT';
  readonly onExitCode?: string;
  readonly onReason?: string;
  readonly onStatusReason?: string;
}

export interface RetryPolicy {
  /** Attempts including the first (Batch `retryStrategy.attempts`, 1-10). */
  readonly attempts: number;
  /** Evaluated in order, first match decides; an attempt no rule matches is retried (Batch's rule). */
  readonly retryOn: readonly RetryRule[];
}

/** Exit code with which the worker asks for another attempt (WORKER_RETRY_EXIT_CODE in cdk/constructs/batch.ts). */
export const WORKER_RETRY_EXIT_CODE = 75;

/** Batch's attempt status reason when the instance went away (spot reclaim, host failure). */
export const HOST_TERMINATED_STATUS_REASON = 'Host EC2 (instance local) terminated.';
/** Batch's container reason / status reason when the worker exited by itself. */
export const CONTAINER_EXITED_REASON = 'Essential container in task exited';
/** Batch's status reason of an attempt stopped by its job timeout. */
export const ATTEMPT_TIMEOUT_STATUS_REASON = 'Job attempt duration exceeded timeout';

/**
 * The job definitions' retry strategy (cdk/constructs/batch.ts: attempts default 5; rules
 * SPOT_INSTANCE_RECLAIMED, CANNOT_PULL_CONTAINER, exit code 75 retry; anything else exits).
 * test/local/job-runner.test.ts checks these against the CDK construct's source.
 */
export const BATCH_RETRY_POLICY: RetryPolicy = {
  attempts: 5,
  retryOn: [
    { action: 'RETRY', onStatusReason: 'Host EC2*' },
    { action: 'RETRY', onReason: 'CannotPullContainerError:*' },
    { action: 'RETRY', onExitCode: String(WORKER_RETRY_EXIT_CODE) },
    { action: 'EXIT', onReason: '*' },
  ],
};

function globMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern;
}

/** The rule that decides `attempt`, or undefined when none matches. */
export function matchRetryRule(rules: readonly RetryRule[], attempt: JobAttempt): RetryRule | undefined {
  return rules.find(
    (rule) =>
      (rule.onExitCode === undefined || globMatches(rule.onExitCode, attempt.exitCode === null ? undefined : String(attempt.exitCode))) &&
      (rule.onReason === undefined || globMatches(rule.onReason, attempt.reason)) &&
      (rule.onStatusReason === undefined || globMatches(rule.onStatusReason, attempt.statusReason)),
  );
}

/** Whether a failed attempt is tried again under `policy`. */
export function shouldRetry(policy: RetryPolicy, attempt: JobAttempt): boolean {
  if (attempt.attempt >= policy.attempts) return false;
  return (matchRetryRule(policy.retryOn, attempt)?.action ?? 'RETRY') === 'RETRY';
}

/** Lifecycle of jobs, for progress displays and logs. */
export type JobEvent =
  | { readonly type: 'queued'; readonly job: LocalJob }
  | { readonly type: 'started'; readonly job: LocalJob; readonly attempt: number }
  | { readonly type: 'attempt-failed'; readonly job: LocalJob; readonly attempt: JobAttempt; readonly willRetry: boolean }
  | { readonly type: 'succeeded' | 'failed' | 'cancelled'; readonly job: LocalJob; readonly record: JobRecord };

export type OutputStream = 'stdout' | 'stderr';

export interface JobRunnerOptions {
  /** Jobs running at once. Default: os.availableParallelism(). */
  readonly concurrency?: number;
  /** Default: BATCH_RETRY_POLICY. */
  readonly retry?: RetryPolicy;
  /** Job lifecycle events. */
  readonly onEvent?: (event: JobEvent) => void;
  /** Each line a job writes. Default: `log` with the line prefixed by `[<label>] `. */
  readonly onOutput?: (job: LocalJob, line: string, stream: OutputStream) => void;
  /** The runner's own messages (retries) and, by default, job output. Default: stderr. */
  readonly log?: (line: string) => void;
  /** Grace between SIGTERM and SIGKILL when jobs are cancelled. Default 10 s. */
  readonly killGraceMs?: number;
  /** Per-attempt timeout (the job definition's `timeout`); default none. */
  readonly attemptTimeoutSeconds?: number;
}

export interface RunJobOptions {
  /** Aborting cancels the job: removed from the queue, or its attempt is terminated. */
  readonly signal?: AbortSignal;
}

export interface JobRunner {
  /** Resolves with the record when the job succeeds; rejects with JobFailedError or JobCancelledError. */
  run(job: LocalJob, options?: RunJobOptions): Promise<JobRecord>;
  /** Rejects queued jobs, terminates running ones (SIGTERM, then SIGKILL), resolves when all are gone. */
  stop(): Promise<void>;
  /** Every job that has finished, in the order they finished. */
  readonly records: readonly JobRecord[];
  /** The concurrency limit. */
  readonly concurrency: number;
}

/** What one attempt ended with; `runAttempt` implementations return it. */
export interface AttemptOutcome {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly reason: string;
  readonly statusReason: string;
}

/** Context of one attempt for `runAttempt`. */
export interface AttemptContext {
  readonly attempt: number;
  /** Aborted when the job is cancelled; the attempt must end soon after. */
  readonly signal: AbortSignal;
  readonly output: (line: string, stream: OutputStream) => void;
}

const LOG_TAIL_LINES = 20;
const LOG_TAIL_LINE_CHARS = 500;

interface Entry {
  readonly job: LocalJob;
  readonly controller: AbortController;
  readonly createdAt: number;
  readonly resolve: (record: JobRecord) => void;
  readonly reject: (error: Error) => void;
  cancelReason?: string;
}

/**
 * The queue, concurrency limit, retry loop and bookkeeping; subclasses say how one attempt runs.
 * Retries keep the job's slot (a re-queued Batch job would wait for a slot again; keeping it
 * only changes the order in which waiting jobs start, and keeps a resumed search going).
 */
export abstract class QueuedJobRunner implements JobRunner {
  readonly concurrency: number;
  readonly #retry: RetryPolicy;
  readonly #onEvent: (event: JobEvent) => void;
  readonly #onOutput: (job: LocalJob, line: string, stream: OutputStream) => void;
  protected readonly log: (line: string) => void;
  readonly #queue: Entry[] = [];
  readonly #running = new Set<Promise<void>>();
  readonly #activeEntries = new Set<Entry>();
  readonly #records: JobRecord[] = [];
  #active = 0;
  #stopped = false;

  constructor(options: JobRunnerOptions = {}) {
    const concurrency = options.concurrency ?? availableParallelism();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`job runner concurrency must be a positive integer, got ${concurrency}`);
    }
    const retry = options.retry ?? BATCH_RETRY_POLICY;
    if (!Number.isInteger(retry.attempts) || retry.attempts < 1) {
      throw new Error(`retry attempts must be a positive integer, got ${retry.attempts}`);
    }
    this.concurrency = concurrency;
    this.#retry = retry;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#onEvent = options.onEvent ?? (() => {});
    this.#onOutput = options.onOutput ?? ((job, line) => this.log(`[${job.label}] ${line}`));
  }

  get records(): readonly JobRecord[] {
    return this.#records;
  }

  /** Runs one attempt of `job` to its end (also when `context.signal` aborts). */
  protected abstract runAttempt(job: LocalJob, context: AttemptContext): Promise<AttemptOutcome>;

  run(job: LocalJob, options: RunJobOptions = {}): Promise<JobRecord> {
    return new Promise<JobRecord>((resolve, reject) => {
      const entry: Entry = { job, controller: new AbortController(), createdAt: Date.now(), resolve, reject };
      if (this.#stopped) {
        this.#finishUnstarted(entry, 'the job runner was stopped');
        return;
      }
      const external = options.signal;
      if (external !== undefined) {
        const onAbort = (): void => this.#cancel(entry, reasonText(external.reason, 'the job was cancelled'));
        if (external.aborted) {
          this.#finishUnstarted(entry, reasonText(external.reason, 'the job was cancelled'));
          return;
        }
        external.addEventListener('abort', onAbort, { once: true });
        entry.controller.signal.addEventListener('abort', () => external.removeEventListener('abort', onAbort), { once: true });
      }
      this.#queue.push(entry);
      this.#onEvent({ type: 'queued', job });
      this.#pump();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const entry of [...this.#queue]) this.#cancel(entry, 'the job runner was stopped');
    for (const entry of this.#activeEntries) this.#cancel(entry, 'the job runner was stopped');
    await Promise.allSettled([...this.#running]);
  }

  #cancel(entry: Entry, reason: string): void {
    const queued = this.#queue.indexOf(entry);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      this.#finishUnstarted(entry, reason);
      return;
    }
    if (!entry.controller.signal.aborted) {
      entry.cancelReason = reason;
      entry.controller.abort(new Error(reason));
    }
  }

  #finishUnstarted(entry: Entry, reason: string): void {
    const record: JobRecord = {
      job: entry.job,
      status: 'CANCELLED',
      statusReason: reason,
      attempts: [],
      createdAt: entry.createdAt,
      stoppedAt: Date.now(),
      workerSeconds: 0,
      logTail: [],
    };
    this.#records.push(record);
    this.#onEvent({ type: 'cancelled', job: entry.job, record });
    entry.reject(new JobCancelledError(record));
  }

  #pump(): void {
    while (this.#active < this.concurrency && this.#queue.length > 0) {
      const entry = this.#queue.shift() as Entry;
      this.#active++;
      this.#activeEntries.add(entry);
      const running = this.#execute(entry).finally(() => {
        this.#active--;
        this.#activeEntries.delete(entry);
        this.#running.delete(running);
        this.#pump();
      });
      this.#running.add(running);
    }
  }

  async #execute(entry: Entry): Promise<void> {
    const { job } = entry;
    const attempts: JobAttempt[] = [];
    const logTail: string[] = [];
    const output = (line: string, stream: OutputStream): void => {
      if (stream === 'stderr') {
        logTail.push(line.length > LOG_TAIL_LINE_CHARS ? `${line.slice(0, LOG_TAIL_LINE_CHARS)}...` : line);
        if (logTail.length > LOG_TAIL_LINES) logTail.shift();
      }
      try {
        this.#onOutput(job, line, stream);
      } catch (error) {
        // A broken progress display must not fail the job.
        this.log(`[${job.label}] output handler failed: ${(error as Error).message}`);
      }
    };
    const finish = (status: JobStatus, statusReason: string): JobRecord => {
      const record: JobRecord = {
        job,
        status,
        statusReason,
        attempts,
        createdAt: entry.createdAt,
        ...(attempts.length > 0 ? { startedAt: attempts[0].startedAt } : {}),
        stoppedAt: Date.now(),
        workerSeconds: attempts.reduce((sum, attempt) => sum + (attempt.stoppedAt - attempt.startedAt) / 1000, 0),
        logTail: [...logTail],
      };
      this.#records.push(record);
      return record;
    };
    for (let number = 1; ; number++) {
      const startedAt = Date.now();
      this.#onEvent({ type: 'started', job, attempt: number });
      let outcome: AttemptOutcome;
      try {
        outcome = await this.runAttempt(job, { attempt: number, signal: entry.controller.signal, output });
      } catch (error) {
        // runAttempt should not throw; if it does, the attempt failed in a way Batch would not retry.
        outcome = { exitCode: null, signal: null, reason: `CannotStartContainerError: ${(error as Error).message}`, statusReason: 'Task failed to start' };
      }
      const attempt: JobAttempt = { attempt: number, startedAt, stoppedAt: Date.now(), ...outcome };
      attempts.push(attempt);
      if (entry.controller.signal.aborted) {
        const record = finish('CANCELLED', entry.cancelReason ?? 'the job was cancelled');
        this.#onEvent({ type: 'cancelled', job, record });
        entry.reject(new JobCancelledError(record));
        return;
      }
      if (attempt.exitCode === 0 && attempt.signal === null) {
        const record = finish('SUCCEEDED', attempt.statusReason);
        this.#onEvent({ type: 'succeeded', job, record });
        entry.resolve(record);
        return;
      }
      const retry = !this.#stopped && shouldRetry(this.#retry, attempt);
      this.#onEvent({ type: 'attempt-failed', job, attempt, willRetry: retry });
      if (!retry) {
        const record = finish('FAILED', describeFailure(attempt));
        this.#onEvent({ type: 'failed', job, record });
        entry.reject(new JobFailedError(record));
        return;
      }
      this.log(`[${job.label}] attempt ${number} failed (${describeFailure(attempt)}); retrying as attempt ${number + 1} of ${this.#retry.attempts}`);
    }
  }
}

function reasonText(reason: unknown, fallback: string): string {
  if (reason instanceof Error) return reason.message;
  if (typeof reason === 'string' && reason !== '') return reason;
  return fallback;
}

/** One line: the status reason plus how the worker ended. */
export function describeFailure(attempt: JobAttempt): string {
  const how = attempt.signal !== null ? `killed by ${attempt.signal}` : attempt.exitCode !== null ? `exit code ${attempt.exitCode}` : attempt.reason;
  return attempt.statusReason === how ? how : `${attempt.statusReason} (${how})`;
}

export interface LocalProcessJobRunnerOptions extends JobRunnerOptions {
  /**
   * The container's entry point: the job's command is appended to it.
   * Default: `node --import tsx containers/worker.ts` (what containers/Dockerfile runs).
   */
  readonly command?: readonly string[];
  /** Working directory of the workers. Default: process.cwd(). */
  readonly cwd?: string;
  /** Environment of every job (e.g. EMO_DIR_STORE), over process.env and under the job's own. */
  readonly env?: Readonly<Record<string, string>>;
  /** Value of AWS_BATCH_JQ_NAME. Default `local`. */
  readonly queueName?: string;
}

export const DEFAULT_WORKER_COMMAND: readonly string[] = [process.execPath, '--import', 'tsx', 'containers/worker.ts'];

/**
 * Workers run in their own process groups, so they would outlive a runner that exits without
 * stopping them (an uncaught error, process.exit on a second Ctrl-C). One 'exit' listener per
 * process kills every group still running; 'exit' allows only synchronous work, which kill is.
 */
const liveWorkerGroups = new Set<number>();
let exitHookInstalled = false;
function trackWorkerGroup(pid: number): void {
  liveWorkerGroups.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const group of liveWorkerGroups) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/** Runs each job as a child process (its own process group, so the whole tree can be signalled). */
export class LocalProcessJobRunner extends QueuedJobRunner {
  readonly #command: readonly string[];
  readonly #cwd: string;
  readonly #env: Readonly<Record<string, string>>;
  readonly #queueName: string;
  readonly #killGraceMs: number;
  readonly #attemptTimeoutMs: number | undefined;

  constructor(options: LocalProcessJobRunnerOptions = {}) {
    super(options);
    this.#command = options.command ?? DEFAULT_WORKER_COMMAND;
    if (this.#command.length === 0) throw new Error('the worker command is empty');
    this.#cwd = options.cwd ?? process.cwd();
    this.#env = options.env ?? {};
    this.#queueName = options.queueName ?? 'local';
    this.#killGraceMs = options.killGraceMs ?? 10_000;
    this.#attemptTimeoutMs = options.attemptTimeoutSeconds === undefined ? undefined : options.attemptTimeoutSeconds * 1000;
  }

  protected runAttempt(job: LocalJob, context: AttemptContext): Promise<AttemptOutcome> {
    return new Promise<AttemptOutcome>((resolve) => {
      const [file, ...args] = this.#command;
      let child: ChildProcess;
      try {
        child = spawn(file, [...args, ...job.command], {
          cwd: this.#cwd,
          env: {
            ...process.env,
            ...this.#env,
            ...job.environment,
            AWS_BATCH_JOB_ID: job.jobId,
            AWS_BATCH_JOB_ATTEMPT: String(context.attempt),
            AWS_BATCH_JQ_NAME: this.#queueName,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
          // Own process group: a cancel reaches the worker's children too, and a Ctrl-C in the
          // terminal reaches only the runner, which then stops the workers gracefully.
          detached: true,
        });
      } catch (error) {
        resolve(cannotStart(error));
        return;
      }
      if (child.pid !== undefined) trackWorkerGroup(child.pid);
      let settled = false;
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const signalGroup = (signal: NodeJS.Signals): void => {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          child.kill(signal);
        }
      };
      const terminate = (): void => {
        signalGroup('SIGTERM');
        killTimer ??= setTimeout(() => signalGroup('SIGKILL'), this.#killGraceMs);
        killTimer.unref();
      };
      const onAbort = (): void => terminate();
      context.signal.addEventListener('abort', onAbort, { once: true });
      if (context.signal.aborted) terminate();
      const timeoutTimer =
        this.#attemptTimeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              terminate();
            }, this.#attemptTimeoutMs);

      const streamsClosed = [child.stdout, child.stderr].map((stream, index) => {
        if (stream === null) return Promise.resolve();
        const lines = createInterface({ input: stream, crlfDelay: Infinity });
        const name: OutputStream = index === 0 ? 'stdout' : 'stderr';
        lines.on('line', (line) => context.output(line, name));
        return new Promise<void>((done) => lines.once('close', done));
      });
      const settle = (outcome: AttemptOutcome): void => {
        if (settled) return;
        settled = true;
        if (child.pid !== undefined) liveWorkerGroups.delete(child.pid);
        clearTimeout(killTimer);
        clearTimeout(timeoutTimer);
        context.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      child.once('error', (error) => {
        // Only spawn failures reach here before 'close' (ENOENT, EACCES); the streams never open.
        if (child.pid === undefined) settle(cannotStart(error));
      });
      child.once('close', (code, signal) => {
        // Every line is delivered before the attempt counts as over (progress, log tail).
        void Promise.all(streamsClosed).then(() => {
          if (timedOut) {
            settle({ exitCode: code, signal, reason: 'Job attempt timed out', statusReason: ATTEMPT_TIMEOUT_STATUS_REASON });
          } else if (signal !== null) {
            settle({
              exitCode: null,
              signal,
              reason: `Container killed by ${signal}`,
              // A signal we did not send: the host "went away" (see the module comment).
              statusReason: context.signal.aborted ? 'Job cancelled' : HOST_TERMINATED_STATUS_REASON,
            });
          } else {
            settle({ exitCode: code ?? 1, signal: null, reason: CONTAINER_EXITED_REASON, statusReason: CONTAINER_EXITED_REASON });
          }
        });
      });
    });
  }
}

function cannotStart(error: unknown): AttemptOutcome {
  return {
    exitCode: null,
    signal: null,
    reason: `CannotStartContainerError: ${(error as Error).message}`,
    statusReason: 'Task failed to start',
  };
}

/** Thrown by a FunctionJobRunner job function to simulate a worker killed by a signal (a host failure). */
export class SimulatedKillError extends Error {
  constructor(readonly signal: NodeJS.Signals = 'SIGKILL') {
    super(`simulated kill by ${signal}`);
    this.name = 'SimulatedKillError';
  }
}

/**
 * What a FunctionJobRunner runs per attempt. Returning (nothing or 0) succeeds; returning a
 * number is an exit code; throwing is exit code 1, or a host failure for SimulatedKillError.
 */
export type JobFunction = (job: LocalJob, context: AttemptContext) => Promise<number | void>;

export interface FunctionJobRunnerOptions extends JobRunnerOptions {
  readonly fn: JobFunction;
}

/** The same queue and retry rules, with an in-process function instead of a child process. */
export class FunctionJobRunner extends QueuedJobRunner {
  readonly #fn: JobFunction;
  readonly #killGraceMs: number;

  constructor(options: FunctionJobRunnerOptions) {
    super(options);
    this.#fn = options.fn;
    this.#killGraceMs = options.killGraceMs ?? 10_000;
  }

  protected async runAttempt(job: LocalJob, context: AttemptContext): Promise<AttemptOutcome> {
    const run = this.#fn(job, context).then(
      (code): AttemptOutcome => {
        const exitCode = typeof code === 'number' ? code : 0;
        return { exitCode, signal: null, reason: CONTAINER_EXITED_REASON, statusReason: CONTAINER_EXITED_REASON };
      },
      (error: unknown): AttemptOutcome => {
        if (error instanceof SimulatedKillError) {
          return { exitCode: null, signal: error.signal, reason: `Container killed by ${error.signal}`, statusReason: HOST_TERMINATED_STATUS_REASON };
        }
        context.output(`job function failed: ${(error as Error)?.message ?? String(error)}`, 'stderr');
        return { exitCode: 1, signal: null, reason: CONTAINER_EXITED_REASON, statusReason: CONTAINER_EXITED_REASON };
      },
    );
    // A function cannot be killed: after a cancel it gets the grace period to notice the signal.
    let graceTimer: NodeJS.Timeout | undefined;
    const abandoned = new Promise<AttemptOutcome>((resolve) => {
      const onAbort = (): void => {
        graceTimer = setTimeout(
          () => resolve({ exitCode: null, signal: 'SIGKILL', reason: 'Job cancelled', statusReason: 'Job cancelled' }),
          this.#killGraceMs,
        );
      };
      if (context.signal.aborted) onAbort();
      else context.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([run, abandoned]);
    } finally {
      clearTimeout(graceTimer);
    }
  }
}
