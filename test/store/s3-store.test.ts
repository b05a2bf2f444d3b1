import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { AlreadyExistsError, NotFoundError } from '../../src/store/object-store.ts';
import { DEFAULT_MAX_ATTEMPTS, S3Store } from '../../src/store/s3-store.ts';
import { runStoreSuite } from './store-suite.ts';
import { s3rverStoreOptions, startS3rver, type RunningS3rver } from './s3rver.ts';

let s3rver: RunningS3rver | undefined;
let client: S3Client | undefined;
before(async () => {
  s3rver = await startS3rver();
  client = new S3Store(s3rverStoreOptions(s3rver)).client;
});
after(async () => {
  client?.destroy();
  await s3rver?.stop();
});

let caseNumber = 0;
// Every case gets its own key prefix in the one bucket, which also exercises prefix handling.
runStoreSuite(
  'S3Store (s3rver)',
  async () => {
    assert.ok(s3rver !== undefined && client !== undefined, 's3rver did not start');
    return new S3Store({ bucket: s3rver.bucket, prefix: `cases/${caseNumber++}`, client });
  },
  // s3rver 3.7 ignores If-None-Match, so the create-only refusal and race cases would fail for
  // the emulator's sake; they are covered against the real S3 wire protocol with a mocked
  // client below (the header is sent; 412 and 409 map to AlreadyExistsError).
  { enforcesCreateOnly: false },
);

function s3Error(name: string, status: number, attempts = 1): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status, attempts },
    message: name,
  });
}

/** The part of the SDK's streaming body that S3Store uses. */
function bodyOf(text: string): GetObjectCommandOutput['Body'] {
  const body = { transformToByteArray: async () => new Uint8Array(Buffer.from(text)) };
  return body as unknown as GetObjectCommandOutput['Body'];
}

describe('S3Store against a mocked S3 client', () => {
  // Mock one client instance, not the S3Client class, so the s3rver cases keep the real one.
  const mockedClient = new S3Client({ region: 'eu-west-1' });
  const mock = mockClient(mockedClient);
  after(() => mock.restore());
  const mockedStore = (prefix = 'base/dir'): S3Store =>
    new S3Store({ bucket: 'emo-bucket', prefix, client: mockedClient });

  it('names its location s3://bucket/prefix and prefixes every key', async () => {
    mock.reset();
    mock.on(PutObjectCommand).resolves({});
    const store = mockedStore('/base/dir/');
    assert.equal(store.location, 's3://emo-bucket/base/dir');
    assert.equal(mockedStore('').location, 's3://emo-bucket');
    await store.put('runs/r1/spec.json', '{}', { contentType: 'application/json' });
    const input = mock.commandCalls(PutObjectCommand)[0].args[0].input;
    assert.equal(input.Bucket, 'emo-bucket');
    assert.equal(input.Key, 'base/dir/runs/r1/spec.json');
    assert.equal(input.ContentType, 'application/json');
    assert.equal(input.IfNoneMatch, undefined, 'a plain put must not be conditional');
  });

  it('sends If-None-Match: * for create-only puts and maps 412 to AlreadyExistsError', async () => {
    mock.reset();
    mock.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412));
    const store = mockedStore();
    await assert.rejects(store.put('runs/r1/front.json', 'x', { ifNoneMatch: true }), (error: unknown) => {
      assert.ok(error instanceof AlreadyExistsError, 'expected: error instanceof AlreadyExistsError');
      assert.equal(error.key, 'runs/r1/front.json');
      assert.equal(error.location, 's3://emo-bucket/base/dir');
      return true;
    });
    assert.equal(mock.commandCalls(PutObjectCommand)[0].args[0].input.IfNoneMatch, '*');
  });

  it('retries 409 ConditionalRequestConflict and then reports the winner as AlreadyExistsError', async () => {
    mock.reset();
    mock
      .on(PutObjectCommand)
      .rejectsOnce(s3Error('ConditionalRequestConflict', 409))
      .rejectsOnce(s3Error('PreconditionFailed', 412));
    await assert.rejects(mockedStore().put('k', 'x', { ifNoneMatch: true }), AlreadyExistsError);
    assert.equal(mock.commandCalls(PutObjectCommand).length, 2);

    mock.reset();
    mock.on(PutObjectCommand).rejectsOnce(s3Error('ConditionalRequestConflict', 409)).resolves({});
    await mockedStore().put('k', 'x', { ifNoneMatch: true });
    assert.equal(mock.commandCalls(PutObjectCommand).length, 2);

    mock.reset();
    mock.on(PutObjectCommand).rejects(s3Error('ConditionalRequestConflict', 409));
    await assert.rejects(mockedStore().put('k', 'x', { ifNoneMatch: true }), AlreadyExistsError);
    assert.equal(mock.commandCalls(PutObjectCommand).length, 3);
  });

  it('treats a 412 on an SDK-retried put as success only when the stored body is ours', async () => {
    mock.reset();
    // Attempt 1 committed but its response was lost; attempt 2 then sees our own object.
    mock.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412, 2));
    mock.on(GetObjectCommand).resolves({ Body: bodyOf('mine') });
    await mockedStore().put('k', 'mine', { ifNoneMatch: true });

    mock.on(GetObjectCommand).resolves({ Body: bodyOf('theirs') });
    await assert.rejects(mockedStore().put('k', 'mine', { ifNoneMatch: true }), AlreadyExistsError);
  });

  it('does not turn a 412 into success on a first attempt, even for equal bodies', async () => {
    mock.reset();
    mock.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412, 1));
    mock.on(GetObjectCommand).resolves({ Body: bodyOf('same') });
    await assert.rejects(mockedStore().put('k', 'same', { ifNoneMatch: true }), AlreadyExistsError);
    assert.equal(mock.commandCalls(GetObjectCommand).length, 0);
  });

  it('passes other errors through unchanged', async () => {
    mock.reset();
    mock.on(PutObjectCommand).rejects(s3Error('AccessDenied', 403));
    await assert.rejects(mockedStore().put('k', 'x', { ifNoneMatch: true }), { name: 'AccessDenied' });
    mock.on(GetObjectCommand).rejects(s3Error('AccessDenied', 403));
    await assert.rejects(mockedStore().get('k'), { name: 'AccessDenied' });
  });

  it('maps NoSuchKey to NotFoundError and a 404 HEAD to false', async () => {
    mock.reset();
    mock.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
    mock.on(HeadObjectCommand).rejects(s3Error('NotFound', 404));
    await assert.rejects(mockedStore().get('missing'), NotFoundError);
    assert.equal(await mockedStore().exists('missing'), false);
  });

  it('reads ranges with an HTTP Range header; 416 is an empty range; a 200 without Content-Range is cut', async () => {
    mock.reset();
    mock.on(GetObjectCommand, { Key: 'base/dir/d/partial' }).resolves({ Body: bodyOf('cdef'), ContentRange: 'bytes 2-5/10' });
    mock.on(GetObjectCommand, { Key: 'base/dir/d/ignores-range' }).resolves({ Body: bodyOf('abcdefghij') });
    mock.on(GetObjectCommand, { Key: 'base/dir/d/empty' }).rejects(s3Error('InvalidRange', 416));
    const store = mockedStore();
    assert.equal(Buffer.from(await store.getRange('d/partial', 2, 4)).toString(), 'cdef');
    assert.equal(mock.commandCalls(GetObjectCommand)[0].args[0].input.Range, 'bytes=2-5');
    assert.equal(Buffer.from(await store.getRange('d/ignores-range', 2, 4)).toString(), 'cdef');
    assert.equal((await store.getRange('d/empty', 0, 10)).byteLength, 0);
  });

  it('follows ListObjectsV2 continuation tokens and strips the key prefix', async () => {
    mock.reset();
    mock
      .on(ListObjectsV2Command, { ContinuationToken: undefined })
      .resolves({ IsTruncated: true, NextContinuationToken: 't1', Contents: [{ Key: 'base/dir/runs/b' }] })
      .on(ListObjectsV2Command, { ContinuationToken: 't1' })
      .resolves({
        IsTruncated: false,
        Contents: [{ Key: 'base/dir/runs/a' }, { Key: 'base/dir/runs/folder/' }],
      });
    assert.deepEqual(await mockedStore().list('runs/'), ['runs/a', 'runs/b']);
    const calls = mock.commandCalls(ListObjectsV2Command);
    assert.equal(calls.length, 2);
    assert.equal(calls[0].args[0].input.Prefix, 'base/dir/runs/');
  });

  it('uploads large bodies in parts and keeps the condition on CompleteMultipartUpload', async () => {
    mock.reset();
    mock.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' });
    mock.on(UploadPartCommand).callsFake((input: { PartNumber?: number }) => ({ ETag: `"e${input.PartNumber}"` }));
    mock.on(CompleteMultipartUploadCommand).resolves({});
    const store = new S3Store({
      bucket: 'emo-bucket',
      client: mockedClient,
      multipartThreshold: 1024,
      partSize: 5 * 1024 * 1024,
    });
    await store.put('runs/r1/targets/t/model/weights.bin', new Uint8Array(11 * 1024 * 1024), { ifNoneMatch: true });
    assert.equal(mock.commandCalls(PutObjectCommand).length, 0);
    assert.equal(mock.commandCalls(UploadPartCommand).length, 3);
    const complete = mock.commandCalls(CompleteMultipartUploadCommand)[0].args[0].input;
    assert.equal(complete.IfNoneMatch, '*');
    assert.equal(complete.Key, 'runs/r1/targets/t/model/weights.bin');

    mock.on(CompleteMultipartUploadCommand).rejects(s3Error('PreconditionFailed', 412));
    await assert.rejects(
      store.put('runs/r1/targets/t/model/weights.bin', new Uint8Array(6 * 1024 * 1024), { ifNoneMatch: true }),
      AlreadyExistsError,
    );
  });

  it('configures the SDK retry strategy for throttling and 5xx', async () => {
    const store = new S3Store({ bucket: 'emo-bucket', region: 'eu-west-1' });
    assert.equal(await store.client.config.maxAttempts(), DEFAULT_MAX_ATTEMPTS);
    assert.equal(((await store.client.config.retryStrategy()) as { mode?: string }).mode, 'standard');
    store.client.destroy();
    assert.throws(() => new S3Store({ bucket: 'Bad_Bucket' }), /invalid S3 bucket name/);
    assert.throws(() => new S3Store({ bucket: 'ok-bucket', prefix: 'a/../b' }), /invalid store key/);
  });
});
