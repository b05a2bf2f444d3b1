/**
 * Registry trigger (DESIGN §1, §3): EventBridge delivers the S3 "Object Created" event of an
 * upload under `registry/`; a `registry/<model>/prune.json` becomes a run. Thin: parse the event
 * (src/schema/messages.ts), call `startRegistryRun` (src/cloud/registry.ts, which documents the
 * rules: run id, model resolution, rejection record, idempotency), return keys.
 *
 * Returns `{ outcome: 'ignored' | 'rejected' | 'started', runId?, specKey?, statusKey?,
 * executionArn? }`. Only infrastructure errors (store or Step Functions unreachable) fail the
 * invocation, so EventBridge retries them (then the dead-letter queue); an invalid upload is
 * recorded in `runs/<runId>/status.json` and does not fail.
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE (or BUCKET), STATE_MACHINE_ARN, optional
 * EMO_DIR_MAX_CONCURRENCY.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import type { Logger } from '@aws-lambda-powertools/logger';
import { startRegistryRun, type RegistryRunResult } from '../src/cloud/registry.ts';
import { s3ObjectCreatedEventSchema } from '../src/schema/messages.ts';
import { openStore } from '../src/store/index.ts';
import type { ObjectStore } from '../src/store/object-store.ts';
import { readEnv, triggerEnvSchema, type Env, type TriggerEnv } from './lib/env.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';

export interface TriggerDependencies {
  /** Default: the store named by the environment. */
  readonly store?: ObjectStore;
  /** Default: a client for the Lambda's own region. */
  readonly sfn?: SFNClient;
  /** Default: process.env. */
  readonly env?: Env;
  readonly logger?: Logger;
  readonly now?: () => Date;
}

export function createTriggerHandler(deps: TriggerDependencies = {}): LambdaHandler<RegistryRunResult> {
  // Read on first use, not at import: a misconfigured function then fails each invocation with
  // the variable's name instead of failing to initialise.
  let resolved: { env: TriggerEnv; store: ObjectStore; sfn: SFNClient } | undefined;
  const resolve = (): { env: TriggerEnv; store: ObjectStore; sfn: SFNClient } => {
    if (resolved === undefined) {
      const env = readEnv(triggerEnvSchema, 'the trigger function', deps.env ?? process.env);
      resolved = {
        env,
        store: deps.store ?? openStore(env.EMO_DIR_STORE),
        sfn: deps.sfn ?? new SFNClient({ maxAttempts: 6, retryMode: 'standard' }),
      };
    }
    return resolved;
  };
  return defineHandler(
    s3ObjectCreatedEventSchema,
    async (event, { logger }) => {
      const { env, store, sfn } = resolve();
      return startRegistryRun({
        event,
        store,
        sfn,
        stateMachineArn: env.STATE_MACHINE_ARN,
        maxConcurrency: env.EMO_DIR_MAX_CONCURRENCY,
        logger,
        ...(deps.now === undefined ? {} : { now: deps.now() }),
      });
    },
    // Until the run id is known, the EventBridge event id correlates the log lines.
    { name: 'trigger', logger: deps.logger, correlationId: (event) => event.id },
  );
}

export const handler = createTriggerHandler();
