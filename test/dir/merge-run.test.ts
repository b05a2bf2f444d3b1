import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/backend.ts';
import { encodeGenome } from '../../src/emo/genome.ts';
import { jointFrontFileSchema, planSchema, type FrontFile, type Manifest } from '../../src/dir/manifest.ts';
import { mergeRun } from '../../src/dir/merge-run.ts';
import { planRun, readManifest } from '../../src/dir/plan.ts';
import { FileStore, getJson, putJson } from '../../src/store/index.ts';
import type { RunSpecInput } from '../../src/schema/spec.ts';

const spec: RunSpecInput = {
  model: 'zoo:fmnist-resnet',
  dataset: { name: 'fashion-mnist' },
  targets: [
    { kind: 'flopsCut', value: 0.5 },
    { kind: 'flopsCut', value: 0.7 },
    { kind: 'paramsCut', value: 0.6 },
    // fmnist-resnet cannot lose 99% of its MACs: every group keeps >= 10% of its channels.
    { kind: 'flopsCut', value: 0.99, name: 'impossible' },
  ],
  merge: { verifyTop: 3 },
};

/**
 * A realistic front.json: the unpruned point plus 10 pruned points whose cost falls with the
 * kept fraction r (MACs ~ r^1.7, as in- and output channels both shrink) and whose impairment
 * grows convexly, steeper for sub-networks with larger `severity`. `scope` picks whether costs
 * are of the whole piece or of its prunable part.
 */
function syntheticFront(manifest: Manifest, index: number, scope: 'piece' | 'prunable', dropUnpruned = false): FrontFile {
  const subnet = manifest.division.subnetworks[index];
  const original = scope === 'piece' ? { macs: subnet.macs, params: subnet.params } : { macs: subnet.prunableMacs, params: subnet.prunableParams };
  const fixedMacs = subnet.macs - subnet.prunableMacs;
  const fixedParams = subnet.params - subnet.prunableParams;
  const base = scope === 'piece' ? { macs: fixedMacs, params: fixedParams } : { macs: 0, params: 0 };
  const severity = [0.8, 0.3, 0.5][index % 3];
  const genome = (keep: number): string => {
    const bits = new Uint8Array(subnet.genomeLength);
    for (let i = 0; i < Math.max(1, Math.round(keep * bits.length)); i++) bits[i] = 1;
    return encodeGenome(bits);
  };
  const points = [];
  if (!dropUnpruned) points.push({ id: `${subnet.id}-p00`, genome: genome(1), flops: 1, ...original, impairment: 0, accuracy: 0.91 });
  for (let j = 1; j <= 10; j++) {
    const r = 1 - j * 0.085;
    const macs = Math.round(base.macs + (original.macs - base.macs) * r ** 1.7);
    const params = Math.round(base.params + (original.params - base.params) * r ** 1.7);
    const impairment = Number((severity * (1 - r) ** 2 + 0.002 * j).toFixed(6));
    points.push({ id: `${subnet.id}-p${String(j).padStart(2, '0')}`, genome: genome(r), flops: macs / original.macs, macs, params, impairment, accuracy: Math.max(0, 0.91 - impairment / 3) });
  }
  return { runId: manifest.runId, subnet: subnet.id, objective: 'flops', original, points, evaluations: 160, generations: 8, stopReason: 'generations' };
}

let dir: string;
let store: FileStore;

async function plannedRun(runId: string, runSpec: RunSpecInput = spec): Promise<Manifest> {
  await putJson(store, `runs/${runId}/spec.json`, runSpec);
  await planRun(store, runId);
  return readManifest(store, runId);
}

async function writeFronts(manifest: Manifest, scope: 'piece' | 'prunable', dropUnpruned = false): Promise<void> {
  for (let k = 0; k < manifest.subnetworks.length; k++) {
    await putJson(store, `runs/${manifest.runId}/subnets/${manifest.subnetworks[k]}/front.json`, syntheticFront(manifest, k, scope, dropUnpruned));
  }
}

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-merge-'));
  store = new FileStore(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mergeRun', () => {
  test('writes a joint front and one plan per target; schemes respect the budget; infeasible targets are recorded', async () => {
    const manifest = await plannedRun('m1');
    await writeFronts(manifest, 'prunable');
    const result = await mergeRun(store, 'm1', { now: new Date('2026-01-01T00:00:00Z') });
    assert.deepEqual(result, {
      runId: 'm1',
      jointFrontKey: 'runs/m1/merge/joint-front.json',
      plansPrefix: 'runs/m1/merge/plans/',
      targets: ['flops-50', 'flops-70', 'params-60'],
      infeasibleTargets: ['impossible'],
    });
    assert.ok(Buffer.byteLength(JSON.stringify(result)) < 1024, 'only keys and names travel');

    const fronts = new Map(manifest.subnetworks.map((id, k) => [id, syntheticFront(manifest, k, 'prunable')]));
    for (const target of manifest.targets.slice(0, 3)) {
      const plan = planSchema.parse(await getJson(store, `runs/m1/merge/plans/${target.name}.json`));
      assert.equal(plan.error, undefined);
      assert.deepEqual(plan.original, { macs: manifest.model.macs, params: manifest.model.params });
      const kind = target.kind === 'flopsCut' ? 'macs' : 'params';
      const limit = (1 - target.value) * manifest.model[kind];
      assert.equal(plan.budget?.value, limit);
      assert.equal(plan.schemes.length, 3);
      // The spec's default merge.targetTolerance (0.01) keeps the schemes within 1% past the target.
      const floor = limit - 0.01 * manifest.model[kind];
      assert.deepEqual(plan.band, { lower: floor, upper: limit, met: true });
      plan.schemes.forEach((scheme, i) => {
        assert.equal(scheme.rank, i + 1);
        assert.ok(scheme[kind] <= limit, `${target.name} scheme ${i + 1}: ${scheme[kind]} > ${limit}`);
        assert.ok(scheme[kind] >= floor, `${target.name} scheme ${i + 1}: ${scheme[kind]} < ${floor}, past the band`);
        if (i > 0) assert.ok(scheme.estimatedImpairment >= plan.schemes[i - 1].estimatedImpairment, 'best first');
        assert.deepEqual(scheme.picks.map((p) => p.subnet), manifest.subnetworks);
        // Totals are recomputable from the picks alone (finalize relies on the plan only).
        let macs = manifest.division.fixedMacs;
        let impairment = 0;
        for (const pick of scheme.picks) {
          const point = fronts.get(pick.subnet)!.points.find((p) => p.id === pick.pointId)!;
          assert.equal(pick.genome, point.genome, 'genome copied from the front');
          assert.equal(pick.macs, point.macs);
          macs += pick.macs;
          impairment += pick.impairment;
        }
        assert.equal(scheme.macs, macs);
        assert.ok(Math.abs(scheme.estimatedImpairment - impairment) < 1e-12, 'impairment is the sum of the picks');
        assert.ok(Math.abs(scheme.flopsCut - (1 - macs / manifest.model.macs)) < 1e-12, 'flopsCut of the whole network');
      });
    }
    // A deeper cut costs at least as much impairment.
    const p50 = planSchema.parse(await getJson(store, 'runs/m1/merge/plans/flops-50.json'));
    const p70 = planSchema.parse(await getJson(store, 'runs/m1/merge/plans/flops-70.json'));
    assert.ok(p70.schemes[0].estimatedImpairment > p50.schemes[0].estimatedImpairment, 'deeper cut, more impairment');

    const impossible = planSchema.parse(await getJson(store, 'runs/m1/merge/plans/impossible.json'));
    assert.deepEqual(impossible.schemes, []);
    assert.match(impossible.error ?? '', /target impossible is infeasible: .*minimum achievable/);
    assert.ok((impossible.minimum ?? 0) > (impossible.budget?.value ?? Infinity), 'minimum above budget');

    const joint = jointFrontFileSchema.parse(await getJson(store, 'runs/m1/merge/joint-front.json'));
    assert.equal(joint.points[0].macs, manifest.model.macs, 'the trace starts unpruned');
    assert.equal(joint.points[0].estimatedImpairment, 0);
    assert.deepEqual(joint.fixed, { macs: manifest.division.fixedMacs, params: manifest.division.fixedParams });
    for (let i = 1; i < joint.points.length; i++) {
      assert.ok(joint.points[i].macs < joint.points[i - 1].macs, `joint point ${i}: cost falls`);
      assert.ok(joint.points[i].estimatedImpairment >= joint.points[i - 1].estimatedImpairment, `joint point ${i}: impairment rises`);
    }
  });

  test('fronts in whole-piece scope give the same whole-network plans as prunable-part fronts', async () => {
    const manifest = await plannedRun('m2');
    await writeFronts(manifest, 'piece');
    await mergeRun(store, 'm2');
    for (const target of ['flops-50', 'params-60']) {
      const piece = planSchema.parse(await getJson(store, `runs/m2/merge/plans/${target}.json`));
      const prunable = planSchema.parse(await getJson(store, `runs/m1/merge/plans/${target}.json`));
      assert.deepEqual(piece.original, prunable.original);
      assert.deepEqual(
        piece.schemes.map((s) => [s.picks.map((p) => p.pointId), s.macs, s.params]),
        prunable.schemes.map((s) => [s.picks.map((p) => p.pointId), s.macs, s.params]),
      );
    }
  });

  test('a retry rewrites nothing and returns the same; a changed front then conflicts', async () => {
    const before = await store.get('runs/m1/merge/plans/flops-50.json');
    const again = await mergeRun(store, 'm1', { now: new Date('2026-03-03T00:00:00Z') });
    assert.deepEqual(again.targets, ['flops-50', 'flops-70', 'params-60']);
    assert.deepEqual(await store.get('runs/m1/merge/plans/flops-50.json'), before);
    // Results are written once: a merge over changed fronts must not silently replace them.
    const manifest = await readManifest(store, 'm1');
    const front = syntheticFront(manifest, 1, 'prunable');
    await store.put('runs/m1/subnets/k2/front.json', JSON.stringify({ ...front, points: front.points.map((p) => ({ ...p, impairment: p.impairment / 2 })) }));
    await assert.rejects(mergeRun(store, 'm1'), /runs\/m1\/merge\/plans\/flops-50\.json .*already exists with different content \(fields: schemes, ranking\)/);
    await putJson(store, 'runs/m1/subnets/k2/front.json', front);
  });

  test('a front without its unpruned point gets a synthetic one (all channels kept, impairment 0)', async () => {
    const manifest = await plannedRun('m3');
    await writeFronts(manifest, 'prunable', true);
    await mergeRun(store, 'm3');
    const joint = jointFrontFileSchema.parse(await getJson(store, 'runs/m3/merge/joint-front.json'));
    assert.equal(joint.original.macs, manifest.model.macs);
    assert.deepEqual(joint.points[0].choice, ['unpruned', 'unpruned', 'unpruned']);
  });

  test('a missing front fails naming every missing key', async () => {
    const manifest = await plannedRun('m4');
    await writeFronts(manifest, 'prunable');
    await store.delete('runs/m4/subnets/k2/front.json');
    await store.delete('runs/m4/subnets/k3/front.json');
    await assert.rejects(mergeRun(store, 'm4'), (error: Error) => {
      assert.match(error.message, /runs\/m4\/subnets\/k2\/front\.json does not exist/);
      assert.match(error.message, /runs\/m4\/subnets\/k3\/front\.json does not exist/);
      return true;
    });
    assert.equal(await store.exists('runs/m4/merge/joint-front.json'), false);
  });

  test('a malformed front fails naming the key and the field', async () => {
    const manifest = await plannedRun('m5');
    await writeFronts(manifest, 'prunable');
    const front = syntheticFront(manifest, 0, 'prunable');
    await store.put('runs/m5/subnets/k1/front.json', JSON.stringify({ ...front, points: [{ ...front.points[0], impairment: 'high' }] }));
    await assert.rejects(mergeRun(store, 'm5'), /runs\/m5\/subnets\/k1\/front\.json.*\n.*points\[0\]\.impairment/);
    // A genome of the wrong length (another sub-network's) is caught too.
    await store.put('runs/m5/subnets/k1/front.json', JSON.stringify({ ...front, points: [{ ...front.points[0], genome: encodeGenome(new Uint8Array(200)) }] }));
    await assert.rejects(mergeRun(store, 'm5'), /k1\/front\.json.*points\[0\]\.genome \(point 'k1-p00'\).*expected 6 for 48 channels/);
    // Costs of another model are refused rather than summed.
    await store.put('runs/m5/subnets/k1/front.json', JSON.stringify({ ...front, original: { macs: 123, params: 4 } }));
    await assert.rejects(mergeRun(store, 'm5'), /k1\/front\.json.*field original.*another model or division/);
  });
});
