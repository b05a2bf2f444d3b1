/**
 * The cloud commands run in-process, as src/cli/main.ts runs them, with their real connection
 * code: `--store <dir>` gives a file store, and aws-sdk-client-mock intercepts every
 * SFNClient/S3Client request (no network).
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, S3Client, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { run as report } from '../../src/cli/report.ts';
import { run as status } from '../../src/cli/status.ts';
import { run as submit } from '../../src/cli/submit.ts';
import { cloudSettings, UsageError } from '../../src/cloud/connect.ts';
import type { CommandDependencies } from '../../src/cloud/command.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { putJson } from '../../src/store/object-store.ts';
import { STATE_MACHINE_ARN, minimalSpec, tempDir } from './helpers.ts';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

const NOW = new Date('2026-11-28T02:50:00Z');
const sfnMock = mockClient(SFNClient);
const s3Mock = mockClient(S3Client);
after(() => {
  sfnMock.restore();
  s3Mock.restore();
});

let dir: string;
let storeDir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  sfnMock.reset();
  s3Mock.reset();
  ({ dir, cleanup } = await tempDir());
  storeDir = join(dir, 'store');
});
afterEach(() => cleanup());

async function cli(
  command: (argv: string[], deps?: CommandDependencies) => Promise<number>,
  argv: string[],
  env: Record<string, string> = {},
): Promise<Outcome> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await command(argv, {
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    env,
    now: () => NOW,
  });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

async function specFile(spec: unknown, name = 'spec.json'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof spec === 'string' ? spec : JSON.stringify(spec));
  return path;
}

describe('emo-dir submit', () => {
  it('starts a run and prints its id and execution (--json: one object)', async () => {
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:x' });
    const spec = await specFile(minimalSpec());
    const result = await cli(submit, [spec, '--store', storeDir, '--state-machine', STATE_MACHINE_ARN, '--json', '--max-concurrency', '8']);
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout) as { store: string; runs: { runId: string; specKey: string }[] };
    assert.equal(printed.runs.length, 1);
    assert.equal(printed.runs[0].runId, 'resnet20-20261128T025000');
    assert.ok(await new FileStore(storeDir).exists(printed.runs[0].specKey));
    const request = sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input;
    assert.equal(request.name, 'resnet20-20261128T025000');
    assert.equal(JSON.parse(request.input ?? '').maxConcurrency, 8);
  });

  it('takes the bucket and state machine from the environment, and the region from the ARN', async () => {
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const spec = await specFile(minimalSpec({ runId: 'env-run' }));
    // The S3 store's conditional put and the model check go through the mocked S3 client.
    s3Mock.resolves({});
    const result = await cli(submit, [spec], { EMO_DIR_BUCKET: 'emo-bucket', EMO_DIR_PREFIX: 'team', EMO_DIR_STATE_MACHINE_ARN: STATE_MACHINE_ARN });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /started run env-run\n {2}spec {7}s3:\/\/emo-bucket\/team\/runs\/env-run\/spec\.json/);
    const put = s3Mock.calls().map((call) => call.args[0].input as { Bucket?: string; Key?: string; IfNoneMatch?: string });
    assert.deepEqual(put[0], { ...put[0], Bucket: 'emo-bucket', Key: 'team/runs/env-run/spec.json', IfNoneMatch: '*' });
    assert.equal(await sfnMock.call(0).thisValue.config.region(), 'eu-west-1');
  });

  it('submits a sweep as one execution per model', async () => {
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x' });
    const spec = await specFile({
      sweepId: 's1',
      models: ['zoo:resnet20', 'zoo:vgg16'],
      dataset: { name: 'fashion-mnist' },
      targets: [
        { kind: 'flopsCut', value: 0.5 },
        { kind: 'flopsCut', value: 0.7 },
      ],
    });
    const result = await cli(submit, [spec, '--store', storeDir, '--state-machine', STATE_MACHINE_ARN]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^sweep s1: 2 run\(s\), one per model/);
    assert.match(result.stdout, /follow with: emo-dir status s1-resnet20 s1-vgg16/);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 2);
  });

  it('exits 2 on usage errors, with the usage', async () => {
    const spec = await specFile(minimalSpec());
    for (const [argv, message] of [
      [[], /missing <spec\.json>/],
      [[spec, '--store', storeDir], /no state machine: give --state-machine ARN \(or set EMO_DIR_STATE_MACHINE_ARN\)/],
      [[spec, '--state-machine', STATE_MACHINE_ARN], /no bucket: give --bucket B/],
      [[spec, '--store', storeDir, '--state-machine', 'not-an-arn'], /--state-machine: invalid state machine ARN/],
      [[spec, '--store', storeDir, '--bucket', 'b', '--state-machine', STATE_MACHINE_ARN], /either --store or --bucket/],
      [[spec, '--bogus'], /Unknown option '--bogus'/],
      [[spec, '--store', storeDir, '--state-machine', STATE_MACHINE_ARN, '--max-concurrency', '0'], /--max-concurrency must be a positive integer/],
    ] as const) {
      const result = await cli(submit, [...argv]);
      assert.equal(result.code, 2, `${argv.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /usage: emo-dir submit/);
    }
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });

  it('exits 1 on a bad spec, naming the file and field', async () => {
    const args = ['--store', storeDir, '--state-machine', STATE_MACHINE_ARN];
    const invalid = await cli(submit, [await specFile(minimalSpec({ targets: [] }), 'bad.json'), ...args]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /invalid .*bad\.json:\n {2}- targets: /);
    const notJson = await cli(submit, [await specFile('{', 'broken.json'), ...args]);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /spec file .*broken\.json is not valid JSON/);
    const missing = await cli(submit, [join(dir, 'absent.json'), ...args]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /spec file .*absent\.json does not exist/);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 0);
  });
});

describe('emo-dir status', () => {
  it('prints execution state and sub-network progress', async () => {
    const store = new FileStore(storeDir);
    const keys = runKeys('r1');
    await putJson(store, keys.spec, {});
    await store.put(keys.subnet(0).log, '{"generation":4}\n');
    await putJson(store, keys.subnet(0).checkpoint(4), {});
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'FAILED', error: 'States.TaskFailed', cause: 'spot reclaimed' });

    const text = await cli(status, ['r1', '--store', storeDir, '--state-machine', STATE_MACHINE_ARN]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /execution {3}FAILED/);
    assert.match(text.stdout, /error {7}States\.TaskFailed: spot reclaimed/);
    assert.match(text.stdout, /000 {2}generation 4 {2}last: \{"generation":4\}/);

    const json = await cli(status, ['r1', 'missing', '--store', storeDir, '--json']);
    assert.equal(json.code, 1, 'one run is missing');
    const lines = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as { runId: string; error?: string });
    assert.deepEqual(lines.map((line) => line.runId), ['r1', 'missing']);
    assert.match(lines[1].error ?? '', /no run missing/);
    assert.match(json.stderr, /emo-dir status: no run missing/);
  });

  it('exits 2 without a run id', async () => {
    const result = await cli(status, ['--store', storeDir]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /missing <runId>/);
  });
});

describe('emo-dir report', () => {
  it('downloads report.html from the bucket', async () => {
    const body = { transformToByteArray: async () => new Uint8Array(Buffer.from('<html>ok</html>')) };
    s3Mock.on(GetObjectCommand).resolves({ Body: body as unknown as GetObjectCommandOutput['Body'] });
    const out = join(dir, 'r1.html');
    const result = await cli(report, ['r1', '--bucket', 'emo-bucket', '--region', 'eu-west-1', '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(out, 'utf8'), '<html>ok</html>');
    assert.deepEqual(s3Mock.commandCalls(GetObjectCommand)[0].args[0].input, { Bucket: 'emo-bucket', Key: 'runs/r1/report.html' });
    assert.match(result.stdout, /wrote .*r1\.html \(15 bytes\) from s3:\/\/emo-bucket\/runs\/r1\/report\.html/);
  });

  it('exits 1 when the run has no report yet', async () => {
    await putJson(new FileStore(storeDir), runKeys('r2').spec, {});
    const result = await cli(report, ['r2', '--store', storeDir, '-o', join(dir, 'r2.html')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /run r2 has no report yet/);
  });
});

describe('connection settings', () => {
  it('prefer flags over the environment and reject bucket URLs', () => {
    const settings = cloudSettings({ bucket: 'flag-bucket' }, { EMO_DIR_BUCKET: 'env-bucket', AWS_REGION: 'us-east-2' }, { stateMachine: false });
    assert.deepEqual(settings, { storeLocation: 's3://flag-bucket', region: 'us-east-2' });
    assert.throws(() => cloudSettings({ bucket: 's3://b/p' }, {}, { stateMachine: false }), UsageError);
  });
});
