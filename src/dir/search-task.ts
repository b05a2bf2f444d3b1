/**
 * The search task of one sub-network (DESIGN §2 "Search", §3 step 2 `Search`): what one Batch
 * job (or one local worker process) runs for S_k.
 *
 *   1. boundary features of S_k, cached through the store (computed once per run and sub-network);
 *   2. the pruning problem: genome = the channels of S_k's searched groups, importance = L1 per
 *      channel, objectives [flops or params ratio (spec.search.objective), impairment];
 *   3. NSGA-II, with a checkpoint after every generation and a progress line per generation;
 *   4. front.json: the Pareto front of the archive.
 *
 * CHECKPOINTS (`scratch/<run>/subnets/<k>/checkpoints/gen-<g>.json`). One JSON line:
 *   {"format":"emo-dir/subnet-checkpoint","version":1,"runId":..,"subnet":..,"generation":g,
 *    "bytes":N,"sha256":"..","state":<SearchState>}
 * where bytes/sha256 are of the compact JSON text of `state`. A checkpoint that does not parse,
 * whose state does not hash to its digest (truncated, bit rot) or that the engine rejects is
 * skipped with a warning naming its key, and the next older one is tried: a job killed while a
 * store without atomic writes was writing, or a damaged object, costs one generation, not the
 * search. A checkpoint written under another search configuration (seed, operators, sub-network
 * layout) is an error, not skipped: resuming it or silently starting over would both mix two
 * different searches under one run id.
 *
 * REPRODUCIBILITY. front.json of a search killed at any point and restarted is byte-identical to
 * the one of an uninterrupted search with the same seed (test/dir/search-task.test.ts kills a
 * child process to check it). That needs: the engine's guarantee (all randomness from the
 * checkpointed RNG), a deterministic evaluation that does not depend on what was evaluated
 * before in the process (candidate.ts), and no wall-clock value in front.json. Times go to
 * log.jsonl and search-stats.json instead. A `timeBudgetSeconds` stop is by nature not
 * reproducible (where it stops depends on the machine's speed).
 *
 * PROGRESS. After each generation's checkpoint is stored, one JSON line
 *   {"event":"generation","subnet","generation","generations","evaluations","hypervolume","elapsedMs"}
 * is appended to `runs/<run>/subnets/<k>/log.jsonl` and printed to stdout (the local runner
 * renders it; nothing else is printed to stdout, human-readable logs go to stderr). The
 * checkpoint is written first, so a progress line always names a generation a restart resumes
 * from. The hypervolume is of the archive's front against the reference point
 * (1.1, ln(classes)): 1.1 so the unpruned point (cost 1) counts, ln(classes) being the CE of
 * uniform guessing, beyond which a candidate is useless.
 */
import { createHash } from 'node:crypto';
import type { tf } from '../engine/backend.ts';
import type { ImageDataset } from '../data/dataset.ts';
import type { ImageSource } from '../data/image-source.ts';
import type { Normalization } from '../data/batches.ts';
import { mixSeed } from '../data/prng.ts';
import {
  decodeGenome,
  front as paretoFrontOf,
  hashGenome,
  hypervolume2d,
  runNsga2,
  searchConfigHash,
  validateSearchState,
} from '../emo/index.ts';
import type { ArchivePoint, Nsga2Config, Problem, SearchState, StopReason } from '../emo/index.ts';
import { analyzeChannels, genomeSlots } from '../model/groups.ts';
import type { ChannelAnalysis, GenomeSlot } from '../model/groups.ts';
import { FRONT_FORMAT, frontFileSchema } from '../schema/front.ts';
import { searchLogEntrySchema } from '../schema/progress.ts';
import { parseWith, serializeWith } from '../schema/validate.ts';
import type { RunSpec } from '../schema/spec.ts';
import { parseCheckpointGeneration, runKeys } from '../store/keys.ts';
import type { SubnetKeys } from '../store/keys.ts';
import { NotFoundError } from '../store/object-store.ts';
import { writeOnce } from '../store/write-once.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { createCandidateEvaluator } from './candidate.ts';
import type { CandidateEvaluator, CandidateResult, CandidateSettings } from './candidate.ts';
import { findSubnetwork } from './divide.ts';
import type { Division, SubnetworkSpec } from './divide.ts';
import { computeBoundaryFeatures, drawSearchSubsets, ensureBoundaryFeatures } from './features.ts';
import type { BoundaryFeatures, FeatureStorage } from './features.ts';
import { subnetworkImportance } from './search-importance.ts';
import { createPruningProblem } from './search-problem.ts';
import type { CostObjective } from './search-problem.ts';
import { buildSubnetworkModel, buildTailModel, checkSubnetworkGroups } from './subnetwork.ts';

export const CHECKPOINT_FORMAT = 'emo-dir/subnet-checkpoint';
export { FRONT_FORMAT };
/**
 * Importance bias of the mutation when `importanceBiasedMutation` is on: half-way, so
 * unimportant channels are dropped about 1.5x as often as average and important ones 0.5x,
 * while every channel can still flip (1 would freeze the most important channel's bit).
 */
export const IMPORTANCE_BIAS = 0.5;

export class SearchTaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SearchTaskError';
  }
}

/** A valid checkpoint of a different search configuration under the same run id and sub-network. */
export class CheckpointMismatchError extends SearchTaskError {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointMismatchError';
  }
}

// ---------------------------------------------------------------------------------------------
// Settings from the spec

/** Recovery settings of the spec (DESIGN §2 "Recovery"). */
export function candidateSettingsFromSpec(spec: RunSpec): CandidateSettings {
  const s = spec.search;
  return {
    recoverySteps: s.recoverySteps,
    batchSize: s.recoveryBatchSize,
    learningRate: s.recoveryLearningRate,
    alpha: s.alpha,
    beta: s.beta,
    bnRecalibrationBatches: s.bnRecalibrationBatches,
    seed: s.seed,
    evalBatchSize: s.evalBatchSize,
  };
}

/** The NSGA-II configuration of sub-network `subnetIndex` (its seed is mixed with the index). */
export function nsga2ConfigFromSpec(spec: RunSpec, subnetIndex: number): Nsga2Config {
  const s = spec.search;
  return {
    // Independent streams per sub-network: the same seed would start every search with the
    // same random draws, correlating their explorations for no reason.
    seed: mixSeed(s.seed, subnetIndex),
    populationSize: s.population,
    generations: s.generations,
    ...(s.maxEvaluations === undefined ? {} : { maxEvaluations: s.maxEvaluations }),
    ...(s.timeBudgetSeconds === undefined ? {} : { timeBudgetMs: s.timeBudgetSeconds * 1000 }),
    minKeep: spec.divide.minKeep,
    roundTo: spec.divide.roundTo,
    importanceBias: s.importanceBiasedMutation ? IMPORTANCE_BIAS : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Preparation (shared with verify/finalize, which re-create recovered candidates from front genomes)

export interface PrepareSearchOptions {
  readonly store: ObjectStore;
  readonly runId: string;
  readonly subnet: string | number;
  readonly spec: RunSpec;
  /** The original network (never modified). */
  readonly model: tf.LayersModel;
  readonly division: Division;
  /** The training set (read per batch); needed only when the features are not cached yet. */
  readonly dataset?: ImageSource | ImageDataset;
  /** Where the feature rows are kept while searching. Default: spool files in the OS temp directory. */
  readonly featureStorage?: FeatureStorage;
  /** Channel analysis of `model` (default: computed). */
  readonly analysis?: ChannelAnalysis;
  /** Input normalisation of the network (default 'unit'). */
  readonly normalize?: Normalization;
  /** Human-readable messages (default: stderr). */
  readonly log?: (message: string) => void;
}

export interface SubnetworkSearchContext {
  readonly subnet: SubnetworkSpec;
  readonly keys: SubnetKeys;
  readonly features: BoundaryFeatures;
  /** S_k (shares the original weights) and T_k (frozen; null for the last sub-network). */
  readonly subnetModel: tf.LayersModel;
  readonly tail: tf.LayersModel | null;
  /** Analysis of the standalone S_k. */
  readonly analysis: ChannelAnalysis;
  readonly slots: readonly GenomeSlot[];
  readonly importance: Readonly<Record<string, Float32Array>>;
  readonly evaluator: CandidateEvaluator;
  readonly objective: CostObjective;
  readonly config: Nsga2Config;
  /** Releases S_k, T_k (never the original weights) and the features' storage. */
  dispose(): void;
}

function defaultLog(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Loads or computes the features and builds S_k, T_k, the genome layout and the evaluator. */
export async function prepareSubnetworkSearch(options: PrepareSearchOptions): Promise<SubnetworkSearchContext> {
  const { store, runId, spec, model, division } = options;
  const log = options.log ?? defaultLog;
  const subnet = findSubnetwork(division, options.subnet);
  const keys = runKeys(runId).subnet(subnet.id);
  const dtype = spec.search.featureDtype;
  const features = await ensureBoundaryFeatures(
    store,
    runId,
    subnet.id,
    async () => {
      const dataset = options.dataset;
      if (!dataset) {
        throw new SearchTaskError(`sub-network ${subnet.id}: no cached boundary features under ${keys.features} (in ${store.location}) and no dataset to compute them`);
      }
      const subsets = drawSearchSubsets(dataset, { searchTrain: spec.dataset.searchTrain, searchVal: spec.dataset.searchVal, seed: spec.search.seed });
      const computed = await computeBoundaryFeatures(model, division, dataset, subsets, {
        subnets: [subnet.id],
        batchSize: spec.search.featureBatchSize,
        normalize: options.normalize,
        dtype,
        ...(options.featureStorage ? { storage: options.featureStorage } : {}),
        log,
      });
      return computed.get(subnet.id)!;
    },
    { division, dtype, ...(options.featureStorage ? { storage: options.featureStorage } : {}), log },
  );
  const fullAnalysis = options.analysis ?? analyzeChannels(model, { pruneResidual: division.pruneResidual });
  const isLast = subnet.index === division.subnetworks.length;
  let subnetModel: tf.LayersModel | undefined;
  let tail: tf.LayersModel | null = null;
  const release = (): void => {
    subnetModel?.dispose();
    tail?.dispose();
    features.release();
  };
  try {
    subnetModel = buildSubnetworkModel(model, division, subnet.id);
    // T_K would be the identity on the output: no model at all is cheaper and has no graph to walk.
    tail = isLast ? null : buildTailModel(model, division, subnet.id);
    const analysis = analyzeChannels(subnetModel, { pruneResidual: division.pruneResidual });
    checkSubnetworkGroups(fullAnalysis, division, subnet.id, analysis);
    const slots = genomeSlots(analysis, subnet.groupIds);
    const importance = subnetworkImportance({
      subnetModel,
      tail,
      analysis,
      groups: subnet.groupIds,
      features,
      criterion: spec.search.importance,
      batchSize: spec.search.recoveryBatchSize,
    });
    const evaluator = createCandidateEvaluator({
      originalSubnet: subnetModel,
      tail,
      features,
      analysis,
      slots,
      settings: candidateSettingsFromSpec(spec),
    });
    return {
      subnet,
      keys,
      features,
      subnetModel,
      tail,
      analysis,
      slots,
      importance,
      evaluator,
      objective: spec.search.objective,
      config: nsga2ConfigFromSpec(spec, subnet.index),
      dispose: release,
    };
  } catch (error) {
    release();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The stored form of a checkpoint (one line; see the module comment). */
export function encodeCheckpoint(state: SearchState, meta: { runId: string; subnet: string }): string {
  const stateText = JSON.stringify(state);
  const head = {
    format: CHECKPOINT_FORMAT,
    version: 1,
    runId: meta.runId,
    subnet: meta.subnet,
    generation: state.generation,
    bytes: Buffer.byteLength(stateText, 'utf8'),
    sha256: sha256(stateText),
  };
  // The state's text is spliced in as is, so its digest is of exactly what is stored.
  return `${JSON.stringify(head).slice(0, -1)},"state":${stateText}}\n`;
}

/**
 * The state of a stored checkpoint, after checking format, owner and digest. Throws a message
 * saying what is wrong (the caller adds the key).
 */
export function decodeCheckpoint(body: Uint8Array | string, expect: { runId: string; subnet: string; generation?: number }): unknown {
  const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new SearchTaskError(`not valid JSON (${text.length} bytes; truncated?): ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.format !== CHECKPOINT_FORMAT || parsed.version !== 1) {
    throw new SearchTaskError(`not an ${CHECKPOINT_FORMAT} v1 object`);
  }
  if (parsed.runId !== expect.runId || parsed.subnet !== expect.subnet) {
    throw new SearchTaskError(`checkpoint of run ${String(parsed.runId)} sub-network ${String(parsed.subnet)}, expected ${expect.runId} ${expect.subnet}`);
  }
  // JSON.stringify(JSON.parse(t)) === t for the compact text JSON.stringify wrote.
  const stateText = JSON.stringify(parsed.state);
  const bytes = stateText === undefined ? 0 : Buffer.byteLength(stateText, 'utf8');
  if (stateText === undefined || bytes !== parsed.bytes || sha256(stateText) !== parsed.sha256) {
    throw new SearchTaskError(`state does not match its digest (${bytes} bytes, recorded ${String(parsed.bytes)}): damaged`);
  }
  if (expect.generation !== undefined && parsed.generation !== expect.generation) {
    throw new SearchTaskError(`holds generation ${String(parsed.generation)}, its key says ${expect.generation}`);
  }
  return parsed.state;
}

export interface ResumePoint {
  readonly key: string;
  readonly state: SearchState;
  /** Newer checkpoints that were skipped, with the reason. */
  readonly skipped: readonly { key: string; reason: string }[];
}

/**
 * The newest valid checkpoint of the search, or undefined when there is none (then `skipped`
 * lists the invalid ones through `warn`). Throws when a checkpoint is valid but belongs to
 * another search configuration.
 */
export async function findResumePoint(
  store: ObjectStore,
  runId: string,
  keys: SubnetKeys,
  problem: Problem,
  config: Nsga2Config,
  warn: (key: string, reason: string) => void,
): Promise<ResumePoint | undefined> {
  const listed = (await store.list(keys.checkpoints))
    .map((key) => ({ key, generation: parseCheckpointGeneration(key) }))
    .filter((c): c is { key: string; generation: number } => c.generation !== undefined)
    .sort((a, b) => b.generation - a.generation);
  const expectedHash = searchConfigHash(problem, config);
  const skipped: { key: string; reason: string }[] = [];
  for (const { key, generation } of listed) {
    let state: SearchState;
    try {
      const raw = decodeCheckpoint(await store.get(key), { runId, subnet: keys.id, generation });
      const hash = (raw as { configHash?: unknown } | null)?.configHash;
      if (typeof hash === 'string' && hash !== expectedHash) {
        throw new CheckpointMismatchError(
          `checkpoint ${key} (in ${store.location}) was written by a search with config hash ${hash}, this one has ${expectedHash}: ` +
            'the seed, search settings, importances or the sub-network changed under the same run id; use a new run id or delete the run\'s checkpoints',
        );
      }
      state = validateSearchState(raw, problem, config);
    } catch (error) {
      if (error instanceof CheckpointMismatchError) throw error;
      if (error instanceof NotFoundError) continue; // deleted between list and get
      const reason = (error as Error).message;
      warn(key, reason);
      skipped.push({ key, reason });
      continue;
    }
    return { key, state, skipped };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Outputs

export interface FrontPointRecord {
  /** Stable id: hashGenome of the genome (14 hex digits). */
  readonly id: string;
  /** encodeGenome (base64 of the packed bits; decode with the sub-network's genome length). */
  readonly genome: string;
  /** Pruned S_k MACs / original S_k MACs. */
  readonly flops: number;
  /** Pruned S_k params / original S_k params. */
  readonly paramsRatio: number;
  /** Absolute MACs and params of the pruned S_k. */
  readonly macs: number;
  readonly params: number;
  readonly impairment: number;
  /** Search-val top-1 of the network with this S_k', and its CE. */
  readonly accuracy: number;
  readonly loss: number;
}

export interface SubnetFrontFile {
  readonly format: typeof FRONT_FORMAT;
  readonly version: 1;
  readonly runId: string;
  readonly subnet: string;
  readonly objective: CostObjective;
  readonly genomeLength: number;
  /** The unpruned S_k. */
  readonly original: { readonly macs: number; readonly params: number };
  /** The original network on search-val: impairment = loss - baseline.loss. */
  readonly baseline: { readonly loss: number; readonly accuracy: number };
  /** Id of the all-ones point when it is on the front (else a pruned point dominates it). */
  readonly unprunedId?: string;
  /** The Pareto front of the archive, by cost ratio ascending. */
  readonly points: readonly FrontPointRecord[];
  readonly evaluations: number;
  /** Completed generations (0 = the initial population only). */
  readonly generations: number;
  readonly stopReason: StopReason;
}

function extra(point: ArchivePoint, name: string): number {
  const value = point.extras[name];
  if (typeof value !== 'number') throw new SearchTaskError(`archive point ${point.genome}: extra metric '${name}' is missing`);
  return value;
}

/** front.json content from a final search state (deterministic: no times, archive data only). */
export function buildFrontFile(
  state: SearchState,
  stopReason: StopReason,
  meta: { runId: string; subnet: string; objective: CostObjective; genomeLength: number; original: { macs: number; params: number }; baseline: { loss: number; accuracy: number } },
): SubnetFrontFile {
  const points = paretoFrontOf(state.archive).map((point): FrontPointRecord => ({
    id: hashGenome(decodeGenome(point.genome, meta.genomeLength)),
    genome: point.genome,
    flops: extra(point, 'flops'),
    paramsRatio: extra(point, 'paramsRatio'),
    macs: extra(point, 'macs'),
    params: extra(point, 'params'),
    impairment: point.objectives[1],
    accuracy: extra(point, 'accuracy'),
    loss: extra(point, 'loss'),
  }));
  const unpruned = points.find((p) => decodeGenome(p.genome, meta.genomeLength).every((bit) => bit === 1));
  return {
    format: FRONT_FORMAT,
    version: 1,
    runId: meta.runId,
    subnet: meta.subnet,
    objective: meta.objective,
    genomeLength: meta.genomeLength,
    original: { macs: meta.original.macs, params: meta.original.params },
    baseline: { loss: meta.baseline.loss, accuracy: meta.baseline.accuracy },
    ...(unpruned ? { unprunedId: unpruned.id } : {}),
    points,
    evaluations: state.evaluations,
    generations: state.generation,
    stopReason,
  };
}

/**
 * Create-only write of a result; an existing object with the same bytes is success (a retried
 * job), one with other bytes an error naming the key.
 */
export async function putResultCreateOnly(store: ObjectStore, key: string, text: string): Promise<'created' | 'existing'> {
  return writeOnce(store, key, text, {
    contentType: 'application/json',
    conflict: (existing, fresh) =>
      new SearchTaskError(
        `${key} (in ${store.location}) already exists with different content (${existing.byteLength} bytes vs ${fresh.byteLength}): ` +
          'an earlier search of this run id ended with another front; results are never overwritten',
      ),
  });
}

/** Appends one line to a JSON-lines object (read-modify-write: the store has no append). */
async function appendLine(store: ObjectStore, key: string, value: unknown): Promise<void> {
  parseWith(searchLogEntrySchema, value, key);
  let before = '';
  try {
    before = new TextDecoder().decode(await store.get(key));
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  // A line cut by a crash mid-write (stores without atomic puts) is closed, not glued to the next.
  const separator = before.length > 0 && !before.endsWith('\n') ? '\n' : '';
  await store.put(key, `${before}${separator}${JSON.stringify(value)}\n`, { contentType: 'application/x-ndjson' });
}

// ---------------------------------------------------------------------------------------------
// The task

export interface GenerationEvent {
  readonly event: 'generation';
  readonly subnet: string;
  readonly generation: number;
  readonly generations: number;
  readonly evaluations: number;
  readonly hypervolume: number;
  readonly elapsedMs: number;
}

export interface SearchSubnetworkOptions extends PrepareSearchOptions {
  /** Milliseconds, for the engine's time budget and the stats. Default performance.now. */
  readonly clock?: () => number;
  /** Called with every generation's progress event (after it was stored). */
  readonly onProgress?: (event: GenerationEvent) => void;
  /** Called with every candidate evaluation of this session (wall time, recovery report, cost). */
  readonly onEvaluation?: (result: CandidateResult) => void;
  /** Where progress lines go; false: nowhere. Default: process.stdout. */
  readonly stdout?: ((line: string) => void) | false;
}

export interface SearchSubnetworkResult {
  readonly frontKey: string;
  readonly front: SubnetFrontFile;
  /** Whether front.json was written now or already existed with the same bytes. */
  readonly frontWrite: 'created' | 'existing';
  readonly stopReason: StopReason;
  /** The checkpoint the search resumed from, if any. */
  readonly resumedFrom?: { readonly key: string; readonly generation: number };
  readonly skippedCheckpoints: readonly { key: string; reason: string }[];
  /** This session only (wall clock). */
  readonly sessionSeconds: number;
  readonly sessionEvaluations: number;
  /** Evaluations per minute of this session's evaluation time (NaN when none). */
  readonly evaluationsPerMinute: number;
}

/** Runs (or resumes) the search of one sub-network and writes its front. */
export async function searchSubnetwork(options: SearchSubnetworkOptions): Promise<SearchSubnetworkResult> {
  const { store, runId } = options;
  const log = options.log ?? defaultLog;
  const clock = options.clock ?? (() => performance.now());
  const stdout = options.stdout === undefined ? (line: string) => void process.stdout.write(line) : options.stdout;
  const sessionStart = clock();
  const context = await prepareSubnetworkSearch({ ...options, log });
  try {
    const { subnet, keys, features, evaluator } = context;
    let sessionEvaluations = 0;
    let evaluationSeconds = 0;
    const problem = createPruningProblem({
      evaluator,
      slots: context.slots,
      importance: context.importance,
      objective: context.objective,
      onEvaluation: (_genome, result) => {
        sessionEvaluations++;
        evaluationSeconds += result.seconds;
        if (result.diverged) log(`warning: sub-network ${subnet.id}: a candidate's recovery diverged; scored as impairment ${result.impairment}`);
        options.onEvaluation?.(result);
      },
    });
    const resume = await findResumePoint(store, runId, keys, problem, context.config, (key, reason) => {
      log(`warning: sub-network ${subnet.id}: skipping checkpoint ${key} (in ${store.location}): ${reason}`);
    });
    const skipped = resume?.skipped ?? [];
    for (const s of skipped) await appendLine(store, keys.log, { event: 'checkpoint-skipped', subnet: subnet.id, key: s.key, reason: s.reason });
    if (resume) {
      log(`sub-network ${subnet.id}: resuming from ${resume.key} (generation ${resume.state.generation}, ${resume.state.evaluations} evaluations)`);
      await appendLine(store, keys.log, { event: 'resumed', subnet: subnet.id, key: resume.key, generation: resume.state.generation, evaluations: resume.state.evaluations });
    } else {
      log(
        `sub-network ${subnet.id}: searching ${evaluator.genomeLength} channels in ${context.slots.length} groups, ` +
          `population ${options.spec.search.population}, ${options.spec.search.generations} generations`,
      );
    }
    const reference: [number, number] = [1.1, Math.log(Math.max(2, features.classes))];
    const generations = options.spec.search.generations;
    const result = await runNsga2(problem, context.config, {
      clock,
      ...(resume ? { resumeFrom: resume.state } : {}),
      onGeneration: async (state) => {
        await store.put(keys.checkpoint(state.generation), encodeCheckpoint(state, { runId, subnet: subnet.id }), { contentType: 'application/json' });
        const event: GenerationEvent = {
          event: 'generation',
          subnet: subnet.id,
          generation: state.generation,
          generations,
          evaluations: state.evaluations,
          hypervolume: hypervolume2d(
            state.archive.map((p) => p.objectives),
            reference,
          ),
          elapsedMs: Math.round(state.elapsedMs),
        };
        await appendLine(store, keys.log, event);
        if (stdout) stdout(`${JSON.stringify(event)}\n`);
        options.onProgress?.(event);
      },
    });
    const frontFile = buildFrontFile(result.state, result.stopReason, {
      runId,
      subnet: subnet.id,
      objective: context.objective,
      genomeLength: evaluator.genomeLength,
      original: evaluator.original,
      baseline: features.baseline,
    });
    const frontWrite = await putResultCreateOnly(store, keys.front, serializeWith(frontFileSchema, frontFile, keys.front));
    const sessionSeconds = (clock() - sessionStart) / 1000;
    const evaluationsPerMinute = sessionEvaluations > 0 ? (sessionEvaluations / evaluationSeconds) * 60 : Number.NaN;
    const stats = {
      runId,
      subnet: subnet.id,
      stopReason: result.stopReason,
      evaluations: result.state.evaluations,
      generations: result.state.generation,
      searchElapsedMs: Math.round(result.state.elapsedMs),
      sessionSeconds,
      sessionEvaluations,
      evaluationSeconds,
      evaluationsPerMinute: Number.isFinite(evaluationsPerMinute) ? evaluationsPerMinute : null,
      resumedFrom: resume ? { key: resume.key, generation: resume.state.generation } : null,
      frontPoints: frontFile.points.length,
    };
    // Overwritten by every session: it describes the last one (the front itself is create-only).
    await store.put(keys.stats, `${JSON.stringify(stats, null, 2)}\n`, { contentType: 'application/json' });
    await appendLine(store, keys.log, { event: 'done', ...stats });
    log(
      `sub-network ${subnet.id}: ${result.stopReason} after generation ${result.state.generation}, ${result.state.evaluations} evaluations ` +
        `(${sessionEvaluations} this session, ${stats.evaluationsPerMinute?.toFixed(1) ?? '-'} /min); ` +
        `front of ${frontFile.points.length} points -> ${keys.front} (${frontWrite})`,
    );
    return {
      frontKey: keys.front,
      front: frontFile,
      frontWrite,
      stopReason: result.stopReason,
      ...(resume ? { resumedFrom: { key: resume.key, generation: resume.state.generation } } : {}),
      skippedCheckpoints: skipped,
      sessionSeconds,
      sessionEvaluations,
      evaluationsPerMinute,
    };
  } finally {
    context.dispose();
  }
}
