import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/backend.ts';
import { encodeGenome } from '../../src/emo/genome.ts';
import { planSchema, type FrontFile, type Manifest } from '../../src/dir/manifest.ts';
import { mergeRun } from '../../src/dir/merge-run.ts';
import { planRun, readManifest } from '../../src/dir/plan.ts';
import { buildReport, describeFailure, recordFailure, writeReport } from '../../src/report/build.ts';
import { parseReport } from '../../src/schema/report.ts';
import { runStatusRecordSchema } from '../../src/schema/messages.ts';
import { FileStore, getJson, getText, putJson } from '../../src/store/index.ts';
import type { RunSpecInput } from '../../src/schema/spec.ts';
import { sampleMetrics } from '../cloud/helpers.ts';

const spec: RunSpecInput = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist' },
  targets: [{ kind: 'flopsCut', value: 0.5 }, { kind: 'flopsCut', value: 0.7 }],
};
const NOW = new Date('2026-01-01T02:00:00Z');

/** A front.json as the search writes it: the unpruned point + 10 pruned ones (prunable-part costs). */
function syntheticFront(manifest: Manifest, index: number): FrontFile {
  const subnet = manifest.division.subnetworks[index];
  const original = { macs: subnet.prunableMacs, params: subnet.prunableParams };
  const severity = [0.8, 0.3, 0.5][index % 3];
  const genome = (keep: number): string => {
    const bits = new Uint8Array(subnet.genomeLength);
    for (let i = 0; i < Math.max(1, Math.round(keep * bits.length)); i++) bits[i] = 1;
    return encodeGenome(bits);
  };
  const points = [{ id: `${subnet.id}-p00`, genome: genome(1), flops: 1, ...original, impairment: 0, accuracy: 0.91 }];
  for (let j = 1; j <= 10; j++) {
    const r = 1 - j * 0.085;
    const macs = Math.round(original.macs * r ** 1.7);
    const params = Math.round(original.params * r ** 1.7);
    const impairment = Number((severity * (1 - r) ** 2 + 0.002 * j).toFixed(6));
    points.push({ id: `${subnet.id}-p${String(j).padStart(2, '0')}`, genome: genome(r), flops: macs / original.macs, macs, params, impairment, accuracy: Math.max(0, 0.91 - impairment / 3) });
  }
  return { runId: manifest.runId, subnet: subnet.id, objective: 'flops', original, points, evaluations: 160, generations: 8, stopReason: 'generations', searchSeconds: 120 };
}

let dir: string;
let store: FileStore;

/** Plan + fronts + merge + (for every feasible target) metrics that pick the plan's 2nd scheme. */
async function finishedRun(runId: string, runSpec: RunSpecInput = spec): Promise<Manifest> {
  await putJson(store, `runs/${runId}/spec.json`, runSpec);
  await planRun(store, runId, { now: new Date('2026-01-01T00:00:00Z') });
  const manifest = await readManifest(store, runId);
  for (let k = 0; k < manifest.subnetworks.length; k++) {
    const front = syntheticFront(manifest, k);
    if (k < 2) await putJson(store, `runs/${runId}/subnets/${manifest.subnetworks[k]}/front.json`, front);
    else {
      // As the search task writes it: no times in front.json (it is deterministic), they are in log.jsonl.
      const { searchSeconds: _seconds, ...timeless } = front;
      await putJson(store, `runs/${runId}/subnets/k3/front.json`, timeless);
      const lines = [
        { event: 'generation', subnet: 'k3', generation: 1, hypervolume: 0.31, elapsedMs: 60_000 },
        { event: 'generation', subnet: 'k3', generation: 2, hypervolume: 0.4, elapsedMs: 110_000 },
        { event: 'done', subnet: 'k3', searchElapsedMs: 120_000, sessionSeconds: 121 },
      ];
      await store.put(`runs/${runId}/subnets/k3/log.jsonl`, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"event":"gen`);
    }
  }
  const merged = await mergeRun(store, runId);
  for (const target of merged.targets) {
    const plan = planSchema.parse(await getJson(store, `runs/${runId}/merge/plans/${target}.json`));
    const scheme = plan.schemes[1];
    // A complete metrics.json (its one schema, src/schema/metrics.ts) with this plan's numbers.
    await putJson(
      store,
      `runs/${runId}/targets/${target}/metrics.json`,
      sampleMetrics(runId, target, {
        targetSpec: { name: target, kind: plan.target.kind, value: plan.target.value },
        schemeRank: 2,
        scheme: { rank: 2, choice: {}, estimatedImpairment: scheme.estimatedImpairment },
        achieved: { macs: scheme.macs, params: scheme.params, flopsCut: scheme.flopsCut, paramsCut: scheme.paramsCut },
        original: { macs: plan.original.macs, params: plan.original.params },
        estimatedImpairment: scheme.estimatedImpairment,
        measuredImpairment: scheme.estimatedImpairment * 1.1,
        estimateError: scheme.estimatedImpairment * 0.1,
        accuracy: { beforeFineTune: 0.7, afterFineTune: 0.89, original: 0.91 },
        fineTuneEpochs: 2,
        fineTuneSeconds: 300,
        seconds: 400,
        backend: undefined,
        modelKey: `runs/${runId}/targets/${target}/model/`,
        layers: [
          { name: 'stem_conv', className: 'Conv2D', channelsBefore: 16, channelsAfter: 12 },
          { name: 'head', className: 'Dense', channelsBefore: 10, channelsAfter: 10 },
        ],
      }),
    );
  }
  return manifest;
}

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-report-'));
  store = new FileStore(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('buildReport', () => {
  test('a finished run: status succeeded, every part present, chosen points marked, valid and renderable', async () => {
    const manifest = await finishedRun('ok');
    const report = await buildReport(store, 'ok', { now: NOW, usdPerGpuHour: 0.5 });
    parseReport(JSON.parse(JSON.stringify(report)), 'round trip');
    assert.equal(report.status, 'succeeded');
    assert.equal(report.problems, undefined);
    assert.equal(report.run.model, 'fmnist-resnet', 'the report names the network, not the spec reference');
    assert.equal(report.run.dataset, 'fashion-mnist');
    assert.equal(report.run.startedAt, '2026-01-01T00:00:00.000Z');
    assert.equal(report.run.wallSeconds, 7200);
    // Searches (front.json or log.jsonl) plus whole finalize jobs (metrics `seconds`).
    assert.equal(report.run.workerSeconds, 3 * 120 + 2 * 400);
    assert.deepEqual(report.cost, { workerSeconds: 1160, estimatedUsd: (1160 / 3600) * 0.5, usdPerGpuHour: 0.5 });
    assert.deepEqual(report.original, { macs: manifest.model.macs, params: manifest.model.params, accuracy: { test: 0.91 } });
    assert.deepEqual(report.subnetworks.map((s) => s.id), ['k1', 'k2', 'k3']);
    assert.ok(report.jointFront !== undefined && report.jointFront.length > 3, 'joint front present');

    for (const target of ['flops-50', 'flops-70']) {
      const plan = planSchema.parse(await getJson(store, `runs/ok/merge/plans/${target}.json`));
      // metrics.json says finalize kept the 2nd scheme.
      for (const pick of plan.schemes[1].picks) {
        const subnet = report.subnetworks.find((s) => s.id === pick.subnet);
        assert.equal(subnet?.chosen?.[target], pick.pointId, `${target} on ${pick.subnet}`);
      }
      const row = report.targets.find((t) => t.name === target);
      assert.equal(row?.error, undefined);
      assert.equal(row?.accuracy?.afterFineTune, 0.89);
      assert.ok(Math.abs((row?.estimateError ?? 0) - plan.schemes[1].estimatedImpairment * 0.1) < 1e-12, 'estimate error = measured - estimated');
      assert.equal(row?.layers?.length, 2);
    }
    // Front points are reported in the piece's scope (prunable-part front + the piece's fixed cost).
    const k3 = manifest.division.subnetworks[2];
    const unpruned = report.subnetworks[2].front?.find((p) => p.id === 'k3-p00');
    assert.deepEqual([unpruned?.flops, unpruned?.params, unpruned?.flopsRatio], [k3.macs, k3.params, 1]);
    assert.equal(report.subnetworks[2].searchSeconds, 120);
    assert.equal(report.subnetworks[2].hypervolume, 0.4);

    const written = await writeReport(store, 'ok', { now: NOW });
    assert.deepEqual(written, { reportKey: 'runs/ok/report.json', htmlKey: 'runs/ok/report.html', statusKey: 'runs/ok/status.json', status: 'succeeded' });
    parseReport(await getJson(store, written.reportKey), written.reportKey);
    const html = await getText(store, written.htmlKey);
    assert.match(html, /^<!DOCTYPE html>/i);
    assert.match(html, /flops-70/);
    const status = runStatusRecordSchema.parse(await getJson(store, written.statusKey));
    assert.equal(status.state, 'succeeded');
    // Reports are re-rendered: a second write overwrites.
    await writeReport(store, 'ok', { now: new Date('2026-01-02T00:00:00Z') });
    assert.equal(parseReport(await getJson(store, written.reportKey), 'again').generatedAt, '2026-01-02T00:00:00.000Z');
  });

  test('a run from a SageMaker model package: registered versions are linked, a refused one is a problem', async () => {
    await finishedRun('registered');
    const [first, second] = (await buildReport(store, 'registered', { now: NOW })).targets.map((target) => target.name);
    const arn = 'arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/3';
    await putJson(store, 'runs/registered/model-packages.json', {
      runId: 'registered',
      sourceModelPackageArn: 'arn:aws:sagemaker:us-east-2:123456789012:model-package/resnets/2',
      modelPackageGroupName: 'pruned-models',
      approvalStatus: 'PendingManualApproval',
      targets: [
        { target: first, modelPackageArn: arn, modelDataUrl: 's3://b/runs/registered/targets/x/model.tar.gz', metricsUrl: 's3://b/m.json' },
        { target: second, error: 'CreateModelPackage in pruned-models failed: AccessDeniedException: no' },
      ],
      at: NOW.toISOString(),
    });
    const report = await buildReport(store, 'registered', { now: NOW });
    assert.equal(report.targets.find((target) => target.name === first)?.modelPackageArn, arn);
    assert.equal(report.targets.find((target) => target.name === second)?.modelPackageArn, undefined);
    assert.deepEqual(report.problems, [{ stage: 'register', subject: second, message: 'CreateModelPackage in pruned-models failed: AccessDeniedException: no' }]);
    assert.equal(report.status, 'partial');
    const { htmlKey } = await writeReport(store, 'registered', { now: NOW });
    const html = await getText(store, htmlKey);
    assert.ok(html.includes(arn), 'the ARN is in the page');
    assert.ok(html.includes('href="https://us-east-2.console.aws.amazon.com/sagemaker/home?region=us-east-2#/model-registry/pruned-models/details"'));
  });

  test('a missing metrics.json: status partial, the target shows the problem, the report still renders', async () => {
    await finishedRun('part');
    await store.delete('runs/part/targets/flops-70/metrics.json');
    const written = await writeReport(store, 'part', { now: NOW });
    assert.equal(written.status, 'partial');
    const report = parseReport(await getJson(store, written.reportKey), written.reportKey);
    const row = report.targets.find((t) => t.name === 'flops-70');
    assert.match(row?.error ?? '', /runs\/part\/targets\/flops-70\/metrics\.json is missing/);
    assert.equal(row?.achieved, undefined);
    assert.ok(row?.estimatedImpairment !== undefined, 'the plan estimate is still shown');
    assert.deepEqual(report.problems?.map((p) => [p.stage, p.subject]), [['finalize', 'flops-70']]);
    assert.match(await getText(store, written.htmlKey), /metrics\.json is missing/);
  });

  test('malformed metrics, an infeasible target and a missing front are problems, not crashes', async () => {
    await finishedRun('bad', { ...spec, targets: [...spec.targets, { kind: 'flopsCut', value: 0.99, name: 'impossible' }] });
    await store.put('runs/bad/targets/flops-50/metrics.json', JSON.stringify({ target: 'flops-50', achieved: { macs: 'many' } }));
    await store.delete('runs/bad/subnets/k2/front.json');
    const report = await buildReport(store, 'bad', { now: NOW });
    assert.equal(report.status, 'partial');
    const problems = report.problems ?? [];
    assert.ok(problems.some((p) => p.stage === 'merge' && p.subject === 'impossible' && /infeasible/.test(p.message)), 'infeasible target');
    assert.ok(problems.some((p) => p.stage === 'finalize' && p.subject === 'flops-50' && /metrics\.json[\s\S]*achieved\.macs/.test(p.message)), 'bad metrics');
    assert.ok(problems.some((p) => p.stage === 'search' && p.subject === 'k2' && /k2\/front\.json does not exist/.test(p.message)), 'missing front');
    assert.equal(report.subnetworks.find((s) => s.id === 'k2')?.front, undefined);
    assert.equal(report.targets.find((t) => t.name === 'flops-70')?.error, undefined);
  });

  test('no target result: status failed', async () => {
    await finishedRun('none');
    await store.delete('runs/none/targets/flops-50/metrics.json');
    await store.delete('runs/none/targets/flops-70/metrics.json');
    const report = await buildReport(store, 'none', { now: NOW });
    assert.equal(report.status, 'failed');
    assert.equal(report.problems?.length, 2);
  });

  test('a run that failed at Plan still gets a report from its spec', async () => {
    await putJson(store, 'runs/early/spec.json', spec);
    await recordFailure(store, 'early', { Error: 'PlanError', Cause: JSON.stringify({ errorType: 'PlanError', errorMessage: 'model missing' }) }, { now: NOW });
    const written = await writeReport(store, 'early', { now: NOW });
    const report = parseReport(await getJson(store, written.reportKey), 'early');
    assert.equal(report.status, 'failed');
    assert.deepEqual(report.targets.map((t) => t.name), ['flops-50', 'flops-70']);
    assert.ok(report.problems?.some((p) => p.stage === 'pipeline' && /PlanError: model missing/.test(p.message)), 'the recorded failure');
    // The failure record stays the run's status.
    const status = runStatusRecordSchema.parse(await getJson(store, 'runs/early/status.json'));
    assert.equal(status.state, 'failed');
    assert.equal(status.message, 'PlanError: model missing');
  });
});

describe('describeFailure', () => {
  test('Lambda, Batch and plain causes', () => {
    assert.equal(describeFailure({ Error: 'MergeError', Cause: '{"errorType":"MergeError","errorMessage":"no front"}' }), 'MergeError: no front');
    assert.equal(
      describeFailure({ Error: 'States.TaskFailed', Cause: JSON.stringify({ JobName: 'emo-dir-search', Status: 'FAILED', StatusReason: 'Essential container exited', Container: { ExitCode: 1 } }) }),
      'States.TaskFailed: Batch job emo-dir-search FAILED: Essential container exited; exit code 1',
    );
    assert.equal(describeFailure({ Error: 'States.Timeout' }), 'States.Timeout');
    assert.equal(describeFailure({ Error: 'X', Cause: 'plain words' }), 'X: plain words');
  });
});
