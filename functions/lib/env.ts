/**
 * The Lambda handlers' configuration, read from their environment with zod. The CDK stack sets
 * `EMO_DIR_STORE` (`s3://<bucket>`) on every handler and `STATE_MACHINE_ARN` on the trigger
 * (cdk/constructs/functions.ts, registry-trigger.ts). A missing or malformed variable fails the
 * first invocation with a message that names it, e.g.
 *
 *   invalid environment of the trigger function:
 *     - STATE_MACHINE_ARN: is not set
 */
import { z } from 'zod';
import { stateMachineArnSchema } from '../../src/schema/messages.ts';
import { modelApprovalStatusSchema, modelPackageGroupNameSchema } from '../../src/schema/model-registry.ts';
import { parseWith } from '../../src/schema/validate.ts';
import { openStore, parseStoreLocation } from '../../src/store/index.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** A required variable: "is not set" for a missing or empty one, instead of zod's type message. */
export function requiredVar(hint = ''): z.ZodString {
  return z
    .string({ error: (issue) => (issue.input === undefined ? `is not set${hint}` : 'must be a string') })
    .min(1, `is empty${hint}`);
}

/** A store location (`s3://bucket[/prefix]`, `file:///dir`, a directory) that openStore accepts. */
export const storeLocationVar = requiredVar(' (set EMO_DIR_STORE=s3://<bucket>[/<prefix>] or BUCKET=<bucket>)').superRefine((location, ctx) => {
  try {
    parseStoreLocation(location);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

/** `BUCKET=b` stands for `EMO_DIR_STORE=s3://b` when EMO_DIR_STORE is not set. */
function bucketFallback(value: unknown): unknown {
  const env = (value ?? {}) as Env;
  if (env.EMO_DIR_STORE === undefined && env.BUCKET !== undefined) return { ...env, EMO_DIR_STORE: `s3://${env.BUCKET}` };
  return env;
}

/** Every handler: where the store is. `BUCKET` (a bare bucket name) is accepted when EMO_DIR_STORE is absent. */
export const storeEnvSchema = z.preprocess(
  bucketFallback,
  z.looseObject({ EMO_DIR_STORE: storeLocationVar }),
);

/** What every trigger reads: the store, the state machine to start, and an optional Map concurrency. */
const triggerVariables = {
  EMO_DIR_STORE: storeLocationVar,
  STATE_MACHINE_ARN: requiredVar().pipe(stateMachineArnSchema),
  /** Batch jobs of one Map at once for triggered runs (default: the deployment's). */
  EMO_DIR_MAX_CONCURRENCY: z
    .string()
    .regex(/^[1-9]\d{0,4}$/, 'must be a positive integer')
    .transform(Number)
    .optional(),
};

/** The registry trigger. */
export const triggerEnvSchema = z.preprocess(bucketFallback, z.looseObject(triggerVariables));
export type TriggerEnv = z.output<typeof triggerEnvSchema>;

/** A comma-separated list variable, each item checked by `item`. */
function listVar<T extends z.ZodType<unknown, string>>(item: T, hint = '') {
  return requiredVar(hint)
    .transform((text) => text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== ''))
    .pipe(z.array(item).min(1));
}

/** The model package trigger: the trigger's variables plus the watched groups and approval statuses. */
export const modelPackageTriggerEnvSchema = z.preprocess(
  bucketFallback,
  z.looseObject({
    ...triggerVariables,
    /** Comma-separated model package group names whose versions start runs. */
    EMO_DIR_MODEL_PACKAGE_GROUPS: listVar(modelPackageGroupNameSchema, ' (the groups to watch, e.g. resnets,detectors)'),
    /** Comma-separated approval statuses that start a run (default Approved). */
    EMO_DIR_APPROVAL_STATUSES: listVar(modelApprovalStatusSchema).optional(),
  }),
);
export type ModelPackageTriggerEnv = z.output<typeof modelPackageTriggerEnvSchema>;

/** RegisterModels: the store and the group pruned models are registered in. */
export const registerModelsEnvSchema = z.preprocess(
  bucketFallback,
  z.looseObject({
    EMO_DIR_STORE: storeLocationVar,
    EMO_DIR_MODEL_PACKAGE_GROUP: requiredVar(
      ' (the SageMaker model registry integration is off in this deployment: deploy with -c emo-dir:modelPackageGroups=<groups>)',
    ).pipe(modelPackageGroupNameSchema),
  }),
);
export type RegisterModelsEnv = z.output<typeof registerModelsEnvSchema>;

/**
 * Parses `env` (default process.env) with `schema`; a ValidationError names `what` and each bad
 * variable. Empty strings count as unset (CloudFormation cannot remove a variable, only blank it).
 */
export function readEnv<S extends z.ZodType>(schema: S, what: string, env: Env = process.env): z.output<S> {
  const cleaned: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && value !== '') cleaned[name] = value;
  return parseWith(schema, cleaned, `environment of ${what}`);
}

/** The store named by `EMO_DIR_STORE` (or `BUCKET`). */
export function storeFromEnv(env: Env = process.env, what = 'the function'): ObjectStore {
  const { EMO_DIR_STORE } = readEnv(storeEnvSchema, what, env);
  return openStore(EMO_DIR_STORE);
}
