/**
 * The pipeline's Lambda handlers (functions/plan.ts, merge.ts, report.ts, record-failure.ts):
 * thin adapters that parse their event, call one library function and return only keys. Checked
 * one by one, and end to end through the real state machine definition in the embedded runner
 * (Batch jobs replaced by functions that write what the search and finalize workers write), so
 * the events the ASL builds are the events the handlers accept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMergeHandler } from '../../functions/merge.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { createRecordFailureHandler } from '../../functions/record-failure.ts';
import { createReportHandler } from '../../functions/report.ts';
import { initEngine } from '../../src/engine/backend.ts';
import { encodeGenome } from '../../src/emo/genome.ts';
import { planSchema, type Manifest } from '../../src/dir/manifest.ts';
import { readManifest } from '../../src/dir/plan.ts';
import { LOCAL_ARNS, LOCAL_SUBSTITUTIONS, runStateMachineLocally } from '../../src/local/embedded-runner.ts';
import { FunctionJobRunner } from '../../src/local/job-runner.ts';
import { parseReport } from '../../src/schema/report.ts';
import { runStatusRecordSchema } from '../../src/schema/messages.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import { FileStore, getJson, putJson } from '../../src/store/index.ts';
import { loadDefinition } from '../../statemachine/definition.ts';
import { CapturingLogger } from './capture-logger.ts';
import { sampleMetrics } from '../cloud/helpers.ts';

const spec = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist' },
  targets: [{ kind: 'flopsCut', value: 0.5 }, { kind: 'flopsCut', value: 0.99, name: 'impossible' }],
};
const PAYLOAD_LIMIT = 4 * 1024;

let dir: string;
let store: FileStore;
const logger = new CapturingLogger();
const deps = (): { store: FileStore; logger: CapturingLogger } => ({ store, logger });

/** What a search worker writes: the unpruned point + 10 pruned points, prunable-part costs. */
async function writeFront(manifest: Manifest, subnetId: string): Promise<void> {
  const index = manifest.subnetworks.indexOf(subnetId);
  const subnet = manifest.division.subnetworks[index];
  // As src/dir/search-task.ts writes it: costs of the whole piece, plus fields the merge ignores.
  const original = { macs: subnet.macs, params: subnet.params };
  const fixed = { macs: subnet.macs - subnet.prunableMacs, params: subnet.params - subnet.prunableParams };
  const genome = (keep: number): string => {
    const bits = new Uint8Array(subnet.genomeLength);
    for (let i = 0; i < Math.max(1, Math.round(keep * bits.length)); i++) bits[i] = 1;
    return encodeGenome(bits);
  };
  const points = [{ id: 'p00', genome: genome(1), flops: 1, paramsRatio: 1, ...original, impairment: 0, accuracy: 0.9, loss: 0.3 }];
  for (let j = 1; j <= 10; j++) {
    const r = 1 - j * 0.085;
    const macs = fixed.macs + Math.round(subnet.prunableMacs * r ** 1.7);
    const params = fixed.params + Math.round(subnet.prunableParams * r ** 1.7);
    const impairment = (0.3 + index / 5) * (1 - r) ** 2;
    points.push({ id: `p${String(j).padStart(2, '0')}`, genome: genome(r), flops: macs / original.macs, paramsRatio: params / original.params, macs, params, impairment, accuracy: 0.9 - impairment / 4, loss: 0.3 + impairment });
  }
  await putJson(store, `runs/${manifest.runId}/subnets/${subnetId}/front.json`, {
    format: 'emo-dir-front',
    version: 1,
    runId: manifest.runId,
    subnet: subnetId,
    objective: 'flops',
    genomeLength: subnet.genomeLength,
    original,
    baseline: { loss: 0.3, accuracy: 0.9 },
    unprunedId: 'p00',
    points,
    evaluations: 100,
    generations: 5,
    stopReason: 'generations',
  });
}

/** What a finalize worker writes: metrics of the plan's best scheme. */
async function writeMetrics(runId: string, target: string): Promise<void> {
  const plan = planSchema.parse(await getJson(store, `runs/${runId}/merge/plans/${target}.json`));
  const scheme = plan.schemes[0];
  // A complete metrics.json (its one schema, src/schema/metrics.ts) with the plan's numbers.
  await putJson(
    store,
    `runs/${runId}/targets/${target}/metrics.json`,
    sampleMetrics(runId, target, {
      targetSpec: { name: target, kind: plan.target.kind, value: plan.target.value },
      scheme: { rank: 1, choice: {}, estimatedImpairment: scheme.estimatedImpairment },
      achieved: { macs: scheme.macs, params: scheme.params, flopsCut: scheme.flopsCut, paramsCut: scheme.paramsCut },
      original: { macs: plan.original.macs, params: plan.original.params },
      estimatedImpairment: scheme.estimatedImpairment,
      measuredImpairment: scheme.estimatedImpairment + 0.01,
      estimateError: 0.01,
      accuracy: { beforeFineTune: 0.6, afterFineTune: 0.88, original: 0.9 },
      fineTuneEpochs: 1,
      fineTuneSeconds: 30,
      modelKey: `runs/${runId}/targets/${target}/model/`,
      layers: [{ name: 'stem_conv', className: 'Conv2D', channelsBefore: 16, channelsAfter: 8 }],
    }),
  );
}

async function rejectsEvent(promise: Promise<unknown>, source: RegExp, field: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
    assert.match(error.message, source);
    assert.match(error.message, field);
    return true;
  });
}

function assertSmall(result: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(result));
  assert.ok(bytes < PAYLOAD_LIMIT, `handler result is ${bytes} bytes`);
}

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-handlers-'));
  store = new FileStore(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pipeline handlers, one by one', () => {
  test('plan -> merge -> report return only keys and ids, small', async () => {
    await putJson(store, 'runs/h1/spec.json', spec);
    const planned = await createPlanHandler(deps())({ runId: 'h1', specKey: 'runs/h1/spec.json' });
    assert.deepEqual(planned, { runId: 'h1', manifestKey: 'runs/h1/manifest.json', subnetworks: ['k1', 'k2', 'k3'], targets: ['flops-50', 'impossible'] });
    assertSmall(planned);

    const manifest = await readManifest(store, 'h1');
    for (const id of planned.subnetworks) await writeFront(manifest, id);
    const merged = await createMergeHandler(deps())({ runId: 'h1', manifestKey: planned.manifestKey });
    assert.deepEqual(merged.targets, ['flops-50']);
    assert.deepEqual(merged.infeasibleTargets, ['impossible']);
    assert.equal(merged.jointFrontKey, 'runs/h1/merge/joint-front.json');
    assertSmall(merged);

    await writeMetrics('h1', 'flops-50');
    const reported = await createReportHandler(deps())({
      action: 'report',
      runId: 'h1',
      searchJobs: planned.subnetworks.map((subnet) => ({ runId: 'h1', subnet, job: { jobId: `j-${subnet}`, status: 'SUCCEEDED' } })),
      finalizeJobs: [{ runId: 'h1', target: 'flops-50', job: { jobId: 'j-f', status: 'SUCCEEDED' } }],
    });
    assert.deepEqual(reported, { reportKey: 'runs/h1/report.json', htmlKey: 'runs/h1/report.html', statusKey: 'runs/h1/status.json', status: 'partial' });
    assertSmall(reported);
    const report = parseReport(await getJson(store, reported.reportKey), reported.reportKey);
    assert.deepEqual(report.problems?.map((p) => [p.stage, p.subject]), [['merge', 'impossible']]);
    // The log lines carry the run id as correlation id.
    assert.ok(logger.items.some((item) => item.correlation_id === 'h1' && item.message === 'report written'), 'correlated log line');
  });

  test('a failed Batch job in the Report event becomes a problem', async () => {
    const reported = await createReportHandler(deps())({
      action: 'report',
      runId: 'h1',
      searchJobs: [],
      finalizeJobs: [{ runId: 'h1', target: 'flops-50', job: { jobId: 'j-f', status: 'FAILED' } }],
    });
    assert.ok('reportKey' in reported, 'a report result');
    const report = parseReport(await getJson(store, reported.reportKey), reported.reportKey);
    assert.ok(report.problems?.some((p) => p.stage === 'finalize' && p.subject === 'flops-50' && /j-f ended FAILED/.test(p.message)), 'job problem');
  });

  test('bad events are ValidationErrors naming the handler and the field', async () => {
    await rejectsEvent(createPlanHandler(deps())({ runId: 'h1' }), /invalid plan event/, /specKey/);
    await rejectsEvent(createPlanHandler(deps())({ runId: '../etc', specKey: 'runs/x/spec.json' }), /plan event/, /runId/);
    await rejectsEvent(createPlanHandler(deps())({ runId: 'h1', specKey: '/abs/spec.json' }), /plan event/, /specKey/);
    await rejectsEvent(createMergeHandler(deps())({ runId: 'h1', manifestKey: 42 }), /invalid merge event/, /manifestKey/);
    await rejectsEvent(createReportHandler(deps())({ action: 'explode', runId: 'h1' }), /invalid report event/, /action/);
    await rejectsEvent(createReportHandler(deps())({ action: 'recordFailure', runId: 'h1' }), /report event/, /error/);
    await rejectsEvent(createRecordFailureHandler(deps())({ runId: 'h1', error: { Cause: 'x' } }), /recordFailure event/, /error\.Error/);
  });

  test('recordFailure (through the Report function and on its own) writes status.json', async () => {
    const event = { action: 'recordFailure', runId: 'h2', error: { Error: 'MergeError', Cause: '{"errorType":"MergeError","errorMessage":"no front for k2"}' } };
    const viaReport = await createReportHandler({ ...deps(), now: () => new Date('2026-01-01T00:00:00Z') })(event);
    assert.deepEqual(viaReport, { runId: 'h2', statusKey: 'runs/h2/status.json' });
    const status = runStatusRecordSchema.parse(await getJson(store, 'runs/h2/status.json'));
    assert.deepEqual(
      { state: status.state, message: status.message, error: status.error, at: status.at },
      { state: 'failed', message: 'MergeError: no front for k2', error: 'MergeError', at: '2026-01-01T00:00:00.000Z' },
    );
    const alone = await createRecordFailureHandler(deps())({ runId: 'h3', error: { Error: 'States.Timeout' } });
    assert.deepEqual(alone, { runId: 'h3', statusKey: 'runs/h3/status.json' });
    assert.equal(runStatusRecordSchema.parse(await getJson(store, alone.statusKey)).message, 'States.Timeout');
  });

  test('without an injected store the handler reads EMO_DIR_STORE, and names it when unset', async () => {
    const fromEnv = createRecordFailureHandler({ env: { EMO_DIR_STORE: dir }, logger });
    assert.deepEqual(await fromEnv({ runId: 'h4', error: { Error: 'X' } }), { runId: 'h4', statusKey: 'runs/h4/status.json' });
    assert.equal(await store.exists('runs/h4/status.json'), true);
    await assert.rejects(createMergeHandler({ env: {}, logger })({ runId: 'h4', manifestKey: 'runs/h4/manifest.json' }), /EMO_DIR_STORE: is not set/);
  });
});

describe('pipeline handlers in the state machine (embedded runner)', () => {
  const definition = loadDefinition(LOCAL_SUBSTITUTIONS);
  const lambdas = (): Record<string, (event: unknown) => Promise<unknown>> => ({
    [LOCAL_ARNS.PlanFunctionArn]: createPlanHandler(deps()),
    [LOCAL_ARNS.MergeFunctionArn]: createMergeHandler(deps()),
    [LOCAL_ARNS.ReportFunctionArn]: createReportHandler(deps()),
  });
  const env = (job: { environment: Readonly<Record<string, string>> }, name: string): string => {
    const value = job.environment[name];
    if (value === undefined) throw new Error(`job without ${name}`);
    return value;
  };

  test('a run goes Plan -> Search -> Merge -> Finalize (feasible targets only) -> Report', async () => {
    await putJson(store, 'runs/e1/spec.json', spec);
    const finalized: string[] = [];
    const jobRunner = new FunctionJobRunner({
      concurrency: 4,
      log: () => undefined,
      fn: async (job) => {
        const runId = env(job, 'EMO_DIR_RUN_ID');
        if (job.definition === 'search') await writeFront(await readManifest(store, runId), env(job, 'EMO_DIR_SUBNET'));
        else {
          finalized.push(env(job, 'EMO_DIR_TARGET'));
          await writeMetrics(runId, env(job, 'EMO_DIR_TARGET'));
        }
      },
    });
    const result = await runStateMachineLocally({ definition, input: { runId: 'e1', specKey: 'runs/e1/spec.json' }, lambdas: lambdas(), jobRunner });
    assert.equal(result.status, 'SUCCEEDED', JSON.stringify(result.error));
    assert.deepEqual(finalized, ['flops-50']);
    const output = result.output as { plan: unknown; merge: unknown; report: unknown };
    assert.deepEqual(output.plan, { manifestKey: 'runs/e1/manifest.json', subnetworks: ['k1', 'k2', 'k3'] });
    assert.deepEqual(output.merge, { jointFrontKey: 'runs/e1/merge/joint-front.json', targets: ['flops-50'] });
    assert.deepEqual(output.report, { reportKey: 'runs/e1/report.json', htmlKey: 'runs/e1/report.html' });
    const report = parseReport(await getJson(store, 'runs/e1/report.json'), 'e1');
    assert.equal(report.status, 'partial'); // 'impossible' cannot be reached
    assert.equal(report.targets.find((t) => t.name === 'flops-50')?.accuracy?.afterFineTune, 0.88);
    await jobRunner.stop();
  });

  test('a failing step ends in RecordFailure, which writes status.json with the error', async () => {
    await putJson(store, 'runs/e2/spec.json', { ...spec, model: 'registry/missing/model/' });
    const jobRunner = new FunctionJobRunner({ concurrency: 1, log: () => undefined, fn: async () => undefined });
    const result = await runStateMachineLocally({ definition, input: { runId: 'e2', specKey: 'runs/e2/spec.json' }, lambdas: lambdas(), jobRunner });
    assert.equal(result.status, 'FAILED');
    assert.equal(result.error?.Error, 'PlanError');
    const status = runStatusRecordSchema.parse(await getJson(store, 'runs/e2/status.json'));
    assert.equal(status.state, 'failed');
    assert.match(status.message, /^PlanError: run spec runs\/e2\/spec\.json: field model: model 'registry\/missing\/model\/' not found/);
    await jobRunner.stop();
  });
});
