// A worker killed mid-search (SIGKILL: the local analogue of a spot reclaim or a host failure) is
// retried as attempt 2, which resumes from the sub-network's last checkpoint, and the run ends
// with fronts byte-identical to an uninterrupted run with the same seed.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HOLD_WAIT_MS, assertKilledThenRetried, childProcesses, fileExists, holdSearchEnv, parseSingleJson, runCli, tinySpec, waitFor } from './helpers.ts';

// The same run id in both stores: front.json names its run, so only then can the bytes match.
const RUN_ID = 'e2e-fault';
const SUBNETS = ['k1', 'k2'];

describe('a worker killed mid-search', () => {
  let dir: string | undefined;
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('is retried from its checkpoint and the fronts equal an uninterrupted run', async () => {
    dir = await mkdtemp(join(tmpdir(), 'emo-dir-fault-'));
    // Three generations: after checkpoint 1 there are still two to go, so the kill lands mid-search.
    const specPath = join(dir, 'spec.json');
    await writeFile(specPath, JSON.stringify(tinySpec(RUN_ID, { search: { generations: 3 } })));
    const referenceStore = join(dir, 'reference');
    const faultStore = join(dir, 'fault');

    const reference = await runCli(['run', specPath, '--store', referenceStore, '--json', '--workers', '2']);
    assert.equal(reference.code, 0, `uninterrupted run failed:\n${reference.stderr}`);

    // The barrier (fixtures/hold-search.mjs) stops k1's worker right after it stored the
    // checkpoint of generation 1, so the kill lands mid-search with certainty, not by a race.
    const held = join(dir, 'held-k1');
    const checkpoint = join(faultStore, 'scratch', RUN_ID, 'subnets', 'k1', 'checkpoints', 'gen-000001.json');
    const front = join(faultStore, 'runs', RUN_ID, 'subnets', 'k1', 'front.json');
    let killed: { pid: number; args: string; checkpointExisted: boolean; frontExisted: boolean } | undefined;
    let killError: unknown;
    const faulty = await runCli(['run', specPath, '--store', faultStore, '--json', '--workers', '2'], {
      env: holdSearchEnv('k1', 1, held),
      onSpawn: (child) => {
        // Once k1's worker holds, SIGKILL it (only the direct child of this run whose argv says
        // `search ... --subnet k1`, and the process that says it holds).
        void waitFor('the worker of k1 to hold after generation 1', () => fileExists(held), HOLD_WAIT_MS)
          .then(async () => {
            const heldPid = Number((await readFile(held, 'utf8')).trim());
            const [worker, ...others] = await childProcesses(child.pid as number, ['--subnet', 'k1']);
            assert.ok(worker !== undefined, 'no worker process of k1 found');
            assert.equal(others.length, 0, `more than one worker of k1: ${JSON.stringify([worker, ...others])}`);
            assert.equal(worker.pid, heldPid, 'the held process is the worker of k1');
            const [checkpointExisted, frontExisted] = [await fileExists(checkpoint), await fileExists(front)];
            process.kill(worker.pid, 'SIGKILL');
            killed = { pid: worker.pid, args: worker.args, checkpointExisted, frontExisted };
          })
          .catch((error: unknown) => {
            killError = error;
            child.kill('SIGKILL');
          });
      },
    });
    assert.equal(killError, undefined, `could not kill the worker: ${String(killError)}`);
    assert.ok(killed !== undefined, 'the worker was never killed');
    assert.equal(killed.checkpointExisted, true, 'the checkpoint of generation 1 was stored before the kill');
    assert.equal(killed.frontExisted, false, 'the search of k1 had already finished when its worker was killed');
    assert.equal(faulty.code, 0, `the run with a killed worker failed:\n${faulty.stderr}`);
    process.stderr.write(`fault: killed pid ${killed.pid} (${killed.args}); the run took ${faulty.wallSeconds.toFixed(1)} s\n`);

    // The runner saw a host failure and retried: attempt 1 killed by SIGKILL, attempt 2 succeeded.
    assertKilledThenRetried(parseSingleJson(faulty.stdout), 'search k1');
    assert.match(faulty.stderr, /\[search k1\] attempt 1 failed .*retrying as attempt 2/);
    // Attempt 2 resumed from a checkpoint instead of starting over.
    const stats = JSON.parse(await readFile(join(faultStore, 'runs', RUN_ID, 'subnets', 'k1', 'search-stats.json'), 'utf8')) as {
      resumedFrom: unknown;
    };
    assert.notEqual(stats.resumedFrom, null, 'attempt 2 did not resume from a checkpoint');

    for (const subnet of SUBNETS) {
      const path = (store: string): string => join(store, 'runs', RUN_ID, 'subnets', subnet, 'front.json');
      const [expected, actual] = await Promise.all([readFile(path(referenceStore)), readFile(path(faultStore))]);
      assert.ok(expected.equals(actual), `${subnet}/front.json differs from the uninterrupted run's`);
    }
  });
});
