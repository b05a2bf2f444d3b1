import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  InvalidNameError,
  SCRATCH_PREFIX,
  datasetPrefix,
  latestCheckpoint,
  parseCheckpointGeneration,
  parsePruneRequestKey,
  pruneRequestKey,
  registryPrefix,
  runKeys,
} from '../../src/store/keys.ts';
import { assertValidKey } from '../../src/store/object-store.ts';

describe('store key layout (DESIGN §3)', () => {
  const run = runKeys('run-2026.11_28');

  it('places run-level objects under runs/<runId>/', () => {
    assert.equal(run.prefix, 'runs/run-2026.11_28/');
    assert.equal(run.spec, 'runs/run-2026.11_28/spec.json');
    assert.equal(run.manifest, 'runs/run-2026.11_28/manifest.json');
    assert.equal(run.status, 'runs/run-2026.11_28/status.json');
    assert.equal(run.report.json, 'runs/run-2026.11_28/report.json');
    assert.equal(run.report.html, 'runs/run-2026.11_28/report.html');
    assert.equal(run.merge.jointFront, 'runs/run-2026.11_28/merge/joint-front.json');
    assert.equal(run.merge.plan('flops50'), 'runs/run-2026.11_28/merge/plans/flops50.json');
  });

  it('lays out sub-networks with zero-padded ids and generations', () => {
    const subnet = run.subnet(7);
    assert.equal(subnet.id, '007');
    assert.equal(subnet.prefix, 'runs/run-2026.11_28/subnets/007/');
    // Disposable intermediates live under scratch/, which a bucket lifecycle rule expires.
    assert.equal(subnet.features, 'scratch/run-2026.11_28/subnets/007/features/');
    assert.equal(subnet.checkpoints, 'scratch/run-2026.11_28/subnets/007/checkpoints/');
    assert.equal(subnet.checkpoint(42), 'scratch/run-2026.11_28/subnets/007/checkpoints/gen-000042.json');
    assert.ok(subnet.checkpoint(1).startsWith(SCRATCH_PREFIX) && subnet.features.startsWith(run.scratchPrefix), 'expected: subnet.checkpoint(1).startsWith(SCRATCH_PREFIX) && subnet.features....');
    assert.ok(subnet.front.startsWith(run.prefix) && !subnet.front.startsWith(SCRATCH_PREFIX), 'expected: subnet.front.startsWith(run.prefix) && !subnet.front.startsWith(SCR...');
    assert.equal(subnet.front, 'runs/run-2026.11_28/subnets/007/front.json');
    assert.equal(subnet.log, 'runs/run-2026.11_28/subnets/007/log.jsonl');
    assert.equal(run.subnet('stage2').prefix, 'runs/run-2026.11_28/subnets/stage2/');
    assert.throws(() => run.subnet(-1), InvalidNameError);
    assert.throws(() => run.subnet(1.5), InvalidNameError);
    assert.throws(() => subnet.checkpoint(-3), InvalidNameError);
  });

  it('makes lexicographic order numeric order for ids and generations', () => {
    const generations = [0, 2, 9, 10, 99, 100, 12345];
    const keys = generations.map((g) => run.subnet(1).checkpoint(g));
    assert.deepEqual([...keys].sort(), keys);
    const subnets = [0, 1, 9, 10, 11, 100].map((k) => run.subnet(k).prefix);
    assert.deepEqual([...subnets].sort(), subnets);
    // A sub-network's prefix never matches another sub-network's keys.
    assert.ok(!run.subnet(10).front.startsWith(run.subnet(1).prefix), 'expected: !run.subnet(10).front.startsWith(run.subnet(1).prefix)');
  });

  it('finds the latest checkpoint numerically', () => {
    const keys = [5, 1000000, 20].map((g) => run.subnet(0).checkpoint(g));
    assert.deepEqual(latestCheckpoint([...keys, run.subnet(0).front]), { key: keys[1], generation: 1000000 });
    assert.equal(latestCheckpoint([]), undefined);
    assert.equal(parseCheckpointGeneration(run.subnet(0).checkpoint(17)), 17);
    assert.equal(parseCheckpointGeneration(run.subnet(0).front), undefined);
  });

  it('lays out targets, registry and datasets', () => {
    const target = run.target('acc-drop-1');
    assert.equal(target.modelPrefix, 'runs/run-2026.11_28/targets/acc-drop-1/model/');
    assert.equal(target.metrics, 'runs/run-2026.11_28/targets/acc-drop-1/metrics.json');
    assert.equal(registryPrefix(), 'registry/');
    assert.equal(registryPrefix('resnet20'), 'registry/resnet20/');
    assert.equal(pruneRequestKey('resnet20'), 'registry/resnet20/prune.json');
    assert.equal(parsePruneRequestKey('registry/resnet20/prune.json'), 'resnet20');
    assert.equal(parsePruneRequestKey('registry/resnet20/model.json'), undefined);
    assert.equal(parsePruneRequestKey('registry/a/b/prune.json'), undefined);
    assert.equal(parsePruneRequestKey('registry/../prune.json'), undefined);
    assert.equal(datasetPrefix('cifar10'), 'datasets/cifar10/');
  });

  it('produces only valid store keys', () => {
    const subnet = run.subnet(3);
    const target = run.target('t');
    for (const key of [run.spec, run.manifest, run.status, subnet.front, subnet.log, subnet.checkpoint(1),
      run.merge.jointFront, run.merge.plan('t'), target.metrics, run.report.html, pruneRequestKey('m')]) {
      assert.doesNotThrow(() => assertValidKey(key), key);
    }
    for (const prefix of [run.prefix, subnet.features, subnet.checkpoints, target.modelPrefix, datasetPrefix('d')]) {
      assert.doesNotThrow(() => assertValidKey(prefix, true), prefix);
      assert.ok(prefix.endsWith('/'), prefix);
    }
  });

  it('rejects unsafe names with a message naming what was wrong', () => {
    for (const bad of ['', '../x', 'a/b', '.hidden', '-flag', 'a..b', 'sp ace', 'x'.repeat(129), 'é']) {
      assert.throws(() => runKeys(bad), (error: unknown) => {
        assert.ok(error instanceof InvalidNameError, `${JSON.stringify(bad)}: ${String(error)}`);
        assert.match(error.message, /^invalid run id /);
        return true;
      });
    }
    assert.throws(() => run.target('a/b'), /invalid target name "a\/b"/);
    assert.throws(() => run.merge.plan('..'), /invalid target name/);
    assert.throws(() => registryPrefix('x y'), /invalid model name/);
    assert.throws(() => datasetPrefix('/etc'), /invalid dataset name/);
    assert.doesNotThrow(() => runKeys('x'.repeat(128)));
  });
});
