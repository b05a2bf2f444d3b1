/**
 * Recovery ablation (DESIGN §2 "Recovery under cross-network constraints"): which loss should a
 * pruned sub-network recover with? The same pruned genomes (every searched group of S_k keeps
 * the given fractions of its channels, the largest-L1 ones) are recovered under
 *
 *   alpha-only  alpha 1, beta 0   (match the next sub-network's expected input X_k)
 *   beta-only   alpha 0, beta 1   (CE at the network output through the frozen rest T_k)
 *   both        alpha 1, beta 1   (the spec default)
 *   none        recoverySteps 0   (inherited weights, BN re-estimated only)
 *
 * with the spec's recovery steps, batch size, learning rate and BN re-estimation, and scored on
 * the search-validation subset: per sub-network (impairment = CE of the network with only S_k
 * replaced, minus the original's; top-1), and jointly (every sub-network pruned and recovered
 * alike, assembled into one network: the real impairment, next to the sum of the per-sub-network
 * ones that GPIR would estimate). Repeated for every `--seeds` value (the seed draws the search
 * subsets and the recovery batch order); the table shows means over seeds.
 *
 *   node --import tsx bench/ablation.ts [--quick] [--json] [--keeps 0.5,0.25] [--seeds 1,2]
 *        [--search-train N] [--search-val N] [--recovery-steps N] [--recovery-lr X]
 *
 * `--json`: one row per (seed, setting, keep, scope) on stdout:
 *   {seed, setting, alpha, beta, recoverySteps, keep, scope ('k1'.. | 'joint'), flopsCut,
 *    impairment, accuracy, estimatedImpairment (joint only), seconds}
 */
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../src/engine/backend.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { legalKeptCount } from '../src/emo/groups.ts';
import { createCandidateEvaluator } from '../src/dir/candidate.ts';
import type { CandidateEvaluator, CandidateSettings } from '../src/dir/candidate.ts';
import { divideNetwork } from '../src/dir/divide.ts';
import type { SubnetworkSpec } from '../src/dir/divide.ts';
import { computeBoundaryFeatures, drawSearchSubsets, evaluateOnFeatures } from '../src/dir/features.ts';
import type { BoundaryFeatures } from '../src/dir/features.ts';
import { candidateSettingsFromSpec } from '../src/dir/search-task.ts';
import { assemblePrunedModel, buildSubnetworkModel, buildTailModel } from '../src/dir/subnetwork.ts';
import { countCost } from '../src/model/cost.ts';
import { analyzeChannels, genomeSlots, masksFromGenome } from '../src/model/groups.ts';
import type { GenomeSlot } from '../src/model/groups.ts';
import { channelImportance } from '../src/model/importance.ts';
import { loadModel } from '../src/model/io.ts';
import type { RunSpec } from '../src/schema/spec.ts';
import { EXAMPLE_MODEL, buildSpec, isPositiveInt, log, parseNumber, parseNumberList, percent, round } from './lib/quality-common.ts';
import { formatTable } from './lib/table.ts';

interface Setting {
  readonly name: 'alpha-only' | 'beta-only' | 'both' | 'none';
  readonly alpha: number;
  readonly beta: number;
  readonly recovery: boolean;
}

const SETTINGS: readonly Setting[] = [
  { name: 'none', alpha: 1, beta: 1, recovery: false },
  { name: 'alpha-only', alpha: 1, beta: 0, recovery: true },
  { name: 'beta-only', alpha: 0, beta: 1, recovery: true },
  { name: 'both', alpha: 1, beta: 1, recovery: true },
];

export interface AblationRow {
  readonly seed: number;
  readonly setting: Setting['name'];
  readonly alpha: number;
  readonly beta: number;
  readonly recoverySteps: number;
  readonly keep: number;
  /** A sub-network id, or 'joint' (every sub-network pruned and recovered). */
  readonly scope: string;
  /** FLOPs cut of the scope (the sub-network, or the whole network for 'joint'). */
  readonly flopsCut: number | null;
  readonly impairment: number | null;
  readonly accuracy: number | null;
  /** Joint only: the sum of the per-sub-network impairments (GPIR's estimate). */
  readonly estimatedImpairment: number | null;
  readonly seconds: number | null;
}

interface Options {
  readonly json: boolean;
  readonly keeps: number[];
  readonly seeds: number[];
  readonly searchTrain: number;
  readonly searchVal: number;
  readonly recoverySteps: number | undefined;
  readonly recoveryLr: number | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      keeps: { type: 'string', default: '0.5,0.25' },
      seeds: { type: 'string', default: '1' },
      'search-train': { type: 'string' },
      'search-val': { type: 'string' },
      'recovery-steps': { type: 'string' },
      'recovery-lr': { type: 'string' },
    },
    strict: true,
  });
  const int = (flag: string, value: string | undefined): number | undefined => parseNumber(value, flag, isPositiveInt, 'a positive integer');
  return {
    json: values.json,
    keeps: parseNumberList(values.keeps, '--keeps', (n) => n > 0 && n < 1, 'keep fractions in (0, 1)'),
    seeds: parseNumberList(values.seeds, '--seeds', (n) => Number.isInteger(n) && n >= 0, 'integers >= 0'),
    // --quick: the quality benchmark's quick subsets; otherwise the spec defaults (2048 / 1024).
    searchTrain: int('--search-train', values['search-train']) ?? (values.quick ? 512 : 2048),
    searchVal: int('--search-val', values['search-val']) ?? (values.quick ? 256 : 1024),
    recoverySteps: parseNumber(values['recovery-steps'], '--recovery-steps', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    recoveryLr: parseNumber(values['recovery-lr'], '--recovery-lr', (n) => Number.isFinite(n) && n > 0, 'a positive number'),
  };
}

interface SubnetSetup {
  readonly spec: SubnetworkSpec;
  readonly features: BoundaryFeatures;
  readonly original: tf.LayersModel;
  readonly tail: tf.LayersModel | null;
  readonly analysis: ReturnType<typeof analyzeChannels>;
  readonly slots: GenomeSlot[];
  readonly importance: Record<string, Float32Array>;
}

/** The genome keeping `keep` of every searched group's channels (largest L1 first, legal counts). */
function l1Genome(setup: SubnetSetup, keep: number, spec: RunSpec): Uint8Array {
  const length = setup.slots.reduce((n, s) => n + s.channels, 0);
  const genome = new Uint8Array(length);
  for (const slot of setup.slots) {
    const scores = setup.importance[slot.group];
    const order = Array.from({ length: slot.channels }, (_, c) => c).sort((a, b) => scores[b] - scores[a] || a - b);
    const kept = legalKeptCount({ length: slot.channels, minKeep: spec.divide.minKeep, roundTo: spec.divide.roundTo }, Math.round(keep * slot.channels));
    for (let j = 0; j < kept; j++) genome[slot.start + order[j]] = 1;
  }
  return genome;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  await initEngine({ log });
  const model = await loadModel(EXAMPLE_MODEL);
  const trainSet = await loadFashionMnist({ split: 'train', log });
  const rows: AblationRow[] = [];
  const emit = (row: AblationRow): void => {
    rows.push(row);
    if (options.json) process.stdout.write(`${JSON.stringify(row)}\n`);
  };
  let recoveryDescription = '';
  for (const seed of options.seeds) {
    const spec = buildSpec({
      model: EXAMPLE_MODEL,
      dataset: { name: 'fashion-mnist', searchTrain: options.searchTrain, searchVal: options.searchVal },
      targets: [{ kind: 'flopsCut', value: 0.5 }],
      search: {
        seed,
        ...(options.recoverySteps === undefined ? {} : { recoverySteps: options.recoverySteps }),
        ...(options.recoveryLr === undefined ? {} : { recoveryLearningRate: options.recoveryLr }),
      },
    });
    const base = candidateSettingsFromSpec(spec);
    recoveryDescription =
      `recovery ${base.recoverySteps} steps x ${base.batchSize}, SGD lr ${base.learningRate}, ${base.bnRecalibrationBatches} BN batches; ` +
      `search-train ${options.searchTrain}, search-val ${options.searchVal}`;
    log(`seed ${seed}: ${recoveryDescription}`);
    const analysis = analyzeChannels(model, { pruneResidual: spec.divide.pruneResidual });
    const division = divideNetwork(model, analysis, { pruneResidual: spec.divide.pruneResidual });
    const subsets = drawSearchSubsets(trainSet, { searchTrain: options.searchTrain, searchVal: options.searchVal, seed });
    const features = await computeBoundaryFeatures(model, division, trainSet, subsets, { log });
    const setups: SubnetSetup[] = division.subnetworks.map((s) => {
      const original = buildSubnetworkModel(model, division, s.id);
      const tail = s.index === division.subnetworks.length ? null : buildTailModel(model, division, s.id);
      const subAnalysis = analyzeChannels(original, { pruneResidual: division.pruneResidual });
      return {
        spec: s,
        features: features.get(s.id)!,
        original,
        tail,
        analysis: subAnalysis,
        slots: genomeSlots(subAnalysis, s.groupIds),
        importance: channelImportance(original, subAnalysis, { groups: s.groupIds, criterion: 'l1' }),
      };
    });
    const first = setups[0].features;
    const fullSlots = new Map(division.subnetworks.map((s) => [s.id, genomeSlots(analysis, s.groupIds)]));
    try {
      for (const setting of SETTINGS) {
        const settings: CandidateSettings = { ...base, alpha: setting.alpha, beta: setting.beta, recoverySteps: setting.recovery ? base.recoverySteps : 0 };
        const evaluators = new Map<string, CandidateEvaluator>(
          setups.map((s) => [
            s.spec.id,
            createCandidateEvaluator({ originalSubnet: s.original, tail: s.tail, features: s.features, analysis: s.analysis, slots: s.slots, settings }),
          ]),
        );
        for (const keep of options.keeps) {
          let estimated = 0;
          const genomes = new Map<string, Uint8Array>();
          for (const setup of setups) {
            const genome = l1Genome(setup, keep, spec);
            genomes.set(setup.spec.id, genome);
            const r = evaluators.get(setup.spec.id)!.evaluate(genome);
            estimated += r.impairment;
            emit({
              seed,
              setting: setting.name,
              alpha: setting.alpha,
              beta: setting.beta,
              recoverySteps: settings.recoverySteps,
              keep,
              scope: setup.spec.id,
              flopsCut: round(1 - r.flops),
              impairment: round(r.impairment),
              accuracy: round(r.accuracy),
              estimatedImpairment: null,
              seconds: round(r.seconds, 2),
            });
            log(`  ${setting.name} keep ${keep} ${setup.spec.id}: impairment ${r.impairment.toFixed(4)} acc ${(r.accuracy * 100).toFixed(2)}% (${r.seconds.toFixed(1)} s)`);
          }
          // Joint: every sub-network pruned alike, each with its own recovered weights.
          const jointStarted = performance.now();
          const masksBySubnet: Record<string, Record<string, Uint8Array>> = {};
          const weights: Record<string, tf.LayersModel> = {};
          try {
            for (const setup of setups) {
              const view = masksFromGenome(fullSlots.get(setup.spec.id)!, genomes.get(setup.spec.id)!);
              masksBySubnet[setup.spec.id] = Object.fromEntries(Object.entries(view).map(([id, m]) => [id, m.slice()]));
              weights[setup.spec.id] = evaluators.get(setup.spec.id)!.recoverCandidate(genomes.get(setup.spec.id)!);
            }
            const assembled = assemblePrunedModel(model, analysis, masksBySubnet, weights, { division });
            try {
              const measured = evaluateOnFeatures(assembled, first, 'val', 'input', 256);
              const union = Object.assign({}, ...Object.values(masksBySubnet)) as Record<string, Uint8Array>;
              const flopsCut = 1 - countCost(analysis, union).macs / countCost(analysis).macs;
              const impairment = measured.loss - first.baseline.loss;
              emit({
                seed,
                setting: setting.name,
                alpha: setting.alpha,
                beta: setting.beta,
                recoverySteps: settings.recoverySteps,
                keep,
                scope: 'joint',
                flopsCut: round(flopsCut),
                impairment: round(impairment),
                accuracy: round(measured.accuracy),
                estimatedImpairment: round(estimated),
                seconds: round((performance.now() - jointStarted) / 1000, 2),
              });
              log(`  ${setting.name} keep ${keep} joint: impairment ${impairment.toFixed(4)} (estimate ${estimated.toFixed(4)}) acc ${(measured.accuracy * 100).toFixed(2)}%`);
            } finally {
              assembled.dispose();
            }
          } finally {
            for (const w of Object.values(weights)) w.dispose();
          }
        }
      }
    } finally {
      for (const s of setups) {
        s.original.dispose();
        s.tail?.dispose();
      }
    }
  }
  model.dispose();
  log(`ablation done in ${((performance.now() - started) / 1000).toFixed(0)} s`);

  if (!options.json) {
    // Means over seeds, one line per (keep, scope, setting).
    const groups = new Map<string, AblationRow[]>();
    for (const row of rows) {
      const key = `${row.keep}|${row.scope}|${row.setting}`;
      groups.set(key, [...(groups.get(key) ?? []), row]);
    }
    const mean = (values: (number | null)[]): number | undefined => {
      const finite = values.filter((v): v is number => v !== null);
      return finite.length === 0 ? undefined : finite.reduce((a, b) => a + b, 0) / finite.length;
    };
    const table = [...groups.values()].map((g) => {
      const r = g[0];
      const imp = mean(g.map((x) => x.impairment));
      const est = mean(g.map((x) => x.estimatedImpairment));
      return [
        `${r.keep}`,
        r.scope,
        r.setting,
        percent(mean(g.map((x) => x.flopsCut))),
        imp === undefined ? undefined : imp.toFixed(4),
        percent(mean(g.map((x) => x.accuracy))),
        est === undefined ? undefined : est.toFixed(4),
      ];
    });
    process.stdout.write(`recovery ablation on ${EXAMPLE_MODEL} (${recoveryDescription}; seeds ${options.seeds.join(',')}; means over seeds)\n`);
    process.stdout.write(`${formatTable(['keep', 'scope', 'setting', 'FLOPs cut %', 'impairment', 'search-val acc %', 'sum of parts'], table)}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
