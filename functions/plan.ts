/**
 * Plan (DESIGN §3 step 1; statemachine/README.md): validate the spec, analyse and divide the
 * model, write `runs/<runId>/manifest.json` (src/dir/plan.ts `planRun`, which documents the
 * rules: create-only manifest, same content on retry is success).
 *
 * Event:   { runId, specKey }
 * Returns: { runId, manifestKey, subnetworks: string[], targets: string[] }
 *          (the state machine keeps manifestKey and subnetworks; Search maps over subnetworks)
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE (or BUCKET).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { z } from 'zod';
import { planRun, type PlanResult } from '../src/dir/plan.ts';
import { storeKeySchema } from '../src/schema/messages.ts';
import { nameSchema } from '../src/schema/spec.ts';
import type { ObjectStore } from '../src/store/object-store.ts';
import { storeFromEnv, type Env } from './lib/env.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';

export const planEventSchema = z.object({ runId: nameSchema, specKey: storeKeySchema });
export type PlanEvent = z.output<typeof planEventSchema>;

/** What every pipeline handler may be given instead of its defaults (tests, the embedded runner). */
export interface HandlerDependencies {
  /** Default: the store named by the environment (read on first use). */
  readonly store?: ObjectStore;
  /** Default: process.env. */
  readonly env?: Env;
  readonly logger?: Logger;
  readonly now?: () => Date;
}

/**
 * The store, resolved on first use rather than at import: a misconfigured function then fails
 * each invocation with the variable's name instead of failing to initialise.
 */
export function lazyStore(deps: HandlerDependencies, what: string): () => ObjectStore {
  let store = deps.store;
  return () => (store ??= storeFromEnv(deps.env ?? process.env, what));
}

export function createPlanHandler(deps: HandlerDependencies = {}): LambdaHandler<PlanResult> {
  const store = lazyStore(deps, 'the plan function');
  return defineHandler(
    planEventSchema,
    async (event, { logger }) =>
      planRun(store(), event.runId, {
        specKey: event.specKey,
        log: (message, details) => logger.info(message, details ?? {}),
        ...(deps.now === undefined ? {} : { now: deps.now() }),
      }),
    { name: 'plan', logger: deps.logger },
  );
}

export const handler = createPlanHandler();
