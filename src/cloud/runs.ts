/**
 * The two steps every way of starting a cloud run shares (CLI submit, registry trigger):
 *
 * 1. `writeOnce`: the run's spec goes to `runs/<runId>/spec.json` create-only. A retry that
 *    finds the very same bytes there carries on (the earlier attempt wrote them); different
 *    bytes mean the run id is taken by another run, which is an error.
 * 2. `startRunExecution`: StartExecution with a name derived from the run id. Step Functions
 *    refuses a second execution of one name (ExecutionAlreadyExists, for 90 days after the
 *    first closed), which makes starting idempotent: that refusal is success here.
 */
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { executionInputSchema, type ExecutionInput } from '../schema/messages.ts';
import type { RunSpec } from '../schema/spec.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { writeOnce } from '../store/write-once.ts';
import { executionArnFor, executionNameFor } from './names.ts';

// Shared with src/local/run.ts, which must not load the Step Functions SDK.
export { RunIdTakenError, writeOnce } from '../store/write-once.ts';

/** The bytes of a run's `spec.json`: the validated spec with every default filled in. */
export function specBytes(spec: RunSpec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}

/** Writes `runs/<runId>/spec.json` once (see writeOnce); `spec.runId` must be the run id. */
export async function writeRunSpec(
  store: ObjectStore,
  spec: RunSpec & { runId: string },
): Promise<{ specKey: string; write: 'created' | 'existing' }> {
  const specKey = runKeys(spec.runId).spec;
  const write = await writeOnce(store, specKey, specBytes(spec), { contentType: 'application/json' });
  return { specKey, write };
}

export interface StartRunExecutionOptions {
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly runId: string;
  readonly specKey: string;
  /** Batch jobs of one Map at once; the state machine defaults it (16) when absent. */
  readonly maxConcurrency?: number;
  /** The run's source model package record (SageMaker trigger): the run registers its models back. */
  readonly modelPackageKey?: string;
}

export interface StartedExecution {
  readonly executionName: string;
  readonly executionArn: string;
  /** True when an execution of this name existed already (a retry, or the same upload again). */
  readonly alreadyStarted: boolean;
  readonly input: ExecutionInput;
}

export async function startRunExecution(options: StartRunExecutionOptions): Promise<StartedExecution> {
  const input = parseWith(
    executionInputSchema,
    {
      runId: options.runId,
      specKey: options.specKey,
      ...(options.maxConcurrency === undefined ? {} : { maxConcurrency: options.maxConcurrency }),
      ...(options.modelPackageKey === undefined ? {} : { modelPackageKey: options.modelPackageKey }),
    },
    'execution input',
  );
  const executionName = executionNameFor(options.runId);
  const derivedArn = executionArnFor(options.stateMachineArn, executionName);
  try {
    const response = await options.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: options.stateMachineArn,
        name: executionName,
        input: JSON.stringify(input),
      }),
    );
    return { executionName, executionArn: response.executionArn ?? derivedArn, alreadyStarted: false, input };
  } catch (error) {
    if (isExecutionAlreadyExists(error)) {
      return { executionName, executionArn: derivedArn, alreadyStarted: true, input };
    }
    throw new Error(
      `cannot start execution ${executionName} of ${options.stateMachineArn}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

function isExecutionAlreadyExists(error: unknown): boolean {
  return (
    error instanceof ExecutionAlreadyExists ||
    (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'ExecutionAlreadyExists')
  );
}
