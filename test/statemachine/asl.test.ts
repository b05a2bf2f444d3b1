import assert from 'node:assert/strict';
import { installPolyfills } from '../../src/local/polyfills.ts';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { ExecutionError, StateMachine, type RunOptions, type StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  CAPACITY_CANCEL_REASON,
  NO_FALLBACK_QUEUE,
  SUBSTITUTION_NAMES,
  TASK_STATES,
  loadDefinition,
  placeholdersIn,
  readDefinitionText,
  type Substitutions,
} from '../../statemachine/definition.ts';
import { LOCAL_ARNS, LOCAL_SUBSTITUTIONS, runStateMachineLocally } from '../../src/local/embedded-runner.ts';
import { JobCancelledError, JobFailedError, type JobRecord, type JobRunner, type LocalJob } from '../../src/local/job-runner.ts';

// asl-validator ships no type declarations; this is the part of its API the test uses.
type AslValidator = (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };
const validateAsl = createRequire(import.meta.url)('asl-validator') as AslValidator;

// aws-local-stepfunctions 3 calls Promise.withResolvers (Node >= 22): the embedded runner's polyfill.
installPolyfills();

const ACCOUNT = '123456789012';
const substitutions: Substitutions = {
  PlanFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:emo-dir-plan`,
  MergeFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:emo-dir-merge`,
  ReportFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:emo-dir-report`,
  RegisterModelsFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:emo-dir-register-models`,
  JobQueueArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-queue/emo-dir-spot`,
  FallbackJobQueueArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-queue/emo-dir-on-demand`,
  SearchJobDefinitionArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-definition/emo-dir-search:1`,
  FinalizeJobDefinitionArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-definition/emo-dir-finalize:1`,
  DefaultMaxConcurrency: '16',
};
const definition = loadDefinition(substitutions);
/** A deployment with one kind of capacity (`spot` or `on-demand`): nothing to fall back to. */
const singleQueueDefinition = loadDefinition({ ...substitutions, FallbackJobQueueArn: NO_FALLBACK_QUEUE });

type Json = Record<string, unknown>;
type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;
type LocalHandler = (input: unknown) => unknown;
interface StateEntry {
  readonly name: string;
  readonly state: Json;
  readonly nested: boolean;
}

function statesOf(machine: Json, nested = false): StateEntry[] {
  const entries: StateEntry[] = [];
  for (const [name, state] of Object.entries(machine.States as Record<string, Json>)) {
    entries.push({ name, state, nested });
    const processor = (state.ItemProcessor ?? state.Iterator) as Json | undefined;
    if (processor !== undefined) entries.push(...statesOf(processor, true));
  }
  return entries;
}
const allStates = statesOf(definition);
const topLevel = allStates.filter((entry) => !entry.nested);
const tasks = allStates.filter((entry) => entry.state.Type === 'Task');
const isLambdaTask = (state: Json): boolean => String(state.Resource).startsWith('arn:aws:lambda:');
const isBatchTask = (state: Json): boolean => state.Resource === 'arn:aws:states:::batch:submitJob.sync';

const LAMBDA_TRANSIENT = [
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
];
const BATCH_TRANSIENT = ['Batch.AWSBatchException', 'Batch.TooManyRequestsException'];

describe('statemachine/emo-dir.asl.json', () => {
  it('is valid ASL (asl-validator, with path and ARN checks)', () => {
    const result = validateAsl(definition, { checkPaths: true, checkArn: true });
    assert.ok(result.isValid, result.errorsText());
  });

  it('uses exactly the placeholders that CDK and the embedded runner substitute', () => {
    assert.deepEqual(placeholdersIn(readDefinitionText()), [...SUBSTITUTION_NAMES].sort());
    assert.throws(
      () => loadDefinition({ ...substitutions, JobQueueArn: undefined } as unknown as Substitutions),
      /no substitution for \$\{JobQueueArn\}/,
    );
    assert.doesNotMatch(JSON.stringify(definition), /\$\{/);
  });

  it('is JSONPath only, with inline Maps only', () => {
    assert.doesNotMatch(readDefinitionText(), /JSONata|"Arguments"|"Output"|"Assign"/);
    const maps = allStates.filter((entry) => entry.state.Type === 'Map');
    assert.deepEqual(maps.map((entry) => entry.name), ['Search', 'Finalize']);
    for (const { name, state } of maps) {
      const processor = state.ItemProcessor as Json;
      assert.deepEqual(processor.ProcessorConfig, { Mode: 'INLINE' }, name);
      assert.equal(state.MaxConcurrencyPath, '$.limits.maxConcurrency', name);
    }
  });

  it('follows Plan -> Search -> Merge -> Finalize -> [RegisterModels] -> Report -> Done', () => {
    const path: string[] = [];
    let current = definition.StartAt as string;
    const states = definition.States as Record<string, Json>;
    while (current !== undefined && path.length < 20) {
      path.push(current);
      const state = states[current];
      // A Choice goes on by its Default, except the input check, whose Default refuses the input.
      const choice = current === 'CheckMaxConcurrency' ? 'DefaultMaxConcurrency' : state.Default;
      current = (state.Next ?? (state.Type === 'Choice' ? choice : undefined)) as string;
    }
    assert.deepEqual(path, [
      'CheckMaxConcurrency', 'DefaultMaxConcurrency', 'Plan', 'Search', 'Merge', 'Finalize', 'RegisterIfRequested', 'Report', 'Done',
    ]);
    assert.equal(states.Done.Type, 'Succeed');
  });

  it('retries transient Lambda and Batch API errors on every Task, never application failures', () => {
    assert.equal(tasks.length, 9);
    for (const { name, state } of tasks) {
      const retry = state.Retry as Json[] | undefined;
      assert.ok(retry !== undefined && retry.length > 0, `${name} has no Retry`);
      const retried = retry.flatMap((rule) => rule.ErrorEquals as string[]);
      const expected = isLambdaTask(state) ? LAMBDA_TRANSIENT : isBatchTask(state) ? BATCH_TRANSIENT : undefined;
      assert.ok(expected !== undefined, `${name}: unexpected Resource ${String(state.Resource)}`);
      for (const error of expected) assert.ok(retried.includes(error), `${name} does not retry ${error}`);
      // A failed job (States.TaskFailed) or a handler bug must not be re-run blindly: Batch's own
      // retry strategy handles spot reclaim, and a code error would only fail again.
      for (const error of ['States.ALL', 'States.TaskFailed']) {
        assert.ok(!retried.includes(error), `${name} retries ${error}`);
      }
      for (const rule of retry) assert.ok(Number(rule.MaxAttempts) <= 10, `${name}: unbounded retry`);
      // Explicit because the embedded runner times Tasks out after 60 s by default.
      assert.ok(Number(state.TimeoutSeconds) >= (isBatchTask(state) ? 86_400 : 300), `${name}: TimeoutSeconds`);
    }
  });

  it('sends every failure to RecordFailure, which then fails the execution', () => {
    const states = definition.States as Record<string, Json>;
    for (const { name, state } of topLevel) {
      if (!['Task', 'Map'].includes(state.Type as string) || name === 'RecordFailure') continue;
      const catchers = state.Catch as Json[] | undefined;
      assert.ok(catchers !== undefined, `${name} has no Catch`);
      assert.deepEqual(
        catchers.map((rule) => [rule.ErrorEquals, rule.Next, rule.ResultPath]),
        [[['States.ALL'], 'RecordFailure', '$.error']],
        name,
      );
    }
    // Inside a Map iteration only a failed first job is caught, and only to look for a capacity
    // cancellation; anything else ends in a Fail state that hands the job's own error to the
    // Map's Catch (a Catch there could not reach RecordFailure).
    const nestedCatches = allStates.filter((entry) => entry.nested && entry.state.Catch !== undefined);
    assert.deepEqual(nestedCatches.map((entry) => entry.name).sort(), ['FinalizeJob', 'SearchJob']);
    for (const { name, state } of nestedCatches) {
      const stage = name.replace(/Job$/, '');
      assert.deepEqual(state.Catch, [{ ErrorEquals: ['States.TaskFailed'], ResultPath: '$.job', Next: `${stage}CapacityCheck` }], name);
      const iteration = allStates.find((entry) => entry.name === `${stage}JobFailed`)?.state;
      assert.deepEqual([iteration?.Type, iteration?.ErrorPath, iteration?.CausePath], ['Fail', '$.job.Error', '$.job.Cause']);
    }
    // Every top-level Catch leads to RecordFailure, except RecordFailure's own, which must not loop.
    for (const { name, state } of topLevel) {
      for (const rule of (state.Catch as Json[] | undefined) ?? []) {
        assert.equal(rule.Next, name === 'RecordFailure' ? 'RunFailed' : 'RecordFailure', name);
      }
    }
    assert.equal(states.RecordFailure.Next, 'RunFailed');
    assert.equal(states.RecordFailure.Resource, substitutions.ReportFunctionArn);
    assert.equal(states.RecordFailure.ResultPath, null, 'RecordFailure must keep $.error for RunFailed');
    assert.equal(states.RunFailed.Type, 'Fail');
    assert.equal(states.RunFailed.ErrorPath, '$.error.Error');
  });

  it('keeps Batch job descriptions out of the state (only ids travel)', () => {
    for (const { name, state } of tasks.filter((entry) => isBatchTask(entry.state))) {
      const onDemand = name.endsWith('OnDemand');
      assert.deepEqual(Object.keys(state.ResultSelector as Json).sort(), onDemand ? ['capacity', 'jobId.$', 'status.$'] : ['jobId.$', 'status.$'], name);
      // The retry's result replaces the caught failure, whose Cause (a whole job description) must not travel on.
      assert.equal(state.ResultPath, '$.job', name);
      const parameters = state.Parameters as Json;
      if (onDemand) assert.equal(parameters['JobQueue.$'], '$.fallbackJobQueue', name);
      else assert.equal(parameters.JobQueue, substitutions.JobQueueArn, name);
    }
    for (const map of ['Search', 'Finalize']) {
      const selector = ((definition.States as Record<string, Json>)[map].ItemSelector ?? {}) as Json;
      assert.equal(selector.fallbackJobQueue, substitutions.FallbackJobQueueArn, map);
    }
    for (const { name, state } of tasks.filter((entry) => isLambdaTask(entry.state))) {
      if (name !== 'RecordFailure') assert.ok(state.ResultSelector !== undefined, `${name} keeps its whole result`);
    }
  });
});

describe('the definition executed by aws-local-stepfunctions (the embedded runner)', () => {
  interface Calls {
    plan: unknown[];
    search: Json[];
    searchOnDemand: Json[];
    merge: unknown[];
    finalize: Json[];
    finalizeOnDemand: Json[];
    register: Json[];
    report: Json[];
    recordFailure: Json[];
  }

  /** A failed Batch task as Step Functions reports it: States.TaskFailed, the job description as the Cause. */
  function failedJob(statusReason: string, id = 'job-1'): Error {
    const description = { JobId: id, Status: 'FAILED', StatusReason: statusReason, Container: { LogStreamName: 'y'.repeat(5_000) } };
    return Object.assign(new Error(JSON.stringify(description)), { name: 'States.TaskFailed' });
  }

  interface MachineOptions {
    readonly failAt?: string;
    readonly transientOnce?: string;
    /** Per Batch task state, what its n-th call throws (undefined: succeeds). */
    readonly jobFailures?: Partial<Record<string, (call: number, event: Json) => Error | undefined>>;
    readonly machine?: Record<string, unknown>;
  }

  function runMachine(input: Json, options: MachineOptions = {}) {
    const calls: Calls = { plan: [], search: [], searchOnDemand: [], merge: [], finalize: [], finalizeOnDemand: [], register: [], report: [], recordFailure: [] };
    let transientThrown = false;
    const maybeFail = (state: string): void => {
      if (state === options.transientOnce && !transientThrown) {
        transientThrown = true;
        throw Object.assign(new Error('Rate exceeded'), { name: 'Lambda.TooManyRequestsException' });
      }
      if (state === options.failAt) throw Object.assign(new Error(`${state} broke`), { name: 'EmoDirError' });
    };
    // The Batch job description is large; the state machine must drop all but id and status.
    const jobDescription = (id: string): Json => ({
      JobId: id, Status: 'SUCCEEDED', JobName: 'x', Container: { LogStreamName: 'y'.repeat(10_000) },
    });
    const batchTask = (state: string, list: Json[], prefix: string) => (event: unknown) => {
      list.push(event as Json);
      maybeFail(state);
      const failure = options.jobFailures?.[state]?.(list.length, event as Json);
      if (failure !== undefined) throw failure;
      return jobDescription(`${prefix}-${list.length}`);
    };
    const machine = new StateMachine((options.machine ?? definition) as unknown as StateMachineDefinition, {
      validationOptions: { checkArn: true, checkPaths: true },
    });
    const execution = machine.run(input as never, {
      overrides: {
        retryIntervalOverrides: { [TASK_STATES.plan]: 0, [TASK_STATES.merge]: 0 },
        // The handlers return plain objects; the library's JSONValue type is stricter than Json.
        taskResourceLocalHandlers: ({
          [TASK_STATES.plan]: (event) => {
            calls.plan.push(event);
            maybeFail(TASK_STATES.plan);
            return { manifestKey: 'runs/r1/manifest.json', subnetworks: ['000', '001', '002'], extra: 'dropped' };
          },
          [TASK_STATES.searchJob]: batchTask(TASK_STATES.searchJob, calls.search, 'search'),
          [TASK_STATES.searchJobOnDemand]: batchTask(TASK_STATES.searchJobOnDemand, calls.searchOnDemand, 'search-od'),
          [TASK_STATES.merge]: (event) => {
            calls.merge.push(event);
            maybeFail(TASK_STATES.merge);
            return { jointFrontKey: 'runs/r1/merge/joint-front.json', targets: ['flops50', 'flops70'] };
          },
          [TASK_STATES.finalizeJob]: batchTask(TASK_STATES.finalizeJob, calls.finalize, 'finalize'),
          [TASK_STATES.finalizeJobOnDemand]: batchTask(TASK_STATES.finalizeJobOnDemand, calls.finalizeOnDemand, 'finalize-od'),
          [TASK_STATES.registerModels]: (event) => {
            calls.register.push(event as Json);
            return { runId: 'r1', registrationKey: 'runs/r1/model-packages.json', registered: 2, failed: 0 };
          },
          [TASK_STATES.report]: (event) => {
            calls.report.push(event as Json);
            return { reportKey: 'runs/r1/report.json', htmlKey: 'runs/r1/report.html' };
          },
          [TASK_STATES.recordFailure]: (event) => {
            calls.recordFailure.push(event as Json);
            return { statusKey: 'runs/r1/status.json' };
          },
        } satisfies Record<string, LocalHandler>) as unknown as TaskHandlers,
      },
    });
    return { calls, result: execution.result };
  }

  const START = { runId: 'r1', specKey: 'runs/r1/spec.json' };

  it('runs a whole pipeline with only keys and ids in the state', async () => {
    const { calls, result } = runMachine(START, { transientOnce: TASK_STATES.plan });
    const output = (await result) as Json;
    assert.equal(calls.plan.length, 2, 'a throttled Plan is retried');
    assert.deepEqual(calls.plan[1], { runId: 'r1', specKey: 'runs/r1/spec.json' });
    // Batch jobs get the worker's command line and the ids as environment.
    assert.deepEqual(calls.search.map((event) => event.JobQueue), Array(3).fill(substitutions.JobQueueArn));
    assert.deepEqual(
      calls.search.map((event) => (event.ContainerOverrides as Json).Command).sort(),
      ['000', '001', '002'].map((subnet) => ['search', '--run-id', 'r1', '--subnet', subnet]),
    );
    assert.deepEqual((calls.search[0].ContainerOverrides as Json).Environment, [
      { Name: 'EMO_DIR_RUN_ID', Value: 'r1' },
      { Name: 'EMO_DIR_SUBNET', Value: ((calls.search[0].ContainerOverrides as Json).Command as string[])[4] },
    ]);
    assert.deepEqual(calls.merge, [{ runId: 'r1', manifestKey: 'runs/r1/manifest.json' }]);
    assert.deepEqual(
      calls.finalize.map((event) => (event.ContainerOverrides as Json).Command).sort(),
      [['finalize', '--run-id', 'r1', '--target', 'flops50'], ['finalize', '--run-id', 'r1', '--target', 'flops70']],
    );
    assert.equal(calls.finalize[0].JobDefinition, substitutions.FinalizeJobDefinitionArn);
    assert.equal(calls.searchOnDemand.length + calls.finalizeOnDemand.length, 0, 'nothing fell back');
    assert.equal(calls.register.length, 0, 'a run without a model package registers nothing');
    assert.equal(calls.report.length, 1);
    assert.equal(calls.report[0].action, 'report');
    assert.equal(calls.recordFailure.length, 0);

    assert.deepEqual(output.limits, { maxConcurrency: 16 }, 'the deployment\'s default concurrency was applied');
    assert.deepEqual(output.plan, { manifestKey: 'runs/r1/manifest.json', subnetworks: ['000', '001', '002'] });
    assert.deepEqual(output.report, { reportKey: 'runs/r1/report.json', htmlKey: 'runs/r1/report.html' });
    const searchJobs = (output.searchJobs as Json[]).map((item) => item.job as Json);
    assert.deepEqual(searchJobs.map((job) => job.jobId).sort(), ['search-1', 'search-2', 'search-3']);
    for (const job of searchJobs) assert.deepEqual(Object.keys(job).sort(), ['jobId', 'status']);
    assert.ok(JSON.stringify(output).length < 2_500, `state grew to ${JSON.stringify(output).length} bytes`);
  });

  it('takes the deployment\'s default concurrency from its substitution', async () => {
    const { result } = runMachine(START, { machine: loadDefinition({ ...substitutions, DefaultMaxConcurrency: '3' }) });
    assert.deepEqual(((await result) as Json).limits, { maxConcurrency: 3 });
  });

  it('honours a whole maxConcurrency from the input', async () => {
    const { result } = runMachine({ ...START, maxConcurrency: 2 });
    assert.equal((((await result) as Json).limits as Json).maxConcurrency, 2);
  });

  for (const bad of [2.5, 0, -3, 10_001, '4', null, { n: 4 }]) {
    it(`refuses maxConcurrency ${JSON.stringify(bad)} with a caught error that RecordFailure records`, async () => {
      const { calls, result } = runMachine({ ...START, maxConcurrency: bad });
      await assert.rejects(result, (error: unknown) => {
        assert.ok(error instanceof ExecutionError, String(error));
        assert.equal((error as { cause?: Error }).cause?.name, 'EmoDir.InvalidExecutionInput');
        return true;
      });
      assert.equal(calls.plan.length, 0, 'nothing ran');
      assert.equal(calls.recordFailure.length, 1);
      const recorded = calls.recordFailure[0].error as Json;
      assert.equal(recorded.Error, 'EmoDir.InvalidExecutionInput');
      assert.match(String(recorded.Cause), /maxConcurrency must be a whole number from 1 to 10000, got /);
      assert.ok(String(recorded.Cause).endsWith(JSON.stringify(bad)), String(recorded.Cause));
    });
  }

  it('records a failure in the run status and fails the execution with the original error', async () => {
    const { calls, result } = runMachine(START, { failAt: TASK_STATES.merge });
    await assert.rejects(result, (error: unknown) => {
      assert.ok(error instanceof ExecutionError, String(error));
      assert.match(`${error.message} ${String((error as { cause?: unknown }).cause)}`, /EmoDirError|Merge broke/);
      return true;
    });
    assert.equal(calls.finalize.length, 0);
    assert.equal(calls.report.length, 0);
    assert.equal(calls.recordFailure.length, 1);
    const recorded = calls.recordFailure[0];
    assert.equal(recorded.action, 'recordFailure');
    assert.equal(recorded.runId, 'r1');
    assert.equal((recorded.error as Json).Error, 'EmoDirError');
    assert.match(String((recorded.error as Json).Cause), /Merge broke/);
  });

  it('records a failed Batch job inside a Map the same way', async () => {
    const { calls, result } = runMachine(START, { failAt: TASK_STATES.searchJob });
    await assert.rejects(result, ExecutionError);
    assert.equal(calls.merge.length, 0);
    assert.equal(calls.recordFailure.length, 1);
    assert.equal((calls.recordFailure[0].error as Json).Error, 'EmoDirError');
  });

  describe('capacity fallback', () => {
    const capacityCancelOf = (subnet: string) => (_call: number, event: Json) =>
      ((event.ContainerOverrides as Json).Command as string[])[4] === subnet ? failedJob(CAPACITY_CANCEL_REASON) : undefined;

    it('submits a job the Spot queue cancelled for capacity again to the On-Demand queue, and the run goes on', async () => {
      const { calls, result } = runMachine(START, { jobFailures: { [TASK_STATES.searchJob]: capacityCancelOf('001') } });
      const output = (await result) as Json;
      assert.equal(calls.search.length, 3);
      assert.equal(calls.searchOnDemand.length, 1, 'only the cancelled job falls back');
      const retry = calls.searchOnDemand[0];
      assert.equal(retry.JobQueue, substitutions.FallbackJobQueueArn);
      assert.equal(retry.JobDefinition, substitutions.SearchJobDefinitionArn);
      assert.deepEqual((retry.ContainerOverrides as Json).Command, ['search', '--run-id', 'r1', '--subnet', '001']);
      assert.equal(calls.merge.length, 1);
      assert.equal(calls.recordFailure.length, 0);
      const jobs = output.searchJobs as Json[];
      const fellBack = jobs.find((item) => item.subnet === '001');
      assert.deepEqual(fellBack?.job, { jobId: 'search-od-1', status: 'SUCCEEDED', capacity: 'on-demand' });
      // The caught failure (a whole job description) does not travel on.
      assert.doesNotMatch(JSON.stringify(output), /JobStateTimeLimit/);
    });

    it('does the same for a Finalize job', async () => {
      const firstOnly = (call: number) => (call === 1 ? failedJob(CAPACITY_CANCEL_REASON) : undefined);
      const { calls, result } = runMachine(START, { jobFailures: { [TASK_STATES.finalizeJob]: firstOnly } });
      await result;
      assert.equal(calls.finalizeOnDemand.length, 1);
      assert.equal(calls.finalizeOnDemand[0].JobQueue, substitutions.FallbackJobQueueArn);
      assert.equal(calls.report.length, 1);
    });

    for (const [why, reason] of [
      ['an application failure', 'Essential container in task exited'],
      ['a misconfiguration cancellation', 'Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT'],
      ['a user cancellation', 'Cancelled by the user'],
    ] as const) {
      it(`does not fall back after ${why}: the run fails with the job's own error`, async () => {
        const { calls, result } = runMachine(START, { jobFailures: { [TASK_STATES.searchJob]: (call) => (call === 1 ? failedJob(reason) : undefined) } });
        await assert.rejects(result, ExecutionError);
        assert.equal(calls.searchOnDemand.length, 0);
        assert.equal(calls.recordFailure.length, 1);
        const recorded = calls.recordFailure[0].error as Json;
        assert.equal(recorded.Error, 'States.TaskFailed');
        assert.equal((JSON.parse(String(recorded.Cause)) as Json).StatusReason, reason);
      });
    }

    it('does not fall back in a deployment without an On-Demand queue', async () => {
      const { calls, result } = runMachine(START, { machine: singleQueueDefinition, jobFailures: { [TASK_STATES.searchJob]: capacityCancelOf('000') } });
      await assert.rejects(result, ExecutionError);
      assert.equal(calls.searchOnDemand.length, 0);
      assert.equal((JSON.parse(String((calls.recordFailure[0].error as Json).Cause)) as Json).StatusReason, CAPACITY_CANCEL_REASON);
    });

    it('fails the run when the On-Demand retry fails too', async () => {
      const { calls, result } = runMachine(START, {
        jobFailures: {
          [TASK_STATES.searchJob]: capacityCancelOf('002'),
          [TASK_STATES.searchJobOnDemand]: () => failedJob(CAPACITY_CANCEL_REASON, 'job-od'),
        },
      });
      await assert.rejects(result, ExecutionError);
      assert.equal(calls.searchOnDemand.length, 1, 'one fallback, no loop');
      assert.equal((JSON.parse(String((calls.recordFailure[0].error as Json).Cause)) as Json).JobId, 'job-od');
    });

    it('runs in the embedded mode: the On-Demand queue is the same local workers', async () => {
      const submitted: { label: string; queue: string | undefined }[] = [];
      const jobRunner = capacityShortJobRunner(submitted, 'search 001');
      const report = async () => ({ reportKey: 'runs/r1/report.json', htmlKey: 'runs/r1/report.html' });
      const outcome = await runStateMachineLocally({
        definition: loadDefinition(LOCAL_SUBSTITUTIONS),
        input: START,
        lambdas: {
          [LOCAL_ARNS.PlanFunctionArn]: async () => ({ manifestKey: 'runs/r1/manifest.json', subnetworks: ['000', '001'] }),
          [LOCAL_ARNS.MergeFunctionArn]: async () => ({ jointFrontKey: 'runs/r1/merge/joint-front.json', targets: ['t50'] }),
          [LOCAL_ARNS.ReportFunctionArn]: report,
        },
        jobRunner,
      });
      assert.equal(outcome.status, 'SUCCEEDED', JSON.stringify(outcome.error));
      assert.deepEqual(
        submitted.filter((job) => job.label === 'search 001').map((job) => job.queue),
        [LOCAL_ARNS.JobQueueArn, LOCAL_ARNS.FallbackJobQueueArn],
      );
      assert.deepEqual(outcome.jobs.map((record) => record.status).sort(), ['CANCELLED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    });
  });

  it('registers the pruned models before the report when the run came from a model package', async () => {
    const { calls, result } = runMachine({ ...START, modelPackageKey: 'runs/r1/model-package.json' });
    const output = (await result) as Json;
    assert.deepEqual(calls.register, [{ runId: 'r1', modelPackageKey: 'runs/r1/model-package.json', targets: ['flops50', 'flops70'] }]);
    assert.deepEqual(output.registration, { registrationKey: 'runs/r1/model-packages.json' });
    assert.equal(calls.report.length, 1);
  });
});

/**
 * A JobRunner whose queue of the first job named `short` has no capacity: that submission is
 * cancelled as jobStateTimeLimitActions cancels it; every other job succeeds at once.
 */
function capacityShortJobRunner(submitted: { label: string; queue: string | undefined }[], short: string): JobRunner {
  const records: JobRecord[] = [];
  const record = (job: LocalJob, status: JobRecord['status'], statusReason: string): JobRecord => {
    const now = Date.now();
    const finished: JobRecord = { job, status, statusReason, attempts: [], createdAt: now, stoppedAt: now, workerSeconds: 0, logTail: [] };
    records.push(finished);
    return finished;
  };
  return {
    concurrency: 2,
    records,
    stop: async () => undefined,
    async run(job: LocalJob): Promise<JobRecord> {
      submitted.push({ label: job.label, queue: job.jobQueue });
      if (job.label === short && job.jobQueue === LOCAL_ARNS.JobQueueArn) throw new JobCancelledError(record(job, 'CANCELLED', CAPACITY_CANCEL_REASON));
      if (job.label === 'never') throw new JobFailedError(record(job, 'FAILED', 'unreachable'));
      return record(job, 'SUCCEEDED', 'Essential container in task exited');
    },
  };
}
