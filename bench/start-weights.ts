/**
 * Allocation or weights? For a finished bench:quality store, every target's chosen EMO-DIR scheme
 * is fine-tuned twice with the benchmark's fine-tune, from two starts:
 *   recovered  EMO-DIR as shipped: the searched sub-networks' recovered weights, joint recovery
 *              (`--joint-recovery-steps`, default the spec schema's, whatever the stored spec
 *              says: stores from before that default ran without), then the fine-tune;
 *   original   the same channel masks on the original weights with BN re-estimated on
 *              search-train (how every mask baseline starts), then the same fine-tune.
 * If `original` ends higher, the search's allocation is fine and its recovered weights fine-tune
 * worse; if not, the allocation is what limits the result. Search-val accuracy after the
 * fine-tune is printed beside test accuracy (any method choice is made on search-val).
 *
 *   node --import tsx bench/start-weights.ts --store /tmp/emo-dir-quality-... [--run-id bench-quality]
 *     [--joint-recovery-steps N] [--json]
 *
 * Works on a copy of the store with the targets' results removed; the original run is untouched.
 */
import { parseArgs } from 'node:util';
import { initEngine } from '../src/engine/backend.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { adaptBatchNorm, scoreOnSearchVal } from '../src/dir/baselines/adaptive-bn.ts';
import { drawSearchSubsets } from '../src/dir/features.ts';
import { fineTuneAndEvaluate, finalizeTarget, pruneAtMasks } from '../src/dir/finalize.ts';
import { planSchema, readManifest } from '../src/dir/manifest.ts';
import { readRunSpec } from '../src/dir/plan.ts';
import { decodeGenome } from '../src/emo/genome.ts';
import { analyzeChannels, genomeSlots, masksFromGenome } from '../src/model/groups.ts';
import { loadModel } from '../src/model/io.ts';
import { finalizeSpecSchema, targetName } from '../src/schema/spec.ts';
import { getJson } from '../src/store/object-store.ts';
import { runKeys } from '../src/store/keys.ts';
import { benchFineTuneSettings, log, round, storeCopyWithoutTargets } from './lib/quality-common.ts';
import { adaptiveBnData } from './lib/quality-methods.ts';
import { formatTable } from './lib/table.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      store: { type: 'string' },
      'run-id': { type: 'string', default: 'bench-quality' },
      'joint-recovery-steps': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.store) throw new Error('--store: the directory of a finished run (bench:quality logs it as "store: ...")');
  const runId = values['run-id'];
  await initEngine({ log });
  const { store, remove } = await storeCopyWithoutTargets(values.store, runId);
  const manifest = await readManifest(store, runId);
  const stored = await readRunSpec(store, manifest.specKey);
  const jointRecoverySteps = values['joint-recovery-steps'] === undefined ? finalizeSpecSchema.parse({}).jointRecoverySteps : Number(values['joint-recovery-steps']);
  if (!Number.isInteger(jointRecoverySteps) || jointRecoverySteps < 0) throw new Error(`--joint-recovery-steps: expected an integer >= 0, got '${values['joint-recovery-steps']}'`);
  const spec = { ...stored, finalize: { ...stored.finalize, jointRecoverySteps } };
  const model = await loadModel(spec.model);
  const division = manifest.division;
  const analysis = analyzeChannels(model, { pruneResidual: division.pruneResidual });
  const trainSet = await loadFashionMnist({ split: 'train', log });
  const testSet = await loadFashionMnist({ split: 'test', log });
  const subsets = drawSearchSubsets(trainSet, { searchTrain: spec.dataset.searchTrain, searchVal: spec.dataset.searchVal, seed: spec.search.seed });
  const bnData = adaptiveBnData({ spec, trainSet, subsets });
  const settings = benchFineTuneSettings(spec, trainSet, testSet);
  const rows: Record<string, number | string | null>[] = [];
  const emit = (row: Record<string, number | string | null>): void => {
    rows.push(row);
    if (values.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    else log(`row: ${JSON.stringify(row)}`);
  };
  for (const target of manifest.targets) {
    const name = targetName(target);
    const result = await finalizeTarget({ store, runId, target: name, spec, model, division, analysis, trainSet, testSet, log: (m) => log(`  ${name}: ${m}`) });
    const shipped = await loadModel({ store, prefix: runKeys(runId).target(name).modelPrefix });
    const m = result.metrics;
    emit({
      target: name,
      start: 'recovered',
      schemeRank: m.schemeRank,
      flopsCut: round(m.achieved.flopsCut),
      testBeforeFineTune: round(m.accuracy.beforeFineTune),
      test: round(m.accuracy.afterFineTune),
      searchVal: round(scoreOnSearchVal(shipped, bnData).top1),
    });
    shipped.dispose();

    const plan = planSchema.parse(await getJson(store, runKeys(runId).merge.plan(name)));
    const scheme = plan.schemes.find((s) => s.rank === m.schemeRank);
    if (!scheme) throw new Error(`${name}: the plan has no scheme of rank ${m.schemeRank}`);
    const masks: Record<string, Uint8Array> = {};
    for (const pick of scheme.picks) {
      const subnet = division.subnetworks.find((s) => s.id === pick.subnet);
      if (!subnet) throw new Error(`${name}: pick of unknown sub-network ${pick.subnet}`);
      Object.assign(masks, masksFromGenome(genomeSlots(analysis, subnet.groupIds), decodeGenome(pick.genome, subnet.genomeLength)));
    }
    const pruned = pruneAtMasks(model, analysis, masks).model;
    try {
      adaptBatchNorm(pruned, bnData);
      const tuned = await fineTuneAndEvaluate(pruned, model, trainSet, testSet, settings);
      emit({
        target: name,
        start: 'original',
        schemeRank: m.schemeRank,
        flopsCut: round(m.achieved.flopsCut),
        testBeforeFineTune: round(tuned.beforeFineTune.top1),
        test: round(tuned.afterFineTune.top1),
        searchVal: round(scoreOnSearchVal(pruned, bnData).top1),
      });
    } finally {
      pruned.dispose();
    }
  }
  await remove();
  model.dispose();
  if (!values.json) {
    const columns = ['target', 'start', 'schemeRank', 'flopsCut', 'testBeforeFineTune', 'test', 'searchVal'];
    process.stdout.write(`${formatTable(columns, rows.map((r) => columns.map((c) => r[c] ?? undefined)))}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
