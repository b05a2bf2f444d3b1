/**
 * Joint recovery before verification, measured on search-val (src/dir/joint-recovery.ts, spec
 * `finalize.jointRecoverySteps`): for a finished bench:quality (or `emo-dir run`) store, every
 * target's plan is verified again with 0 and with N steps of joint recovery of each assembled
 * scheme, without fine-tuning, and the chosen scheme's estimated vs measured impairment and
 * search-val accuracy are printed (test accuracy straight after pruning too, for the README; the
 * choice of N is made on search-val only).
 *
 *   node --import tsx bench/joint-recovery.ts --store /tmp/emo-dir-quality-... [--run-id bench-quality]
 *     [--steps 0,10,20,40] [--json]
 *
 * Each setting works on a copy of the store with the targets' results removed, so the original
 * run is untouched.
 */
import { parseArgs } from 'node:util';
import { initEngine } from '../src/engine/backend.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { cpuSecondsSince, finalizeTarget } from '../src/dir/finalize.ts';
import { readManifest } from '../src/dir/manifest.ts';
import { readRunSpec } from '../src/dir/plan.ts';
import { analyzeChannels } from '../src/model/groups.ts';
import { loadModel } from '../src/model/io.ts';
import { targetName } from '../src/schema/spec.ts';
import { FileStore } from '../src/store/file-store.ts';
import { log, parseNumberList, round, storeCopyWithoutTargets } from './lib/quality-common.ts';
import { formatTable } from './lib/table.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      store: { type: 'string' },
      'run-id': { type: 'string', default: 'bench-quality' },
      steps: { type: 'string', default: '0,10,20,40' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.store) throw new Error('--store: the directory of a finished run (bench:quality logs it as "store: ...")');
  const stepsList = parseNumberList(values.steps, '--steps', (n) => Number.isInteger(n) && n >= 0, 'integers >= 0');
  const runId = values['run-id'];
  await initEngine({ log });
  const source = new FileStore(values.store);
  const manifest = await readManifest(source, runId);
  const spec = await readRunSpec(source, manifest.specKey);
  const model = await loadModel(spec.model);
  const analysis = analyzeChannels(model, { pruneResidual: manifest.division.pruneResidual });
  const trainSet = await loadFashionMnist({ split: 'train', log });
  const testSet = await loadFashionMnist({ split: 'test', log });
  const rows: Record<string, number | string | null>[] = [];
  for (const steps of stepsList) {
    const { store, remove } = await storeCopyWithoutTargets(values.store, runId);
    for (const target of manifest.targets) {
      const name = targetName(target);
      const started = process.cpuUsage();
      const result = await finalizeTarget({
        store,
        runId,
        target: name,
        spec: { ...spec, finalize: { ...spec.finalize, epochs: 0, jointRecoverySteps: steps } },
        model,
        division: manifest.division,
        analysis,
        trainSet,
        testSet,
      });
      const m = result.metrics;
      const row = {
        target: name,
        jointRecoverySteps: steps,
        schemeRank: m.schemeRank,
        estimatedImpairment: round(m.estimatedImpairment),
        measuredImpairment: round(m.measuredImpairment),
        searchValAccuracy: round(m.searchVal.accuracy),
        testAccuracyBeforeFineTune: round(m.accuracy.beforeFineTune),
        flopsCut: round(m.achieved.flopsCut),
        verifyCpuSeconds: round(cpuSecondsSince(started), 1),
      };
      rows.push(row);
      if (values.json) process.stdout.write(`${JSON.stringify(row)}\n`);
      else log(`row: ${JSON.stringify(row)}`);
    }
    await remove();
  }
  model.dispose();
  if (!values.json) {
    const columns = ['target', 'jointRecoverySteps', 'schemeRank', 'estimatedImpairment', 'measuredImpairment', 'searchValAccuracy', 'testAccuracyBeforeFineTune', 'verifyCpuSeconds'];
    process.stdout.write(`${formatTable(columns, rows.map((r) => columns.map((c) => r[c] ?? undefined)))}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
