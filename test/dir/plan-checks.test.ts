// Plan-time checks of a spec: budget limits (with the explicit override) and the data set against
// the model and the spec's subsets and limits. Each problem names its spec field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkDataset, firstIssuePerField, formatIssues } from '../../src/dir/plan-checks.ts';
import { BUDGET_LIMITS, budgetIssues, evaluationBudget, runSpecSchema, type RunSpecInput } from '../../src/schema/spec.ts';

const base: RunSpecInput = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist', searchTrain: 1024, searchVal: 512 },
  targets: [{ kind: 'flopsCut', value: 0.5 }],
};
type Overrides = { dataset?: Partial<RunSpecInput['dataset']>; search?: NonNullable<RunSpecInput['search']> };
const spec = (overrides: Overrides = {}) =>
  runSpecSchema.parse({ ...base, dataset: { ...base.dataset, ...overrides.dataset }, search: overrides.search ?? {} });
const FMNIST = { inputShape: [28, 28, 1], classes: 10 };

describe('budgetIssues', () => {
  it('accepts the defaults and the example budget', () => {
    assert.deepEqual(budgetIssues(spec()), []);
    assert.deepEqual(budgetIssues(spec({ search: { population: 8, generations: 4, recoverySteps: 10 } })), []);
  });

  it('names each field over its limit, once, with the way to go past it on purpose', () => {
    const issues = budgetIssues(spec({ search: { population: 1_000_000_000, recoverySteps: 5000 }, dataset: { searchVal: 100_000 } }));
    assert.deepEqual(
      issues.map((issue) => issue.path),
      ['search.population', 'search.recoverySteps', 'dataset.searchVal'],
    );
    assert.match(issues[0].message, /^1000000000 is above the limit of 512 \(a typo\? set search\.allowLargeBudget: true to run it on purpose\)$/);
  });

  it('counts evaluations as population x (generations + 1), capped by maxEvaluations', () => {
    const wide = spec({ search: { population: 400, generations: 100 } });
    assert.equal(evaluationBudget(wide.search), 40_400);
    assert.deepEqual(
      budgetIssues(wide).map((issue) => issue.path),
      ['search.maxEvaluations'],
    );
    assert.match(budgetIssues(wide)[0].message, /400 x \(generations 100 \+ 1\) = 40400 evaluations per sub-network is above the limit of 20000/);
    const capped = spec({ search: { population: 400, generations: 100, maxEvaluations: BUDGET_LIMITS.evaluations } });
    assert.equal(evaluationBudget(capped.search), BUDGET_LIMITS.evaluations);
    assert.deepEqual(budgetIssues(capped), []);
  });

  it('search.allowLargeBudget lifts every limit', () => {
    assert.deepEqual(budgetIssues(spec({ search: { population: 1_000_000_000, allowLargeBudget: true } })), []);
  });
});

describe('checkDataset', () => {
  it('passes a data set that fits the model and the spec', async () => {
    const check = await checkDataset(spec({ dataset: { fineTuneLimit: 60_000, testLimit: 10_000 } }), FMNIST);
    assert.deepEqual(check.issues, []);
    assert.equal(check.probe?.train.images, 60_000);
  });

  it('names the subsets and limits that do not fit the splits', async () => {
    const check = await checkDataset(spec({ dataset: { searchTrain: 1_000_000_000, fineTuneLimit: 60_001, testLimit: 20_000 } }), FMNIST);
    assert.deepEqual(
      check.issues.map((issue) => issue.path),
      ['dataset.searchTrain', 'dataset.fineTuneLimit', 'dataset.testLimit'],
    );
    assert.match(check.issues[0].message, /searchTrain 1000000000 \+ searchVal 512 \(disjoint subsets\) exceed the 60000 images of fashion-mnist's training split/);
    assert.match(check.issues[2].message, /20000 exceeds the 10000 images of fashion-mnist's test split/);
  });

  it('names a class count or image shape the model does not have', async () => {
    const check = await checkDataset(spec(), { inputShape: [32, 32, 3], classes: 100 });
    assert.deepEqual(
      check.issues.map((issue) => issue.message),
      ['data set fashion-mnist has 10 classes, the model\'s output has 100', 'data set fashion-mnist has 28x28x1 images, the model takes 32x32x3'],
    );
  });

  it('names a data set that is not there, and skips what cannot be looked at from here', async () => {
    const missing = spec({ dataset: { name: 'cifar10:/does/not/exist' } });
    const check = await checkDataset(missing, undefined);
    assert.equal(check.issues.length, 1);
    assert.equal(check.issues[0].path, 'dataset.name');
    assert.match(check.issues[0].message, /cifar10: no data_batch_1\.bin in \/does\/not\/exist/);
    // Without the files (a Lambda): CIFAR's official sizes still bound the subsets.
    assert.deepEqual((await checkDataset(missing, undefined, { files: false })).issues, []);
    const tooBig = spec({ dataset: { name: 'cifar10:/does/not/exist', searchTrain: 60_000 } });
    assert.deepEqual(
      (await checkDataset(tooBig, undefined, { files: false })).issues.map((issue) => issue.path),
      ['dataset.searchTrain'],
    );
  });
});

describe('issue lines', () => {
  it('one line per field, the first reason of each', () => {
    const issues = firstIssuePerField([
      { path: 'dataset.searchTrain', message: 'exceeds the split' },
      { path: 'search.population', message: 'too big' },
      { path: 'dataset.searchTrain', message: 'above the limit' },
    ]);
    assert.equal(
      formatIssues('run spec runs/x/spec.json', issues),
      'run spec runs/x/spec.json: field dataset.searchTrain: exceeds the split\nrun spec runs/x/spec.json: field search.population: too big',
    );
  });
});
