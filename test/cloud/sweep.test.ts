import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSpecSchema } from '../../src/schema/spec.ts';
import { compactUtc, expandSweep, isSweepSpec, modelNameOf, sweepSpecSchema } from '../../src/schema/sweep.ts';
import { parseWith, ValidationError } from '../../src/schema/validate.ts';

const TARGETS = [
  { kind: 'flopsCut', value: 0.5 },
  { kind: 'flopsCut', value: 0.7 },
  { kind: 'paramsBudget', value: 1_200_000, name: 'small' },
];

function sweep(overrides: Record<string, unknown> = {}): unknown {
  return {
    sweepId: 'nov',
    models: ['zoo:resnet20', 'zoo:resnet56', { model: 'registry/r50/model/', name: 'r50' }],
    dataset: { name: 'cifar10:datasets/cifar10' },
    targets: TARGETS,
    search: { generations: 3 },
    ...overrides,
  };
}

function issuesOf(value: unknown): { path: string; message: string }[] {
  try {
    parseWith(sweepSpecSchema, value, 'sweep.json');
  } catch (error) {
    assert.ok(error instanceof ValidationError);
    return [...error.issues];
  }
  assert.fail('expected the sweep to be invalid');
}

describe('sweep specs', () => {
  it('expand to one run per model, each serving every target', () => {
    const parsed = parseWith(sweepSpecSchema, sweep(), 'sweep.json');
    const { sweepId, runs } = expandSweep(parsed);
    assert.equal(sweepId, 'nov');
    assert.equal(runs.length, 3, 'cost grows with models, not targets');
    assert.deepEqual(
      runs.map((run) => [run.runId, run.model]),
      [
        ['nov-resnet20', 'zoo:resnet20'],
        ['nov-resnet56', 'zoo:resnet56'],
        ['nov-r50', 'registry/r50/model/'],
      ],
    );
    for (const run of runs) {
      assert.deepEqual(run.targets, TARGETS);
      assert.equal(run.search.generations, 3);
      assert.equal(run.search.population, 16, 'run defaults are filled in');
      assert.deepEqual(runSpecSchema.parse(run), run, 'each expansion is a valid run spec');
    }
  });

  it('are named sweep-<UTC stamp> when they have no sweepId', () => {
    const parsed = parseWith(sweepSpecSchema, sweep({ sweepId: undefined }), 'sweep.json');
    const { sweepId, runs } = expandSweep(parsed, new Date('2026-11-28T03:04:05Z'));
    assert.equal(sweepId, 'sweep-20261128T030405');
    assert.equal(runs[0].runId, 'sweep-20261128T030405-resnet20');
  });

  it('report bad fields at the sweep’s own paths', () => {
    assert.deepEqual(
      issuesOf(sweep({ models: ['zoo:resnet20', 'zoo:resnet20'] })).map((issue) => issue.path),
      ['models[1]'],
    );
    const duplicateTargets = issuesOf(sweep({ targets: [TARGETS[0], TARGETS[0]] }));
    assert.deepEqual(duplicateTargets.map((issue) => issue.path), ['targets[1]'], 'reported once, not once per model');
    assert.match(duplicateTargets[0].message, /duplicate target name 'flops-50'/);
    assert.deepEqual(
      issuesOf(sweep({ models: [] })).map((issue) => issue.path),
      ['models'],
    );
    const longId = issuesOf(sweep({ sweepId: 's'.repeat(120) }));
    assert.equal(longId[0].path, 'models[0]');
    assert.match(longId[0].message, /run id '.*-resnet20' is invalid/);
    assert.deepEqual(
      issuesOf(sweep({ model: 'zoo:resnet20' })).map((issue) => issue.path),
      [''],
      'a sweep with a stray "model" field is refused (strict)',
    );
    assert.deepEqual(
      issuesOf(sweep({ search: { alpha: 0, beta: 0 } })).map((issue) => issue.path),
      ['search.alpha'],
    );
  });

  it('are told apart from run specs by their models list', () => {
    assert.equal(isSweepSpec(sweep()), true);
    assert.equal(isSweepSpec({ model: 'zoo:resnet20' }), false);
    assert.equal(isSweepSpec(null), false);
    assert.equal(isSweepSpec([{ models: [] }]), false);
  });
});

describe('model names', () => {
  it('come from the reference', () => {
    assert.equal(modelNameOf('zoo:resnet110'), 'resnet110');
    assert.equal(modelNameOf('./models/vgg16'), 'vgg16');
    assert.equal(modelNameOf('registry/r50/model/'), 'r50');
    assert.equal(modelNameOf('file:///home/me/nets/tiny/model.json'), 'tiny');
    assert.equal(modelNameOf('C:\\nets\\Big Net'), 'Big-Net');
    assert.equal(modelNameOf('./'), 'model');
    assert.equal(modelNameOf('..weird..name'), 'weird.name');
  });

  it('stamps sort by time', () => {
    assert.equal(compactUtc(new Date('2026-01-02T03:04:05.678Z')), '20260102T030405');
  });
});
