/**
 * SageMaker Model Registry trigger (DESIGN §3 "Registry triggers"): EventBridge delivers a
 * "SageMaker Model Package State Change" event of a watched group; the package version becomes a
 * run. Thin: parse the event (src/schema/model-registry.ts), call `startModelPackageRun`
 * (src/cloud/model-package-run.ts, which documents the rules: run id per version, archive
 * extraction, spec sources, rejection record, idempotency), return keys.
 *
 * Returns `{ outcome: 'ignored' | 'rejected' | 'started', runId?, ... }`. Only infrastructure
 * errors fail the invocation (retried by Lambda, then kept in the on-failure queue); a package
 * that cannot run is recorded in `runs/<runId>/status.json`.
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE, STATE_MACHINE_ARN,
 * EMO_DIR_MODEL_PACKAGE_GROUPS, optional EMO_DIR_APPROVAL_STATUSES and EMO_DIR_MAX_CONCURRENCY.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { Logger } from '@aws-lambda-powertools/logger';
import { startModelPackageRun, type ModelPackageRunResult } from '../src/cloud/model-package-run.ts';
import { modelPackageStateChangeEventSchema } from '../src/schema/model-registry.ts';
import { openStore } from '../src/store/index.ts';
import type { ObjectStore } from '../src/store/object-store.ts';
import { modelPackageTriggerEnvSchema, readEnv, type Env, type ModelPackageTriggerEnv } from './lib/env.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';

export interface ModelPackageTriggerDependencies {
  readonly store?: ObjectStore;
  readonly sagemaker?: SageMakerClient;
  readonly s3?: S3Client;
  readonly sfn?: SFNClient;
  readonly env?: Env;
  readonly logger?: Logger;
  readonly now?: () => Date;
}

interface Resolved {
  readonly env: ModelPackageTriggerEnv;
  readonly store: ObjectStore;
  readonly sagemaker: SageMakerClient;
  readonly s3: S3Client;
  readonly sfn: SFNClient;
}

export function createModelPackageTriggerHandler(deps: ModelPackageTriggerDependencies = {}): LambdaHandler<ModelPackageRunResult> {
  // Read on first use, not at import (see functions/trigger.ts).
  let resolved: Resolved | undefined;
  const resolve = (): Resolved => {
    if (resolved === undefined) {
      const env = readEnv(modelPackageTriggerEnvSchema, 'the model package trigger', deps.env ?? process.env);
      const retrying = { maxAttempts: 6, retryMode: 'standard' } as const;
      resolved = {
        env,
        store: deps.store ?? openStore(env.EMO_DIR_STORE),
        sagemaker: deps.sagemaker ?? new SageMakerClient(retrying),
        s3: deps.s3 ?? new S3Client(retrying),
        sfn: deps.sfn ?? new SFNClient(retrying),
      };
    }
    return resolved;
  };
  return defineHandler(
    modelPackageStateChangeEventSchema,
    async (event, { logger }) => {
      const { env, ...clients } = resolve();
      return startModelPackageRun({
        event,
        ...clients,
        stateMachineArn: env.STATE_MACHINE_ARN,
        groups: env.EMO_DIR_MODEL_PACKAGE_GROUPS,
        ...(env.EMO_DIR_APPROVAL_STATUSES === undefined ? {} : { approvalStatuses: env.EMO_DIR_APPROVAL_STATUSES }),
        maxConcurrency: env.EMO_DIR_MAX_CONCURRENCY,
        logger,
        ...(deps.now === undefined ? {} : { now: deps.now() }),
      });
    },
    // Until the run id is known, the EventBridge event id correlates the log lines.
    { name: 'model-package-trigger', logger: deps.logger, correlationId: (event) => event.id },
  );
}

export const handler = createModelPackageTriggerHandler();
