import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/backend.ts';
import { saveModel } from '../../src/model/io.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { pruneModel } from '../../src/model/prune.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { run as inspect } from '../../src/cli/inspect.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI entry point, as a user would. */
function emoDir(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // NODE_OPTIONS from the test runner (--import tsx) is not needed: bin/emo-dir.js registers tsx.
    const env = { ...process.env, NODE_OPTIONS: '' };
    execFile(process.execPath, ['bin/emo-dir.js', 'inspect', ...args], { env, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs the command in this process with its output captured: spawning costs seconds per run
 * (tsx + tfjs start-up) on a busy machine, so only the contract test below spawns the real CLI.
 */
async function inProcess(...args: string[]): Promise<Run> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await inspect(args, { stdout: (t) => stdout.push(t), stderr: (t) => stderr.push(t) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

interface Report {
  model: string;
  inputShape: (number | null)[];
  layers: { name: string; className: string; outputShape: (number | null)[]; macs: number; params: number }[];
  groups: { id: string; channels: number; residual: boolean; prunable: boolean; producers: string[]; consumers: string[] }[];
  macs: number;
  params: number;
  prunableChannels: number;
}

let scratch: string;

before(async () => {
  await initEngine();
  scratch = await mkdtemp(join(tmpdir(), 'emo-dir-inspect-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

test('inspect zoo:resnet56 --json: one JSON object with the published MACs and params (2%)', async () => {
  const [plain, badName] = await Promise.all([emoDir('zoo:resnet56', '--json'), emoDir('zoo:resnet9000', '--json')]);
  assert.notEqual(badName.code, 0);
  assert.equal(badName.stdout, '');
  assert.match(badName.stderr, /unknown zoo model.*resnet9000/);
  const residual = await inProcess('zoo:resnet56', '--json', '--prune-residual');
  assert.equal(plain.code, 0, plain.stderr);
  const report = JSON.parse(plain.stdout) as Report;
  assert.ok(Math.abs(report.macs - 125.5e6) / 125.5e6 < 0.02, `MACs ${report.macs}`);
  assert.ok(Math.abs(report.params - 0.85e6) / 0.85e6 < 0.02, `params ${report.params}`);
  assert.equal(report.model, 'zoo:resnet56');
  assert.deepEqual(report.inputShape, [null, 32, 32, 3]);
  assert.equal(report.layers.reduce((s, l) => s + l.macs, 0), report.macs);
  assert.equal(report.layers.reduce((s, l) => s + l.params, 0), report.params);
  const stem = report.layers.find((l) => l.name === 'stem_conv')!;
  assert.deepEqual(stem, { name: 'stem_conv', className: 'Conv2D', outputShape: [null, 32, 32, 16], macs: 3 * 3 * 3 * 16 * 32 * 32, params: 432 });
  // 27 blocks, one prunable group each; 3 residual streams; input and logits fixed.
  assert.equal(report.groups.length, 32);
  assert.equal(report.groups.filter((g) => g.prunable).length, 27);
  assert.equal(report.prunableChannels, 9 * (16 + 32 + 64));
  const block = report.groups.find((g) => g.id === 'stage2_block3_conv1')!;
  assert.deepEqual(block, {
    id: 'stage2_block3_conv1', channels: 32, residual: false, prunable: true,
    producers: ['stage2_block3_conv1'], consumers: ['stage2_block3_conv2'],
  });

  assert.equal(residual.code, 0, residual.stderr);
  const withResidual = JSON.parse(residual.stdout) as Report;
  assert.equal(withResidual.prunableChannels, report.prunableChannels + 16 + 32 + 64);
});

test('inspect loads saved models from a directory and from a store key; prints a table without --json', async () => {
  const model = buildModel('fmnist-resnet');
  const analysis = analyzeChannels(model);
  // A pruned model, so the loaded counts cannot come from the zoo by accident.
  const mask = new Uint8Array(16).fill(1);
  mask.fill(0, 0, 6);
  const pruned = pruneModel(model, { stage1_block0_conv1: mask }, { analysis });
  const directory = join(scratch, 'dir-model');
  await saveModel(pruned, directory);
  const storeRoot = join(scratch, 'store');
  await saveModel(pruned, { store: new FileStore(storeRoot), prefix: 'registry/pruned' });

  const fromDir = await inProcess(directory, '--json');
  const fromStore = await inProcess('registry/pruned', '--store', storeRoot, '--json');
  const text = await inProcess(directory);
  for (const run of [fromDir, fromStore, text]) assert.equal(run.code, 0, run.stderr);
  const a = JSON.parse(fromDir.stdout) as Report;
  const b = JSON.parse(fromStore.stdout) as Report;
  assert.equal(a.params, pruned.countParams());
  assert.equal(a.groups.find((g) => g.id === 'stage1_block0_conv1')!.channels, 10);
  assert.equal(b.params, a.params);
  assert.equal(b.macs, a.macs);
  assert.match(text.stdout, /stage1_block0_conv1\s+Conv2D\s+\[\?,14,14,10\]/);
  assert.match(text.stdout, /MACs [\d.]+M \(\d+\)\s+params/);
  pruned.dispose();
  model.dispose();
});

test('bad input: unknown zoo name, missing directory, unknown store key, bad flags -> stderr and non-zero', async () => {
  const runs = [
    await inProcess('zoo:resnet9000', '--json'),
    await inProcess(join(scratch, 'no-such-dir')),
    await inProcess('runs/none/model', '--store', join(scratch, 'store')),
    await inProcess('zoo:resnet20', '--frobnicate'),
    await inProcess(),
  ];
  const [zoo, dir, key, flag, none] = runs;
  for (const run of runs) {
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout, '');
  }
  assert.match(zoo.stderr, /unknown zoo model.*resnet9000/);
  assert.match(dir.stderr, /no-such-dir.*does not exist/);
  assert.match(key.stderr, /model 'runs\/none\/model' not found: runs\/none\/model\/model\.json does not exist/);
  assert.match(flag.stderr, /frobnicate/);
  assert.match(none.stderr, /expected one <model>/);
});

test('every corpus architecture in the zoo inspects (zoo:<name>), its totals equal tfjs param counts', async () => {
  for (const name of ['mobilenetv2', 'mobilenetv3-small', 'efficientnet-b0', 'densenet', 'xception', 'inception-resnet', 'unet']) {
    const { code, stdout, stderr } = await inProcess(`zoo:${name}`, '--json');
    assert.equal(code, 0, `${name}: ${stderr}`);
    const report = JSON.parse(stdout) as Report;
    assert.equal(report.model, `zoo:${name}`);
    assert.ok(report.groups.some((g) => g.prunable), `${name} has prunable groups`);
    const model = buildModel(name as Parameters<typeof buildModel>[0]);
    assert.equal(report.params, model.countParams(), `${name} params`);
    model.dispose();
  }
});
