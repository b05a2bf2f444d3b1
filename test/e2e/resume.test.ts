// `emo-dir resume <runId>`: a run stopped by a signal after its first search front exists, with
// the other search mid-way, is continued to success, and the finished front is kept byte for
// byte (create-only writes).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileExists, holdSearchEnv, parseSingleJson, runCli, runCommandInProcess, tinySpec, waitFor } from './helpers.ts';

/** `emo-dir resume ...` in this process, through the function src/cli/main.ts calls. */
const resume = (argv: string[]) => runCommandInProcess('resume', argv);

const RUN_ID = 'e2e-resume';

describe('emo-dir resume', () => {
  let dir: string | undefined;
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('continues a stopped run and keeps the front that was already written', async () => {
    dir = await mkdtemp(join(tmpdir(), 'emo-dir-resume-'));
    const storeDir = join(dir, 'store');
    const specPath = join(dir, 'spec.json');
    await writeFile(specPath, JSON.stringify(tinySpec(RUN_ID)));
    const fronts = ['k1', 'k2'].map((subnet) => join(storeDir, 'runs', RUN_ID, 'subnets', subnet, 'front.json'));

    // k2's worker holds after storing its generation-1 checkpoint (fixtures/hold-search.mjs), so
    // when k1's front is there the run is certainly stopped mid-way: k2 unfinished, no report.
    const held = join(dir, 'held-k2');
    const [k1Front, k2Front] = fronts;
    let firstFront: { path: string; bytes: Buffer; otherExisted: boolean } | undefined;
    const stopped = await runCli(['run', specPath, '--store', storeDir, '--workers', '2'], {
      env: holdSearchEnv('k2', 1, held),
      onSpawn: (child) => {
        void waitFor('k1/front.json and k2 holding', async () => (await fileExists(k1Front)) && fileExists(held)).then(
          async () => {
            // The store writes by atomic rename: a front.json that exists is complete.
            firstFront = { path: k1Front, bytes: await readFile(k1Front), otherExisted: await fileExists(k2Front) };
            child.kill('SIGINT');
          },
          () => child.kill('SIGKILL'),
        );
      },
    });
    assert.ok(firstFront !== undefined, `no front was written before the run ended:\n${stopped.stderr}`);
    assert.equal(firstFront.otherExisted, false, 'k2 had finished its search although it was held');
    assert.equal(stopped.code, 1, `the stopped run should exit 1:\n${stopped.stderr}`);
    assert.match(stopped.stderr, new RegExp(`was stopped; continue it with: emo-dir resume ${RUN_ID} --store `));
    assert.equal(await fileExists(join(storeDir, 'runs', RUN_ID, 'report.json')), false, 'the run was not stopped before its end');

    const resumed = await resume([RUN_ID, '--store', storeDir, '--json', '--quiet', '--workers', '2']);
    assert.equal(resumed.code, 0, `resume failed:\n${resumed.stderr}`);
    const result = parseSingleJson(resumed.stdout);
    assert.equal(result.runId, RUN_ID);
    assert.equal(result.status, 'SUCCEEDED');
    assert.ok(await fileExists(join(storeDir, 'runs', RUN_ID, 'report.html')));
    assert.ok((await readFile(firstFront.path)).equals(firstFront.bytes), `${firstFront.path} changed on resume`);
    // The other search, stopped mid-way, was finished by the resumed run, from its checkpoint.
    for (const path of fronts) assert.ok(await fileExists(path), `${path} is missing after resume`);
    const stats = JSON.parse(await readFile(join(storeDir, 'runs', RUN_ID, 'subnets', 'k2', 'search-stats.json'), 'utf8')) as { resumedFrom: unknown };
    assert.notEqual(stats.resumedFrom, null, 'the resumed run started k2 over instead of continuing from its checkpoint');
  });

  it('says which run is missing, with a non-zero exit', async () => {
    dir ??= await mkdtemp(join(tmpdir(), 'emo-dir-resume-'));
    const storeDir = join(dir, 'empty-store');
    const missing = await resume(['no-such-run', '--store', storeDir]).catch((error: unknown) => ({
      code: 1,
      stdout: '',
      stderr: (error as Error).message,
    }));
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no run no-such-run in file:\/\/.*runs\/no-such-run\/spec\.json does not exist/);
    const invalid = await resume(['../x', '--store', storeDir]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /invalid run id "\.\.\/x"/);
    assert.equal(await fileExists(storeDir), false, 'resume of a missing run created the store');
  });
});
