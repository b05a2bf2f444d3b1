import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { LOCAL_SUBSTITUTIONS } from '../../src/local/embedded-runner.ts';
import { DEFAULT_MAX_CONCURRENCY, executionInputSchema } from '../../src/schema/messages.ts';

/** The state machine reads its input through these states; the schema must feed exactly them. */
const asl = JSON.parse(readFileSync(new URL('../../statemachine/emo-dir.asl.json', import.meta.url), 'utf8')) as {
  States: Record<string, { Parameters?: Record<string, unknown>; Choices?: unknown[]; Result?: unknown }>;
};

describe('execution input', () => {
  it('holds what the first states of the state machine read', () => {
    const plan = asl.States.Plan.Parameters ?? {};
    assert.equal(plan['runId.$'], '$.runId');
    assert.equal(plan['specKey.$'], '$.specKey');
    assert.match(JSON.stringify(asl.States.CheckMaxConcurrency.Choices), /"\$\.maxConcurrency"/);
    // The default is the deployment's (a substitution); the embedded runner substitutes the schema's.
    assert.equal(asl.States.DefaultMaxConcurrency.Parameters?.['maxConcurrency.$'], "States.StringToJson('${DefaultMaxConcurrency}')");
    assert.equal(LOCAL_SUBSTITUTIONS.DefaultMaxConcurrency, String(DEFAULT_MAX_CONCURRENCY));
    assert.match(JSON.stringify(asl.States.RegisterIfRequested.Choices), /"\$\.modelPackageKey"/);
    assert.deepEqual(Object.keys(executionInputSchema.shape).sort(), ['maxConcurrency', 'modelPackageKey', 'runId', 'specKey']);
  });

  it('refuses unsafe keys, bad run ids, non-positive concurrency and extra fields', () => {
    const ok = { runId: 'r1', specKey: 'runs/r1/spec.json' };
    assert.deepEqual(executionInputSchema.parse(ok), ok);
    for (const bad of [
      { ...ok, specKey: '../x' },
      { ...ok, specKey: '/abs' },
      { ...ok, runId: 'a/b' },
      { ...ok, maxConcurrency: 0 },
      { ...ok, bucket: 'b' },
    ]) {
      assert.equal(executionInputSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});
