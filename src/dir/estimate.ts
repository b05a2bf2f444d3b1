/**
 * What a run will cost in worker time, before it runs: MACs x images x evaluations over the
 * documented throughput of a backend (throughput.ts). An estimate, and an upper bound on the
 * work: every evaluation the budget allows is counted (the fitness cache skips repeats, and a
 * search may stop early), and every candidate at its unpruned MACs (pruned ones are cheaper).
 *
 * Per sub-network k (DESIGN §2), with S_k its MACs and T_k the MACs after it:
 *   features, once:    (searchTrain + searchVal) images through S_1..S_k          (inference)
 *   per evaluation:    recoverySteps x recoveryBatchSize images through S_k (+ T_k when beta > 0,
 *                      the output term's gradient runs back through it)          (training)
 *                      bnRecalibrationBatches x recoveryBatchSize images through S_k (inference)
 *                      searchVal images through S_k + T_k                        (inference)
 * Per target (finalize): verifyTop assemblies (every sub-network recovered again, then scored on
 * searchVal), the fine-tune (epochs x fine-tune images through the pruned network, plus the
 * original when distilling) and two test passes (before and after the fine-tune).
 */
import type { RunSpec } from '../schema/spec.ts';
import { evaluationBudget } from '../schema/spec.ts';
import type { Division } from './divide.ts';
import { secondsFor, type Throughput } from './throughput.ts';

/** Seconds by throughput id (`wasm`, `t4`). */
export type SecondsBy = Readonly<Record<string, number>>;

export interface SubnetworkEstimate {
  readonly id: string;
  readonly layers: number;
  readonly groups: number;
  /** Channels the search decides on (genome bits). */
  readonly searchedChannels: number;
  readonly macs: number;
  /** At most this many candidates are evaluated. */
  readonly evaluations: number;
  /** Worker-seconds of the search (features + every evaluation). */
  readonly seconds: SecondsBy;
}

export interface RunEstimate {
  readonly throughputs: readonly Throughput[];
  readonly subnetworks: readonly SubnetworkEstimate[];
  readonly evaluations: number;
  /** Sum over sub-networks: what the searches bill. */
  readonly searchSeconds: SecondsBy;
  /** The slowest sub-network: the searches' wall time when each has its own worker. */
  readonly searchWallSeconds: SecondsBy;
  readonly targets: number;
  /** One target's finalize job; undefined when the split sizes are unknown. */
  readonly finalizeSecondsPerTarget?: SecondsBy;
  /** Search + every target's finalize; undefined when the split sizes are unknown. */
  readonly totalSeconds?: SecondsBy;
}

export interface SplitSizes {
  readonly train: number;
  readonly test: number;
}

function by(throughputs: readonly Throughput[], seconds: (throughput: Throughput) => number): SecondsBy {
  return Object.fromEntries(throughputs.map((throughput) => [throughput.id, seconds(throughput)]));
}

/** The fraction of the network's MACs a target keeps (a FLOPs cut is exact; other kinds count as unpruned). */
function keptMacsFraction(target: RunSpec['targets'][number]): number {
  return target.kind === 'flopsCut' ? 1 - target.value : 1;
}

export function estimateRun(
  spec: RunSpec,
  division: Division,
  throughputs: readonly Throughput[],
  splits?: SplitSizes,
): RunEstimate {
  const { search, dataset } = spec;
  const network = division.totalMacs;
  const evaluations = evaluationBudget(search);
  const recoveryImages = search.recoverySteps * search.recoveryBatchSize;
  const bnImages = search.bnRecalibrationBatches * search.recoveryBatchSize;
  const pieces = division.subnetworks;
  const macsBefore = (index: number): number => pieces.slice(0, index).reduce((sum, piece) => sum + piece.macs, 0);
  const macsAfter = (index: number): number => pieces.slice(index + 1).reduce((sum, piece) => sum + piece.macs, 0);

  /** One recovery of S_k': what each evaluation (and each verified assembly) trains. */
  const recoverySeconds = (throughput: Throughput, index: number): number => {
    const macs = pieces[index].macs;
    const trained = search.beta > 0 ? macs + macsAfter(index) : macs;
    return secondsFor(throughput, 'train', recoveryImages, trained, network) + secondsFor(throughput, 'infer', bnImages, macs, network);
  };

  const subnetworks = pieces.map((piece, index): SubnetworkEstimate => {
    const seconds = (throughput: Throughput): number => {
      const features = secondsFor(throughput, 'infer', dataset.searchTrain + dataset.searchVal, macsBefore(index) + piece.macs, network);
      const score = secondsFor(throughput, 'infer', dataset.searchVal, piece.macs + macsAfter(index), network);
      return features + evaluations * (recoverySeconds(throughput, index) + score);
    };
    return {
      id: piece.id,
      layers: piece.layers.length,
      groups: piece.groupIds.length,
      searchedChannels: piece.genomeLength,
      macs: piece.macs,
      evaluations,
      seconds: by(throughputs, seconds),
    };
  });

  const searchSeconds = by(throughputs, (t) => subnetworks.reduce((sum, s) => sum + s.seconds[t.id], 0));
  const searchWallSeconds = by(throughputs, (t) => Math.max(...subnetworks.map((s) => s.seconds[t.id])));
  const base = {
    throughputs,
    subnetworks,
    evaluations: evaluations * subnetworks.length,
    searchSeconds,
    searchWallSeconds,
    targets: spec.targets.length,
  };
  if (splits === undefined) return base;

  const fineTuneImages = Math.min(dataset.fineTuneLimit ?? splits.train, splits.train);
  const testImages = Math.min(dataset.testLimit ?? splits.test, splits.test);
  const finalizeSeconds = (throughput: Throughput, target: RunSpec['targets'][number]): number => {
    const verify =
      spec.merge.verifyTop *
      (pieces.reduce((sum, _piece, index) => sum + recoverySeconds(throughput, index), 0) +
        secondsFor(throughput, 'infer', dataset.searchVal, network, network));
    const pruned = network * keptMacsFraction(target);
    const fineTune =
      spec.finalize.epochs *
      (secondsFor(throughput, 'train', fineTuneImages, pruned, network) +
        (spec.finalize.distillWeight > 0 ? secondsFor(throughput, 'infer', fineTuneImages, network, network) : 0));
    const test = 2 * secondsFor(throughput, 'infer', testImages, pruned, network);
    return verify + fineTune + test;
  };
  // Targets differ only in the pruned size; the per-target figure is their mean.
  const finalizeSecondsPerTarget = by(
    throughputs,
    (t) => spec.targets.reduce((sum, target) => sum + finalizeSeconds(t, target), 0) / spec.targets.length,
  );
  return {
    ...base,
    finalizeSecondsPerTarget,
    totalSeconds: by(throughputs, (t) => searchSeconds[t.id] + spec.targets.length * finalizeSecondsPerTarget[t.id]),
  };
}
