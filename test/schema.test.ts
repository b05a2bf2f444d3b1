import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSpecSchema, targetName } from '../src/schema/spec.ts';
import { parseWith, ValidationError } from '../src/schema/validate.ts';

const minimal = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist' },
  targets: [{ kind: 'flopsCut', value: 0.5 }],
};

test('a minimal spec gets every default', () => {
  const spec = parseWith(runSpecSchema, minimal, 'spec.json');
  assert.equal(spec.search.population, 16);
  assert.equal(spec.divide.pruneResidual, false);
  assert.equal(spec.merge.verifyTop, 3);
  assert.equal(spec.dataset.searchTrain, 2048);
  assert.equal(targetName(spec.targets[0]), 'flops-50');
});

test('a bad field is reported with its path and the source', () => {
  const bad = { ...minimal, targets: [{ kind: 'flopsCut', value: 1.5 }], search: { population: 2 } };
  assert.throws(
    () => parseWith(runSpecSchema, bad, 'examples/spec.json'),
    (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.match(error.message, /examples\/spec\.json/);
      const paths = error.issues.map((issue) => issue.path);
      assert.ok(paths.includes('targets[0].value'), paths.join());
      assert.ok(paths.includes('search.population'), paths.join());
      return true;
    },
  );
});

test('unknown fields, unsafe run ids and duplicate targets are refused', () => {
  for (const [bad, path] of [
    [{ ...minimal, generations: 3 }, ''],
    [{ ...minimal, runId: '../escape' }, 'runId'],
    [{ ...minimal, runId: '/abs' }, 'runId'],
    [{ ...minimal, targets: [{ kind: 'flopsCut', value: 0.5 }, { kind: 'flopsCut', value: 0.5 }] }, 'targets[1]'],
  ] as const) {
    assert.throws(
      () => parseWith(runSpecSchema, bad, 'spec.json'),
      (error: unknown) => error instanceof ValidationError && error.issues.some((issue) => issue.path === path),
      JSON.stringify(bad),
    );
  }
});
