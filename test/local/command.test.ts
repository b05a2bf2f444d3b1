import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runCommand } from '../../src/local/command.ts';
import type { LocalHandlers } from '../../src/local/run.ts';
import { putJson } from '../../src/store/object-store.ts';
import { runKeys } from '../../src/store/keys.ts';

const FAKE_WORKER = fileURLToPath(new URL('./fixtures/fake-worker.mjs', import.meta.url));
const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function setup(mode = '') {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-cmd-'));
  dirs.push(dir);
  const specPath = join(dir, 'spec.json');
  await writeFile(specPath, JSON.stringify({ runId: 'cmd', model: 'zoo:resnet20', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] }));
  const out: string[] = [];
  const err: string[] = [];
  const signals = new EventEmitter();
  const handlers = ({ store }: { store: import('../../src/store/object-store.ts').ObjectStore }): LocalHandlers => ({
    plan: async () => ({ manifestKey: runKeys('cmd').manifest, subnetworks: ['000'] }),
    merge: async () => ({ jointFrontKey: runKeys('cmd').merge.jointFront, targets: ['flops-50'] }),
    report: async (event) => {
      const { action } = event as { action: string };
      if (action === 'report') await putJson(store, runKeys('cmd').report.json, {});
      return { reportKey: runKeys('cmd').report.json, htmlKey: runKeys('cmd').report.html };
    },
  });
  const deps = {
    loadHandlers: async () => handlers,
    out: (text: string) => out.push(text),
    err: (text: string) => err.push(text),
    signals: signals as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
    runOptions: {
      workerCommand: [process.execPath, FAKE_WORKER],
      workerEnv: { FAKE_WORKER_MODE: mode, FAKE_WORKER_DELAY_MS: '100', NODE_OPTIONS: '' },
      killGraceMs: 300,
      progressStream: { write: (text: string) => err.push(text) },
    },
  };
  return { dir, specPath, out, err, deps, signals };
}

describe('emo-dir run', () => {
  it('--json prints one object with the run id, store, report path and per-target metrics', async () => {
    const { dir, specPath, out, deps } = await setup('metrics:flops-50');
    const code = await runCommand([specPath, '--store', join(dir, 'store'), '--workers', '2', '--json'], deps);
    assert.equal(code, 0);
    assert.equal(out.length, 1);
    const result = JSON.parse(out[0]);
    assert.equal(result.runId, 'cmd');
    assert.equal(result.status, 'SUCCEEDED');
    assert.equal(result.report, join(dir, 'store', 'runs', 'cmd', 'report.html'));
    assert.equal(result.targets['flops-50'].achieved.flopsCut, 0.5012, 'the metrics the finalize job wrote');
    assert.ok(result.workerSeconds > 0);
    assert.ok(JSON.parse(await readFile(join(dir, 'store', 'runs', 'cmd', 'spec.json'), 'utf8')).runId === 'cmd');
  });

  it('ends with a table per target and the report\'s path (without --json)', async () => {
    const { dir, specPath, out, deps } = await setup('metrics:flops-50');
    assert.equal(await runCommand([specPath, '--store', join(dir, 'store'), '--workers', '2'], deps), 0);
    const store = join(dir, 'store');
    assert.equal(
      out.join(''),
      [
        'target    FLOPs cut  params cut  accuracy  pruned  fine-tuned  model',
        `flops-50      50.1%       20.8%     90.9%   80.1%       89.4%  ${join(store, 'runs', 'cmd', 'targets', 'flops-50', 'model')}`,
        `report: ${join(store, 'runs', 'cmd', 'report.html')}`,
        '',
      ].join('\n'),
    );
  });

  it('sends worker output to a log file per job and prints the failed job\'s on failure', async () => {
    const { dir, specPath, out, err, deps } = await setup('fail:000');
    assert.equal(await runCommand([specPath, '--store', join(dir, 'store'), '--workers', '2'], deps), 1);
    assert.equal(out.length, 0);
    const logPath = join(dir, 'store', 'runs', 'cmd', 'logs', 'search-000.log');
    assert.ok(err.join('').includes(`  full log of search 000: ${logPath}\n`), err.join(''));
    const log = await readFile(logPath, 'utf8');
    assert.match(log, /^--- search 000: attempt 1 started /);
    assert.match(log, /\nplain output of search 000 attempt 1\n/);
    assert.match(log, /\n\[stderr\] fake-worker: search 000 cannot continue \(simulated application error\)\n/);
    assert.match(log, /\n--- search 000: FAILED Essential container in task exited \(exit code 1\) ---\n$/);
  });

  it('rejects bad arguments with exit code 2 and the usage', async () => {
    const { specPath, err, deps } = await setup();
    assert.equal(await runCommand([], deps), 2);
    assert.equal(await runCommand([specPath, '--workers', '0'], deps), 2);
    assert.equal(await runCommand([specPath, '--nope'], deps), 2);
    assert.match(err.join(''), /--workers must be a positive integer/);
    assert.match(err.join(''), /usage: emo-dir run/);
  });

  it('Ctrl-C stops the workers and ends the run as aborted', async () => {
    const { dir, specPath, out, err, deps, signals } = await setup('hang:000');
    const running = runCommand([specPath, '--store', join(dir, 'store'), '--json'], deps);
    // Ctrl-C once the search worker is running (it says so in hanging.json), not after a guess.
    const hanging = join(dir, 'store', 'scratch', 'cmd', 'search', '000', 'hanging.json');
    let ended = false;
    void running.finally(() => (ended = true));
    while (!ended && !(await readFile(hanging).then(() => true, () => false))) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(ended, false, `the run ended before its worker started: ${err.join('')}`);
    signals.emit('SIGINT');
    assert.equal(await running, 1);
    const result = JSON.parse(out[0]) as { status: string; jobs: { label: string; status: string; attempts: { signal: string | null }[] }[] };
    assert.equal(result.status, 'ABORTED');
    // The hanging worker (it ignores SIGTERM) was ended by the runner: SIGKILL after the grace.
    const search = result.jobs.find((job) => job.label === 'search 000');
    assert.equal(search?.status, 'CANCELLED');
    assert.deepEqual(search.attempts.map((attempt) => attempt.signal), ['SIGKILL']);
    assert.match(err.join(''), /run cmd: ABORTED/);
  });
});
