import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { readEnv, storeEnvSchema, storeFromEnv, triggerEnvSchema } from '../../functions/lib/env.ts';
import { defaultCorrelationId, defineHandler } from '../../functions/lib/handler.ts';
import { ValidationError } from '../../src/schema/validate.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { S3Store } from '../../src/store/s3-store.ts';
import { STATE_MACHINE_ARN } from '../cloud/helpers.ts';
import { CapturingLogger } from './capture-logger.ts';

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
    return [...error.issues];
  }
  assert.fail('expected a ValidationError');
}

describe('handler environment', () => {
  it('reads the trigger settings', () => {
    const env = readEnv(triggerEnvSchema, 'trigger', {
      EMO_DIR_STORE: 's3://emo-bucket',
      STATE_MACHINE_ARN,
      EMO_DIR_MAX_CONCURRENCY: '4',
      UNRELATED: 'x',
    });
    assert.equal(env.EMO_DIR_STORE, 's3://emo-bucket');
    assert.equal(env.STATE_MACHINE_ARN, STATE_MACHINE_ARN);
    assert.equal(env.EMO_DIR_MAX_CONCURRENCY, 4);
  });

  it('names every missing or malformed variable', () => {
    const issues = issuesOf(() => readEnv(triggerEnvSchema, 'the trigger function', {}));
    assert.deepEqual(
      issues.map((issue) => issue.path),
      ['EMO_DIR_STORE', 'STATE_MACHINE_ARN'],
    );
    assert.match(issues[0].message, /is not set \(set EMO_DIR_STORE=s3:\/\/<bucket>/);
    assert.equal(issues[1].message, 'is not set');

    const malformed = issuesOf(() =>
      readEnv(triggerEnvSchema, 'trigger', {
        EMO_DIR_STORE: 's3:/typo',
        STATE_MACHINE_ARN: 'arn:aws:lambda:eu-west-1:123456789012:function:x',
        EMO_DIR_MAX_CONCURRENCY: '0',
      }),
    );
    assert.deepEqual(
      malformed.map((issue) => issue.path),
      ['EMO_DIR_STORE', 'STATE_MACHINE_ARN', 'EMO_DIR_MAX_CONCURRENCY'],
    );
    assert.match(malformed[0].message, /malformed URL/);
    assert.match(malformed[1].message, /stateMachine/);
  });

  it('treats empty variables as unset and accepts BUCKET as a fallback', () => {
    assert.deepEqual(
      issuesOf(() => readEnv(storeEnvSchema, 'f', { EMO_DIR_STORE: '' })).map((issue) => issue.path),
      ['EMO_DIR_STORE'],
    );
    assert.equal(readEnv(storeEnvSchema, 'f', { BUCKET: 'emo-bucket' }).EMO_DIR_STORE, 's3://emo-bucket');
    assert.equal(readEnv(storeEnvSchema, 'f', { EMO_DIR_STORE: 's3://a-bucket/p', BUCKET: 'b-bucket' }).EMO_DIR_STORE, 's3://a-bucket/p');
  });

  it('opens the store it names', () => {
    const s3 = storeFromEnv({ EMO_DIR_STORE: 's3://emo-bucket/team', AWS_REGION: 'eu-west-1' });
    assert.ok(s3 instanceof S3Store);
    assert.equal(s3.location, 's3://emo-bucket/team');
    assert.ok(storeFromEnv({ EMO_DIR_STORE: '/tmp/emo-dir-env-test' }) instanceof FileStore);
    assert.throws(() => storeFromEnv({}, 'the plan function'), /invalid environment of the plan function:\n {2}- EMO_DIR_STORE: is not set/);
  });
});

describe('defineHandler', () => {
  const eventSchema = z.object({ runId: z.string(), count: z.number().int() });

  it('parses the event, calls the function once and returns its result', async () => {
    const logger = new CapturingLogger();
    const seen: unknown[] = [];
    const handler = defineHandler(
      eventSchema,
      async (event, tools) => {
        seen.push(event);
        tools.logger.info('working');
        return { key: `runs/${event.runId}/x.json` };
      },
      { name: 'probe', logger },
    );
    assert.deepEqual(await handler({ runId: 'r1', count: 2, extra: true }), { key: 'runs/r1/x.json' });
    assert.deepEqual(seen, [{ runId: 'r1', count: 2 }]);
    const line = logger.items.find((item) => item.message === 'working');
    assert.ok(line);
    assert.equal(line.correlation_id, 'r1');
    assert.equal(line.service, 'emo-dir');
    assert.equal(line.handler, 'probe');
  });

  it('rejects a bad event with a ValidationError naming the handler and field', async () => {
    const logger = new CapturingLogger();
    let called = false;
    const handler = defineHandler(
      eventSchema,
      async () => {
        called = true;
      },
      { name: 'probe', logger },
    );
    await assert.rejects(handler({ runId: 'r2', count: 1.5 }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.match(error.message, /^invalid probe event:\n {2}- count: /);
      return true;
    });
    assert.equal(called, false);
    const rejected = logger.items.find((item) => item.message === 'event rejected');
    assert.ok(rejected);
    // Even a rejected event is correlated when it carries a run id.
    assert.equal(rejected.correlation_id, 'r2');
  });

  it('logs and rethrows failures, and does not leak the correlation id into the next invocation', async () => {
    const logger = new CapturingLogger();
    const handler = defineHandler(
      z.object({ runId: z.string().optional() }),
      async (event, tools) => {
        tools.logger.info('step');
        if (event.runId === 'boom') throw new Error('library failed');
        return 'ok';
      },
      { logger },
    );
    await assert.rejects(handler({ runId: 'boom' }), /library failed/);
    assert.equal(await handler({}), 'ok');
    const failed = logger.items.find((item) => item.message === 'handler failed');
    assert.ok(failed);
    assert.equal(failed.correlation_id, 'boom');
    const steps = logger.items.filter((item) => item.message === 'step');
    assert.equal(steps.length, 2);
    assert.equal(steps[1].correlation_id, undefined);
  });

  it('finds correlation ids in runId, then executionName', () => {
    assert.equal(defaultCorrelationId({ runId: 'a', executionName: 'b' }), 'a');
    assert.equal(defaultCorrelationId({ executionName: 'b' }), 'b');
    assert.equal(defaultCorrelationId({ runId: 3 }), undefined);
    assert.equal(defaultCorrelationId('text'), undefined);
  });
});
