/**
 * RecordFailure (statemachine/README.md): every Catch of the state machine ends here, with the
 * error Step Functions caught. Writes `runs/<runId>/status.json` `{runId, state: 'failed', error,
 * cause, message, at}` (src/report/build.ts `recordFailure`), so a failed run says why without
 * opening the console.
 *
 * The deployed state machine sends this event to the Report function (`action: "recordFailure"`,
 * functions/report.ts dispatches it here); this module's own `handler` serves a separate
 * function or a local runner that wires RecordFailure apart.
 *
 * Event:   { action?: "recordFailure", runId, error: { Error, Cause? } }
 * Returns: { runId, statusKey } (the state machine ignores it: ResultPath null)
 */
import { z } from 'zod';
import { recordFailure, type RecordedFailure } from '../src/report/build.ts';
import { nameSchema } from '../src/schema/spec.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';
import { storeFromEnv } from './lib/env.ts';
import type { HandlerDependencies } from './plan.ts';

/** What a Catch with `ResultPath: "$.error"` stores: the error name and its cause (often JSON). */
export const caughtErrorSchema = z.looseObject({
  Error: z.string().min(1),
  Cause: z.string().optional(),
});

export const recordFailureEventSchema = z.object({
  action: z.literal('recordFailure').optional(),
  runId: nameSchema,
  error: caughtErrorSchema,
});
export type RecordFailureEvent = z.output<typeof recordFailureEventSchema>;

export function createRecordFailureHandler(deps: HandlerDependencies = {}): LambdaHandler<RecordedFailure> {
  // Resolved on first use, not at import (see functions/plan.ts).
  let resolved = deps.store;
  const store = () => (resolved ??= storeFromEnv(deps.env ?? process.env, 'the report function'));
  return defineHandler(
    recordFailureEventSchema,
    async (event, { logger }) => {
      logger.warn('run failed', { error: event.error.Error });
      return recordFailure(store(), event.runId, event.error, deps.now === undefined ? {} : { now: deps.now() });
    },
    { name: 'recordFailure', logger: deps.logger },
  );
}

export const handler = createRecordFailureHandler();
