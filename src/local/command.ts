/**
 * The `emo-dir run <spec>` command line over runLocal (src/cli/main.ts loads it). The Lambda
 * handlers come from `loadHandlers`, so this module does not import functions/ itself:
 *
 *   run: { summary: RUN_SUMMARY, load: async () => ({ run: (argv) => runCommand(argv, { loadHandlers }) }) }
 *
 * With --json, stdout holds one JSON object (DESIGN §7): run id, store, status, report path and
 * per-target metrics; progress goes to stderr either way. Ctrl-C stops the run gracefully (the
 * workers get SIGTERM and resume from their checkpoints when the run is started again); a second
 * Ctrl-C exits at once.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FileStore } from '../store/file-store.ts';
import { runKeys } from '../store/keys.ts';
import { getJson, type ObjectStore } from '../store/object-store.ts';
import { runLocal, type HandlerContext, type LocalHandlers, type RunLocalOptions, type RunLocalResult } from './run.ts';

export const RUN_SUMMARY =
  'run <spec.json> [--store DIR] [--workers N] [--max-concurrency N] [--json] [--quiet]   run the workflow on this machine';

const USAGE = `usage: emo-dir run <spec.json> [--store DIR] [--workers N] [--max-concurrency N] [--json] [--quiet]
  --store DIR            the local store (default .emo-dir)
  --workers N            worker processes at once (default: the number of CPUs)
  --max-concurrency N    Batch jobs per Map at once, as in the cloud (default 16)
  --json                 print one JSON object with the result on stdout
  --quiet                only job ends, retries and failures on stderr
`;

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
  const keys = runKeys(result.runId);
  const output = (result.output ?? {}) as { merge?: { targets?: unknown }; report?: { reportKey?: string; htmlKey?: string } };
  const targets: Record<string, unknown> = {};
  for (const target of Array.isArray(output.merge?.targets) ? (output.merge.targets as string[]) : []) {
    const key = keys.target(target).metrics;
    targets[target] = (await store.exists(key)) ? await getJson(store, key) : null;
  }
  // A file path for a local store; the object's URL (s3://bucket/prefix/key) for S3.
  const path = (key: string | undefined): string | undefined =>
    key === undefined ? undefined : store instanceof FileStore ? join(store.root, ...key.split('/')) : `${store.location}/${key}`;
  return {
    runId: result.runId,
    store: result.store,
    status: result.status,
    report: path(output.report?.htmlKey),
    reportJson: path(output.report?.reportKey),
    targets,
    wallSeconds: result.wallSeconds,
    workerSeconds: result.workerSeconds,
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
  const resume = `continue it with: emo-dir resume ${result.runId} --store ${fileURLToPath(result.store)}`;
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
  const retryable = result.status === 'FAILED' || result.status === 'TIMED_OUT';
  return `run ${result.runId} ${result.status}: ${message}${retryable ? `\n  after fixing the cause, ${resume}` : ''}`;
}

export async function runCommand(argv: string[], deps: RunCommandDependencies): Promise<number> {
  const out = deps.out ?? ((text) => process.stdout.write(text));
  const err = deps.err ?? ((text) => process.stderr.write(text));
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        store: { type: 'string' },
        workers: { type: 'string' },
        'max-concurrency': { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
    if (values.help === true) {
      out(USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new Error(`expected one <spec.json>, got ${positionals.length}`);
  } catch (error) {
    err(`emo-dir run: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  let workers: number | undefined;
  let maxConcurrency: number | undefined;
  try {
    workers = positiveInteger('workers', values.workers as string | undefined);
    maxConcurrency = positiveInteger('max-concurrency', values['max-concurrency'] as string | undefined);
  } catch (error) {
    err(`emo-dir run: ${(error as Error).message}\n`);
    return 2;
  }

  const signals = deps.signals ?? process;
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts === 1) {
      err('emo-dir run: stopping the workers (Ctrl-C again to exit at once)\n');
      controller.abort(new Error('interrupted'));
    } else {
      process.exit(130);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    const result = await runLocal({
      ...deps.runOptions,
      specPath: positionals[0],
      ...(values.store === undefined ? {} : { storeDir: values.store as string }),
      ...(workers === undefined ? {} : { workers }),
      ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
      json: values.json === true,
      quiet: values.quiet === true,
      handlers: await deps.loadHandlers(),
      signal: controller.signal,
    });
    if (values.json === true) out(`${JSON.stringify(await jsonResult(result))}\n`);
    else if (result.status !== 'SUCCEEDED') err(`emo-dir run: ${describeRunFailure(result)}\n`);
    return result.status === 'SUCCEEDED' ? 0 : 1;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  }
}
