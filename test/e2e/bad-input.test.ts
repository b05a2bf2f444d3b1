// Bad input to `emo-dir run`: every case exits non-zero with a message that names the field or
// the file, and writes nothing outside the store directory. Most cases run the command in this
// process (runCommand with the real Lambda handlers; no case gets as far as a worker); two go
// through the real CLI.
import assert from 'node:assert/strict';
import { cp, mkdtemp, mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { saveModel } from '../../src/model/io.ts';
import { FIXTURE_MODEL, listTree, runCli, runCommandInProcess, tinySpec, type CommandOutcome } from './helpers.ts';

type Json = Record<string, unknown>;

let root: string;
let storeDir: string;
let caseNumber = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'emo-dir-bad-input-'));
  storeDir = join(root, 'store');
  await initEngine({ backend: 'cpu' });
});
after(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/** Progress lines are not what these cases check: they go nowhere. */
const runInProcess = (argv: string[]) => runCommandInProcess('run', argv, { runOptions: { progressStream: { write: () => true } } });

/**
 * Writes `spec` next to the store, runs it, and checks: non-zero exit, `expected` in the message,
 * and no path outside the store added or removed (the spec file itself is the test's).
 */
async function expectRejected(spec: Json, expected: RegExp, via: 'process' | 'cli' = 'process'): Promise<CommandOutcome> {
  const specPath = join(root, `spec-${++caseNumber}.json`);
  await writeFile(specPath, JSON.stringify(spec));
  const outsideStore = async (): Promise<string[]> => (await listTree(root)).filter((path) => !path.startsWith('store/'));
  const before = await outsideStore();
  const argv = [specPath, '--store', storeDir, '--workers', '1'];
  const outcome = via === 'process' ? await runInProcess(argv) : await runCli(['run', ...argv]).then((r) => ({ ...r, code: r.code ?? -1 }));
  assert.notEqual(outcome.code, 0, `expected a failure, got exit 0:\n${outcome.stderr}`);
  assert.match(outcome.stderr, expected);
  assert.doesNotMatch(outcome.stderr, /^\s+at /m, 'the message carries a stack trace');
  assert.deepEqual(await outsideStore(), before, 'something was written outside the store');
  return outcome;
}

describe('emo-dir run with bad input', () => {
  it('names each invalid spec field', async () => {
    const base = tinySpec('bad-fields');
    await expectRejected({ ...base, targets: [{ kind: 'flopsCut', value: 1.5 }] }, /targets\[0\]\.value: Too big: expected number to be <1/);
    await expectRejected({ ...base, search: { ...(base.search as Json), population: 1 } }, /search\.population: Too small: expected number to be >=4/);
    await expectRejected({ ...base, colour: 'blue' }, /\(root\): Unrecognized key: "colour"/);
    const { name: _name, ...dataset } = base.dataset as Json;
    await expectRejected({ ...base, dataset }, /dataset\.name: .*expected string, received undefined/);
  });

  it('refuses run ids, target names and model paths that would leave the store', async () => {
    for (const runId of ['../x', '/abs', 'a/../../b']) {
      await expectRejected(tinySpec(runId), /runId: (use letters|must not contain)/);
    }
    await expectRejected({ ...tinySpec('bad-target'), targets: [{ kind: 'flopsCut', value: 0.3, name: '../x' }] }, /targets\[0\]\.name/);
    // A store prefix with '..' segments: refused by the store, reported against the spec's model field.
    await expectRejected({ ...tinySpec('bad-prefix'), model: 'runs/../../outside' }, /field model: .*invalid store key "runs\/\.\.\/\.\.\/outside\/model\.json": '\.\.' segment/);
  });

  it('names a model directory that does not exist', async () => {
    const missing = join(root, 'no-such-model');
    await expectRejected({ ...tinySpec('bad-missing'), model: missing }, new RegExp(`field model: ${missing} is not a directory holding model\\.json`));
    await expectRejected({ ...tinySpec('bad-relative'), model: '../no-such-model' }, /field model: .*no-such-model is not a directory holding model\.json/);
  });

  it('names the truncated weights file', async () => {
    const model = join(root, 'truncated-model');
    await cp(FIXTURE_MODEL, model, { recursive: true });
    await truncate(join(model, 'weights.bin'), 1000);
    const { stderr } = await expectRejected(
      { ...tinySpec('bad-weights'), model },
      /PlanError: run spec runs\/bad-weights\/spec\.json: field model: runs\/bad-weights\/model\/weights\.bin .* holds 1000 bytes/,
    );
    // The store's copy is traced back to the directory the user gave.
    assert.match(stderr, new RegExp(`runs/bad-weights/model/ is the run's copy of ${model}`));
  });

  it('names the layer that cannot be pruned', async () => {
    const model = join(root, 'transposed-conv-model');
    await mkdir(model);
    const input = tf.input({ shape: [28, 28, 1] });
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as tf.SymbolicTensor;
    const moved = tf.layers.permute({ dims: [3, 1, 2], name: 'channels_first' }).apply(conv) as tf.SymbolicTensor;
    const flat = tf.layers.flatten().apply(moved) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 10, activation: 'softmax', name: 'head' }).apply(flat) as tf.SymbolicTensor;
    const built = tf.model({ inputs: input, outputs: output });
    await saveModel(built, model);
    built.dispose();
    await expectRejected({ ...tinySpec('bad-layer'), model }, /PlanError: run spec runs\/bad-layer\/spec\.json: field model: model 'runs\/bad-layer\/model\/' .*channels_first.*Permute.*moves the channel axis/);
  });

  it('exits non-zero from the real command line too', async () => {
    await expectRejected({ ...tinySpec('bad-cli'), targets: [{ kind: 'flopsCut', value: 1.5 }] }, /targets\[0\]\.value/, 'cli');
    await expectRejected({ ...tinySpec('../cli') }, /runId: must not contain "\.\."/, 'cli');
  });
});
