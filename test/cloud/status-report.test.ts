import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DescribeExecutionCommand, ExecutionDoesNotExist, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { downloadReport, ReportNotReadyError } from '../../src/cloud/report.ts';
import { lastJsonLine, RunNotFoundError, runStatus } from '../../src/cloud/status.ts';
import type { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { putJson } from '../../src/store/object-store.ts';
import { STATE_MACHINE_ARN, sfnClient, tempStore } from './helpers.ts';

/** A run part-way through: sub-network 000 searched, 001 at generation 3, one target finalized. */
async function seedRun(store: FileStore, runId: string): Promise<void> {
  const keys = runKeys(runId);
  await putJson(store, keys.spec, { runId });
  await putJson(store, keys.manifest, { subnetworks: [{ id: '000' }, { id: '001' }, { id: '002' }] });
  const s0 = keys.subnet(0);
  await store.put(s0.log, '{"generation":0}\n{"generation":7,"evaluations":128}\n');
  await putJson(store, s0.front, { points: [] });
  await putJson(store, s0.checkpoint(7), {});
  const s1 = keys.subnet(1);
  for (const generation of [1, 2, 3]) await putJson(store, s1.checkpoint(generation), {});
  await store.put(s1.log, '{"generation":2}\n{"generation":3,"hypervolume":0.5}\n');
  await putJson(store, `${s1.features}shard-0000.bin`, {});
  await putJson(store, keys.target('flops-50').metrics, { accuracy: 0.9 });
  await putJson(store, `${keys.target('flops-50').modelPrefix}model.json`, {});
}

describe('runStatus', () => {
  const sfnMock = mockClient(SFNClient);
  let store: FileStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    sfnMock.reset();
    ({ store, cleanup } = await tempStore());
  });
  afterEach(() => cleanup());
  after(() => sfnMock.restore());

  it('combines the execution with per-sub-network progress from the store', async () => {
    await seedRun(store, 'r1');
    sfnMock.on(DescribeExecutionCommand).resolves({
      executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:r1',
      stateMachineArn: STATE_MACHINE_ARN,
      status: 'RUNNING',
      startDate: new Date('2026-11-28T02:00:00Z'),
    });

    const status = await runStatus({ runId: 'r1', store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN });

    assert.equal(
      sfnMock.commandCalls(DescribeExecutionCommand)[0].args[0].input.executionArn,
      'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:r1',
    );
    assert.equal(status.execution?.status, 'RUNNING');
    assert.equal(status.execution?.startDate, '2026-11-28T02:00:00.000Z');
    assert.equal(status.specKey, 'runs/r1/spec.json');
    assert.equal(status.manifest, true);
    assert.deepEqual(
      status.subnets.map((subnet) => [subnet.id, subnet.generation, subnet.front]),
      [
        ['000', 7, true],
        ['001', 3, false],
        ['002', undefined, false],
      ],
    );
    assert.deepEqual(status.subnets[1].lastLog, { generation: 3, hypervolume: 0.5 });
    assert.equal(status.subnets[1].checkpointKey, 'scratch/r1/subnets/001/checkpoints/gen-000003.json');
    assert.deepEqual(status.targetsDone, ['flops-50']);
    assert.equal(status.htmlKey, undefined);
  });

  it('reports a rejected run from status.json when no execution exists', async () => {
    const record = { runId: 'm-abc', state: 'rejected', at: '2026-11-28T02:00:00.000Z', message: 'invalid', issues: [] };
    await putJson(store, runKeys('m-abc').status, record);
    sfnMock.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no', $metadata: {} }));
    const status = await runStatus({ runId: 'm-abc', store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN });
    assert.equal(status.execution?.status, 'NOT_FOUND');
    assert.deepEqual(status.record, record);
    assert.deepEqual(status.subnets, []);
    // A status.json that is not a status record (its one schema, src/schema/messages.ts) is said so.
    await putJson(store, runKeys('m-abc').status, { runId: 'm-abc', state: 'exploded' });
    const broken = await runStatus({ runId: 'm-abc', store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN });
    assert.equal(broken.record, undefined);
    assert.match(broken.recordError ?? '', /^runs\/m-abc\/status\.json is not a run status record: state: /);
  });

  it('works from the store alone, and says when a run does not exist', async () => {
    await seedRun(store, 'r2');
    const status = await runStatus({ runId: 'r2', store });
    assert.equal(status.execution, undefined);
    assert.equal(status.subnets.length, 3);
    sfnMock.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no', $metadata: {} }));
    await assert.rejects(
      runStatus({ runId: 'nope', store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN }),
      (error: unknown) => error instanceof RunNotFoundError && /no run nope: nothing under runs\/nope\/ .* and no execution nope/.test(error.message),
    );
  });

  it('wraps other Step Functions errors with the execution ARN', async () => {
    await seedRun(store, 'r3');
    sfnMock.on(DescribeExecutionCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await assert.rejects(
      runStatus({ runId: 'r3', store, sfn: sfnClient(), stateMachineArn: STATE_MACHINE_ARN }),
      /cannot describe execution arn:aws:states:eu-west-1:123456789012:execution:EmoDir:r3: denied/,
    );
  });

  it('reads the last complete log line', () => {
    assert.deepEqual(lastJsonLine('{"a":1}\n{"a":2}\n\n'), { a: 2 });
    assert.equal(lastJsonLine('{"a":1}\n{"a":'), '{"a":');
    assert.equal(lastJsonLine(''), undefined);
  });
});

describe('downloadReport', () => {
  let store: FileStore;
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, dir, cleanup } = await tempStore());
  });
  afterEach(() => cleanup());

  it('writes report.html to the file', async () => {
    await store.put(runKeys('r1').report.html, '<html>report</html>');
    const outFile = join(dir, 'out', 'r1.html');
    const report = await downloadReport({ runId: 'r1', store, outFile });
    assert.deepEqual(report, { runId: 'r1', key: 'runs/r1/report.html', outFile, bytes: 19 });
    assert.equal(await readFile(outFile, 'utf8'), '<html>report</html>');
    assert.deepEqual(await readdir(join(dir, 'out')), ['r1.html'], 'no temporary file is left');
  });

  it('says whether the run has no report yet or does not exist', async () => {
    await putJson(store, runKeys('r2').spec, {});
    await assert.rejects(
      downloadReport({ runId: 'r2', store, outFile: join(dir, 'x.html') }),
      (error: unknown) =>
        error instanceof ReportNotReadyError &&
        /run r2 has no report yet \(runs\/r2\/report\.html is missing in file:.*\); see its progress with: emo-dir status r2/.test(error.message),
    );
    await assert.rejects(downloadReport({ runId: 'r9', store, outFile: join(dir, 'x.html') }), /no run r9 in file:/);
    await assert.rejects(readFile(join(dir, 'x.html')), { code: 'ENOENT' });
  });
});
