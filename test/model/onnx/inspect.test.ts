/**
 * `emo-dir inspect <file.onnx> --json` prints the same fields as for a tfjs model (DESIGN §7),
 * computed on the imported model; an `.onnx` key in the store and an ONNX spec model resolve too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run as inspect } from '../../../src/cli/inspect.ts';
import { loadSpecModel } from '../../../src/dir/plan.ts';
import { initEngine } from '../../../src/engine/backend.ts';
import { resolveModel } from '../../../src/model/io.ts';
import { classifyModelReference } from '../../../src/model/reference.ts';
import { FileStore } from '../../../src/store/file-store.ts';
import { FIXTURES } from './parity.ts';

let scratch: string;

before(async () => {
  await initEngine();
  scratch = await mkdtemp(join(tmpdir(), 'emo-dir-onnx-inspect-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function inProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await inspect(args, { stdout: (t) => stdout.push(t), stderr: (t) => stderr.push(t) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** Key sets, recursively for the first element of arrays: the "same fields" contract. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeOf(v)]).sort(([a], [b]) => String(a).localeCompare(String(b))));
  }
  return typeof value;
}

test('emo-dir inspect <file.onnx> --json (the real CLI) prints the fields of a tfjs model inspection', async () => {
  const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, ['bin/emo-dir.js', 'inspect', ...args], { env: { ...process.env, NODE_OPTIONS: '' }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      });
    });
  const onnx = await run([join(FIXTURES, 'resnet18.onnx'), '--json']);
  assert.equal(onnx.code, 0, onnx.stderr);
  const lines = onnx.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'stdout is exactly one JSON object');
  const report = JSON.parse(lines[0]) as { model: string; inputShape: number[]; macs: number; params: number; layers: { className: string }[]; groups: { prunable: boolean }[] };
  const zoo = JSON.parse((await inProcess('zoo:resnet20', '--json')).stdout) as unknown;
  assert.deepEqual(shapeOf(report), shapeOf(zoo));
  assert.equal(report.model, join(FIXTURES, 'resnet18.onnx'));
  assert.deepEqual(report.inputShape, [null, 64, 64, 3]);
  assert.ok(report.groups.some((g) => g.prunable));
  // ResNet-18 at 1/4 width: 20 convs (17 + 3 projection shortcuts); params equal the ONNX file's weights.
  assert.equal(report.layers.filter((l) => l.className === 'Conv2D').length, 20);
  const onnxParams = await countOnnxParams(join(FIXTURES, 'resnet18.onnx'));
  assert.equal(report.params, onnxParams);
});

/** Parameters stored in an ONNX file (every initializer's element count). */
async function countOnnxParams(path: string): Promise<number> {
  const { decodeModel } = await import('../../../src/model/onnx/proto.ts');
  const model = decodeModel(await readFile(path), path);
  return model.graph.initializer.reduce((sum, t) => sum + t.dims.reduce((p, d) => p * d, 1), 0);
}

test('an .onnx key in the file store inspects, and loads as a spec model', async () => {
  const store = new FileStore(join(scratch, 'store'));
  await store.put('registry/r18/model.onnx', await readFile(join(FIXTURES, 'resnet18.onnx')));
  const result = await inProcess('registry/r18/model.onnx', '--json', '--store', store.root);
  assert.equal(result.code, 0, result.stderr);
  assert.match((JSON.parse(result.stdout) as { model: string }).model, /registry\/r18\/model\.onnx$/);
  const resolved = await loadSpecModel(store, 'registry/r18/model.onnx');
  try {
    assert.equal(resolved.origin, 'onnx');
    assert.equal(resolved.model.name, 'r18');
  } finally {
    resolved.model.dispose();
  }
  const missing = await inProcess('registry/none/model.onnx', '--store', store.root);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /registry\/none\/model\.onnx does not exist in /);
});

test('the model reference table has the two ONNX forms', () => {
  assert.deepEqual(classifyModelReference('./model.onnx'), { kind: 'onnx-file', ref: './model.onnx' });
  assert.deepEqual(classifyModelReference('/data/r18.ONNX'), { kind: 'onnx-file', ref: '/data/r18.ONNX' });
  assert.deepEqual(classifyModelReference('registry/r18/model.onnx'), { kind: 'onnx-key', ref: 'registry/r18/model.onnx', key: 'registry/r18/model.onnx' });
  assert.equal(classifyModelReference('./model').kind, 'directory');
  assert.throws(() => classifyModelReference('https://hub/model.onnx'), /models are not downloaded.*a local ONNX file/);
});

test('resolveModel imports an ONNX file with its external data beside it', async () => {
  const dir = join(scratch, 'external');
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
  await copyFile(join(FIXTURES, 'external_data.onnx'), join(dir, 'external_data.onnx'));
  await copyFile(join(FIXTURES, 'external_data.onnx.data'), join(dir, 'external_data.onnx.data'));
  const resolved = await resolveModel(join(dir, 'external_data.onnx'));
  try {
    assert.equal(resolved.origin, 'onnx');
    assert.equal(resolved.model.countParams(), 8 * 1 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 10 + 10);
  } finally {
    resolved.model.dispose();
  }
});
