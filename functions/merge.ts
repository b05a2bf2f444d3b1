/**
 * Merge (DESIGN §3 step 3; statemachine/README.md): GPIR over every sub-network's front, write
 * `merge/joint-front.json` and `merge/plans/<target>.json` (src/dir/merge-run.ts `mergeRun`).
 * An infeasible target gets a plan that says why and is left out of `targets`.
 *
 * Event:   { runId, manifestKey }
 * Returns: { runId, jointFrontKey, plansPrefix, targets: string[], infeasibleTargets: string[] }
 *          (the state machine keeps jointFrontKey and targets; Finalize maps over targets)
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE (or BUCKET).
 */
import { z } from 'zod';
import { mergeRun, type MergeResult } from '../src/dir/merge-run.ts';
import { storeKeySchema } from '../src/schema/messages.ts';
import { nameSchema } from '../src/schema/spec.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';
import { storeFromEnv } from './lib/env.ts';
import type { HandlerDependencies } from './plan.ts';

export const mergeEventSchema = z.object({ runId: nameSchema, manifestKey: storeKeySchema });
export type MergeEvent = z.output<typeof mergeEventSchema>;

export function createMergeHandler(deps: HandlerDependencies = {}): LambdaHandler<MergeResult> {
  // Resolved on first use, not at import (see functions/plan.ts).
  let resolved = deps.store;
  const store = () => (resolved ??= storeFromEnv(deps.env ?? process.env, 'the merge function'));
  return defineHandler(
    mergeEventSchema,
    async (event, { logger }) =>
      mergeRun(store(), event.runId, {
        manifestKey: event.manifestKey,
        log: (message, details) => logger.info(message, details ?? {}),
        ...(deps.now === undefined ? {} : { now: deps.now() }),
      }),
    { name: 'merge', logger: deps.logger },
  );
}

export const handler = createMergeHandler();
