import assert from 'node:assert/strict';
import { installPolyfills } from '../../src/local/polyfills.ts';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { ExecutionError, StateMachine, type RunOptions, type StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  SUBSTITUTION_NAMES,
  TASK_STATES,
  loadDefinition,
  placeholdersIn,
  readDefinitionText,
  type Substitutions,
} from '../../statemachine/definition.ts';

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
  JobQueueArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-queue/emo-dir-gpu`,
  SearchJobDefinitionArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-definition/emo-dir-search:1`,
  FinalizeJobDefinitionArn: `arn:aws:batch:eu-west-1:${ACCOUNT}:job-definition/emo-dir-finalize:1`,
};
const definition = loadDefinition(substitutions);

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
      assert.equal(state.MaxConcurrencyPath, '$.maxConcurrency', name);
    }
  });

  it('follows Plan -> Search -> Merge -> Finalize -> Report -> Done', () => {
    const path: string[] = [];
    let current = definition.StartAt as string;
    const states = definition.States as Record<string, Json>;
    while (current !== undefined && path.length < 20) {
      path.push(current);
      const state = states[current];
      current = (state.Next ?? (state.Type === 'Choice' ? state.Default : undefined)) as string;
    }
    assert.deepEqual(path, ['CheckMaxConcurrency', 'DefaultMaxConcurrency', 'Plan', 'Search', 'Merge', 'Finalize', 'Report', 'Done']);
    assert.equal(states.Done.Type, 'Succeed');
  });

  it('retries transient Lambda and Batch API errors on every Task, never application failures', () => {
    assert.equal(tasks.length, 6);
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
    // Catch inside a Map iteration could not reach RecordFailure; the Map's own Catch does.
    for (const { name, state } of allStates.filter((entry) => entry.nested)) {
      assert.equal(state.Catch, undefined, `${name} catches inside a Map`);
    }
    // Every Catch anywhere leads to RecordFailure, except RecordFailure's own, which must not loop.
    for (const { name, state } of allStates) {
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
      assert.deepEqual(Object.keys(state.ResultSelector as Json).sort(), ['jobId.$', 'status.$'], name);
      assert.equal(state.ResultPath, '$.job', name);
      const parameters = state.Parameters as Json;
      assert.ok(['${JobQueueArn}', substitutions.JobQueueArn].includes(parameters.JobQueue as string), name);
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
    merge: unknown[];
    finalize: Json[];
    report: Json[];
    recordFailure: Json[];
  }

  function runMachine(input: Json, failAt?: string, transientOnce?: string) {
    const calls: Calls = { plan: [], search: [], merge: [], finalize: [], report: [], recordFailure: [] };
    let transientThrown = false;
    const maybeFail = (state: string): void => {
      if (state === transientOnce && !transientThrown) {
        transientThrown = true;
        throw Object.assign(new Error('Rate exceeded'), { name: 'Lambda.TooManyRequestsException' });
      }
      if (state === failAt) throw Object.assign(new Error(`${state} broke`), { name: 'EmoDirError' });
    };
    // The Batch job description is large; the state machine must drop all but id and status.
    const jobDescription = (id: string): Json => ({
      JobId: id, Status: 'SUCCEEDED', JobName: 'x', Container: { LogStreamName: 'y'.repeat(10_000) },
    });
    const machine = new StateMachine(definition as unknown as StateMachineDefinition, {
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
          [TASK_STATES.searchJob]: (event) => {
            calls.search.push(event as Json);
            maybeFail(TASK_STATES.searchJob);
            return jobDescription(`search-${calls.search.length}`);
          },
          [TASK_STATES.merge]: (event) => {
            calls.merge.push(event);
            maybeFail(TASK_STATES.merge);
            return { jointFrontKey: 'runs/r1/merge/joint-front.json', targets: ['flops50', 'flops70'] };
          },
          [TASK_STATES.finalizeJob]: (event) => {
            calls.finalize.push(event as Json);
            return jobDescription(`finalize-${calls.finalize.length}`);
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

  it('runs a whole pipeline with only keys and ids in the state', async () => {
    const { calls, result } = runMachine({ runId: 'r1', specKey: 'runs/r1/spec.json' }, undefined, TASK_STATES.plan);
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
    assert.equal(calls.report.length, 1);
    assert.equal(calls.report[0].action, 'report');
    assert.equal(calls.recordFailure.length, 0);

    assert.equal(output.maxConcurrency, 16, 'the default concurrency was applied');
    assert.deepEqual(output.plan, { manifestKey: 'runs/r1/manifest.json', subnetworks: ['000', '001', '002'] });
    assert.deepEqual(output.report, { reportKey: 'runs/r1/report.json', htmlKey: 'runs/r1/report.html' });
    const searchJobs = (output.searchJobs as Json[]).map((item) => item.job as Json);
    assert.deepEqual(searchJobs.map((job) => job.jobId).sort(), ['search-1', 'search-2', 'search-3']);
    for (const job of searchJobs) assert.deepEqual(Object.keys(job).sort(), ['jobId', 'status']);
    assert.ok(JSON.stringify(output).length < 2_000, `state grew to ${JSON.stringify(output).length} bytes`);
  });

  it('honours maxConcurrency from the input', async () => {
    const { result } = runMachine({ runId: 'r1', specKey: 'runs/r1/spec.json', maxConcurrency: 2 });
    assert.equal(((await result) as Json).maxConcurrency, 2);
  });

  it('records a failure in the run status and fails the execution with the original error', async () => {
    const { calls, result } = runMachine({ runId: 'r1', specKey: 'runs/r1/spec.json' }, TASK_STATES.merge);
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
    const { calls, result } = runMachine({ runId: 'r1', specKey: 'runs/r1/spec.json' }, TASK_STATES.searchJob);
    await assert.rejects(result, ExecutionError);
    assert.equal(calls.merge.length, 0);
    assert.equal(calls.recordFailure.length, 1);
    assert.equal((calls.recordFailure[0].error as Json).Error, 'EmoDirError');
  });
});
