/**
 * The SageMaker Model Registry trigger and the registration of pruned models, through their
 * Lambda handlers: SageMaker, S3 (the package's model.tar.gz) and Step Functions are
 * aws-sdk-client-mock doubles, the store is a file store that calls itself s3://emo-bucket. The
 * event is the sample of AWS's documentation ("SageMaker model package state change"), and the
 * archives are made by GNU tar, not by the code under test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateModelPackageCommand, DescribeModelPackageCommand, SageMakerClient, type DescribeModelPackageCommandOutput } from '@aws-sdk/client-sagemaker';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { createModelPackageTriggerHandler } from '../../functions/model-package-trigger.ts';
import { createRegisterModelsHandler } from '../../functions/register-models.ts';
import { modelPackageRunId } from '../../src/cloud/names.ts';
import { parseS3Url } from '../../src/cloud/model-package-run.ts';
import { runStatusRecordSchema } from '../../src/schema/messages.ts';
import { modelPackageSourceSchema, modelRegistrationsSchema, registryModelMetricsSchema, modelPackageStateChangeEventSchema } from '../../src/schema/model-registry.ts';
import { runSpecSchema } from '../../src/schema/spec.ts';
import type { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson, putJson, type ObjectStore } from '../../src/store/object-store.ts';
import { STATE_MACHINE_ARN, sampleMetrics, sfnClient, tempDir, tempStore } from '../cloud/helpers.ts';
import { CapturingLogger } from './capture-logger.ts';

type Json = Record<string, unknown>;
const SAMPLE_PATH = new URL('./fixtures/sagemaker-model-package-state-change.json', import.meta.url);
/** The documentation's sample, as EventBridge delivers it (its duplicate "source" key parses to the array). */
const sampleEvent = JSON.parse(await readFile(SAMPLE_PATH, 'utf8')) as Json;
const sampleDetail = sampleEvent.detail as Json;
const GROUP = sampleDetail.ModelPackageGroupName as string;
const PACKAGE_ARN = sampleDetail.ModelPackageArn as string;
const MODEL_DATA_URL = ((sampleDetail.InferenceSpecification as Json).Containers as Json[])[0].ModelDataUrl as string;
const RUN_ID = modelPackageRunId(GROUP, 2, PACKAGE_ARN);
const BUCKET = 'emo-bucket';
const TRIGGER_ENV = { EMO_DIR_STORE: `s3://${BUCKET}`, STATE_MACHINE_ARN, EMO_DIR_MODEL_PACKAGE_GROUPS: `other-group,${GROUP}` };
const SPEC = { dataset: { name: 'fashion-mnist', searchTrain: 256 }, targets: [{ kind: 'flopsCut', value: 0.5 }] };

/** The store under test with the location an S3 store of the deployment would have. */
function asBucket(inner: ObjectStore): ObjectStore {
  return {
    location: `s3://${BUCKET}`,
    get: (key) => inner.get(key),
    getRange: (key, offset, length, into) => inner.getRange(key, offset, length, into),
    exists: (key) => inner.exists(key),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
    put: (key, body, options) => inner.put(key, body, options),
  };
}

/** `model.tar.gz` made by GNU tar from `files` (paths relative to the archive root). */
async function tarGz(files: Record<string, string | Buffer>): Promise<Buffer> {
  const { dir, cleanup } = await tempDir('emo-dir-archive-');
  try {
    const root = join(dir, 'root');
    for (const [path, body] of Object.entries(files)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), body);
    }
    execFileSync('tar', ['-czf', join(dir, 'model.tar.gz'), '-C', root, ...Object.keys(files)]);
    return await readFile(join(dir, 'model.tar.gz'));
  } finally {
    await cleanup();
  }
}

/** The members of a gzipped tar, listed by GNU tar. */
async function tarMembers(archive: Uint8Array): Promise<string[]> {
  const { dir, cleanup } = await tempDir('emo-dir-archive-');
  try {
    await writeFile(join(dir, 'a.tar.gz'), archive);
    return execFileSync('tar', ['-tzf', join(dir, 'a.tar.gz')], { encoding: 'utf8' }).trim().split('\n').sort();
  } finally {
    await cleanup();
  }
}

const TFJS_MODEL = {
  'model/model.json': '{"modelTopology":{"class_name":"Model"},"weightsManifest":[{"paths":["group1-shard1of1.bin"],"weights":[]}]}',
  'model/group1-shard1of1.bin': Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]),
};

function described(overrides: Partial<DescribeModelPackageCommandOutput> = {}): DescribeModelPackageCommandOutput {
  return {
    $metadata: {},
    ModelPackageName: GROUP,
    ModelPackageGroupName: GROUP,
    ModelPackageVersion: 2,
    ModelPackageArn: PACKAGE_ARN,
    CreationTime: new Date('2021-02-24T17:00:14Z'),
    ModelPackageStatus: 'Completed',
    ModelPackageStatusDetails: { ValidationStatuses: [], ImageScanStatuses: [] },
    ModelApprovalStatus: 'Approved',
    InferenceSpecification: sampleDetail.InferenceSpecification as DescribeModelPackageCommandOutput['InferenceSpecification'],
    CustomerMetadataProperties: { 'emo-dir:prune': JSON.stringify(SPEC) },
    ...overrides,
  };
}

describe('SageMaker model package trigger', () => {
  const sagemakerMock = mockClient(SageMakerClient);
  const s3Mock = mockClient(S3Client);
  const sfnMock = mockClient(SFNClient);
  let fileStore: FileStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    sagemakerMock.reset();
    s3Mock.reset();
    sfnMock.reset();
    ({ store: fileStore, cleanup } = await tempStore());
    sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
      executionArn: `arn:aws:states:eu-west-1:123456789012:execution:EmoDir:${input.name}`,
      startDate: new Date(),
    }));
  });
  afterEach(async () => {
    await cleanup();
  });
  after(() => {
    sagemakerMock.restore();
    s3Mock.restore();
    sfnMock.restore();
  });

  function serveArchive(archive: Buffer): void {
    s3Mock.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([archive]) }));
  }

  function handler(env: Record<string, string> = TRIGGER_ENV, logger = new CapturingLogger()) {
    return createModelPackageTriggerHandler({
      store: asBucket(fileStore),
      sagemaker: new SageMakerClient({ region: 'us-east-2', credentials: { accessKeyId: 't', secretAccessKey: 't' } }),
      s3: new S3Client({ region: 'us-east-2', credentials: { accessKeyId: 't', secretAccessKey: 't' } }),
      sfn: sfnClient(),
      env,
      logger,
      now: () => new Date('2026-11-28T02:00:00Z'),
    });
  }

  const approvedEvent = (): Json => ({ ...sampleEvent, detail: { ...sampleDetail, ModelApprovalStatus: 'Approved' } });

  it('parses the documentation\'s sample event', () => {
    const parsed = modelPackageStateChangeEventSchema.parse(sampleEvent);
    assert.equal(parsed.detail.ModelPackageArn, PACKAGE_ARN);
    assert.equal(parsed.detail.ModelPackageVersion, 2);
    assert.deepEqual(parseS3Url(MODEL_DATA_URL), {
      bucket: 'sagemaker-project-p-idy6c3e1fiqj',
      key: 'versionedmp-p-idy6c3e1fiqj/AbaloneTrain/pipelines-4r83jejmhorv-TrainAbaloneModel-xw869y8C4a/output/model.tar.gz',
    });
    assert.deepEqual(parseS3Url('https://my-bucket.s3.us-east-2.amazonaws.com/models/a%20b/model.tar.gz'), { bucket: 'my-bucket', key: 'models/a b/model.tar.gz' });
  });

  it('ignores the sample as it is: the package was Rejected', async () => {
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ ModelApprovalStatus: 'Rejected' }));
    const result = await handler()(sampleEvent);
    assert.equal(result.outcome, 'ignored');
    assert.match((result as { reason: string }).reason, /approval status is Rejected; runs start on Approved/);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
    assert.equal(s3Mock.commandCalls(GetObjectCommand).length, 0);
    assert.deepEqual(await fileStore.list('runs/'), []);
  });

  it('starts one run per approved version: archive extracted into the run, spec from the package metadata', async () => {
    serveArchive(await tarGz(TFJS_MODEL));
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described());
    const result = await handler()(approvedEvent());
    assert.equal(result.outcome, 'started');
    const keys = runKeys(RUN_ID);
    assert.match(RUN_ID, /^versionedmp-p-idy6c3e1fiqj-v2-[0-9a-f]{8}$/);
    assert.deepEqual(sagemakerMock.commandCalls(DescribeModelPackageCommand)[0].args[0].input, { ModelPackageName: PACKAGE_ARN });
    assert.deepEqual(s3Mock.commandCalls(GetObjectCommand)[0].args[0].input, parseS3Url(MODEL_DATA_URL) && {
      Bucket: 'sagemaker-project-p-idy6c3e1fiqj',
      Key: parseS3Url(MODEL_DATA_URL).key,
    });
    // The archive's files, byte for byte, under the run's model prefix.
    assert.deepEqual(await fileStore.list(keys.modelPrefix), [`${keys.modelPrefix}model/group1-shard1of1.bin`, `${keys.modelPrefix}model/model.json`]);
    assert.deepEqual(Buffer.from(await fileStore.get(`${keys.modelPrefix}model/group1-shard1of1.bin`)), TFJS_MODEL['model/group1-shard1of1.bin']);
    const spec = runSpecSchema.parse(await getJson(fileStore, keys.spec));
    assert.equal(spec.model, `${keys.modelPrefix}model/`);
    assert.equal(spec.dataset.searchTrain, 256);
    const record = modelPackageSourceSchema.parse(await getJson(fileStore, keys.modelPackage));
    assert.equal(record.modelPackageArn, PACKAGE_ARN);
    assert.equal(record.specSource, 'metadata');
    assert.equal(record.inferenceSpecification?.Containers[0].Image, '257758044811.dkr.ecr.us-east-2.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3');
    const [start] = sfnMock.commandCalls(StartExecutionCommand);
    assert.equal(start.args[0].input.name, RUN_ID);
    assert.deepEqual(JSON.parse(start.args[0].input.input as string), { runId: RUN_ID, specKey: keys.spec, modelPackageKey: keys.modelPackage });
  });

  it('a repeated event starts nothing new and does not read the archive again', async () => {
    serveArchive(await tarGz(TFJS_MODEL));
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described());
    await handler()(approvedEvent());
    sfnMock.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const again = await handler()({ ...approvedEvent(), id: 'another-delivery' });
    assert.equal(again.outcome, 'started');
    assert.equal((again as { alreadyStarted: boolean }).alreadyStarted, true);
    assert.equal(s3Mock.commandCalls(GetObjectCommand).length, 1);
    assert.equal((again as { runId: string }).runId, RUN_ID);
  });

  it('takes prune.json from the archive when the package has no metadata spec', async () => {
    serveArchive(await tarGz({ ...TFJS_MODEL, 'prune.json': JSON.stringify({ ...SPEC, model: 'ignored', runId: 'ignored-too' }) }));
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ CustomerMetadataProperties: {} }));
    const logger = new CapturingLogger();
    const result = await handler(TRIGGER_ENV, logger)(approvedEvent());
    assert.equal(result.outcome, 'started');
    const keys = runKeys(RUN_ID);
    assert.equal(modelPackageSourceSchema.parse(await getJson(fileStore, keys.modelPackage)).specSource, 'archive');
    const spec = runSpecSchema.parse(await getJson(fileStore, keys.spec));
    assert.equal(spec.model, `${keys.modelPrefix}model/`, 'the package is the model, whatever prune.json says');
    assert.ok(!(await fileStore.exists(`${keys.modelPrefix}prune.json`)), 'prune.json is not part of the model');
    assert.ok(logger.messages().some((line) => /names a runId or model/.test(line)));
  });

  it('passes an ONNX model on as the .onnx file\'s key, long member names included', async () => {
    const longName = `exports/${'resnet18-fashion-mnist-'.repeat(6)}opset17.onnx`;
    assert.ok(longName.length > 100, 'beyond ustar\'s 100-character name field');
    serveArchive(await tarGz({ [longName]: Buffer.from('ONNX-BYTES'), 'prune.json': JSON.stringify(SPEC) }));
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ CustomerMetadataProperties: undefined }));
    assert.equal((await handler()(approvedEvent())).outcome, 'started');
    const keys = runKeys(RUN_ID);
    assert.equal(runSpecSchema.parse(await getJson(fileStore, keys.spec)).model, `${keys.modelPrefix}${longName}`);
    assert.equal(Buffer.from(await fileStore.get(`${keys.modelPrefix}${longName}`)).toString(), 'ONNX-BYTES');
  });

  const rejections: [string, () => Promise<void>, RegExp][] = [
    [
      'no prune spec anywhere',
      async () => {
        serveArchive(await tarGz(TFJS_MODEL));
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ CustomerMetadataProperties: {} }));
      },
      /names no prune spec: set its CustomerMetadataProperties\["emo-dir:prune"\]/,
    ],
    [
      'an invalid spec',
      async () => {
        serveArchive(await tarGz(TFJS_MODEL));
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ CustomerMetadataProperties: { 'emo-dir:prune': '{"dataset":{"name":"fashion-mnist"},"targets":[{"kind":"flopsCut","value":2}]}' } }));
      },
      /targets\[0\]\.value/,
    ],
    [
      'no model in the archive',
      async () => {
        serveArchive(await tarGz({ 'README.md': 'nothing here' }));
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described());
      },
      /holds no model: expected a tfjs model.json .* or one .onnx file \(found README.md\)/,
    ],
    [
      'an archive member that climbs out',
      async () => {
        const { dir, cleanup: done } = await tempDir('emo-dir-evil-');
        await mkdir(join(dir, 'a'));
        await writeFile(join(dir, 'evil.json'), '{}');
        // -P keeps the leading '../' that GNU tar otherwise strips (an archive made elsewhere may have it).
        execFileSync('tar', ['-czPf', join(dir, 'x.tar.gz'), '-C', join(dir, 'a'), '../evil.json']);
        serveArchive(await readFile(join(dir, 'x.tar.gz')));
        await done();
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described());
      },
      /member "\.\.\/evil\.json" would leave the archive's directory/,
    ],
    [
      'a model data bucket the trigger may not read',
      async () => {
        s3Mock.on(GetObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described());
      },
      /cannot read s3:\/\/sagemaker-project-p-idy6c3e1fiqj\/.*AccessDenied.*emo-dir:modelArtifactBuckets/,
    ],
    [
      'a package without ModelDataUrl',
      async () => {
        sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ InferenceSpecification: undefined }));
      },
      /has no ModelDataUrl in its InferenceSpecification/,
    ],
  ];
  for (const [what, arrange, message] of rejections) {
    it(`records why and starts nothing for ${what}`, async () => {
      await arrange();
      const result = await handler()(approvedEvent());
      assert.equal(result.outcome, 'rejected');
      const status = runStatusRecordSchema.parse(await getJson(fileStore, runKeys(RUN_ID).status));
      assert.equal(status.state, 'rejected');
      assert.equal(status.source, PACKAGE_ARN);
      assert.match(status.message, message);
      assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
      assert.ok(!(await fileStore.exists(runKeys(RUN_ID).spec)));
      assert.ok(!(await fileStore.exists('evil.json')) && !(await fileStore.exists('runs/evil.json')));
    });
  }

  it('ignores groups it does not watch without asking SageMaker, and packages not yet Completed', async () => {
    const result = await handler({ ...TRIGGER_ENV, EMO_DIR_MODEL_PACKAGE_GROUPS: 'other-group' })(approvedEvent());
    assert.equal(result.outcome, 'ignored');
    assert.equal(sagemakerMock.commandCalls(DescribeModelPackageCommand).length, 0);
    sagemakerMock.on(DescribeModelPackageCommand).resolves(described({ ModelPackageStatus: 'InProgress' }));
    const pending = await handler()(approvedEvent());
    assert.equal(pending.outcome, 'ignored');
    assert.match((pending as { reason: string }).reason, /InProgress, not Completed/);
  });

  it('fails the invocation (so Lambda retries, then the on-failure queue keeps it) when SageMaker is unreachable', async () => {
    sagemakerMock.on(DescribeModelPackageCommand).rejects(Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable' }));
    await assert.rejects(handler()(approvedEvent()), /Service Unavailable/);
  });

  it('names the missing variable of a misconfigured function, and the bad field of a bad event', async () => {
    await assert.rejects(handler({ EMO_DIR_STORE: 's3://b', STATE_MACHINE_ARN })(approvedEvent()), /EMO_DIR_MODEL_PACKAGE_GROUPS: is not set/);
    await assert.rejects(handler()({ ...sampleEvent, detail: { ...sampleDetail, ModelPackageVersion: 'two' } }), /detail\.ModelPackageVersion/);
  });
});

describe('registration of pruned models (RegisterModels)', () => {
  const sagemakerMock = mockClient(SageMakerClient);
  let fileStore: FileStore;
  let cleanup: () => Promise<void>;
  const keys = runKeys(RUN_ID);
  const REGISTER_ENV = { EMO_DIR_STORE: `s3://${BUCKET}`, EMO_DIR_MODEL_PACKAGE_GROUP: 'pruned-models' };

  beforeEach(async () => {
    sagemakerMock.reset();
    ({ store: fileStore, cleanup } = await tempStore());
    await putJson(fileStore, keys.modelPackage, {
      runId: RUN_ID,
      modelPackageArn: PACKAGE_ARN,
      modelPackageGroupName: GROUP,
      modelPackageVersion: 2,
      approvalStatus: 'Approved',
      modelDataUrl: MODEL_DATA_URL,
      model: `${keys.modelPrefix}model/`,
      specSource: 'metadata',
      inferenceSpecification: sampleDetail.InferenceSpecification,
    });
    for (const target of ['flops-50', 'flops-70']) {
      await putJson(fileStore, keys.target(target).metrics, sampleMetrics(RUN_ID, target));
      await fileStore.put(`${keys.target(target).modelPrefix}model.json`, `{"target":"${target}"}`);
      await fileStore.put(`${keys.target(target).modelPrefix}weights.bin`, Buffer.from([9, 8, 7]));
    }
    let version = 0;
    sagemakerMock.on(CreateModelPackageCommand).callsFake(() => ({ ModelPackageArn: `arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/${++version}` }));
  });
  afterEach(async () => {
    await cleanup();
  });
  after(() => sagemakerMock.restore());

  function handler(env: Record<string, string> = REGISTER_ENV) {
    return createRegisterModelsHandler({
      store: asBucket(fileStore),
      sagemaker: new SageMakerClient({ region: 'us-east-2', credentials: { accessKeyId: 't', secretAccessKey: 't' } }),
      env,
      logger: new CapturingLogger(),
      now: () => new Date('2026-11-28T03:00:00Z'),
    });
  }
  const event = { runId: RUN_ID, modelPackageKey: keys.modelPackage, targets: ['flops-50', 'flops-70'] };

  it('registers each pruned model as a PendingManualApproval version with its metrics, pointing the source\'s container at it', async () => {
    const result = await handler()(event);
    assert.deepEqual(result, { runId: RUN_ID, registrationKey: keys.modelPackages, registered: 2, failed: 0 });
    const calls = sagemakerMock.commandCalls(CreateModelPackageCommand).map((call) => call.args[0].input);
    assert.equal(calls.length, 2);
    const [first] = calls;
    const target = keys.target('flops-50');
    assert.equal(first.ModelPackageGroupName, 'pruned-models');
    assert.equal(first.ModelApprovalStatus, 'PendingManualApproval');
    assert.deepEqual(first.ModelMetrics, { ModelQuality: { Statistics: { ContentType: 'application/json', S3Uri: `s3://${BUCKET}/${target.registryMetrics}` } } });
    assert.deepEqual(first.InferenceSpecification, {
      SupportedContentTypes: ['text/csv'],
      SupportedResponseMIMETypes: ['text/csv'],
      Containers: [
        {
          Image: '257758044811.dkr.ecr.us-east-2.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3',
          ImageDigest: 'sha256:4dc8a7e4a010a19bb9e0a6b063f355393f6e623603361bd8b105f554d4f0c004',
          ModelDataUrl: `s3://${BUCKET}/${target.modelArchive}`,
        },
      ],
    });
    assert.equal(first.CustomerMetadataProperties?.['emo-dir:source-model-package'], PACKAGE_ARN);
    assert.equal(first.CustomerMetadataProperties?.['emo-dir:flops-cut'], '0.4975');
    assert.equal(first.CustomerMetadataProperties?.['emo-dir:accuracy'], '0.8900');
    assert.match(first.ModelPackageDescription ?? '', /FLOPs cut 49\.8%, params cut 30\.0%, test accuracy 89\.0% \(unpruned 91\.0%\)/);
    assert.match(first.ClientToken ?? '', /^[0-9a-f]{36}$/);
    assert.notEqual(first.ClientToken, calls[1].ClientToken);
    // The archive holds the exported model; the metrics report is what SageMaker shows.
    assert.deepEqual(await tarMembers(await fileStore.get(target.modelArchive)), ['model.json', 'weights.bin']);
    const metrics = registryModelMetricsSchema.parse(await getJson(fileStore, target.registryMetrics));
    assert.equal(metrics.multiclass_classification_metrics.accuracy.value, 0.89);
    assert.equal(metrics.emo_dir.flopsCut, 0.4975);
    const record = modelRegistrationsSchema.parse(await getJson(fileStore, keys.modelPackages));
    assert.deepEqual(
      record.targets.map((entry) => ('modelPackageArn' in entry ? entry.modelPackageArn : entry.error)),
      ['arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/1', 'arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/2'],
    );
  });

  it('is idempotent: a retried step registers nothing twice, and sends the same request for what it retries', async () => {
    sagemakerMock.on(CreateModelPackageCommand).callsFakeOnce(() => ({ ModelPackageArn: 'arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/1' }))
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const firstAttempt = await handler()(event);
    assert.deepEqual([firstAttempt.registered, firstAttempt.failed], [1, 1]);
    const archive = Buffer.from(await fileStore.get(keys.target('flops-70').modelArchive));
    const failedRequest = sagemakerMock.commandCalls(CreateModelPackageCommand)[1].args[0].input;
    sagemakerMock.reset();
    sagemakerMock.on(CreateModelPackageCommand).resolves({ ModelPackageArn: 'arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/2' });
    const secondAttempt = await handler()(event);
    assert.deepEqual([secondAttempt.registered, secondAttempt.failed], [2, 0]);
    const retried = sagemakerMock.commandCalls(CreateModelPackageCommand).map((call) => call.args[0].input);
    assert.equal(retried.length, 1, 'flops-50 was registered already');
    assert.deepEqual(retried[0], failedRequest, 'the same request (ClientToken included) as the failed one');
    assert.deepEqual(Buffer.from(await fileStore.get(keys.target('flops-70').modelArchive)), archive, 'the archive is byte-identical');
  });

  it('records a target SageMaker refuses and registers the others', async () => {
    sagemakerMock.on(CreateModelPackageCommand).callsFakeOnce(() => {
      throw Object.assign(new Error('Model package group pruned-models does not exist'), { name: 'ValidationException' });
    }).resolves({ ModelPackageArn: 'arn:aws:sagemaker:us-east-2:123456789012:model-package/pruned-models/7' });
    const result = await handler()(event);
    assert.deepEqual([result.registered, result.failed], [1, 1]);
    const record = modelRegistrationsSchema.parse(await getJson(fileStore, keys.modelPackages));
    const refused = record.targets.find((entry) => entry.target === 'flops-50');
    assert.ok(refused !== undefined && 'error' in refused);
    assert.match(refused.error, /CreateModelPackage in pruned-models failed: ValidationException: Model package group pruned-models does not exist/);
  });

  it('fails with why when the deployment has the integration off, or the event names another run\'s record', async () => {
    await assert.rejects(handler({ EMO_DIR_STORE: `s3://${BUCKET}` })(event), /EMO_DIR_MODEL_PACKAGE_GROUP: is not set \(the SageMaker model registry integration is off/);
    await assert.rejects(handler()({ ...event, modelPackageKey: 'runs/other/model-package.json' }), /is not run .* package record/);
    assert.equal(sagemakerMock.commandCalls(CreateModelPackageCommand).length, 0);
  });
});
