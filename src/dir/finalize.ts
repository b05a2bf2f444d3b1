/**
 * The Finalize step (DESIGN §2 "Verify and fine-tune", §3 step 4), for one target:
 *
 *   plan (merge/plans/<target>.json, `verifyTop` schemes, best estimate first)
 *     -> per scheme: every sub-network's chosen genome -> masks -> its RECOVERED S_k' (the
 *        candidate evaluator's `recoverCandidate`, the same deterministic recovery the search
 *        scored) -> one assembled, physically smaller network (assemblePrunedModel)
 *     -> measured impairment = CE(assembled) - CE(original) on the search-validation subset
 *     -> keep the scheme with the least MEASURED impairment (the estimate is a sum of
 *        per-sub-network impairments; interactions between pruned sub-networks are only seen here)
 *     -> test accuracy before fine-tune, fine-tune on the training set (cosine LR, SGD momentum,
 *        weight decay, optional distillation from the original), test accuracy after
 *     -> export the model (runs/<id>/targets/<t>/model/, and model.onnx when the input was ONNX or
 *        the spec asks for it: export-formats.ts) and metrics.json (create-only).
 *
 * The same pieces serve the baselines (baselines.ts): `summarizePruned` describes any pruned
 * model by masks, and `fineTuneAndEvaluate` is THE fine-tune/evaluate path, so every method of
 * the quality benchmark is fine-tuned and measured by one function.
 *
 * RETRIES. The finalize Batch job may be retried (spot reclaim, host error). metrics.json is the
 * commit record: it is written last and create-only. A retry that finds it returns it without
 * doing any work (so it never overwrites a result); a retry that does not find it redoes the
 * whole target, overwriting model files a crashed attempt may have left (no metrics.json names
 * them, so nothing refers to them yet). Two attempts of one target never run at once (Batch
 * retries after a failure), so the model under an existing metrics.json is the one it describes.
 *
 * RECOVERY SETTINGS must be the search's, or the rebuilt S_k' is not the candidate the front
 * scored: `recoverySettingsFromSpec` derives them from `spec.search` exactly as the search task
 * does (one seed for every sub-network); a caller whose search used other settings passes
 * `candidateSettings`.
 */
import { engineInfo, tf } from '../engine/backend.ts';
import { batchCount } from '../data/batches.ts';
import type { AugmentOptions, BatchOptions, Normalization } from '../data/batches.ts';
import type { ImageDataset } from '../data/dataset.ts';
import type { ImageSource } from '../data/image-source.ts';
import { openDatasetSource } from '../data/load.ts';
import { stratifiedSample } from '../data/sampling.ts';
import type { ShardCache } from '../data/shard-cache.ts';
import { batches as tensorBatches, sourceTensorBatches } from '../data/tensor-batches.ts';
import { prepareSourceBatches } from '../data/stream-batches.ts';
import { startEarly } from '../data/early-batches.ts';
import type { EarlyBatches } from '../data/early-batches.ts';
import type { TensorBatch } from '../data/tensor-batches.ts';
import { decodeGenome } from '../emo/genome.ts';
import { countCost } from '../model/cost.ts';
import { analyzeChannels, genomeSlots, masksFromGenome } from '../model/groups.ts';
import type { ChannelAnalysis, GroupMasks } from '../model/groups.ts';
import { saveModel } from '../model/io.ts';
import { pruneModel } from '../model/prune.ts';
import type { RunSpec } from '../schema/spec.ts';
import { finalizeMetricsSchema, type FinalizeMetrics, type VerifiedScheme } from '../schema/metrics.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { AlreadyExistsError, NotFoundError, getJson, putJson } from '../store/object-store.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { evaluateSource } from '../train/evaluate.ts';
import type { EvaluationResult } from '../train/evaluate.ts';
import { fit } from '../train/fit.ts';
import type { EpochBatches } from '../train/fit.ts';
import { cosineLr } from '../train/schedules.ts';
import { createCandidateEvaluator } from './candidate.ts';
import type { CandidateEvaluator, CandidateSettings } from './candidate.ts';
import type { Division, SubnetworkSpec } from './divide.ts';
import { evaluateOnFeatures, loadBoundaryFeatures } from './features.ts';
import { jointRecover, jointRecoverySettingsFromSpec, TeacherLogits } from './joint-recovery.ts';
import { readManifest } from './manifest.ts';
import { candidateSettingsFromSpec } from './search-task.ts';
import { loadSpecModel, readRunSpec } from './plan.ts';
import type { BoundaryFeatures } from './features.ts';
import { MANIFEST_VERSION, planSchema } from './manifest.ts';
import type { ManifestTarget, Plan, PlanScheme, StepLog } from './manifest.ts';
import { assemblePrunedModel, buildSubnetworkModel, buildTailModel } from './subnetwork.ts';
import { carryOnnxOrigin, writeOnnxExport } from './export-formats.ts';

export class FinalizeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FinalizeError';
  }
}

// ---------------------------------------------------------------------------------------------
// Pruned-model summaries (shared with the baselines)

/** Layer classes whose output channels the report lists (the layers pruning makes narrower). */
const CHANNEL_LAYER_CLASSES: ReadonlySet<string> = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

export interface LayerChannelsSummary {
  readonly name: string;
  readonly className: string;
  readonly channelsBefore: number;
  readonly channelsAfter: number;
}

export interface PrunedSummary {
  /** Whole-network MACs and params of the pruned model (countCost conventions). */
  readonly macs: number;
  readonly params: number;
  readonly original: { readonly macs: number; readonly params: number };
  /** 1 - pruned / original. */
  readonly flopsCut: number;
  readonly paramsCut: number;
  /** Every Conv2D / DepthwiseConv2D / Dense layer, in model order. */
  readonly layers: readonly LayerChannelsSummary[];
}

/** What pruning `analysis`' model with `masks` achieves, analytically (no model is built). */
export function summarizePruned(analysis: ChannelAnalysis, masks: GroupMasks): PrunedSummary {
  const before = countCost(analysis);
  const after = countCost(analysis, masks);
  const layers: LayerChannelsSummary[] = [];
  after.layers.forEach((layer, i) => {
    if (!CHANNEL_LAYER_CLASSES.has(layer.className)) return;
    layers.push({ name: layer.name, className: layer.className, channelsBefore: before.layers[i].outChannels, channelsAfter: layer.outChannels });
  });
  return {
    macs: after.macs,
    params: after.params,
    original: { macs: before.macs, params: before.params },
    flopsCut: before.macs > 0 ? 1 - after.macs / before.macs : 0,
    paramsCut: before.params > 0 ? 1 - after.params / before.params : 0,
    layers,
  };
}

/**
 * The physically pruned model at `masks` (inherited weights, no recovery) and its summary: the
 * baselines' path from masks to a model. The caller owns (and disposes) `model`.
 */
export function pruneAtMasks(
  model: tf.LayersModel,
  analysis: ChannelAnalysis,
  masks: GroupMasks,
): { model: tf.LayersModel; masks: GroupMasks; summary: PrunedSummary } {
  return { model: pruneModel(model, masks, { analysis }), masks, summary: summarizePruned(analysis, masks) };
}

// ---------------------------------------------------------------------------------------------
// Fine-tune and evaluate (shared with the baselines)

export interface FineTuneSettings {
  /** Passes over the training set; fractions allowed (0.5 = half an epoch of steps); 0 = no fine-tune. */
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate of the cosine schedule (no warm-up: the weights are already trained). */
  readonly learningRate: number;
  /** L2 weight decay on conv/dense kernels (SGD, Nesterov momentum 0.9). */
  readonly weightDecay: number;
  /** Weight of the distillation term from the original network; 0 = plain CE. */
  readonly distillWeight: number;
  readonly distillTemperature: number;
  /** Random crop + horizontal flip during fine-tuning. */
  readonly augment: boolean;
  /** Seeds data order and augmentation. */
  readonly seed: number;
  /** The network's input normalisation (as in training and in the boundary features). Default 'unit'. */
  readonly normalize?: Normalization;
  /** Train on these images of `trainSet` only (default: all). */
  readonly trainIndices?: ArrayLike<number>;
  /** Evaluate on these images of `testSet` only (default: all). */
  readonly testIndices?: ArrayLike<number>;
  /** Default 256. */
  readonly evalBatchSize?: number;
  /** Whole epochs after which the test set is evaluated as well (e.g. [1] for "after a short fine-tune"). */
  readonly evaluateAfterEpochs?: readonly number[];
  /** Skip evaluating the original (e.g. a benchmark that already has it). Default false. */
  readonly skipOriginal?: boolean;
  readonly log?: (message: string) => void;
}

export interface FineTuneResult {
  /** The unpruned network on the test set (absent with `skipOriginal`). */
  readonly original?: EvaluationResult;
  readonly beforeFineTune: EvaluationResult;
  readonly afterFineTune: EvaluationResult;
  /** Test metrics after each requested whole epoch (`evaluateAfterEpochs`) that was reached. */
  readonly checkpoints: readonly { readonly epoch: number; readonly result: EvaluationResult }[];
  /** Epochs actually trained (steps / steps per epoch). */
  readonly epochs: number;
  readonly steps: number;
  readonly seconds: number;
  /** Process CPU seconds of the training alone (not the evaluations): load-independent, for equal-compute budgets. */
  readonly cpuSeconds: number;
}

/** Crop padding for a square-ish image: 2-4 pixels for 28-32 px inputs (torchvision habits), at most 4. */
function defaultAugment(images: Pick<ImageDataset, 'height' | 'width'>): AugmentOptions {
  return { cropPadding: Math.max(1, Math.min(4, Math.floor(Math.min(images.height, images.width) / 8))), flip: true };
}

/** Training data: an in-memory set, or an ImageSource read as needed (a sharded set is streamed). */
export type FinalizeData = ImageDataset | ImageSource;

function isImageDataset(data: FinalizeData): data is ImageDataset {
  return (data as ImageDataset).images instanceof Uint8Array;
}

/** The batches of one training epoch of `data`, created only as they are pulled. */
function trainingBatches(data: FinalizeData, options: BatchOptions): Iterable<TensorBatch> | AsyncIterable<TensorBatch> {
  return isImageDataset(data) ? tensorBatches(data, options) : sourceTensorBatches(data, options);
}

/** The first `count` batches of a stream; the next batch is not pulled (its tensors would leak). */
async function* firstBatches(batches: Iterable<TensorBatch> | AsyncIterable<TensorBatch>, count: number): AsyncGenerator<TensorBatch> {
  const iterator: Iterator<TensorBatch> | AsyncIterator<TensorBatch> =
    Symbol.asyncIterator in batches ? batches[Symbol.asyncIterator]() : (batches as Iterable<TensorBatch>)[Symbol.iterator]();
  try {
    for (let produced = 0; produced < count; produced++) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

/**
 * Fine-tunes `pruned` in place on `trainSet` and evaluates it on `testSet` before and after (and
 * the original, for reference). Fractional epochs are supported: `round(epochs * stepsPerEpoch)`
 * optimiser steps in total, the cosine schedule spanning exactly those steps, the last epoch cut
 * short; so 0.25 epochs is a quarter of the work of one, with the same schedule shape.
 * Either set may be an ImageSource: a sharded set (ImageNet) is then streamed, never held whole.
 */
export async function fineTuneAndEvaluate(
  pruned: tf.LayersModel,
  original: tf.LayersModel,
  trainSet: FinalizeData,
  testSet: FinalizeData,
  settings: FineTuneSettings,
): Promise<FineTuneResult> {
  const log = settings.log ?? (() => undefined);
  const normalize = settings.normalize ?? 'unit';
  const evalOptions = { batchSize: settings.evalBatchSize ?? 256, normalize, indices: settings.testIndices };
  if (!Number.isFinite(settings.epochs) || settings.epochs < 0) throw new FinalizeError(`fine-tune: epochs must be a finite number >= 0, got ${settings.epochs}`);
  const trainCount = settings.trainIndices?.length ?? trainSet.count;
  const stepsPerEpoch = batchCount(trainCount, settings.batchSize, true);
  const totalSteps = settings.epochs > 0 && stepsPerEpoch > 0 ? Math.max(1, Math.round(settings.epochs * stepsPerEpoch)) : 0;
  const augment = settings.augment ? defaultAugment(trainSet) : false;
  const trainOptions = (epoch: number, startStep: number): BatchOptions => ({
    batchSize: settings.batchSize,
    seed: settings.seed,
    epoch,
    shuffle: true,
    augment,
    normalize,
    dropLast: true,
    indices: settings.trainIndices,
    startBatch: startStep,
  });
  // A streamed training set starts its first epoch now: its fresh buffers (shuffle buffer, shards
  // in flight) are faulted in on the helper thread and its shuffle buffer fills while the
  // evaluations below run, so the first timed steps pay for neither (an in-memory set has paid
  // its reads already). The cost: during the evaluations both streams hold their buffers. A
  // failure of the early start surfaces in the epoch itself.
  let firstEpoch: EarlyBatches<TensorBatch> | undefined;
  if (totalSteps > 0 && !isImageDataset(trainSet)) {
    void prepareSourceBatches(trainSet, trainOptions(0, 0)).catch(() => undefined);
    firstEpoch = startEarly(sourceTensorBatches(trainSet, trainOptions(0, 0)));
  }
  let originalResult: EvaluationResult | undefined;
  let beforeFineTune: EvaluationResult;
  try {
    originalResult = settings.skipOriginal ? undefined : await evaluateSource(original, testSet, evalOptions);
    beforeFineTune = await evaluateSource(pruned, testSet, evalOptions);
  } catch (error) {
    await firstEpoch?.close();
    throw error;
  }
  log(
    `fine-tune: ${pruned.name} before: test top-1 ${(beforeFineTune.top1 * 100).toFixed(2)}% loss ${beforeFineTune.loss.toFixed(4)}` +
      (originalResult ? ` (original ${(originalResult.top1 * 100).toFixed(2)}%)` : ''),
  );
  if (totalSteps === 0) {
    if (settings.epochs > 0) log(`fine-tune: skipped, no full batch of ${settings.batchSize} in ${trainCount} training images`);
    return {
      ...(originalResult ? { original: originalResult } : {}),
      beforeFineTune,
      afterFineTune: beforeFineTune,
      checkpoints: [],
      epochs: 0,
      steps: 0,
      seconds: 0,
      cpuSeconds: 0,
    };
  }
  const wholeEpochs = Math.ceil(totalSteps / stepsPerEpoch);
  let firstEpochTaken = false;
  const data: EpochBatches = {
    stepsPerEpoch,
    batches(epoch: number, startStep: number): AsyncIterable<TensorBatch> {
      const limit = Math.min(stepsPerEpoch, totalSteps - epoch * stepsPerEpoch);
      const early = epoch === 0 && startStep === 0 && !firstEpochTaken ? firstEpoch : undefined;
      if (early) firstEpochTaken = true;
      return firstBatches(early ? early.take() : trainingBatches(trainSet, trainOptions(epoch, startStep)), limit - startStep);
    },
  };
  const wanted = new Set(settings.evaluateAfterEpochs ?? []);
  const checkpoints: { epoch: number; result: EvaluationResult }[] = [];
  let evaluationCpu = 0;
  const cpuStarted = process.cpuUsage();
  let result: Awaited<ReturnType<typeof fit>>;
  try {
    result = await fit(pruned, data, {
      epochs: wholeEpochs,
      batchSize: settings.batchSize,
      optimizer: { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: settings.weightDecay },
      schedule: cosineLr({ lr: settings.learningRate, totalSteps }),
      seed: settings.seed,
      ...(settings.distillWeight > 0
        ? { distillFrom: { teacher: original, weight: settings.distillWeight, temperature: settings.distillTemperature } }
        : {}),
      onEpoch: async (info) => {
        // Only whole epochs count: a cut-short last epoch is not "after epoch n".
        if (wanted.has(info.epoch + 1) && info.steps === stepsPerEpoch) {
          const evaluationStarted = process.cpuUsage();
          checkpoints.push({ epoch: info.epoch + 1, result: await evaluateSource(pruned, testSet, evalOptions) });
          evaluationCpu += cpuSecondsSince(evaluationStarted);
        }
      },
      log,
    });
  } finally {
    // Ends the early-started epoch if fit failed before taking it.
    await firstEpoch?.close();
  }
  const cpuSeconds = cpuSecondsSince(cpuStarted) - evaluationCpu;
  const afterFineTune = await evaluateSource(pruned, testSet, evalOptions);
  log(
    `fine-tune: ${pruned.name} after ${totalSteps} steps (${(totalSteps / stepsPerEpoch).toFixed(2)} epochs, ${result.seconds.toFixed(1)} s): ` +
      `test top-1 ${(afterFineTune.top1 * 100).toFixed(2)}% loss ${afterFineTune.loss.toFixed(4)}`,
  );
  return {
    ...(originalResult ? { original: originalResult } : {}),
    beforeFineTune,
    afterFineTune,
    checkpoints,
    epochs: totalSteps / stepsPerEpoch,
    steps: totalSteps,
    seconds: result.seconds,
    cpuSeconds,
  };
}

/** User + system CPU seconds of this process since `start` (a process.cpuUsage() reading). */
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** The fine-tune settings of a run spec (`spec.finalize`, `spec.search.seed`). */
export function fineTuneSettingsFromSpec(spec: RunSpec, normalize: Normalization = 'unit'): FineTuneSettings {
  const f = spec.finalize;
  return {
    epochs: f.epochs,
    batchSize: f.batchSize,
    learningRate: f.learningRate,
    weightDecay: f.weightDecay,
    distillWeight: f.distillWeight,
    distillTemperature: f.distillTemperature,
    augment: f.augment,
    seed: spec.search.seed,
    normalize,
  };
}

/**
 * The recovery settings the search scored its candidates with (see RECOVERY SETTINGS): the
 * search task's own mapping, so a verified candidate is rebuilt exactly as it was scored.
 */
export function recoverySettingsFromSpec(spec: RunSpec): CandidateSettings {
  return candidateSettingsFromSpec(spec);
}

// ---------------------------------------------------------------------------------------------
// metrics.json

export { finalizeMetricsSchema, verifiedSchemeSchema, type FinalizeMetrics, type VerifiedScheme } from '../schema/metrics.ts';

// ---------------------------------------------------------------------------------------------
// The step

export interface FinalizeInput {
  readonly store: ObjectStore;
  readonly runId: string;
  /** The target's name (its plan is `merge/plans/<target>.json`). */
  readonly target: string;
  readonly spec: RunSpec;
  /** The original (unpruned, trained) network; never modified. */
  readonly model: tf.LayersModel;
  /** The manifest's division of `model`. */
  readonly division: Division;
  /** Channel analysis of `model` (with the division's pruneResidual). */
  readonly analysis: ChannelAnalysis;
  /** The training split (fine-tune; `spec.dataset.fineTuneLimit` caps it), in memory or read as needed. */
  readonly trainSet: FinalizeData;
  /** The test split (final metrics; `spec.dataset.testLimit` caps it), in memory or read as needed. */
  readonly testSet: FinalizeData;
  readonly log?: StepLog;
  /** Cached boundary features per sub-network id; default: loaded from the store. */
  readonly features?: ReadonlyMap<string, BoundaryFeatures>;
  /** Recovery settings per sub-network; default `recoverySettingsFromSpec(spec)` for all. */
  readonly candidateSettings?: (subnet: SubnetworkSpec) => CandidateSettings;
  /** createdAt of metrics.json (tests). Default: now. */
  readonly now?: Date;
}

export interface FinalizeResult {
  readonly target: string;
  readonly metricsKey: string;
  readonly modelKey: string;
  /** 'existing': an earlier attempt had finished; nothing was recomputed or written. */
  readonly outcome: 'created' | 'existing';
  readonly metrics: FinalizeMetrics;
}

async function readExistingMetrics(store: ObjectStore, key: string): Promise<FinalizeMetrics | undefined> {
  try {
    return parseWith(finalizeMetricsSchema, await getJson(store, key), `${key} (in ${store.location})`);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

async function readPlan(store: ObjectStore, runId: string, target: string): Promise<Plan> {
  const key = runKeys(runId).merge.plan(target);
  let raw: unknown;
  try {
    raw = await getJson(store, key);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new FinalizeError(`target ${target} has no plan: ${key} does not exist in ${store.location} (did Merge run?)`, { cause: error });
    }
    throw error;
  }
  const source = `${key} (in ${store.location})`;
  const plan = parseWith(planSchema, raw, source);
  if (plan.runId !== runId) throw new FinalizeError(`${source}: field runId is '${plan.runId}', expected '${runId}'`);
  if (plan.target.name !== target) throw new FinalizeError(`${source}: field target.name is '${plan.target.name}', expected '${target}'`);
  if (plan.error !== undefined) throw new FinalizeError(`${source}: the merge found no scheme for target ${target}: ${plan.error}`);
  return plan;
}

function isAllOnes(genome: Uint8Array): boolean {
  for (let i = 0; i < genome.length; i++) if (genome[i] !== 1) return false;
  return true;
}

/** One sub-network's recovery machinery, built only for sub-networks some scheme prunes. */
interface SubnetRecovery {
  readonly evaluator: CandidateEvaluator;
  readonly pieces: tf.LayersModel[];
}

interface DecodedPick {
  readonly subnet: SubnetworkSpec;
  readonly pointId: string;
  readonly genomeText: string;
  readonly genome: Uint8Array;
  readonly unpruned: boolean;
}

/**
 * Verifies the plan's schemes, fine-tunes the best, exports it and writes metrics.json (see the
 * module comment). Returns the metrics (an earlier attempt's, unchanged, when it had finished).
 */
export async function finalizeTarget(input: FinalizeInput): Promise<FinalizeResult> {
  const { store, runId, target, spec, model, division, analysis, trainSet, testSet } = input;
  const log: StepLog = input.log ?? (() => undefined);
  const started = performance.now();
  const keys = runKeys(runId).target(target);
  const existing = await readExistingMetrics(store, keys.metrics);
  if (existing) {
    log('metrics already written by an earlier attempt; nothing to do', { key: keys.metrics });
    return { target, metricsKey: keys.metrics, modelKey: keys.modelPrefix, outcome: 'existing', metrics: existing };
  }
  if (analysis.graph.name !== model.name || division.model !== model.name) {
    throw new FinalizeError(`finalize ${target}: model '${model.name}', analysis of '${analysis.graph.name}', division of '${division.model}'`);
  }
  const plan = await readPlan(store, runId, target);
  const planSource = `${runKeys(runId).merge.plan(target)} (in ${store.location})`;
  const unpruned = countCost(analysis);
  if (Math.abs(plan.original.macs - unpruned.macs) > 0.5 || Math.abs(plan.original.params - unpruned.params) > 0.5) {
    // The plan was merged from fronts of another model (or another analysis of it).
    throw new FinalizeError(
      `${planSource}: field original is {macs: ${plan.original.macs}, params: ${plan.original.params}}, ` +
        `but model '${model.name}' has {macs: ${unpruned.macs}, params: ${unpruned.params}}`,
    );
  }

  // Decode every pick first: a bad genome fails before any training.
  const schemes = plan.schemes.map((scheme) => {
    const bySubnet = new Map(scheme.picks.map((p) => [p.subnet, p]));
    const picks: DecodedPick[] = division.subnetworks.map((subnet) => {
      const pick = bySubnet.get(subnet.id);
      if (!pick) throw new FinalizeError(`${planSource}: scheme ${scheme.rank} has no pick for sub-network ${subnet.id}`);
      let genome: Uint8Array;
      try {
        genome = decodeGenome(pick.genome, subnet.genomeLength);
      } catch (error) {
        throw new FinalizeError(`${planSource}: scheme ${scheme.rank}, sub-network ${subnet.id}, point '${pick.pointId}': ${(error as Error).message}`, {
          cause: error,
        });
      }
      return { subnet, pointId: pick.pointId, genomeText: pick.genome, genome, unpruned: isAllOnes(genome) };
    });
    if (bySubnet.size !== division.subnetworks.length) {
      throw new FinalizeError(`${planSource}: scheme ${scheme.rank} picks from sub-networks [${[...bySubnet.keys()].join(', ')}], the division has ${division.subnetworks.length}`);
    }
    return { scheme, picks };
  });

  // Features: the recovery data of every pruned sub-network, and the search-val images (the
  // input X_0 of the first sub-network) on which assembled schemes are measured.
  const featuresOf = async (subnet: SubnetworkSpec): Promise<BoundaryFeatures> =>
    input.features?.get(subnet.id) ?? loadBoundaryFeatures(store, runId, subnet.id, { division });
  const first = division.subnetworks[0];
  const valFeatures = await featuresOf(first);
  const baseline = valFeatures.baseline;

  const settingsOf = input.candidateSettings ?? (() => recoverySettingsFromSpec(spec));
  const recoveries = new Map<string, SubnetRecovery>();
  const recovered = new Map<string, tf.LayersModel>();
  const recoveredOf = async (pick: DecodedPick): Promise<tf.LayersModel> => {
    const cacheKey = `${pick.subnet.id}:${pick.genomeText}`;
    const cached = recovered.get(cacheKey);
    if (cached) return cached;
    let recovery = recoveries.get(pick.subnet.id);
    if (!recovery) {
      const features = pick.subnet.id === first.id ? valFeatures : await featuresOf(pick.subnet);
      const originalSubnet = buildSubnetworkModel(model, division, pick.subnet.id);
      const last = pick.subnet.index === division.subnetworks.length;
      const tail = last ? null : buildTailModel(model, division, pick.subnet.id);
      const pieces = tail ? [originalSubnet, tail] : [originalSubnet];
      try {
        const subAnalysis = analyzeChannels(originalSubnet, { pruneResidual: division.pruneResidual });
        const evaluator = createCandidateEvaluator({
          originalSubnet,
          tail,
          features,
          analysis: subAnalysis,
          slots: genomeSlots(subAnalysis, pick.subnet.groupIds),
          settings: settingsOf(pick.subnet),
          baselineLoss: baseline.loss,
        });
        recovery = { evaluator, pieces };
      } catch (error) {
        for (const piece of pieces) piece.dispose();
        throw error;
      }
      recoveries.set(pick.subnet.id, recovery);
    }
    const recoveredModel = recovery.evaluator.recoverCandidate(pick.genome);
    recovered.set(cacheKey, recoveredModel);
    return recoveredModel;
  };

  const fullSlots = new Map(division.subnetworks.map((s) => [s.id, genomeSlots(analysis, s.groupIds)]));
  const masksOfScheme = (picks: readonly DecodedPick[]): Record<string, GroupMasks> => {
    const bySubnet: Record<string, GroupMasks> = {};
    for (const pick of picks) {
      if (pick.unpruned) continue;
      const view = masksFromGenome(fullSlots.get(pick.subnet.id)!, pick.genome);
      bySubnet[pick.subnet.id] = Object.fromEntries(Object.entries(view).map(([id, mask]) => [id, mask.slice()]));
    }
    return bySubnet;
  };

  // ---- verify ----
  const verified: VerifiedScheme[] = [];
  let best: { model: tf.LayersModel; index: number; masks: Record<string, Uint8Array> } | undefined;
  // Every scheme's joint recovery trains on the same batches: the original's logits once.
  const teacher = new TeacherLogits(model);
  try {
    try {
      for (const { scheme, picks } of schemes) {
        const masksBySubnet = masksOfScheme(picks);
        const weights: Record<string, tf.LayersModel> = {};
        for (const pick of picks) if (!pick.unpruned) weights[pick.subnet.id] = await recoveredOf(pick);
        const assembled = assemblePrunedModel(model, analysis, masksBySubnet, weights, { division });
        let keep = false;
        try {
          jointRecover(assembled, teacher, valFeatures, jointRecoverySettingsFromSpec(spec));
          const measured = evaluateOnFeatures(assembled, valFeatures, 'val', 'input', 256);
          const union = Object.assign({}, ...Object.values(masksBySubnet)) as Record<string, Uint8Array>;
          const cost = countCost(analysis, union);
          const entry: VerifiedScheme = {
            rank: scheme.rank,
            choice: Object.fromEntries(picks.map((p) => [p.subnet.id, p.pointId])),
            estimatedImpairment: scheme.estimatedImpairment,
            measuredImpairment: Number.isFinite(measured.loss) ? measured.loss - baseline.loss : Number.MAX_VALUE,
            accuracy: Number.isFinite(measured.accuracy) ? measured.accuracy : 0,
            loss: Number.isFinite(measured.loss) ? measured.loss : Number.MAX_VALUE,
            macs: cost.macs,
            params: cost.params,
          };
          if (Math.abs(cost.macs - scheme.macs) > 0.5 || Math.abs(cost.params - scheme.params) > 0.5) {
            // The plan's costs come from the fronts; a mismatch means a front of another scope or model.
            log('scheme cost differs from the plan', { rank: scheme.rank, planned: { macs: scheme.macs, params: scheme.params }, assembled: { macs: cost.macs, params: cost.params } });
          }
          verified.push(entry);
          log('scheme verified', { ...entry });
          if (best === undefined || entry.measuredImpairment < verified[best.index].measuredImpairment) {
            best?.model.dispose();
            best = { model: assembled, index: verified.length - 1, masks: union };
            keep = true;
          }
        } finally {
          if (!keep) assembled.dispose();
        }
      }
    } finally {
      for (const m of recovered.values()) m.dispose();
      for (const r of recoveries.values()) for (const piece of r.pieces) piece.dispose();
      teacher.dispose();
    }
    if (best === undefined) throw new FinalizeError(`${planSource}: no scheme to verify`);
    const chosen = verified[best.index];
    const chosenScheme: PlanScheme = schemes[best.index].scheme;
    log('scheme chosen', { rank: chosen.rank, measuredImpairment: chosen.measuredImpairment, estimatedImpairment: chosen.estimatedImpairment });

    // ---- fine-tune and evaluate ----
    const settings: FineTuneSettings = {
      ...fineTuneSettingsFromSpec(spec, valFeatures.normalize),
      ...(spec.dataset.fineTuneLimit !== undefined && spec.dataset.fineTuneLimit < trainSet.count
        ? { trainIndices: stratifiedSample(trainSet, { total: spec.dataset.fineTuneLimit, seed: spec.search.seed }) }
        : {}),
      ...(spec.dataset.testLimit !== undefined && spec.dataset.testLimit < testSet.count
        ? { testIndices: stratifiedSample(testSet, { total: spec.dataset.testLimit, seed: spec.search.seed }) }
        : {}),
      // "After a short fine-tune" (DESIGN §2 Baselines): one epoch, when the budget is longer.
      ...(spec.finalize.epochs > 1 ? { evaluateAfterEpochs: [1] } : {}),
      log: (message) => log(message),
    };
    const tuned = await fineTuneAndEvaluate(best.model, model, trainSet, testSet, settings);

    // ---- export, then the commit record ----
    carryOnnxOrigin(model, best.model);
    await saveModel(best.model, { store, prefix: keys.modelPrefix });
    const onnxModelKey = await writeOnnxExport(store, keys.onnxModel, spec, model, best.model);
    const summary = summarizePruned(analysis, best.masks);
    const planTarget: ManifestTarget = plan.target;
    const metrics: FinalizeMetrics = {
      version: MANIFEST_VERSION,
      runId,
      target,
      targetSpec: { name: planTarget.name, kind: planTarget.kind, value: planTarget.value },
      schemeRank: chosen.rank,
      scheme: { rank: chosen.rank, choice: chosen.choice, estimatedImpairment: chosenScheme.estimatedImpairment },
      verified,
      achieved: { macs: summary.macs, params: summary.params, flopsCut: summary.flopsCut, paramsCut: summary.paramsCut },
      original: summary.original,
      estimatedImpairment: chosen.estimatedImpairment,
      measuredImpairment: chosen.measuredImpairment,
      estimateError: chosen.measuredImpairment - chosen.estimatedImpairment,
      accuracy: {
        ...(tuned.original ? { original: tuned.original.top1 } : {}),
        beforeFineTune: tuned.beforeFineTune.top1,
        afterFineTune: tuned.afterFineTune.top1,
      },
      loss: {
        ...(tuned.original ? { original: tuned.original.loss } : {}),
        beforeFineTune: tuned.beforeFineTune.loss,
        afterFineTune: tuned.afterFineTune.loss,
      },
      searchVal: { baselineLoss: baseline.loss, baselineAccuracy: baseline.accuracy, loss: chosen.loss, accuracy: chosen.accuracy, count: baseline.count },
      testCount: tuned.afterFineTune.count,
      fineTuneEpochs: tuned.epochs,
      fineTuneSteps: tuned.steps,
      fineTuneSeconds: tuned.seconds,
      fineTuneCheckpoints: tuned.checkpoints.map((c) => ({ epoch: c.epoch, accuracy: c.result.top1, loss: c.result.loss })),
      seconds: (performance.now() - started) / 1000,
      ...(engineInfo()?.backend ? { backend: engineInfo()!.backend } : {}),
      modelKey: keys.modelPrefix,
      ...(onnxModelKey === undefined ? {} : { onnxModelKey }),
      layers: [...summary.layers],
      createdAt: (input.now ?? new Date()).toISOString(),
    };
    const checked = parseWith(finalizeMetricsSchema, JSON.parse(JSON.stringify(metrics)) as unknown, `metrics of target ${target}`);
    try {
      await putJson(store, keys.metrics, checked, { ifNoneMatch: true });
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      // Another attempt committed first: its result stands (create-only results, DESIGN §3).
      const other = await readExistingMetrics(store, keys.metrics);
      if (!other) throw error;
      log('metrics were written by a concurrent attempt; keeping them', { key: keys.metrics });
      return { target, metricsKey: keys.metrics, modelKey: keys.modelPrefix, outcome: 'existing', metrics: other };
    }
    log('target finalized', {
      key: keys.metrics,
      flopsCut: summary.flopsCut,
      measuredImpairment: chosen.measuredImpairment,
      accuracy: metrics.accuracy,
      seconds: metrics.seconds,
    });
    return { target, metricsKey: keys.metrics, modelKey: keys.modelPrefix, outcome: 'created', metrics: checked };
  } finally {
    best?.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// The whole step from the store (what the finalize worker runs)

export interface FinalizeStepOptions {
  readonly log?: StepLog;
  readonly now?: Date;
  /** Data sets to use instead of opening `spec.dataset.name` (tests, pre-loaded data). */
  readonly trainSet?: FinalizeData;
  readonly testSet?: FinalizeData;
  /** Local cache of data read from a remote store (default: shard-source.ts' default). */
  readonly dataCache?: ShardCache | false;
}

/**
 * Finalize one target of a run with nothing but the store: reads the manifest and the spec,
 * loads the model the spec names, opens both splits of its data set (in memory for the small
 * sets; shard sets, local or in the store, are read as needed: the worker's memory does not
 * grow with the data set), then `finalizeTarget`. A target whose metrics.json exists returns it
 * before anything is loaded (a cheap retry).
 */
export async function runFinalizeStep(store: ObjectStore, runId: string, target: string, options: FinalizeStepOptions = {}): Promise<FinalizeResult> {
  const log: StepLog = options.log ?? (() => undefined);
  const keys = runKeys(runId).target(target);
  const existing = await readExistingMetrics(store, keys.metrics);
  if (existing) {
    log('metrics already written by an earlier attempt; nothing to do', { key: keys.metrics });
    return { target, metricsKey: keys.metrics, modelKey: keys.modelPrefix, outcome: 'existing', metrics: existing };
  }
  const manifest = await readManifest(store, runId);
  const spec = await readRunSpec(store, manifest.specKey);
  const { model } = await loadSpecModel(store, spec.model);
  try {
    if (model.name !== manifest.division.model) {
      throw new FinalizeError(`run ${runId}: the spec's model '${spec.model}' is '${model.name}', the manifest divided '${manifest.division.model}'`);
    }
    const analysis = analyzeChannels(model, { pruneResidual: manifest.division.pruneResidual });
    const dataLog = (message: string): void => log(message);
    const open = (split: 'train' | 'test'): Promise<ImageSource> =>
      openDatasetSource(spec.dataset.name, { split, store, log: dataLog, ...(options.dataCache !== undefined ? { cache: options.dataCache } : {}) });
    const trainSet = options.trainSet ?? (await open('train'));
    const testSet = options.testSet ?? (await open('test'));
    return await finalizeTarget({
      store,
      runId,
      target,
      spec,
      model,
      division: manifest.division,
      analysis,
      trainSet,
      testSet,
      log,
      ...(options.now ? { now: options.now } : {}),
    });
  } finally {
    model.dispose();
  }
}
