/**
 * RegisterModels (statemachine/README.md): after Finalize, a run started from a SageMaker model
 * package registers each target's pruned model as a new model package version
 * (src/cloud/model-registration.ts `registerRunModels`, which documents the rules: archive,
 * metrics report, PendingManualApproval, idempotency, per-target errors recorded).
 *
 * Event:   { runId, modelPackageKey, targets: string[] }
 * Returns: { runId, registrationKey, registered, failed } (the state machine keeps registrationKey)
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE, EMO_DIR_MODEL_PACKAGE_GROUP (set by the
 * model registry construct; absent when the integration is off, and then this step fails with why).
 */
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { registerRunModels, type RegisterRunModelsResult } from '../src/cloud/model-registration.ts';
import { storeKeySchema } from '../src/schema/messages.ts';
import { nameSchema } from '../src/schema/spec.ts';
import { openStore } from '../src/store/index.ts';
import { readEnv, registerModelsEnvSchema } from './lib/env.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';
import type { HandlerDependencies } from './plan.ts';

export const registerModelsEventSchema = z.object({
  runId: nameSchema,
  modelPackageKey: storeKeySchema,
  targets: z.array(nameSchema),
});

export function createRegisterModelsHandler(deps: HandlerDependencies & { readonly sagemaker?: SageMakerClient } = {}): LambdaHandler<RegisterRunModelsResult> {
  let sagemaker = deps.sagemaker;
  return defineHandler(
    registerModelsEventSchema,
    async (event, { logger }) => {
      const env = readEnv(registerModelsEnvSchema, 'the register-models function', deps.env ?? process.env);
      sagemaker ??= new SageMakerClient({ maxAttempts: 6, retryMode: 'standard' });
      const result = await registerRunModels({
        store: deps.store ?? openStore(env.EMO_DIR_STORE),
        sagemaker,
        ...event,
        modelPackageGroupName: env.EMO_DIR_MODEL_PACKAGE_GROUP,
        logger,
        ...(deps.now === undefined ? {} : { now: deps.now() }),
      });
      logger.info('models registered', { ...result });
      return result;
    },
    { name: 'register-models', logger: deps.logger },
  );
}

export const handler = createRegisterModelsHandler();
