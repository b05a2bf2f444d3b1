/**
 * ONNX models on the cloud path and in the spec: `emo-dir submit` converts a local `.onnx` once
 * and uploads the tfjs model; an `.onnx` store key is used as it is; `finalize.export` is checked.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { submitRun } from '../../../src/cloud/submit.ts';
import { initEngine } from '../../../src/engine/backend.ts';
import { loadModel } from '../../../src/model/io.ts';
import { onnxOriginOf } from '../../../src/model/onnx/metadata.ts';
import { runSpecSchema } from '../../../src/schema/spec.ts';
import { parseWith, ValidationError } from '../../../src/schema/validate.ts';
import type { FileStore } from '../../../src/store/file-store.ts';
import { getJson } from '../../../src/store/object-store.ts';
import { STATE_MACHINE_ARN, minimalSpec, sfnClient, tempStore } from '../../cloud/helpers.ts';
import { FIXTURES } from './parity.ts';

const NOW = new Date('2026-11-28T02:50:00Z');
const sfnMock = mockClient(SFNClient);
let store: FileStore;
let dir: string;
let cleanup: () => Promise<void>;

before(async () => {
  await initEngine();
});
beforeEach(async () => {
  sfnMock.reset();
  sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => ({ executionArn: `arn:aws:states:eu-west-1:123456789012:execution:EmoDir:${input.name}`, startDate: NOW }));
  ({ store, dir, cleanup } = await tempStore());
});
afterEach(() => cleanup());
after(() => sfnMock.restore());

const base = () => ({ store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN, specSource: 'spec.json', now: NOW });

test('submit converts a local .onnx file into the run\'s stored model, named after its folder', async () => {
  const modelDir = join(dir, 'specs', 'r18');
  await mkdir(modelDir, { recursive: true });
  await copyFile(join(FIXTURES, 'resnet18.onnx'), join(modelDir, 'model.onnx'));
  const submitted = await submitRun({ ...base(), spec: minimalSpec({ model: './r18/model.onnx' }), baseDir: join(dir, 'specs') });
  assert.equal(submitted.runId, 'r18-20261128T025000');
  assert.equal(submitted.model, 'runs/r18-20261128T025000/model/');
  assert.deepEqual(submitted.uploaded, ['runs/r18-20261128T025000/model/weights.bin', 'runs/r18-20261128T025000/model/model.json']);
  const spec = runSpecSchema.parse(await getJson(store, submitted.specKey));
  assert.equal(spec.model, 'runs/r18-20261128T025000/model/');
  const model = await loadModel({ store, prefix: submitted.model });
  try {
    assert.equal(onnxOriginOf(model)?.opset, 11);
    assert.equal(model.name, 'r18');
  } finally {
    model.dispose();
  }
});

test('submit takes an .onnx store key as it is, and refuses a missing one', async () => {
  await store.put('registry/r18/model.onnx', new Uint8Array([1]));
  const submitted = await submitRun({ ...base(), spec: minimalSpec({ model: 'registry/r18/model.onnx' }) });
  assert.equal(submitted.model, 'registry/r18/model.onnx');
  assert.deepEqual(submitted.uploaded, []);
  await assert.rejects(submitRun({ ...base(), spec: minimalSpec({ model: 'registry/none/model.onnx' }) }), /spec\.json: field model: no ONNX file at "registry\/none\/model\.onnx"/);
});

test('finalize.export: tfjs always, onnx on request; a bad list names the field', () => {
  const spec = (exportFormats: unknown): unknown => ({ ...minimalSpec(), finalize: { export: exportFormats } });
  assert.deepEqual(parseWith(runSpecSchema, spec(['tfjs', 'onnx']), 'spec.json').finalize.export, ['tfjs', 'onnx']);
  assert.equal(parseWith(runSpecSchema, minimalSpec(), 'spec.json').finalize.export, undefined);
  for (const [formats, message] of [
    [['onnx'], /finalize\.export: must include "tfjs"/],
    [['tfjs', 'tfjs'], /finalize\.export: lists a format twice/],
    [['tfjs', 'torchscript'], /finalize\.export\[1\]/],
  ] as const) {
    assert.throws(() => parseWith(runSpecSchema, spec(formats), 'spec.json'), (error: Error) => error instanceof ValidationError && message.test(error.message));
  }
});
