// A spec that cannot succeed fails in Plan (or, for a model reference, before the execution),
// before any job starts (issue 14): for each case `emo-dir run` exits non-zero with one line
// naming the spec field, the job runner never saw a job, and runs/<id>/status.json says why.
// A symlinked model directory, once a failure, is copied by content and gets past Plan.
// `emo-dir plan` and `run --dry-run` print the plan and its estimate without running anything.
import assert from 'node:assert/strict';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FunctionJobRunner } from '../../src/local/job-runner.ts';
import { runStatusRecordSchema, type RunStatusRecord } from '../../src/schema/messages.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson } from '../../src/store/object-store.ts';
import { FIXTURE_MODEL, REPO, fileExists, parseSingleJson, runCli, runCommandInProcess, tinySpec } from './helpers.ts';

type Json = Record<string, unknown>;

let root: string;
let storeDir: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'emo-dir-plan-refusals-'));
  storeDir = join(root, 'store');
});
after(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

interface Outcome {
  readonly code: number;
  readonly stderr: string;
  /** Labels of the jobs the runner was asked to run (each fails at once). */
  readonly started: readonly string[];
  readonly finishedRecords: number;
  readonly status?: RunStatusRecord;
}

/** `emo-dir run <spec>` in this process with the real handlers and a job runner that records every job. */
async function run(spec: Json): Promise<Outcome> {
  const runId = spec.runId as string;
  const specPath = join(root, `${runId}.json`);
  await writeFile(specPath, JSON.stringify(spec));
  const started: string[] = [];
  const jobRunner = new FunctionJobRunner({
    concurrency: 2,
    fn: async (job) => {
      started.push(job.label);
      return 1;
    },
    log: () => undefined,
    onOutput: () => undefined,
  });
  const { code, stderr } = await runCommandInProcess('run', [specPath, '--store', storeDir], {
    runOptions: { jobRunner, progressStream: { write: () => true } },
  });
  const store = new FileStore(storeDir);
  const statusKey = runKeys(runId).status;
  const status = (await store.exists(statusKey)) ? runStatusRecordSchema.parse(await getJson(store, statusKey)) : undefined;
  return { code, stderr, started, finishedRecords: jobRunner.records.length, ...(status === undefined ? {} : { status }) };
}

/** Non-zero exit, exactly one stderr line naming `field`, no job, and status.json naming the field. */
function assertRefused(outcome: Outcome, field: string, message: RegExp, state: 'failed' | 'rejected'): void {
  assert.notEqual(outcome.code, 0, outcome.stderr);
  const named = outcome.stderr.split('\n').filter((line) => line.includes(`field ${field}: `));
  assert.equal(named.length, 1, `one line naming ${field}:\n${outcome.stderr}`);
  assert.match(named[0], message);
  assert.doesNotMatch(outcome.stderr, /^\s+at /m, 'no stack trace');
  assert.deepEqual(outcome.started, [], 'no search or finalize job was started');
  assert.equal(outcome.finishedRecords, 0);
  assert.ok(outcome.status !== undefined, 'status.json written');
  assert.equal(outcome.status.state, state);
  assert.match(outcome.status.message, new RegExp(`field ${field.replace('.', '\\.')}: `));
}

/** A copy of the fixture model at `<root>/<name>/data/v3`, weights.bin a link into a cache, and `<root>/<name>/model` -> data/v3. */
async function symlinkedModel(name: string): Promise<{ link: string; real: string }> {
  const real = join(root, name, 'data', 'v3');
  await cp(FIXTURE_MODEL, real, { recursive: true });
  await mkdir(join(root, name, 'cache'));
  await cp(join(real, 'weights.bin'), join(root, name, 'cache', 'weights-v3.bin'));
  await rm(join(real, 'weights.bin'));
  await symlink(join(root, name, 'cache', 'weights-v3.bin'), join(real, 'weights.bin'));
  const link = join(root, name, 'model');
  await symlink(real, link);
  return { link, real };
}

describe('a spec that cannot succeed fails before any job starts', () => {
  it('a data set directory that does not exist', async () => {
    const outcome = await run({ ...tinySpec('no-data'), dataset: { name: 'cifar10:/does/not/exist', searchTrain: 256, searchVal: 128 } });
    assertRefused(outcome, 'dataset.name', /PlanError: run spec runs\/no-data\/spec\.json: field dataset\.name: cifar10: no data_batch_1\.bin in \/does\/not\/exist/, 'failed');
  });

  it('a search subset larger than the training split', async () => {
    const spec = tinySpec('huge-subset');
    const outcome = await run({ ...spec, dataset: { ...(spec.dataset as Json), searchTrain: 1_000_000_000 } });
    assertRefused(outcome, 'dataset.searchTrain', /searchTrain 1000000000 \+ searchVal 128 \(disjoint subsets\) exceed the 60000 images of fashion-mnist's training split/, 'failed');
  });

  it('a population beyond the budget limit, with the way to allow it', async () => {
    const outcome = await run(tinySpec('huge-population', { search: { population: 1_000_000_000 } }));
    assertRefused(outcome, 'search.population', /1000000000 is above the limit of 512 \(a typo\? set search\.allowLargeBudget: true to run it on purpose\)/, 'failed');
  });

  it('a URL as the model: says URLs are not model references and lists the accepted forms', async () => {
    const outcome = await run({ ...tinySpec('url-model'), model: 'http://example.com/models/v3/model.json' });
    assertRefused(outcome, 'model', /"http:\/\/example\.com\/models\/v3\/model\.json" is a URL: models are not downloaded .*; use one of: zoo:<name> .*; a local directory holding model\.json .*; a key prefix in the run's store/, 'rejected');
  });

  it('a file that is not a model: says so and lists the accepted forms', async () => {
    const outcome = await run({ ...tinySpec('file-model'), model: join(FIXTURE_MODEL, 'weights.bin') });
    assertRefused(outcome, 'model', /weights\.bin is not a directory holding model\.json: it is a file, not a model; use one of: zoo:<name>/, 'rejected');
  });

  it('a model directory with a symlink cycle: names the link', async () => {
    const { link, real } = await symlinkedModel('cyclic');
    await symlink(real, join(real, 'self'));
    const outcome = await run({ ...tinySpec('cyclic-model'), model: link });
    assertRefused(outcome, 'model', /model directory .*cyclic\/model: .*cyclic\/model\/self leads back to .*cyclic\/data\/v3, which contains it \(a symlink cycle\)/, 'rejected');
  });
});

describe('a symlinked model directory', () => {
  it('is copied by content and passes Plan: the searches start', async () => {
    const { link, real } = await symlinkedModel('linked');
    const outcome = await run({ ...tinySpec('linked-model'), model: link });
    // Plan succeeded, so the two search jobs were submitted (this runner fails every job).
    assert.notEqual(outcome.code, 0);
    assert.deepEqual([...outcome.started].sort(), ['search k1', 'search k2']);
    assert.doesNotMatch(outcome.stderr, /field model/);
    const copy = join(storeDir, 'runs', 'linked-model', 'model');
    assert.deepEqual((await readdir(copy)).sort(), ['model.json', 'weights.bin']);
    for (const name of ['model.json', 'weights.bin']) {
      const info = await lstat(join(copy, name));
      assert.ok(info.isFile() && !info.isSymbolicLink(), `${name} is a regular file in the store`);
      assert.deepEqual(await readFile(join(copy, name)), await readFile(join(real, name)));
    }
  });
});

describe('emo-dir plan and run --dry-run', () => {
  it('emo-dir plan prints the sub-networks, searched channels, evaluations and the estimate of the example', async () => {
    const planStore = join(root, 'plan-store');
    const result = await runCli(['plan', 'examples/fmnist-resnet/spec.json', '--store', planStore]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^sub-network\s+layers\s+groups\s+searched channels\s+MACs\s+evaluations\s+worker-h wasm\s+worker-h t4$/m);
    assert.match(result.stdout, /^k1\s+\d+\s+\d+\s+\d+\s+\S+\s+40\s/m);
    assert.match(result.stdout, /^all\s+\d+\s+120\s/m);
    assert.match(result.stdout, /total worker-hours, wasm \(this machine's workers\): \S+ h/);
    assert.match(result.stdout, /total worker-hours, t4 \(GPU\): \S+ h/);
    assert.match(result.stdout, /checks passed/);
    assert.equal(await fileExists(planStore), false, 'nothing written');
  });

  it('--json: one object with the plan and the estimate', async () => {
    const result = await runCli(['plan', join(REPO, 'examples', 'fmnist-resnet', 'spec.json'), '--json', '--gpu', 'v100']);
    assert.equal(result.code, 0, result.stderr);
    const plan = parseSingleJson(result.stdout);
    assert.equal(plan.ok, true);
    const estimate = plan.estimate as { subnetworks: { id: string; evaluations: number }[]; evaluations: number; totalWorkerSeconds: Record<string, number> };
    assert.deepEqual(estimate.subnetworks.map((s) => s.id), ['k1', 'k2', 'k3']);
    assert.equal(estimate.evaluations, 120);
    assert.deepEqual(Object.keys(estimate.totalWorkerSeconds), ['wasm', 'v100']);
  });

  it('run --dry-run refuses what Plan would refuse, one line per field, and writes nothing', async () => {
    const dryStore = join(root, 'dry-store');
    const specPath = join(root, 'dry.json');
    const spec = tinySpec('dry', { search: { population: 1_000_000_000 } });
    await writeFile(specPath, JSON.stringify({ ...spec, dataset: { ...(spec.dataset as Json), searchTrain: 1_000_000_000 } }));
    const result = await runCli(['run', specPath, '--store', dryStore, '--dry-run']);
    assert.equal(result.code, 1, result.stderr);
    const fields = result.stdout.split('\n').flatMap((line) => /: field (\S+): /.exec(line)?.[1] ?? []);
    assert.deepEqual(fields, ['dataset.searchTrain', 'search.population']);
    assert.equal(await fileExists(dryStore), false, 'the store was not created');
    // The same budget on purpose: the plan is printed, with what it would cost.
    await writeFile(specPath, JSON.stringify({ ...spec, search: { ...(spec.search as Json), allowLargeBudget: true } }));
    const allowed = await runCli(['run', specPath, '--store', dryStore, '--dry-run', '--json']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(parseSingleJson(allowed.stdout).ok, true);
    assert.equal(await fileExists(dryStore), false);
  });

  it('the real command line exits non-zero with the job records empty', async () => {
    const specPath = join(root, 'cli.json');
    await writeFile(specPath, JSON.stringify(tinySpec('cli-refused', { search: { population: 1_000_000_000 } })));
    const result = await runCli(['run', specPath, '--store', storeDir, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const json = parseSingleJson(result.stdout);
    assert.equal(json.status, 'FAILED');
    assert.deepEqual(json.jobs, []);
    assert.match(String((json.error as Json).Cause), /field search\.population: 1000000000 is above the limit/);
  });
});
