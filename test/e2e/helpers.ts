/**
 * What the end-to-end tests share: a tiny run spec over the small trained fixture model, the CLI
 * spawned as a user runs it (`node bin/emo-dir.js ...`), waiting on the store, finding the
 * worker processes a run started, and snapshots of a directory tree (to prove that nothing was
 * written outside the store).
 */
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { EventEmitter } from 'node:events';
import type { RunCommandDependencies } from '../../src/local/command.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(REPO, 'bin', 'emo-dir.js');
/** A small trained Fashion-MNIST ResNet (4k training images); absolute, so run.ts copies it into the store. */
export const FIXTURE_MODEL = join(REPO, 'test', 'dir', 'fixtures', 'fmnist-resnet-4k');
const HOLD_SEARCH = join(REPO, 'test', 'e2e', 'fixtures', 'hold-search.mjs');

/**
 * Safety nets, not expectations: how long a run or a wait may take before the test gives up.
 * A tiny run takes ~30 s on an idle 2-core machine; these only end a run that hangs, so they are
 * far above anything a loaded machine needs (a test never passes or fails by how fast it ran).
 */
export const RUN_TIMEOUT_MS = 15 * 60_000;
export const HOLD_WAIT_MS = 10 * 60_000;

/**
 * The environment for a run whose search of `subnet` holds (blocks for good) right after storing
 * the checkpoint of `generation`, once per `marker` file (fixtures/hold-search.mjs): a test then
 * stops or kills the run mid-search with certainty. The marker holds the held worker's pid.
 */
export function holdSearchEnv(subnet: string, generation: number, marker: string): Record<string, string> {
  return {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(HOLD_SEARCH).href}`.trim(),
    EMO_DIR_TEST_HOLD: `${subnet}:${generation}:${marker}`,
  };
}

type Json = Record<string, unknown>;

/**
 * The smallest spec that still exercises every stage: two sub-networks (so two parallel
 * searches), one target, a few hundred images. ~30 s on two cores.
 */
export function tinySpec(runId: string, overrides: { search?: Json; [field: string]: unknown } = {}): Json {
  const { search, ...rest } = overrides;
  return {
    runId,
    model: FIXTURE_MODEL,
    dataset: { name: 'fashion-mnist', searchTrain: 256, searchVal: 128, fineTuneLimit: 512, testLimit: 256 },
    targets: [{ kind: 'flopsCut', value: 0.3 }],
    divide: { subnetworks: 2 },
    search: { population: 4, generations: 2, recoverySteps: 2, seed: 1, ...search },
    merge: { verifyTop: 1 },
    finalize: { epochs: 0.25 },
    ...rest,
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallSeconds: number;
}

export interface CliOptions {
  /** Each stderr line as it arrives (progress, retries). */
  readonly onStderrLine?: (line: string) => void;
  /** The process, once spawned (to signal it, or to find its workers). */
  readonly onSpawn?: (child: ChildProcess) => void;
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Kill the CLI (and fail) after this long: a hung run. Default RUN_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

/** Runs `node bin/emo-dir.js <args>` and collects its output. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const started = performance.now();
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    options.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      stderr += `${line}\n`;
      options.onStderrLine?.(line);
    });
    const timeoutMs = options.timeoutMs ?? RUN_TIMEOUT_MS;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`emo-dir ${args.join(' ')} hung: no end after ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, wallSeconds: (performance.now() - started) / 1000 });
    });
  });
}

/** Polls `check` until it returns a value other than undefined/false (gives up after `timeoutMs`: a hang). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = HOLD_WAIT_MS, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    await new Promise((done) => setTimeout(done, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly args: string;
}

/**
 * The direct children of `parentPid` whose command line contains every one of `argvParts`
 * (e.g. `['search', '--subnet', 'k1']`): the workers a run started, never anybody else's process.
 */
export async function childProcesses(parentPid: number, argvParts: readonly string[]): Promise<ProcessInfo[]> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'pid=,ppid=,args=']);
  const found: ProcessInfo[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (match === null || Number(match[2]) !== parentPid) continue;
    const args = match[3].split(/\s+/);
    // The parts must appear adjacent and in order (`--subnet k1` matches, `--subnet k10` does not).
    const contains = args.some((_, start) => argvParts.every((part, index) => args[start + index] === part));
    if (contains) found.push({ pid: Number(match[1]), ppid: Number(match[2]), args: match[3] });
  }
  return found;
}

/** Every path under `dir` (relative, sorted, directories with a trailing '/'). */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(dir, relative), { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        out.push(`${path}/`);
        await walk(path);
      } else {
        out.push(path);
      }
    }
  };
  await walk('');
  return out.sort();
}

/** The one JSON object `emo-dir run --json` prints on stdout (fails the test if there is anything else). */
export function parseSingleJson(stdout: string): Json {
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  if (lines.length !== 1) throw new Error(`expected one line of JSON on stdout, got ${lines.length}:\n${stdout}`);
  return JSON.parse(lines[0]) as Json;
}

export interface CommandOutcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `emo-dir run|resume <argv>` in this process, with the real Lambda handlers, its output
 * captured and its own signal source (so a test never installs handlers on the test runner).
 */
export async function runCommandInProcess(
  name: 'run' | 'resume',
  argv: string[],
  extra: Pick<RunCommandDependencies, 'runOptions'> = {},
): Promise<CommandOutcome> {
  // Loaded on first use: most e2e files spawn the CLI and need neither.
  const [{ loadHandlers }, { executeCommand }] = await Promise.all([import('../../src/cli/run.ts'), import('../../src/local/command.ts')]);
  let stdout = '';
  let stderr = '';
  const code = await executeCommand(name, argv, {
    loadHandlers,
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    signals: new EventEmitter() as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
    ...extra,
  });
  return { code, stdout, stderr };
}

/** A job as `emo-dir run --json` lists it. */
export interface JobJson {
  readonly label: string;
  readonly status: string;
  readonly attempts: readonly { attempt: number; startedAt: number; stoppedAt: number; signal: string | null; statusReason: string }[];
}

/**
 * The job `label` of a `--json` result lost attempt 1 to a SIGKILL the runner did not send (in
 * Batch's terms a lost host) and succeeded as attempt 2.
 */
export function assertKilledThenRetried(result: Json, label: string): void {
  const job = (result.jobs as JobJson[]).find((candidate) => candidate.label === label);
  assert.ok(job !== undefined, `no job ${label} in ${JSON.stringify(result.jobs)}`);
  assert.equal(job.status, 'SUCCEEDED');
  assert.deepEqual(
    job.attempts.map((attempt) => [attempt.attempt, attempt.signal]),
    [
      [1, 'SIGKILL'],
      [2, null],
    ],
  );
  assert.match(job.attempts[0].statusReason, /^Host EC2/);
}
