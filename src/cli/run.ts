/**
 * `emo-dir run <spec>`: the embedded default (DESIGN §4). The command line and the runner live in
 * src/local; this adapter only hands them the real Lambda handlers, bound to the local store.
 */
import { runCommand } from '../local/command.ts';
import type { HandlerContext, LocalHandlers } from '../local/run.ts';

async function loadHandlers(): Promise<(context: HandlerContext) => LocalHandlers> {
  const [{ createPlanHandler }, { createMergeHandler }, { createReportHandler }] = await Promise.all([
    import('../../functions/plan.ts'),
    import('../../functions/merge.ts'),
    import('../../functions/report.ts'),
  ]);
  return ({ store, env }) => ({
    plan: createPlanHandler({ store, env }),
    merge: createMergeHandler({ store, env }),
    report: createReportHandler({ store, env }),
  });
}

export function run(argv: string[]): Promise<number> {
  return runCommand(argv, { loadHandlers });
}
