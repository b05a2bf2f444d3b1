/**
 * Messages that cross a process boundary in the cloud pipeline, as zod schemas (one place,
 * DESIGN §6): the S3 "Object Created" event EventBridge delivers to the registry trigger, the
 * state machine's execution input, the `status.json` record of a run, and the ARNs/names the
 * Step Functions API constrains.
 *
 * Parse every one of them with `parseWith(schema, value, source)` so a bad value fails with the
 * source and the field path.
 */
import { z } from 'zod';
import { nameSchema } from './spec.ts';

/**
 * A state machine ARN, optionally qualified by a version or alias
 * (`arn:aws:states:eu-west-1:123456789012:stateMachine:EmoDir[:live]`).
 */
export const STATE_MACHINE_ARN_PATTERN =
  /^arn:(aws[a-z-]*):states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]{1,80})(?::([A-Za-z0-9_-]{1,80}))?$/;

export const stateMachineArnSchema = z
  .string()
  .regex(STATE_MACHINE_ARN_PATTERN, 'expected arn:aws:states:<region>:<account>:stateMachine:<name>');

/** Step Functions execution names: 1-80 characters of A-Z a-z 0-9 - _ (the form CloudWatch accepts). */
export const EXECUTION_NAME_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;
export const executionNameSchema = z
  .string()
  .regex(EXECUTION_NAME_PATTERN, 'use 1-80 characters of A-Z a-z 0-9 - _');

/** Store keys as they travel in messages: relative, '/'-separated, no '..' (store/object-store.ts). */
export const storeKeySchema = z
  .string()
  .min(1)
  .refine(
    (key) => !key.startsWith('/') && !key.includes('\\') && !key.includes('\0') && key.split('/').every((s) => s !== '' && s !== '.' && s !== '..'),
    'must be a relative store key without empty, "." or ".." segments',
  );

/** Default of `maxConcurrency` (Batch jobs of one Map at once); the ASL applies the same default. */
export const DEFAULT_MAX_CONCURRENCY = 16;

/**
 * The input of one execution of `statemachine/emo-dir.asl.json` (its README fixes the shape):
 * only the run id and the spec's store key travel; the store (bucket) is fixed by the deployed
 * functions' environment (`EMO_DIR_STORE`). `maxConcurrency` bounds each Batch Map (the
 * deployment's default when absent); `modelPackageKey` (runs started from a SageMaker model
 * package) makes the run register its pruned models back (RegisterModels).
 */
export const executionInputSchema = z
  .object({
    runId: nameSchema,
    specKey: storeKeySchema,
    maxConcurrency: z.number().int().min(1).max(10_000).optional(),
    modelPackageKey: storeKeySchema.optional(),
  })
  .strict();
export type ExecutionInput = z.infer<typeof executionInputSchema>;

/**
 * The EventBridge event of an S3 upload (`detail-type: Object Created`, bucket with EventBridge
 * notifications on). Only the fields the trigger uses are required; AWS adds more, which pass.
 * EventBridge delivers the object key as it is stored (not URL-encoded, unlike S3 event
 * notifications); registry keys are plain names anyway (keys.NAME_PATTERN).
 */
export const s3ObjectCreatedEventSchema = z.looseObject({
  id: z.string().min(1),
  'detail-type': z.literal('Object Created'),
  source: z.literal('aws.s3'),
  time: z.string().optional(),
  detail: z.looseObject({
    bucket: z.looseObject({ name: z.string().min(1) }),
    object: z
      .looseObject({
        key: z.string().min(1),
        size: z.number().int().min(0).optional(),
        etag: z.string().min(1).optional(),
        'version-id': z.string().min(1).optional(),
        sequencer: z.string().optional(),
      })
      // Without either, two uploads of one key could not be told apart: one would never run.
      .refine((object) => object.etag !== undefined || object['version-id'] !== undefined, {
        message: 'needs etag or version-id to identify the upload',
      }),
  }),
});
export type S3ObjectCreatedEvent = z.infer<typeof s3ObjectCreatedEventSchema>;

/** One bad field of a rejected spec, as `parseWith` reports it. */
export const fieldIssueSchema = z.object({ path: z.string(), message: z.string() });
export type FieldIssue = z.infer<typeof fieldIssueSchema>;

/**
 * `runs/<runId>/status.json`, the one schema of the run's terminal record, for every writer: a
 * refused start (the registry triggers: `rejected`, with the bad fields), a failed execution (the
 * RecordFailure step, src/report/build.ts `recordFailure`: `failed`, with Step Functions' error and
 * cause) and a finished one (the Report step: `succeeded` or `failed`, with the report's keys).
 * Readers: the report (a recorded failure), `emo-dir status`. Loose, so a newer writer's field
 * survives an older reader.
 */
export const runStatusRecordSchema = z.looseObject({
  runId: nameSchema,
  state: z.enum(['rejected', 'failed', 'succeeded']),
  /** ISO-8601 UTC time of the record. */
  at: z.string(),
  /** One line a person can act on. */
  message: z.string(),
  /** What was being read or done: a store location + key, an execution ARN. */
  source: z.string().optional(),
  /** For validation failures: every bad field, with its path in the JSON. */
  issues: z.array(fieldIssueSchema).optional(),
  /** RecordFailure: the error name and (shortened) cause Step Functions caught. */
  error: z.string().optional(),
  cause: z.string().optional(),
  /** Report: the report's own verdict and where it is. */
  reportStatus: z.enum(['succeeded', 'partial', 'failed']).optional(),
  reportKey: storeKeySchema.optional(),
  htmlKey: storeKeySchema.optional(),
});
export type RunStatusRecord = z.infer<typeof runStatusRecordSchema>;
