import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { createTriggerHandler } from '../../functions/trigger.ts';
import { resolvePackageModel, storeKeyOfObject } from '../../src/cloud/registry.ts';
import { executionNameFor } from '../../src/cloud/names.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import { getJson, type ObjectStore, type PutOptions } from '../../src/store/object-store.ts';
import type { FileStore } from '../../src/store/file-store.ts';
import { MODEL_FILES, STATE_MACHINE_ARN, minimalSpec, sfnClient, tempStore } from '../cloud/helpers.ts';
import { CapturingLogger } from './capture-logger.ts';

const ENV = { EMO_DIR_STORE: 's3://emo-bucket', STATE_MACHINE_ARN };

function uploadEvent(
  key: string,
  object: { versionId?: string; etag?: string } = { versionId: 'v1', etag: '"0123abcd"' },
  id = 'event-1',
): unknown {
  return {
    version: '0',
    id,
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: '123456789012',
    time: '2026-11-28T02:00:00Z',
    region: 'eu-west-1',
    resources: ['arn:aws:s3:::emo-bucket'],
    detail: {
      version: '0',
      bucket: { name: 'emo-bucket' },
      object: {
        key,
        size: 120,
        ...(object.etag === undefined ? {} : { etag: object.etag }),
        ...(object.versionId === undefined ? {} : { 'version-id': object.versionId }),
        sequencer: '0062E99A88DC407460',
      },
      'request-id': 'N4N7GDK58NMKJ12R',
      requester: '123456789012',
      reason: 'PutObject',
    },
  };
}

/** Counts completed puts per key, to check that a repeated event does not write again. */
function countingStore(inner: ObjectStore): { store: ObjectStore; writes: Map<string, number> } {
  const writes = new Map<string, number>();
  const store: ObjectStore = {
    location: inner.location,
    get: (key) => inner.get(key),
    getRange: (key, offset, length, into) => inner.getRange(key, offset, length, into),
    exists: (key) => inner.exists(key),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
    async put(key: string, body: Uint8Array | string, options?: PutOptions) {
      await inner.put(key, body, options);
      writes.set(key, (writes.get(key) ?? 0) + 1);
    },
  };
  return { store, writes };
}

describe('registry trigger', () => {
  const sfnMock = mockClient(SFNClient);
  let fileStore: FileStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    sfnMock.reset();
    ({ store: fileStore, cleanup } = await tempStore());
  });
  afterEach(async () => {
    await cleanup();
  });
  after(() => sfnMock.restore());

  async function putRequest(model: string, request: unknown): Promise<void> {
    await fileStore.put(`registry/${model}/prune.json`, typeof request === 'string' ? request : JSON.stringify(request));
  }

  function handlerWith(store: ObjectStore = fileStore, logger = new CapturingLogger()) {
    return { handler: createTriggerHandler({ store, sfn: sfnClient(), env: ENV, logger }), logger };
  }

  it('starts one execution, named after the upload, for a valid prune.json', async () => {
    await putRequest('resnet20', minimalSpec());
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:from-service', startDate: new Date() });
    const { handler, logger } = handlerWith();

    const result = await handler(uploadEvent('registry/resnet20/prune.json'));

    assert.equal(result.outcome, 'started');
    assert.ok(result.outcome === 'started');
    assert.match(result.runId, /^resnet20-[0-9a-f]{12}$/);
    assert.equal(result.specKey, `runs/${result.runId}/spec.json`);
    const calls = sfnMock.commandCalls(StartExecutionCommand);
    assert.equal(calls.length, 1);
    const input = calls[0].args[0].input;
    assert.equal(input.stateMachineArn, STATE_MACHINE_ARN);
    assert.equal(input.name, result.runId);
    assert.match(input.name ?? '', /^[A-Za-z0-9_-]{1,80}$/);
    assert.deepEqual(JSON.parse(input.input ?? ''), { runId: result.runId, specKey: result.specKey });
    // The written spec is the validated spec with defaults and the derived run id.
    const spec = runSpecSchema.parse(await getJson(fileStore, result.specKey));
    assert.equal(spec.runId, result.runId);
    assert.equal(spec.model, 'zoo:resnet20');
    assert.equal(spec.search.population, 16);
    // Log lines carry the run id as correlation id once it is known.
    const started = logger.items.find((item) => item.message === 'run started');
    assert.ok(started, `no 'run started' line in ${logger.messages().join(' | ')}`);
    assert.equal(started.correlation_id, result.runId);
    assert.equal(started.service, 'emo-dir');
  });

  it('derives the run from key + version: same upload -> same run, new version -> new run', async () => {
    await putRequest('resnet20', minimalSpec());
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const { handler } = handlerWith();
    const first = await handler(uploadEvent('registry/resnet20/prune.json', { versionId: 'v1', etag: '"e1"' }));
    const again = await handler(uploadEvent('registry/resnet20/prune.json', { versionId: 'v1', etag: '"e1"' }, 'event-2'));
    const next = await handler(uploadEvent('registry/resnet20/prune.json', { versionId: 'v2', etag: '"e1"' }));
    const unversioned = await handler(uploadEvent('registry/resnet20/prune.json', { etag: '"e2"' }));
    assert.ok(first.outcome === 'started' && again.outcome === 'started' && next.outcome === 'started');
    assert.ok(unversioned.outcome === 'started');
    assert.equal(first.runId, again.runId);
    assert.notEqual(first.runId, next.runId);
    assert.notEqual(next.runId, unversioned.runId);
    const names = sfnMock.commandCalls(StartExecutionCommand).map((call) => call.args[0].input.name);
    assert.deepEqual(names, [first.runId, first.runId, next.runId, unversioned.runId]);
  });

  it('handles the same event twice: one spec write, ExecutionAlreadyExists is success', async () => {
    await putRequest('resnet20', minimalSpec());
    const { store, writes } = countingStore(fileStore);
    sfnMock
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:first' })
      .rejectsOnce(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
    const { handler } = handlerWith(store);
    const event = uploadEvent('registry/resnet20/prune.json');

    const first = await handler(event);
    const second = await handler(event);

    assert.ok(first.outcome === 'started' && second.outcome === 'started');
    assert.equal(first.alreadyStarted, false);
    assert.equal(second.alreadyStarted, true);
    assert.equal(second.runId, first.runId);
    assert.equal(
      second.executionArn,
      `arn:aws:states:eu-west-1:123456789012:execution:EmoDir:${executionNameFor(first.runId)}`,
    );
    assert.equal(writes.get(first.specKey), 1, 'spec.json was written once');
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 2);
  });

  it('fails (for EventBridge to retry) on other Step Functions errors', async () => {
    await putRequest('resnet20', minimalSpec());
    sfnMock.on(StartExecutionCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const { handler } = handlerWith();
    await assert.rejects(handler(uploadEvent('registry/resnet20/prune.json')), /cannot start execution resnet20-[0-9a-f]+ .*Rate exceeded/);
  });

  it('ignores keys that are not registry/<model>/prune.json, with a log line', async () => {
    await fileStore.put('registry/resnet20/model/model.json', MODEL_FILES['model.json']);
    const { handler, logger } = handlerWith();
    for (const key of [
      'registry/resnet20/model/model.json',
      'registry/a/b/prune.json',
      'registry/prune.json',
      'datasets/cifar/prune.json',
      'registry/..bad/prune.json',
    ]) {
      const result = await handler(uploadEvent(key));
      assert.equal(result.outcome, 'ignored', key);
    }
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
    assert.deepEqual(await fileStore.list('runs/'), []);
    assert.equal(logger.messages().filter((message) => message.startsWith('ignored upload')).length, 5);
  });

  it('rejects an invalid prune.json: status.json names the field, no execution', async () => {
    await putRequest('resnet20', minimalSpec({ targets: [{ kind: 'flopsCut', value: 1.5 }] }));
    const { handler } = handlerWith();

    const result = await handler(uploadEvent('registry/resnet20/prune.json'));

    assert.equal(result.outcome, 'rejected');
    assert.ok(result.outcome === 'rejected');
    assert.equal(result.statusKey, `runs/${result.runId}/status.json`);
    const status = (await getJson(fileStore, result.statusKey)) as {
      state: string;
      message: string;
      source: string;
      issues: { path: string; message: string }[];
    };
    assert.equal(status.state, 'rejected');
    assert.deepEqual(
      status.issues.map((issue) => issue.path),
      ['targets[0].value'],
    );
    assert.match(status.message, /registry\/resnet20\/prune\.json/);
    assert.match(status.message, /targets\[0\]\.value/);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
    assert.equal(await fileStore.exists(`runs/${result.runId}/spec.json`), false);
  });

  it('rejects prune.json that is not JSON', async () => {
    await putRequest('resnet20', '{"model": "zoo:resnet20",');
    const { handler } = handlerWith();
    const result = await handler(uploadEvent('registry/resnet20/prune.json'));
    assert.ok(result.outcome === 'rejected');
    const status = (await getJson(fileStore, result.statusKey)) as { message: string };
    assert.match(status.message, /prune\.json is not valid JSON/);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });

  it("uses the package's model/ folder when prune.json names no model, and checks it is there", async () => {
    const { model: _model, ...withoutModel } = minimalSpec();
    await putRequest('vgg', withoutModel);
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const { handler } = handlerWith();

    const missing = await handler(uploadEvent('registry/vgg/prune.json'));
    assert.ok(missing.outcome === 'rejected');
    const status = (await getJson(fileStore, missing.statusKey)) as { issues: { path: string; message: string }[] };
    assert.equal(status.issues[0].path, 'model');
    assert.match(status.issues[0].message, /registry\/vgg\/model\/model\.json is missing/);

    await fileStore.put('registry/vgg/model/model.json', MODEL_FILES['model.json']);
    const started = await handler(uploadEvent('registry/vgg/prune.json', { versionId: 'v2' }));
    assert.ok(started.outcome === 'started');
    const spec = runSpecSchema.parse(await getJson(fileStore, started.specKey));
    assert.equal(spec.model, 'registry/vgg/model/');
  });

  it('ignores a runId inside prune.json (registry runs are named by their upload)', async () => {
    await putRequest('resnet20', minimalSpec({ runId: 'fixed' }));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const { handler, logger } = handlerWith();
    const result = await handler(uploadEvent('registry/resnet20/prune.json'));
    assert.ok(result.outcome === 'started');
    assert.notEqual(result.runId, 'fixed');
    assert.ok(logger.messages().some((message) => message.includes('names a runId')));
  });

  it('rejects a malformed event with the field path', async () => {
    const { handler, logger } = handlerWith();
    const event = uploadEvent('registry/resnet20/prune.json') as { detail: { object: Record<string, unknown> } };
    delete event.detail.object.key;
    await assert.rejects(handler(event), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.match(error.message, /invalid trigger event/);
      assert.deepEqual(error.issues.map((issue) => issue.path), ['detail.object.key']);
      return true;
    });
    assert.ok(logger.messages().includes('event rejected'));
    const noIdentity = uploadEvent('registry/resnet20/prune.json', {});
    await assert.rejects(handler(noIdentity), /detail\.object: needs etag or version-id/);
  });

  it('fails with the variable name when the environment is incomplete', async () => {
    await putRequest('resnet20', minimalSpec());
    const handler = createTriggerHandler({ sfn: sfnClient(), env: { EMO_DIR_STORE: 's3://emo-bucket' }, logger: new CapturingLogger() });
    await assert.rejects(handler(uploadEvent('registry/resnet20/prune.json')), /environment of the trigger function:\n {2}- STATE_MACHINE_ARN: is not set/);
  });
});

describe('registry helpers', () => {
  it('maps event keys to store keys only inside the store', () => {
    assert.deepEqual(storeKeyOfObject('s3://emo-bucket', 'emo-bucket', 'registry/a/prune.json'), { key: 'registry/a/prune.json' });
    assert.deepEqual(storeKeyOfObject('s3://emo-bucket/team', 'emo-bucket', 'team/registry/a/prune.json'), {
      key: 'registry/a/prune.json',
    });
    assert.ok('reason' in storeKeyOfObject('s3://emo-bucket/team', 'emo-bucket', 'registry/a/prune.json'));
    assert.ok('reason' in storeKeyOfObject('s3://emo-bucket', 'other-bucket', 'registry/a/prune.json'));
  });

  it('resolves package-relative model references and keeps them inside the package', () => {
    assert.deepEqual(resolvePackageModel(undefined, 'm'), { model: 'registry/m/model/' });
    assert.deepEqual(resolvePackageModel('./model', 'm'), { model: 'registry/m/model/' });
    assert.deepEqual(resolvePackageModel('weights/v2/', 'm'), { model: 'registry/m/weights/v2/' });
    assert.deepEqual(resolvePackageModel('zoo:resnet56', 'm'), { model: 'zoo:resnet56' });
    assert.deepEqual(resolvePackageModel('registry/other/model', 'm'), { model: 'registry/other/model/' });
    assert.ok('issue' in resolvePackageModel('../other/model', 'm'));
    assert.ok('issue' in resolvePackageModel('/abs', 'm'));
    assert.ok('issue' in resolvePackageModel('s3://elsewhere/model', 'm'));
    assert.ok('issue' in resolvePackageModel('.', 'm'));
  });
});
