// The translation layer between the ASL and the local stand-ins, with the REAL definition and an
// in-process FunctionJobRunner (no processes: these tests are about the state machine side).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadDefinition } from '../../statemachine/definition.ts';
import {
  LOCAL_ARNS,
  LOCAL_SUBSTITUTIONS,
  LOCAL_JOB_DEFINITIONS,
  STATE_DATA_LIMIT_BYTES,
  describeJob,
  localJobFrom,
  runStateMachineLocally,
  taskStatesOf,
  type LambdaFunction,
} from '../../src/local/embedded-runner.ts';
import { FunctionJobRunner, type JobFunction, type LocalJob } from '../../src/local/job-runner.ts';

type Json = Record<string, unknown>;
const definition = loadDefinition(LOCAL_SUBSTITUTIONS);
const input = { runId: 'r1', specKey: 'runs/r1/spec.json' };

function lambdas(overrides: Partial<Record<'plan' | 'merge' | 'report', LambdaFunction>> = {}, events: Json[] = []) {
  return {
    [LOCAL_ARNS.PlanFunctionArn]: overrides.plan ?? (async () => ({ manifestKey: 'runs/r1/manifest.json', subnetworks: ['000', '001'] })),
    [LOCAL_ARNS.MergeFunctionArn]: overrides.merge ?? (async () => ({ jointFrontKey: 'runs/r1/merge/joint-front.json', targets: ['t50'] })),
    [LOCAL_ARNS.ReportFunctionArn]:
      overrides.report ??
      (async (event: unknown) => {
        events.push(event as Json);
        return { reportKey: 'runs/r1/report.json', htmlKey: 'runs/r1/report.html' };
      }),
  };
}

function functionRunner(fn: JobFunction = async () => {}, concurrency = 4) {
  return new FunctionJobRunner({ concurrency, fn, log: () => {}, killGraceMs: 200 });
}

describe('SubmitJob parameters -> local job', () => {
  const parameters = {
    JobName: 'emo-dir-search',
    JobQueue: LOCAL_ARNS.JobQueueArn,
    JobDefinition: LOCAL_ARNS.SearchJobDefinitionArn,
    ContainerOverrides: {
      Command: ['search', '--run-id', 'r1', '--subnet', '003'],
      Environment: [{ Name: 'EMO_DIR_RUN_ID', Value: 'r1' }, { Name: 'EMO_DIR_SUBNET', Value: '003' }],
    },
    Tags: { 'emo-dir:run-id': 'r1' },
    PropagateTags: true,
  };

  it('takes the command and environment overrides and the kind of job from the job definition', () => {
    const job = localJobFrom('SearchJob', parameters, LOCAL_JOB_DEFINITIONS, 'id-1');
    assert.deepEqual(job, {
      jobId: 'id-1',
      jobName: 'emo-dir-search',
      definition: 'search',
      command: ['search', '--run-id', 'r1', '--subnet', '003'],
      environment: { EMO_DIR_RUN_ID: 'r1', EMO_DIR_SUBNET: '003' },
      label: 'search 003',
      jobQueue: LOCAL_ARNS.JobQueueArn,
    });
  });

  it('refuses what it cannot run as Batch would refuse a bad request (Batch.ClientException)', () => {
    const refused = (value: unknown, pattern: RegExp): void =>
      assert.throws(() => localJobFrom('SearchJob', value, LOCAL_JOB_DEFINITIONS), (error: Error) => error.name === 'Batch.ClientException' && pattern.test(error.message));
    refused({ ...parameters, JobDefinition: 'arn:aws:batch:eu-west-1:1:job-definition/other:1' }, /unknown job definition .*other/);
    refused({ ...parameters, ContainerOverrides: { Environment: [] } }, /Command is required/);
    refused({ ...parameters, JobName: undefined }, /JobName/);
    refused({ ...parameters, Parameters: { a: 'b' } }, /Parameters are not supported/);
    refused({ ...parameters, ContainerOverrides: { ...parameters.ContainerOverrides, Environment: [{ Name: 'AWS_BATCH_JOB_ATTEMPT', Value: '9' }] } }, /reserved/);
  });

  it('describes a finished job as DescribeJobs does', () => {
    const job = localJobFrom('SearchJob', parameters, LOCAL_JOB_DEFINITIONS, 'id-2');
    const description = describeJob(
      {
        job, status: 'FAILED', statusReason: 'Essential container in task exited (exit code 3)', createdAt: 1, startedAt: 2, stoppedAt: 9, workerSeconds: 0.007, logTail: ['oops'],
        attempts: [{ attempt: 1, startedAt: 2, stoppedAt: 9, exitCode: 3, signal: null, reason: 'Essential container in task exited', statusReason: 'Essential container in task exited' }],
      },
      parameters,
    );
    assert.equal(description.JobId, 'id-2');
    assert.equal(description.Status, 'FAILED');
    assert.equal(description.JobDefinition, LOCAL_ARNS.SearchJobDefinitionArn);
    assert.deepEqual(description.Attempts, [{ Container: { ExitCode: 3, Reason: 'Essential container in task exited' }, StartedAt: 2, StoppedAt: 9, StatusReason: 'Essential container in task exited' }]);
    assert.deepEqual((description.Container as Json).ExitCode, 3);
    assert.deepEqual(description.LocalLogTail, ['oops']);
  });

  it('finds every Task of the definition with the Maps around it', () => {
    assert.deepEqual(
      taskStatesOf(definition).map((task) => [task.name, task.maps.join('/')]),
      [
        ['Plan', ''], ['SearchJob', 'Search'], ['SearchJobOnDemand', 'Search'], ['Merge', ''], ['FinalizeJob', 'Finalize'],
        ['FinalizeJobOnDemand', 'Finalize'], ['RegisterModels', ''], ['Report', ''], ['RecordFailure', ''],
      ],
    );
  });
});

describe('runStateMachineLocally', () => {
  it('runs the whole definition with in-process jobs; the jobs reach the state as job id and status', async () => {
    const jobs: LocalJob[] = [];
    const reports: Json[] = [];
    const stateEvents: string[] = [];
    const result = await runStateMachineLocally({
      definition,
      input,
      lambdas: lambdas({}, reports),
      jobRunner: functionRunner(async (job) => {
        jobs.push(job);
      }),
      onEvent: (event) => {
        if (event.type === 'StateEntered' && event.index === undefined) stateEvents.push(event.state?.name ?? '');
      },
    });
    assert.equal(result.status, 'SUCCEEDED', JSON.stringify(result.error));
    assert.deepEqual(stateEvents, ['CheckMaxConcurrency', 'DefaultMaxConcurrency', 'Plan', 'Search', 'Merge', 'Finalize', 'RegisterIfRequested', 'Report', 'Done']);
    assert.deepEqual(jobs.map((job) => job.label).sort(), ['finalize t50', 'search 000', 'search 001']);
    const output = result.output as Json;
    const searchJobs = output.searchJobs as { job: Json }[];
    assert.deepEqual(searchJobs.map((item) => item.job.status), ['SUCCEEDED', 'SUCCEEDED']);
    const ids = new Set(jobs.map((job) => job.jobId));
    assert.ok(searchJobs.every((item) => ids.has(String(item.job.jobId))));
    assert.equal(reports[0].action, 'report');
    assert.equal(result.jobs.length, 3);
  });

  it('surfaces a Lambda error as Lambda does: Error is its name, Cause the {errorType, errorMessage} JSON', async () => {
    const reports: Json[] = [];
    class MergeError extends Error {
      override name = 'MergeError';
    }
    const result = await runStateMachineLocally({
      definition,
      input,
      lambdas: lambdas({ merge: async () => { throw new MergeError('no fronts'); } }, reports),
      jobRunner: functionRunner(),
    });
    assert.equal(result.status, 'FAILED');
    assert.equal(result.error?.Error, 'MergeError');
    const recorded = reports.find((event) => event.action === 'recordFailure');
    assert.ok(recorded !== undefined);
    const error = recorded.error as { Error: string; Cause: string };
    assert.equal(error.Error, 'MergeError');
    const cause = JSON.parse(error.Cause) as Json;
    assert.equal(cause.errorType, 'MergeError');
    assert.equal(cause.errorMessage, 'no fronts');
    assert.ok(Array.isArray(cause.trace));
  });

  it('fails a Lambda result over 256 KiB with States.DataLimitExceeded, as Step Functions would', async () => {
    const result = await runStateMachineLocally({
      definition,
      input,
      lambdas: lambdas({ plan: async () => ({ manifestKey: 'm', subnetworks: ['0'], blob: 'x'.repeat(STATE_DATA_LIMIT_BYTES) }) }),
      jobRunner: functionRunner(),
    });
    assert.equal(result.status, 'FAILED');
    assert.equal(result.error?.Error, 'States.DataLimitExceeded');
  });

  it('refuses a definition with a Task it has no handler for, naming it', async () => {
    await assert.rejects(
      runStateMachineLocally({ definition, input, lambdas: { [LOCAL_ARNS.PlanFunctionArn]: async () => ({}) }, jobRunner: functionRunner() }),
      /no local handler for these Task states: Merge \(arn:aws:lambda:.*emo-dir-merge\), Report .*RecordFailure/,
    );
  });

  it('aborting stops the execution and cancels the running jobs', async () => {
    const controller = new AbortController();
    let started = 0;
    const runner = functionRunner(async (_job, { signal }) => {
      started++;
      if (started === 2) controller.abort();
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    });
    const result = await runStateMachineLocally({ definition, input, lambdas: lambdas(), jobRunner: runner, signal: controller.signal });
    assert.equal(result.status, 'ABORTED');
    assert.deepEqual(result.jobs.map((record) => record.status), ['CANCELLED', 'CANCELLED']);
  });

  it('adds little overhead per state: a run of no-op jobs costs well under a second of CPU', async () => {
    // The first run in a process also validates the definition (asl-validator, ~0.5 s), once.
    await runStateMachineLocally({ definition, input, lambdas: lambdas(), jobRunner: functionRunner() });
    // CPU time of this process, not wall time: other processes on a loaded machine stretch the
    // wall clock, not the work the interpreter does (everything here runs in this process).
    const cpu = process.cpuUsage();
    const result = await runStateMachineLocally({ definition, input, lambdas: lambdas(), jobRunner: functionRunner() });
    const { user, system } = process.cpuUsage(cpu);
    const seconds = (user + system) / 1e6;
    assert.equal(result.status, 'SUCCEEDED');
    assert.ok(seconds < 1, `orchestration overhead ${seconds.toFixed(3)} s of CPU`);
  });
});
