import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReport, reportSchema, type Report } from '../../src/schema/report.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import { sampleReport } from './sample-report.ts';

/** The paths parseReport names for `value`, or [] when it is accepted. */
function issuePaths(value: unknown): string[] {
  try {
    parseReport(value, 'runs/r1/report.json');
    return [];
  } catch (error) {
    assert.ok(error instanceof ValidationError, String(error));
    assert.match(error.message, /runs\/r1\/report\.json/);
    return error.issues.map((issue) => issue.path);
  }
}

function mutated(change: (report: Report) => void): Report {
  const report = structuredClone(sampleReport());
  change(report);
  return report;
}

test('the sample report is valid and survives a JSON round trip unchanged', () => {
  const report = sampleReport();
  const parsed = parseReport(JSON.parse(JSON.stringify(report)), 'sample');
  assert.deepEqual(parsed, report);
});

test('a bad field is rejected with its path', () => {
  const cases: [(report: Report) => void, string][] = [
    [(r) => Object.assign(r.subnetworks[1].front![3], { flopsRatio: '0.5' }), 'subnetworks[1].front[3].flopsRatio'],
    [(r) => Object.assign(r.targets[0].accuracy!, { afterFineTune: 91.3 }), 'targets[0].accuracy.afterFineTune'],
    [(r) => Object.assign(r.targets[1].layers![4], { channelsAfter: 99 }), 'targets[1].layers[4].channelsAfter'],
    [(r) => Object.assign(r.run, { startedAt: 'yesterday' }), 'run.startedAt'],
    [(r) => Object.assign(r.original!, { macs: Number.NaN }), 'original.macs'],
    [(r) => Object.assign(r, { schemaVersion: 2 }), 'schemaVersion'],
    [(r) => Object.assign(r.targets[0], { kind: 'latency' }), 'targets[0].kind'],
    // A typo is an error, not a value that silently never reaches the page.
    [(r) => Object.assign(r.targets[0], { measuredImpairement: 0.1 }), 'targets[0]'],
    [(r) => Object.assign(r.cost!, { estimatedUsd: 3.2 }), 'cost.usdPerGpuHour'],
  ];
  for (const [change, path] of cases) {
    const paths = issuePaths(mutated(change));
    assert.ok(paths.includes(path), `expected ${path}, got [${paths.join(', ')}]`);
  }
});

test('cross-references are checked: chosen points, target names, unique ids', () => {
  assert.deepEqual(
    issuePaths(mutated((r) => Object.assign(r.subnetworks[2].chosen!, { 'flops-50': 'no-such-point' }))),
    ['subnetworks[2].chosen.flops-50'],
  );
  assert.deepEqual(
    issuePaths(mutated((r) => Object.assign(r.subnetworks[0].chosen!, { 'flops-90': 's1-p00' }))),
    ['subnetworks[0].chosen.flops-90'],
  );
  assert.deepEqual(issuePaths(mutated((r) => Object.assign(r.subnetworks[1], { id: 'S1' }))), ['subnetworks[1].id']);
  assert.ok(issuePaths(mutated((r) => Object.assign(r.targets[1], { name: 'flops-50' }))).includes('targets[1].name'));
  assert.deepEqual(
    issuePaths(mutated((r) => Object.assign(r.subnetworks[0].front![2], { id: 's1-p01' }))),
    ['subnetworks[0].front[2].id'],
  );
});

test('front points drop their genome; a failed run with almost nothing is still a report', () => {
  const withGenome = mutated((r) => Object.assign(r.subnetworks[0].front![0], { genome: '1'.repeat(512) }));
  const parsed = reportSchema.parse(withGenome);
  assert.equal('genome' in parsed.subnetworks[0].front![0], false);

  const failed = {
    schemaVersion: 1,
    generatedAt: '2026-11-28T03:00:00Z',
    status: 'failed',
    run: { runId: 'r1', model: 'zoo:resnet20', dataset: 'fashion-mnist', startedAt: '2026-11-28T02:00:00Z' },
    subnetworks: [{ id: 'S1', layers: 7, groupIds: [], macs: 1e6, params: 1e4 }],
    targets: [{ name: 'flops-50', kind: 'flopsCut', value: 0.5, error: 'finalize: out of memory' }],
    problems: [{ stage: 'search', subject: 'S1', message: 'worker exited with code 137' }],
  };
  assert.deepEqual(issuePaths(failed), []);
});
