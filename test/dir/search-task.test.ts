// The sub-network search task (src/dir/search-task.ts): a search killed with SIGKILL after a
// random completed generation and restarted ends with a front.json byte-identical to an
// uninterrupted search's; with its newest checkpoint truncated, the restart warns (naming the
// key), resumes from the previous checkpoint and still ends identical. The searches run in
// child processes (test/dir/fixtures/search-child.ts) on FileStores in temp directories.
// Plus in-process checks of the checkpoint codec and the create-only front write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../../src/store/file-store.ts';
import { latestCheckpoint, runKeys } from '../../src/store/keys.ts';
import { CheckpointMismatchError, decodeCheckpoint, encodeCheckpoint, findResumePoint, putResultCreateOnly } from '../../src/dir/search-task.ts';
import { runNsga2 } from '../../src/emo/index.ts';
import type { Nsga2Config, Problem, SearchState } from '../../src/emo/index.ts';

const CHILD = fileURLToPath(new URL('./fixtures/search-child.ts', import.meta.url));
const HOLD_SEARCH = new URL('../e2e/fixtures/hold-search.mjs', import.meta.url).href;
const RUN = 'resume-test';
const SUBNET = 'k2';
const SEED = '5';
const GENERATIONS = 3; // search-child.ts

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'emo-dir-search-task-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

interface ChildRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** Generation numbers of the progress lines seen on stdout. */
  readonly generations: number[];
}

/**
 * Runs the child search on `storeDir`; with `killAfter`, SIGKILLs it once that generation's line
 * appears. The child then holds right after that line (e2e/fixtures/hold-search.mjs), so the
 * kill lands before the next generation however the machine schedules the two processes.
 */
function runChild(storeDir: string, killAfter?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const hold = killAfter === undefined ? [] : ['--import', HOLD_SEARCH];
    const holdEnv = killAfter === undefined ? {} : { EMO_DIR_TEST_HOLD: `${SUBNET}:${killAfter}:${join(storeDir, `held-${killAfter}`)}` };
    // NODE_OPTIONS from the test runner already loads tsx; pass it explicitly instead, once.
    const child = spawn(process.execPath, ['--import', 'tsx', ...hold, CHILD, storeDir, RUN, SUBNET, SEED], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', ...holdEnv },
    });
    let stderr = '';
    const generations: number[] = [];
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const event = JSON.parse(line) as { event: string; subnet: string; generation: number; generations: number };
      assert.equal(event.event, 'generation', `unexpected stdout line ${line}`);
      assert.equal(event.subnet, SUBNET);
      assert.equal(event.generations, GENERATIONS);
      generations.push(event.generation);
      if (killAfter !== undefined && event.generation === killAfter) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, generations }));
  });
}

function frontPath(storeDir: string): string {
  return join(storeDir, runKeys(RUN).subnet(SUBNET).front);
}

async function logEvents(storeDir: string): Promise<{ event: string; generation?: number; key?: string }[]> {
  const text = await readFile(join(storeDir, runKeys(RUN).subnet(SUBNET).log), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as { event: string; generation?: number; key?: string });
}

function assertCompleted(run: ChildRun, what: string): void {
  assert.equal(run.code, 0, `${what} failed (code ${run.code}, signal ${run.signal}):\n${run.stderr}`);
}

/** Kills a search after generation `killAfter` and returns the checkpoint keys left behind. */
async function killAfterGeneration(storeDir: string, killAfter: number): Promise<string[]> {
  const killed = await runChild(storeDir, killAfter);
  assert.equal(killed.signal, 'SIGKILL', `the child was not killed (code ${killed.code}):\n${killed.stderr}`);
  assert.ok(killed.generations.includes(killAfter), `never saw generation ${killAfter}: ${killed.generations.join(',')}`);
  await assert.rejects(readFile(frontPath(storeDir)), { code: 'ENOENT' }, 'a killed search wrote front.json');
  return new FileStore(storeDir).list(runKeys(RUN).subnet(SUBNET).checkpoints);
}

describe('search task: kill, restart, same front', () => {
  test('interrupted + resumed, and resumed past a truncated checkpoint, both equal the uninterrupted front', { timeout: 10 * 60_000 }, async () => {
    // Random generations to kill at, printed so a failure can be reproduced.
    const killPlain = Math.floor(Math.random() * (GENERATIONS - 1)); // 0 .. GENERATIONS-2
    const killCorrupt = 1 + Math.floor(Math.random() * (GENERATIONS - 1)); // 1 .. GENERATIONS-1 (needs an older checkpoint)
    process.stderr.write(`search-task test: kill after generation ${killPlain} (plain) and ${killCorrupt} (then truncate the newest checkpoint)\n`);
    const uninterruptedDir = join(root, 'uninterrupted');
    const resumedDir = join(root, 'resumed');
    const corruptDir = join(root, 'corrupt');

    const uninterrupted = async (): Promise<Buffer> => {
      const run = await runChild(uninterruptedDir);
      assertCompleted(run, 'uninterrupted search');
      assert.deepEqual(run.generations, [0, 1, 2, 3]);
      const front = await readFile(frontPath(uninterruptedDir));
      // A retried job after completion: resumes at the last generation, evaluates nothing, and
      // accepts the existing identical front.json.
      const again = await runChild(uninterruptedDir);
      assertCompleted(again, 'rerun of a finished search');
      assert.deepEqual(again.generations, []);
      assert.match(again.stderr, /\(existing\)/);
      assert.ok((await readFile(frontPath(uninterruptedDir))).equals(front));
      return front;
    };

    const resumed = async (): Promise<{ front: Buffer; run: ChildRun }> => {
      const left = await killAfterGeneration(resumedDir, killPlain);
      const newest = latestCheckpoint(left)!;
      assert.ok(newest.generation >= killPlain, `newest checkpoint ${newest.key}`);
      const run = await runChild(resumedDir);
      assertCompleted(run, 'resumed search');
      // Only the generations after the checkpoint are run again.
      assert.deepEqual(run.generations, Array.from({ length: GENERATIONS - newest.generation }, (_, i) => newest.generation + 1 + i));
      const resumedEvents = (await logEvents(resumedDir)).filter((e) => e.event === 'resumed');
      assert.deepEqual(resumedEvents.map((e) => e.generation), [newest.generation]);
      return { front: await readFile(frontPath(resumedDir)), run };
    };

    const corrupt = async (): Promise<Buffer> => {
      const left = await killAfterGeneration(corruptDir, killCorrupt);
      const newest = latestCheckpoint(left)!;
      const path = join(corruptDir, newest.key);
      const size = (await readFile(path)).length;
      await truncate(path, Math.floor(size / 2));
      const run = await runChild(corruptDir);
      assertCompleted(run, 'search resumed past a truncated checkpoint');
      assert.match(run.stderr, new RegExp(`warning: sub-network ${SUBNET}: skipping checkpoint ${newest.key.replace(/[.]/g, '\\.')}`));
      const events = await logEvents(corruptDir);
      assert.deepEqual(events.filter((e) => e.event === 'checkpoint-skipped').map((e) => e.key), [newest.key]);
      assert.deepEqual(events.filter((e) => e.event === 'resumed').map((e) => e.generation), [newest.generation - 1]);
      assert.equal(run.generations[0], newest.generation, 'the generation of the damaged checkpoint is run again');
      return readFile(frontPath(corruptDir));
    };

    const [reference, resumedResult, corruptFront] = await Promise.all([uninterrupted(), resumed(), corrupt()]);
    const parsed = JSON.parse(reference.toString('utf8')) as { points: unknown[]; evaluations: number; generations: number; stopReason: string };
    assert.ok(parsed.points.length >= 1);
    assert.equal(parsed.generations, GENERATIONS);
    assert.equal(parsed.stopReason, 'generations');
    assert.equal(resumedResult.front.toString('utf8'), reference.toString('utf8'), 'resumed front.json differs from the uninterrupted one');
    assert.equal(corruptFront.toString('utf8'), reference.toString('utf8'), 'front.json after a truncated checkpoint differs');
  });
});

describe('front.json write', () => {
  test('create-only: identical bytes succeed, different bytes are refused naming the key', async () => {
    const store = new FileStore(join(root, 'create-only'));
    const key = runKeys(RUN).subnet(SUBNET).front;
    assert.equal(await putResultCreateOnly(store, key, '{"a":1}\n'), 'created');
    assert.equal(await putResultCreateOnly(store, key, '{"a":1}\n'), 'existing');
    await assert.rejects(putResultCreateOnly(store, key, '{"a":2}\n'), /front\.json .*already exists with different content/);
    assert.equal(await readFile(join(store.root, key), 'utf8'), '{"a":1}\n');
  });
});

describe('findResumePoint', () => {
  // A network-free problem: cost = kept fraction, "impairment" = dropped channels weighted by index.
  const problem: Problem = {
    genomeLength: 12,
    groups: [
      { offset: 0, length: 4, importance: [4, 3, 2, 1] },
      { offset: 4, length: 8, importance: [8, 7, 6, 5, 4, 3, 2, 1] },
    ],
    objectiveCount: 2,
    evaluate: (genomes) =>
      Promise.resolve(
        genomes.map((g) => {
          let kept = 0;
          let loss = 0;
          g.forEach((bit, i) => (bit ? kept++ : (loss += (12 - i) / 12)));
          return { objectives: [kept / 12, loss], extras: {} };
        }),
      ),
  };
  const config: Nsga2Config = { seed: 11, populationSize: 4, generations: 3, minKeep: 0.25, roundTo: 1 };
  const keys = runKeys(RUN).subnet(SUBNET);

  async function searched(name: string): Promise<FileStore> {
    const store = new FileStore(join(root, name));
    await runNsga2(problem, config, {
      onGeneration: (state) => store.put(keys.checkpoint(state.generation), encodeCheckpoint(state, { runId: RUN, subnet: SUBNET })),
    });
    return store;
  }

  test('newest valid checkpoint; damaged ones are skipped with their key; another config is an error', async () => {
    const store = await searched('resume-point');
    const warnings: string[] = [];
    const warn = (key: string): void => void warnings.push(key);
    const newest = await findResumePoint(store, RUN, keys, problem, config, warn);
    assert.equal(newest?.state.generation, 3);
    assert.deepEqual(warnings, []);

    // Truncate gen 3 and change a value of gen 2 (valid JSON, wrong digest): gen 1 is used, both keys are named.
    const gen3 = join(store.root, keys.checkpoint(3));
    await truncate(gen3, 100);
    const gen2 = keys.checkpoint(2);
    await store.put(gen2, (await readFile(join(store.root, gen2), 'utf8')).replace('"elapsedMs":', '"elapsedMs":1'));
    const older = await findResumePoint(store, RUN, keys, problem, config, warn);
    assert.equal(older?.state.generation, 1);
    assert.deepEqual(warnings, [keys.checkpoint(3), gen2]);
    assert.deepEqual(older?.skipped.map((s) => s.key), [keys.checkpoint(3), gen2]);

    await assert.rejects(findResumePoint(store, RUN, keys, problem, { ...config, seed: 12 }, warn), CheckpointMismatchError);
    assert.equal(await findResumePoint(new FileStore(join(root, 'empty')), RUN, keys, problem, config, warn), undefined);
  });
});

describe('checkpoint codec', () => {
  const state = {
    format: 'emo-dir/nsga2-state',
    version: 1,
    configHash: 'abc',
    generation: 2,
    evaluations: 1,
    elapsedMs: 12.5,
    rng: { algorithm: 'xoshiro128**', words: [1, 2, 3, 4] },
    population: [0],
    archive: [{ genome: 'Aw==', objectives: [0.5, 0.1234567890123], extras: { accuracy: 0.9 }, generation: 0 }],
    counters: { duplicateRetries: 0, duplicatesDropped: 0, repairedChannels: 0 },
  } as unknown as SearchState;
  const meta = { runId: 'r', subnet: 'k1' };

  test('round-trips exactly and is one line', () => {
    const text = encodeCheckpoint(state, meta);
    assert.equal(text.split('\n').length, 2);
    assert.deepEqual(decodeCheckpoint(text, { ...meta, generation: 2 }), state);
  });

  test('detects truncation, tampering, another owner and a misplaced generation', () => {
    const text = encodeCheckpoint(state, meta);
    assert.throws(() => decodeCheckpoint(text.slice(0, text.length - 10), meta), /not valid JSON/);
    assert.throws(() => decodeCheckpoint(text.replace('0.1234567890123', '0.1234567890124'), meta), /does not match its digest/);
    assert.throws(() => decodeCheckpoint(text, { runId: 'r', subnet: 'k2' }), /expected r k2/);
    assert.throws(() => decodeCheckpoint(text, { ...meta, generation: 3 }), /its key says 3/);
  });
});
