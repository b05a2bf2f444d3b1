/**
 * Runs the deployed state machine definition (statemachine/emo-dir.asl.json) on this machine with
 * aws-local-stepfunctions (DESIGN §4, embedded mode). The definition is not rewritten: every Task
 * state is overridden by name (the library's `taskResourceLocalHandlers`) with a local stand-in
 * chosen by the state's `Resource`:
 *
 * - a Lambda function ARN (`arn:aws:lambda:...:function:<name>`) or the optimised integration
 *   `arn:aws:states:::lambda:invoke` -> the in-process handler registered for that ARN. Input and
 *   result are passed through JSON, as Lambda does; an error surfaces as Lambda's does: `Error` is
 *   the error's name, `Cause` the JSON `{errorType, errorMessage, trace}`;
 * - `arn:aws:states:::batch:submitJob.sync` -> a job of the JobRunner. The task's result is the
 *   job as Batch's DescribeJobs returns it (JobId, JobName, Status, Attempts, ...), and a failed
 *   job fails the task with `States.TaskFailed` and that description as the Cause, as Step
 *   Functions reports a failed Batch job, so the definition's Retry/Catch act as in the cloud.
 *
 * Two things Step Functions does that the library does not, done here:
 * - when a Map state fails, Step Functions stops its other iterations and terminates their Batch
 *   jobs; the library abandons the iterations but not the promises of their running tasks, so the
 *   runner watches the execution's events and cancels the Map's jobs itself;
 * - the 256 KiB limit on data passed between states (States.DataLimitExceeded) is enforced on
 *   Lambda inputs and results, so a handler that returns too much fails locally, not first in AWS.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { Substitutions } from '../../statemachine/definition.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../schema/messages.ts';
import { installPolyfills } from './polyfills.ts';
import { JobCancelledError, JobFailedError, type JobDefinitionName, type JobRecord, type JobRunner, type LocalJob } from './job-runner.ts';

/** An in-process Lambda handler (the `handler` export of functions/*.ts has this shape). */
export type LambdaFunction = (event: unknown) => Promise<unknown>;

/** Stand-ins for the ARNs CDK substitutes; LocalStack's account and region, so they read as local. */
export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ARNS = {
  PlanFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:emo-dir-plan`,
  MergeFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:emo-dir-merge`,
  ReportFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:emo-dir-report`,
  RegisterModelsFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:emo-dir-register-models`,
  JobQueueArn: `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-queue/emo-dir-local`,
  // A job the first queue cancels for capacity runs again on this one; both are the local workers.
  FallbackJobQueueArn: `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-queue/emo-dir-local-on-demand`,
  SearchJobDefinitionArn: `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-definition/emo-dir-search:1`,
  FinalizeJobDefinitionArn: `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-definition/emo-dir-finalize:1`,
} as const;

/** Every placeholder of the definition for a local execution (statemachine/definition.ts loadDefinition). */
export const LOCAL_SUBSTITUTIONS: Substitutions = {
  ...LOCAL_ARNS,
  DefaultMaxConcurrency: String(DEFAULT_MAX_CONCURRENCY),
};

/**
 * Lambdas that exist only in the deployed stack. RegisterModels is reached only by runs started
 * from a SageMaker model package (execution input `modelPackageKey`), which a local run never is;
 * should one get there, it fails with why instead of with a missing handler.
 */
const CLOUD_ONLY_LAMBDAS: Readonly<Record<string, LambdaFunction>> = {
  [LOCAL_ARNS.RegisterModelsFunctionArn]: async () => {
    throw taskError(
      'EmoDir.NotAvailableLocally',
      'RegisterModels registers pruned models in the SageMaker Model Registry: it runs in the deployed stack only (a local run has no model package)',
    );
  },
};

/** Which local job each job definition ARN stands for. */
export const LOCAL_JOB_DEFINITIONS: Readonly<Record<string, JobDefinitionName>> = {
  [LOCAL_ARNS.SearchJobDefinitionArn]: 'search',
  [LOCAL_ARNS.FinalizeJobDefinitionArn]: 'finalize',
};

const BATCH_SYNC = 'arn:aws:states:::batch:submitJob.sync';
const LAMBDA_INVOKE = /^arn:aws[a-z-]*:states:::lambda:invoke$/;
const LAMBDA_FUNCTION = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(?::[A-Za-z0-9_$-]+)?$/;
/** Step Functions' limit on a state's input/output (and so on a Lambda task's result). */
export const STATE_DATA_LIMIT_BYTES = 256 * 1024;

export type ExecutionStatus = 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';

/** The library's execution events (StateEntered, MapIterationFailed, ...), as plain objects. */
export interface ExecutionEvent {
  readonly type: string;
  readonly timestamp: number;
  readonly state?: { readonly name: string; readonly type: string };
  readonly parentState?: { readonly name: string };
  readonly index?: number;
  readonly Error?: string;
  readonly Cause?: unknown;
}

export interface EmbeddedRunOptions {
  /** The parsed ASL with its placeholders substituted (statemachine/definition.ts loadDefinition). */
  readonly definition: Record<string, unknown>;
  readonly input: Record<string, unknown>;
  /** In-process handlers by function ARN. */
  readonly lambdas: Readonly<Record<string, LambdaFunction>>;
  readonly jobRunner: JobRunner;
  /** Job definition ARN -> local job kind. Default LOCAL_JOB_DEFINITIONS. */
  readonly jobDefinitions?: Readonly<Record<string, JobDefinitionName>>;
  readonly onEvent?: (event: ExecutionEvent) => void;
  /** Aborting stops the execution and cancels its jobs. */
  readonly signal?: AbortSignal;
  /** Milliseconds to wait before each retry, by state name (tests; default: the definition's). */
  readonly retryIntervalOverrides?: Readonly<Record<string, number>>;
}

export interface EmbeddedRunResult {
  readonly status: ExecutionStatus;
  /** The execution's output when it succeeded. */
  readonly output?: unknown;
  /** The execution's error when it failed (what DescribeExecution calls error and cause). */
  readonly error?: { readonly Error: string; readonly Cause: string };
  /** Every Batch job the execution submitted, finished. */
  readonly jobs: readonly JobRecord[];
}

interface TaskInfo {
  readonly name: string;
  readonly resource: string;
  /** Names of the Map states around the task, outermost first. */
  readonly maps: readonly string[];
}

type Json = Record<string, unknown>;

/** Every Task state of a definition, with the Map states it is nested in. */
export function taskStatesOf(definition: Json, maps: readonly string[] = []): TaskInfo[] {
  const tasks: TaskInfo[] = [];
  const states = (definition.States ?? {}) as Record<string, Json>;
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Task') tasks.push({ name, resource: String(state.Resource), maps });
    if (state.Type === 'Map') {
      const processor = (state.ItemProcessor ?? state.Iterator) as Json | undefined;
      if (processor !== undefined) tasks.push(...taskStatesOf(processor, [...maps, name]));
    }
    if (state.Type === 'Parallel') {
      for (const branch of (state.Branches ?? []) as Json[]) tasks.push(...taskStatesOf(branch, maps));
    }
  }
  return tasks;
}

/** An error the library's Retry/Catch matchers see as `name`, with `message` as the Cause. */
export function taskError(name: string, cause: string): Error {
  const error = new Error(cause);
  error.name = name;
  return error;
}

function jsonRoundTrip(value: unknown): unknown {
  const text = JSON.stringify(value);
  return text === undefined ? null : (JSON.parse(text) as unknown);
}

function assertWithinLimit(state: string, what: string, value: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? 'null', 'utf8');
  if (bytes > STATE_DATA_LIMIT_BYTES) {
    throw taskError(
      'States.DataLimitExceeded',
      `${state}: the ${what} is ${bytes} bytes, over Step Functions' limit of ${STATE_DATA_LIMIT_BYTES}; put it in the store and pass its key`,
    );
  }
}

/** Runs a Lambda handler as Lambda would: JSON in, JSON out, errors as {errorType, errorMessage}. */
async function invokeLambda(state: string, handler: LambdaFunction, event: unknown): Promise<unknown> {
  assertWithinLimit(state, 'Lambda input', event);
  let result: unknown;
  try {
    result = jsonRoundTrip(await handler(jsonRoundTrip(event)));
  } catch (error) {
    const errorType = error instanceof Error ? error.name : 'Error';
    const errorMessage = error instanceof Error ? error.message : String(error);
    const trace = error instanceof Error && error.stack !== undefined ? error.stack.split('\n') : [];
    throw taskError(errorType, JSON.stringify({ errorType, errorMessage, trace }));
  }
  assertWithinLimit(state, 'Lambda result', result);
  return result;
}

const submitJobSchema = z.looseObject({
  JobName: z.string().min(1),
  JobQueue: z.string().min(1),
  JobDefinition: z.string().min(1),
  ContainerOverrides: z
    .looseObject({
      Command: z.array(z.string()).optional(),
      Environment: z.array(z.object({ Name: z.string().min(1), Value: z.string() })).optional(),
    })
    .optional(),
  Tags: z.record(z.string(), z.string()).optional(),
  PropagateTags: z.boolean().optional(),
});

/** Translates a SubmitJob request (the Batch task's Parameters) into a local job. */
export function localJobFrom(
  state: string,
  parameters: unknown,
  jobDefinitions: Readonly<Record<string, JobDefinitionName>>,
  jobId: string = randomUUID(),
): LocalJob {
  const parsed = submitJobSchema.safeParse(parameters);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(parameters)'}: ${issue.message}`).join('; ');
    throw taskError('Batch.ClientException', `${state}: invalid SubmitJob parameters: ${issues}`);
  }
  const request = parsed.data;
  // Batch would substitute Ref::name in the job definition's command; the local job definitions
  // have no command, so the override is the whole command and Parameters cannot apply.
  if ('Parameters' in request) throw taskError('Batch.ClientException', `${state}: SubmitJob Parameters are not supported by the embedded runner`);
  const definition = jobDefinitions[request.JobDefinition];
  if (definition === undefined) {
    throw taskError(
      'Batch.ClientException',
      `${state}: unknown job definition ${request.JobDefinition} (the embedded runner knows ${Object.keys(jobDefinitions).join(', ')})`,
    );
  }
  const command = request.ContainerOverrides?.Command;
  if (command === undefined || command.length === 0) {
    throw taskError('Batch.ClientException', `${state}: ContainerOverrides.Command is required (the local job definitions have no default command)`);
  }
  const environment: Record<string, string> = {};
  for (const { Name, Value } of request.ContainerOverrides?.Environment ?? []) {
    if (Name.startsWith('AWS_BATCH_')) throw taskError('Batch.ClientException', `${state}: environment variable ${Name} is reserved by Batch`);
    environment[Name] = Value;
  }
  // Labels name what the job works on (the contract of statemachine/README.md puts it in the
  // environment), so progress lines read `search 000` rather than a UUID.
  const subject = environment.EMO_DIR_SUBNET ?? environment.EMO_DIR_TARGET ?? jobId.slice(0, 8);
  return {
    jobId,
    jobName: request.JobName,
    definition,
    command,
    environment,
    label: `${definition} ${subject}`,
    jobQueue: request.JobQueue,
  };
}

/** The job as DescribeJobs shows it (the part the definition and the report can use). */
export function describeJob(record: JobRecord, parameters: Json): Json {
  const { job } = record;
  const last = record.attempts.at(-1);
  const status = record.status === 'SUCCEEDED' ? 'SUCCEEDED' : 'FAILED';
  return {
    JobId: job.jobId,
    JobName: job.jobName,
    JobArn: `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job/${job.jobId}`,
    JobQueue: job.jobQueue ?? '',
    JobDefinition: parameters.JobDefinition ?? '',
    Status: status,
    StatusReason: record.statusReason,
    CreatedAt: record.createdAt,
    ...(record.startedAt === undefined ? {} : { StartedAt: record.startedAt }),
    StoppedAt: record.stoppedAt,
    Attempts: record.attempts.map((attempt) => ({
      Container: {
        ...(attempt.exitCode === null ? {} : { ExitCode: attempt.exitCode }),
        Reason: attempt.reason,
      },
      StartedAt: attempt.startedAt,
      StoppedAt: attempt.stoppedAt,
      StatusReason: attempt.statusReason,
    })),
    Container: {
      Command: [...job.command],
      Environment: Object.entries(job.environment).map(([Name, Value]) => ({ Name, Value })),
      ...(last?.exitCode === null || last === undefined ? {} : { ExitCode: last.exitCode }),
      ...(last === undefined ? {} : { Reason: last.reason }),
    },
    Tags: parameters.Tags ?? {},
    PropagateTags: parameters.PropagateTags ?? false,
    // Not a Batch field: the worker's last stderr lines, since there is no CloudWatch log locally.
    ...(record.status === 'SUCCEEDED' ? {} : { LocalLogTail: [...record.logTail] }),
  };
}

type TaskHandler = (input: unknown) => Promise<unknown>;

/** Texts of definitions that passed validation in this process. */
const validatedDefinitions = new Set<string>();

interface ActiveJob {
  readonly controller: AbortController;
  readonly maps: readonly string[];
}

/**
 * Executes `definition` on `input`; resolves with the outcome (a failed execution is an outcome,
 * not an exception). Throws only when the definition cannot run here at all (a Task resource
 * without a local handler, an invalid definition).
 */
export async function runStateMachineLocally(options: EmbeddedRunOptions): Promise<EmbeddedRunResult> {
  installPolyfills();
  // Imported only now: the polyfill above must be in place before the library runs (Node 20).
  const { StateMachine, ExecutionError, ExecutionAbortedError, ExecutionTimeoutError } = await import('aws-local-stepfunctions');
  const jobDefinitions = options.jobDefinitions ?? LOCAL_JOB_DEFINITIONS;
  const tasks = taskStatesOf(options.definition);
  const lambdas = { ...CLOUD_ONLY_LAMBDAS, ...options.lambdas };

  const active = new Map<string, ActiveJob>();
  /** Batch tasks in flight, so the result is returned only once every job has ended. */
  const inFlight = new Set<Promise<unknown>>();
  const jobs: JobRecord[] = [];
  /** Map states that failed in this execution (their late iterations must not start jobs). */
  const failedMaps = new Set<string>();
  const cancelMapJobs = (mapName: string, reason: string): void => {
    for (const job of active.values()) if (job.maps.includes(mapName)) job.controller.abort(new Error(reason));
  };

  const handlers: Record<string, TaskHandler> = {};
  const missing: string[] = [];
  for (const task of tasks) {
    const handler = handlerFor(task);
    if (handler === undefined) {
      missing.push(`${task.name} (${task.resource})`);
      continue;
    }
    const previous = tasks.find((other) => other.name === task.name && other !== task);
    // The library overrides Task states by name across nested state machines.
    if (previous !== undefined && previous.resource !== task.resource) {
      throw new Error(`two Task states are named ${task.name} with different resources; the embedded runner needs unique names`);
    }
    handlers[task.name] = handler;
  }
  if (missing.length > 0) {
    throw new Error(
      `the embedded runner has no local handler for these Task states: ${missing.join(', ')} ` +
        `(known Lambda ARNs: ${Object.keys(options.lambdas).join(', ') || 'none'})`,
    );
  }

  function handlerFor(task: TaskInfo): TaskHandler | undefined {
    if (task.resource === BATCH_SYNC) {
      return (input) => {
        const running = runBatchTask(task, input);
        const tracked = running.catch(() => undefined).finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        return running;
      };
    }
    if (LAMBDA_INVOKE.test(task.resource)) {
      return async (input) => {
        const { FunctionName, Payload } = (input ?? {}) as { FunctionName?: string; Payload?: unknown };
        const lambda = FunctionName === undefined ? undefined : lambdas[FunctionName];
        if (lambda === undefined) throw taskError('Lambda.ResourceNotFoundException', `${task.name}: no local handler for function ${String(FunctionName)}`);
        return { ExecutedVersion: '$LATEST', StatusCode: 200, Payload: await invokeLambda(task.name, lambda, Payload ?? null) };
      };
    }
    if (LAMBDA_FUNCTION.test(task.resource)) {
      const lambda = lambdas[task.resource];
      return lambda === undefined ? undefined : (input) => invokeLambda(task.name, lambda, input);
    }
    return undefined;
  }

  async function runBatchTask(task: TaskInfo, input: unknown): Promise<unknown> {
    const parameters = (input ?? {}) as Json;
    const job = localJobFrom(task.name, parameters, jobDefinitions);
    const failedMap = task.maps.find((map) => failedMaps.has(map));
    if (failedMap !== undefined) {
      // A late iteration of a Map that has already failed: Step Functions would not start it.
      throw taskError('States.TaskFailed', `${task.name}: not started, the ${failedMap} Map has failed`);
    }
    const controller = new AbortController();
    active.set(job.jobId, { controller, maps: task.maps });
    try {
      const record = await options.jobRunner.run(job, { signal: controller.signal });
      jobs.push(record);
      return describeJob(record, parameters);
    } catch (error) {
      if (error instanceof JobFailedError || error instanceof JobCancelledError) {
        jobs.push(error.record);
        throw taskError('States.TaskFailed', JSON.stringify(describeJob(error.record, parameters)));
      }
      throw error;
    } finally {
      active.delete(job.jobId);
    }
  }

  // Validation (asl-validator) costs 0.4-1.2 s per construction, far more than running the
  // definition; a definition that passed once is not validated again in this process.
  const definitionText = JSON.stringify(options.definition);
  const machine = new StateMachine(options.definition as unknown as StateMachineDefinition, {
    validationOptions: validatedDefinitions.has(definitionText) ? { noValidate: true } : { checkArn: true, checkPaths: true },
  });
  validatedDefinitions.add(definitionText);
  const execution = machine.run(options.input as never, {
    overrides: {
      // The library types handler inputs/outputs as its JSONValue; ours are JSON by construction.
      taskResourceLocalHandlers: handlers as unknown as NonNullable<
        NonNullable<Parameters<typeof machine.run>[1]>['overrides']
      >['taskResourceLocalHandlers'],
      ...(options.retryIntervalOverrides === undefined ? {} : { retryIntervalOverrides: { ...options.retryIntervalOverrides } }),
    },
  });

  const onAbort = (): void => execution.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) execution.abort();

  const watchEvents = (async () => {
    for await (const event of execution.eventLogs) {
      const seen = event as unknown as ExecutionEvent;
      if (seen.type === 'StateEntered' && seen.state?.type === 'Map' && seen.index === undefined) {
        failedMaps.delete(seen.state.name);
      }
      // StateFailed of the Map itself comes after the library abandoned its iterations.
      if (seen.type === 'StateFailed' && seen.state?.type === 'Map') {
        failedMaps.add(seen.state.name);
        cancelMapJobs(seen.state.name, `the ${seen.state.name} Map failed (${seen.Error ?? 'error'})`);
      }
      try {
        options.onEvent?.(seen);
      } catch {
        // A broken listener (a progress display) must not break the execution.
      }
    }
  })();

  let result: EmbeddedRunResult;
  try {
    const output = await execution.result;
    result = { status: 'SUCCEEDED', output, jobs };
  } catch (error) {
    if (error instanceof ExecutionAbortedError) {
      result = { status: 'ABORTED', error: { Error: 'States.Aborted', Cause: 'the execution was aborted' }, jobs };
    } else if (error instanceof ExecutionTimeoutError) {
      result = { status: 'TIMED_OUT', error: { Error: 'States.Timeout', Cause: 'the execution timed out' }, jobs };
    } else if (error instanceof ExecutionError) {
      const cause = error.cause as Error | undefined;
      result = { status: 'FAILED', error: { Error: cause?.name ?? 'Error', Cause: cause?.message ?? error.message }, jobs };
    } else {
      throw error;
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    // Whatever is still running belongs to an execution that is over (aborted, timed-out tasks).
    for (const job of active.values()) job.controller.abort(new Error('the execution ended'));
  }
  await Promise.allSettled([...inFlight]);
  await watchEvents;
  return result;
}
