/**
 * `emo-dir run` with an ONNX model, end to end (the real CLI, state machine and workers on the
 * tiny e2e spec): the run stores the converted model, every target gets a model.onnx with the
 * source's opset and input/output names, and onnxruntime on that file measures the accuracy the
 * run reports on the same test images.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initEngine } from '../../../src/engine/backend.ts';
import { loadModel } from '../../../src/model/io.ts';
import { encodeOnnx } from '../../../src/model/onnx/export.ts';
import { onnxOriginOf } from '../../../src/model/onnx/metadata.ts';
import { decodeModel } from '../../../src/model/onnx/proto.ts';
import { FileStore } from '../../../src/store/file-store.ts';
import { runKeys } from '../../../src/store/keys.ts';
import { checkRun } from '../../../scripts/onnx/check-accuracy.ts';
import { FIXTURE_MODEL, parseSingleJson, runCli, tinySpec } from '../../e2e/helpers.ts';

const RUN_ID = 'e2e-onnx';
let dir: string;

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-onnx-run-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

test('emo-dir run on an .onnx model writes model.onnx per target, and onnxruntime reproduces the reported accuracy', async () => {
  // The trained e2e fixture network, as an ONNX file (what a PyTorch user would bring).
  const source = await loadModel(FIXTURE_MODEL);
  const onnxPath = join(dir, 'fmnist.onnx');
  await writeFile(onnxPath, encodeOnnx(source, { opset: 12 }));
  source.dispose();
  const sourceProto = decodeModel(encodeOnnx(await loadModel(FIXTURE_MODEL), { opset: 12 }), 'source');

  const specPath = join(dir, 'spec.json');
  await writeFile(specPath, JSON.stringify(tinySpec(RUN_ID, { model: onnxPath })));
  const storeDir = join(dir, 'store');
  const cli = await runCli(['run', specPath, '--store', storeDir, '--json', '--workers', '2'], { timeoutMs: 600_000 });
  assert.equal(cli.code, 0, `emo-dir run failed:\n${cli.stderr}`);
  const result = parseSingleJson(cli.stdout);
  assert.equal(result.status, 'SUCCEEDED');

  const store = new FileStore(storeDir);
  // The converted model is in the store, remembering its origin.
  const stored = await loadModel({ store, prefix: `${runKeys(RUN_ID).prefix}model/` });
  try {
    assert.equal(onnxOriginOf(stored)?.opset, 12);
  } finally {
    stored.dispose();
  }
  const targets = result.targets as Record<string, { onnxModelKey?: string } | null>;
  for (const [name, metrics] of Object.entries(targets)) {
    assert.equal(metrics?.onnxModelKey, runKeys(RUN_ID).target(name).onnxModel);
    const exported = decodeModel(await store.get(metrics.onnxModelKey), metrics.onnxModelKey);
    assert.deepEqual(exported.opset_import.map((o) => o.version), [12]);
    assert.deepEqual(exported.graph.input.map((i) => i.name), sourceProto.graph.input.map((i) => i.name));
    assert.deepEqual(exported.graph.output.map((o) => o.name), sourceProto.graph.output.map((o) => o.name));
    const params = (m: typeof exported): number => m.graph.initializer.reduce((sum, t) => sum + t.dims.reduce((p, d) => p * d, 1), 0);
    assert.ok(params(exported) < params(sourceProto), 'the exported model is the pruned one');
  }
  const checks = await checkRun(store, RUN_ID);
  assert.ok(checks.length > 0);
  for (const check of checks) {
    assert.ok(check.agrees, `target ${check.target}: onnxruntime ${check.onnxAccuracy} on ${check.testCount} images, metrics.json ${check.reportedAccuracy}`);
  }
});
