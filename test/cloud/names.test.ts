import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  executionArnFor,
  executionNameFor,
  parseStateMachineArn,
  registryRunId,
  timestampRunId,
} from '../../src/cloud/names.ts';
import { NAME_PATTERN } from '../../src/store/keys.ts';
import { STATE_MACHINE_ARN } from './helpers.ts';

const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;

describe('execution names', () => {
  it('are the run id when it already fits the rule', () => {
    assert.equal(executionNameFor('resnet20-20261128T025000'), 'resnet20-20261128T025000');
  });

  it('are sanitised, cut to 80 and kept distinct by a hash otherwise', () => {
    const dotted = executionNameFor('resnet20.v2-abc');
    const underscored = executionNameFor('resnet20_v2-abc');
    assert.match(dotted, EXECUTION_NAME);
    assert.notEqual(dotted, underscored);
    assert.ok(dotted.startsWith('resnet20_v2-abc-'));
    const long = 'm'.repeat(120);
    const longName = executionNameFor(long);
    assert.match(longName, EXECUTION_NAME);
    assert.equal(longName.length, 80);
    assert.notEqual(executionNameFor(`${long}x`), longName);
    assert.equal(executionNameFor('resnet20.v2-abc'), dotted, 'deterministic');
  });

  it('give execution ARNs of the state machine (qualifiers dropped)', () => {
    assert.equal(
      executionArnFor(STATE_MACHINE_ARN, 'run-1'),
      'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:run-1',
    );
    assert.equal(
      executionArnFor(`${STATE_MACHINE_ARN}:live`, 'run-1'),
      'arn:aws:states:eu-west-1:123456789012:execution:EmoDir:run-1',
    );
    assert.equal(
      executionArnFor('arn:aws-cn:states:cn-north-1:123456789012:stateMachine:X', 'r'),
      'arn:aws-cn:states:cn-north-1:123456789012:execution:X:r',
    );
    assert.throws(() => executionArnFor('arn:aws:lambda:eu-west-1:123456789012:function:x', 'r'), /invalid state machine ARN/);
    assert.throws(() => executionArnFor(STATE_MACHINE_ARN, 'has.dot'), /invalid execution name/);
    assert.equal(parseStateMachineArn(STATE_MACHINE_ARN).region, 'eu-west-1');
  });
});

describe('run ids', () => {
  it('of submissions are <model name>-<UTC stamp>', () => {
    const now = new Date('2026-11-28T02:50:07.123Z');
    assert.equal(timestampRunId('zoo:resnet20', now), 'resnet20-20261128T025007');
    assert.equal(timestampRunId('./models/vgg16/', now), 'vgg16-20261128T025007');
    assert.equal(timestampRunId('registry/r50/model/', now), 'r50-20261128T025007');
    assert.match(timestampRunId('~/My Model (v2)', now), NAME_PATTERN);
  });

  it('of registry uploads hash bucket, key and version (or etag)', () => {
    const base = { bucket: 'b', key: 'registry/m/prune.json' };
    const v1 = registryRunId('m', { ...base, versionId: 'v1', etag: 'e' });
    assert.match(v1, /^m-[0-9a-f]{12}$/);
    assert.equal(registryRunId('m', { ...base, versionId: 'v1', etag: 'other' }), v1, 'the version id decides');
    assert.notEqual(registryRunId('m', { ...base, versionId: 'v2' }), v1);
    assert.equal(registryRunId('m', { ...base, etag: '"e"' }), registryRunId('m', { ...base, etag: 'e' }), 'quotes do not matter');
    assert.notEqual(registryRunId('m', { ...base, etag: 'e' }), registryRunId('m', { ...base, etag: 'f' }));
    assert.notEqual(registryRunId('m', { ...base, bucket: 'c', etag: 'e' }), registryRunId('m', { ...base, etag: 'e' }));
    const long = registryRunId('x'.repeat(128), { ...base, etag: 'e' });
    assert.match(long, NAME_PATTERN);
    assert.equal(long.length, 128);
  });
});
