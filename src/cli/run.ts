/**
 * `emo-dir run <spec>`: the embedded default (DESIGN §4). The command line and the runner live in
 * src/local; this adapter only hands them the real Lambda handlers, bound to the local store.
 */
import { Console } from 'node:console';
import { Logger } from '@aws-lambda-powertools/logger';
import { runCommand } from '../local/command.ts';
import type { HandlerContext, LocalHandlers } from '../local/run.ts';

/**
 * The handlers' structured logs, on stderr: stdout belongs to `--json`'s single result object.
 * Off by default: the progress display shows each phase and the command prints a one-line
 * summary of any failure (with its field or file); POWERTOOLS_LOG_LEVEL=INFO brings them back.
 */
function embeddedLogger(): Logger {
  const logger = new Logger({
    serviceName: 'emo-dir',
    logLevel: (process.env.POWERTOOLS_LOG_LEVEL ?? 'CRITICAL') as 'CRITICAL',
  });
  // Powertools writes through a private Console bound to stdout; rebinding it is the one way to
  // keep its format while moving the stream.
  (logger as unknown as { console: Console }).console = new Console({ stdout: process.stderr, stderr: process.stderr });
  return logger;
}

/** The real Lambda handlers (functions/), bound to the run's store; exported for the resume command and e2e tests. */
export async function loadHandlers(): Promise<(context: HandlerContext) => LocalHandlers> {
  const [{ createPlanHandler }, { createMergeHandler }, { createReportHandler }] = await Promise.all([
    import('../../functions/plan.ts'),
    import('../../functions/merge.ts'),
    import('../../functions/report.ts'),
  ]);
  return ({ store, env }) => {
    const logger = embeddedLogger();
    return {
      plan: createPlanHandler({ store, env, logger }),
      merge: createMergeHandler({ store, env, logger }),
      report: createReportHandler({ store, env, logger }),
    };
  };
}

export function run(argv: string[]): Promise<number> {
  return runCommand(argv, { loadHandlers });
}
