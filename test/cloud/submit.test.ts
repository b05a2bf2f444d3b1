import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { RunIdTakenError } from '../../src/cloud/runs.ts';
import { submitRun, submitSpec, SweepSubmitError } from '../../src/cloud/submit.ts';
import { executionInputSchema } from '../../src/schema/messages.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import type { FileStore } from '../../src/store/file-store.ts';
import { getJson, getText, type ObjectStore } from '../../src/store/object-store.ts';
import { MODEL_FILES, STATE_MACHINE_ARN, minimalSpec, sfnClient, tempStore } from './helpers.ts';

const NOW = new Date('2026-11-28T02:50:00Z');

describe('submitRun', () => {
  const sfnMock = mockClient(SFNClient);
  let store: FileStore;
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    sfnMock.reset();
    sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
      executionArn: `arn:aws:states:eu-west-1:123456789012:execution:EmoDir:${input.name}`,
      startDate: NOW,
    }));
    ({ store, dir, cleanup } = await tempStore());
  });
  afterEach(() => cleanup());
  after(() => sfnMock.restore());

  const base = () => ({ store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN, specSource: 'spec.json', now: NOW });

  it('writes the validated spec and starts an execution named after the run id', async () => {
    const submitted = await submitRun({ ...base(), spec: minimalSpec(), maxConcurrency: 4 });

    assert.equal(submitted.runId, 'resnet20-20261128T025000');
    assert.equal(submitted.specKey, 'runs/resnet20-20261128T025000/spec.json');
    assert.equal(submitted.alreadyStarted, false);
    const spec = runSpecSchema.parse(await getJson(store, submitted.specKey));
    assert.equal(spec.runId, submitted.runId);
    assert.equal(spec.divide.minKeep, 0.1, 'defaults are written out');
    const calls = sfnMock.commandCalls(StartExecutionCommand);
    assert.equal(calls.length, 1);
    const request = calls[0].args[0].input;
    assert.equal(request.name, submitted.runId);
    assert.equal(request.stateMachineArn, STATE_MACHINE_ARN);
    const input = executionInputSchema.parse(JSON.parse(request.input ?? ''));
    assert.deepEqual(input, { runId: submitted.runId, specKey: submitted.specKey, maxConcurrency: 4 });
    assert.equal(submitted.executionArn, `arn:aws:states:eu-west-1:123456789012:execution:EmoDir:${submitted.runId}`);
  });

  it("keeps the spec's own run id, and is idempotent for the same spec", async () => {
    const spec = minimalSpec({ runId: 'mine' });
    const first = await submitRun({ ...base(), spec });
    sfnMock.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const again = await submitRun({ ...base(), spec, now: new Date('2027-01-01T00:00:00Z') });
    assert.equal(first.runId, 'mine');
    assert.equal(again.runId, 'mine');
    assert.equal(again.alreadyStarted, true);
    assert.equal(again.executionArn, 'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:mine');
  });

  it('refuses a taken run id with a different spec, before starting anything', async () => {
    await submitRun({ ...base(), spec: minimalSpec({ runId: 'mine' }) });
    sfnMock.resetHistory();
    await assert.rejects(
      submitRun({ ...base(), spec: minimalSpec({ runId: 'mine', targets: [{ kind: 'flopsCut', value: 0.7 }] }) }),
      (error: unknown) => error instanceof RunIdTakenError && /runs\/mine\/spec\.json .* already exists/.test(error.message),
    );
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });

  it('rejects an invalid spec with its field paths and writes nothing', async () => {
    await assert.rejects(
      submitRun({ ...base(), spec: { model: 'zoo:resnet20', dataset: {}, targets: [] } }),
      (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.source, 'spec.json');
        assert.deepEqual(error.issues.map((issue) => issue.path).sort(), ['dataset.name', 'targets']);
        return true;
      },
    );
    assert.deepEqual(await store.list(''), []);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });

  it('uploads a local model directory and points the spec at it', async () => {
    const modelDir = join(dir, 'specs', 'nets', 'tiny');
    await mkdir(modelDir, { recursive: true });
    for (const [name, body] of Object.entries(MODEL_FILES)) await writeFile(join(modelDir, name), body);

    const submitted = await submitRun({ ...base(), spec: minimalSpec({ model: './nets/tiny' }), baseDir: join(dir, 'specs') });

    assert.equal(submitted.runId, 'tiny-20261128T025000');
    assert.equal(submitted.model, 'runs/tiny-20261128T025000/model/');
    assert.deepEqual(submitted.uploaded, ['runs/tiny-20261128T025000/model/weights.bin', 'runs/tiny-20261128T025000/model/model.json']);
    assert.equal(await getText(store, 'runs/tiny-20261128T025000/model/weights.bin'), MODEL_FILES['weights.bin']);
    const spec = runSpecSchema.parse(await getJson(store, submitted.specKey));
    assert.equal(spec.model, 'runs/tiny-20261128T025000/model/');
  });

  it('checks models given as store keys or s3 URLs, and refuses missing ones', async () => {
    await assert.rejects(
      submitRun({ ...base(), spec: minimalSpec({ model: './no/such/dir' }), baseDir: dir }),
      /spec\.json: field model: "\.\/no\/such\/dir" is a local path, but .* is not a directory holding model\.json/,
    );
    await assert.rejects(
      submitRun({ ...base(), spec: minimalSpec({ model: 'registry/x/model' }) }),
      /field model: no model at "registry\/x\/model": registry\/x\/model\/model\.json does not exist/,
    );
    await assert.rejects(
      submitRun({ ...base(), spec: minimalSpec({ model: 's3://elsewhere/registry/x/model/' }) }),
      /outside the run's store/,
    );
    await store.put('registry/x/model/model.json', MODEL_FILES['model.json']);
    const byKey = await submitRun({ ...base(), spec: minimalSpec({ model: 'registry/x/model', runId: 'by-key' }) });
    assert.equal(byKey.model, 'registry/x/model/');
    // An S3 store (here: the file store under an s3:// name) maps URLs inside it to keys.
    const s3Named: ObjectStore = {
      location: 's3://emo-bucket/team',
      get: (key) => store.get(key),
      getRange: (key, offset, length, into) => store.getRange(key, offset, length, into),
      put: (key, body, putOptions) => store.put(key, body, putOptions),
      exists: (key) => store.exists(key),
      list: (prefix) => store.list(prefix),
      delete: (key) => store.delete(key),
    };
    const byUrl = await submitRun({
      ...base(),
      store: s3Named,
      spec: minimalSpec({ model: 's3://emo-bucket/team/registry/x/model/', runId: 'by-url' }),
    });
    assert.equal(byUrl.model, 'registry/x/model/');
    await assert.rejects(
      submitRun({ ...base(), store: s3Named, spec: minimalSpec({ model: 's3://emo-bucket/registry/x/model/' }) }),
      /s3:\/\/emo-bucket\/registry\/x\/model\/ is outside the run's store s3:\/\/emo-bucket\/team/,
    );
    assert.deepEqual(byKey.uploaded, []);
  });

  it('surfaces Step Functions errors with the execution and state machine', async () => {
    sfnMock.on(StartExecutionCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    await assert.rejects(
      submitRun({ ...base(), spec: minimalSpec() }),
      /cannot start execution resnet20-20261128T025000 of arn:aws:states:.*: User is not authorized/,
    );
  });
});

describe('submitting a sweep', () => {
  const sfnMock = mockClient(SFNClient);
  let store: FileStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    sfnMock.reset();
    ({ store, cleanup } = await tempStore());
  });
  afterEach(() => cleanup());
  after(() => sfnMock.restore());

  const sweep = {
    sweepId: 'nov',
    models: ['zoo:resnet20', 'zoo:resnet56'],
    dataset: { name: 'fashion-mnist' },
    targets: [
      { kind: 'flopsCut', value: 0.5 },
      { kind: 'flopsCut', value: 0.7 },
      { kind: 'flopsCut', value: 0.85 },
    ],
  };
  const options = () => ({ store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN, specSource: 'sweep.json', now: NOW });

  it('starts one execution per model (not per target)', async () => {
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const result = await submitSpec({ ...options(), spec: sweep });
    assert.equal(result.sweepId, 'nov');
    assert.deepEqual(result.runs.map((run) => run.runId), ['nov-resnet20', 'nov-resnet56']);
    const names = sfnMock.commandCalls(StartExecutionCommand).map((call) => call.args[0].input.name);
    assert.deepEqual(names, ['nov-resnet20', 'nov-resnet56']);
    for (const run of result.runs) {
      const spec = runSpecSchema.parse(await getJson(store, run.specKey));
      assert.equal(spec.targets.length, 3);
    }
  });

  it('says which runs started when one fails, and resumes on resubmission', async () => {
    sfnMock
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:x' })
      .rejectsOnce(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }))
      .rejectsOnce(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }))
      .resolves({ executionArn: 'arn:y' });
    await assert.rejects(submitSpec({ ...options(), spec: sweep }), (error: unknown) => {
      assert.ok(error instanceof SweepSubmitError);
      assert.deepEqual(error.started.map((run) => run.runId), ['nov-resnet20']);
      assert.equal(error.failedRunId, 'nov-resnet56');
      assert.match(error.message, /"sweepId": "nov"/);
      return true;
    });
    const resumed = await submitSpec({ ...options(), spec: sweep });
    assert.deepEqual(resumed.runs.map((run) => run.alreadyStarted), [true, false]);
  });

  it('validates the sweep as a whole', async () => {
    await assert.rejects(
      submitSpec({ ...options(), spec: { ...sweep, models: ['zoo:resnet20', 'zoo:resnet20'] } }),
      /invalid sweep\.json:\n {2}- models\[1\]: model name 'resnet20' is used twice/,
    );
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });
});
