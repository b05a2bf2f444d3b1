/**
 * NSGA-II over bitset genomes, composed from small operators (pymoo's design): sampling,
 * binary tournament, group-wise crossover, bit-flip mutation, repair, rank-and-crowding
 * survival. The engine knows nothing about networks: a `Problem` evaluates batches of genomes
 * into objective vectors (all minimised) plus optional extra metrics.
 *
 * Guarantees the pruning pipeline builds on:
 * - no genome is evaluated twice (the archive is the fitness cache, keyed by the exact genome
 *   encoding), and offspring that repeat an archived genome are re-mutated (bounded) or dropped;
 * - every evaluated point stays in the archive; `front(archive)` is the search's output;
 * - after every generation `onGeneration` receives a JSON-serialisable `SearchState`, and a run
 *   resumed from it ends with exactly the state of an uninterrupted run with the same seed:
 *   every random draw comes from the one seeded RNG whose state is in the checkpoint, and
 *   everything else (ranks, crowding) is recomputed from stored objectives.
 */
import { z } from 'zod';
import { decodeGenome, encodeGenome, hashString, type Genome } from './genome.ts';
import { prepareGroups, type ChannelGroup, type PreparedGroup } from './groups.ts';
import { paretoFront } from './hypervolume.ts';
import { groupUniformCrossover } from './operators/crossover.ts';
import { bitFlipMutation } from './operators/mutation.ts';
import { repairGenome } from './operators/repair.ts';
import { sampleInitialPopulation } from './operators/sampling.ts';
import { rankAndCrowding, rankAndCrowdingSurvival } from './operators/survival.ts';
import { binaryTournament } from './operators/tournament.ts';
import { RNG_ALGORITHM, Rng, type RngState } from './rng.ts';

// ---------------------------------------------------------------------------------------------
// Problem and configuration

/** What the problem returns for one genome. */
export interface Evaluation {
  /** Objective values, all minimised, finite, `objectiveCount` of them. */
  readonly objectives: readonly number[];
  /** Extra finite metrics kept in the archive (e.g. params, accuracy); not used by the search. */
  readonly extras?: Readonly<Record<string, number>>;
}

export interface Problem {
  readonly genomeLength: number;
  /** Channel groups tiling [0, genomeLength) in order. */
  readonly groups: readonly ChannelGroup[];
  readonly objectiveCount: number;
  /**
   * Evaluates a batch of distinct, repaired, never-before-seen genomes; returns one evaluation
   * per genome, in order. The hot path: the engine batches a whole generation into one call.
   */
  evaluate(genomes: readonly Genome[]): Promise<readonly Evaluation[]>;
}

const configSchema = z.strictObject({
  seed: z.number().int().refine(Number.isSafeInteger, 'seed must be a safe integer'),
  populationSize: z.number().int().min(2),
  /** Generations after the initial population (generation 0). */
  generations: z.number().int().min(0),
  /** Stop before a generation once this many genomes have been evaluated; offspring are cut to fit. */
  maxEvaluations: z.number().int().min(1).optional(),
  /** Stop before a generation once this much (injected-clock) time has passed, summed over resumes. */
  timeBudgetMs: z.number().min(0).optional(),
  minKeep: z.number().min(0).max(1),
  roundTo: z.number().int().min(1),
  /** Per-bit flip probability; default 1 / genomeLength. */
  mutationRate: z.number().min(0).max(1).optional(),
  importanceBias: z.number().min(0).max(1).default(0),
  crossoverProbability: z.number().min(0).max(1).default(0.9),
  /** Re-mutations tried on an offspring that repeats an archived genome before it is dropped. */
  duplicateRetries: z.number().int().min(0).default(10),
  importanceNoise: z.number().min(0).default(0.1),
  ratioJitter: z.number().min(0).default(0.05),
});

export type Nsga2Config = z.input<typeof configSchema>;
export type ResolvedNsga2Config = z.output<typeof configSchema> & { mutationRate: number };

/** Fills defaults and validates; errors name the field. */
export function resolveConfig(config: Nsga2Config, genomeLength: number): ResolvedNsga2Config {
  const parsed = configSchema.safeParse(config);
  if (!parsed.success) throw new Error(`invalid NSGA-II config: ${z.prettifyError(parsed.error)}`);
  return { ...parsed.data, mutationRate: parsed.data.mutationRate ?? 1 / Math.max(1, genomeLength) };
}

/**
 * Hash of everything that determines the search trajectory: the resolved config except the
 * termination fields (generations, maxEvaluations, timeBudgetMs, so a run may be resumed with a
 * larger budget) and the problem's shape (genome length, objectives, groups, their importances
 * and keep rules). A checkpoint only resumes under the same hash.
 */
export function searchConfigHash(problem: Problem, config: Nsga2Config): string {
  const resolved = resolveConfig(config, problem.genomeLength);
  const { generations: _g, maxEvaluations: _m, timeBudgetMs: _t, ...trajectory } = resolved;
  const shape = {
    genomeLength: problem.genomeLength,
    objectiveCount: problem.objectiveCount,
    groups: problem.groups.map((g) => ({
      offset: g.offset,
      length: g.length,
      minKeep: g.minKeep ?? null,
      roundTo: g.roundTo ?? null,
      importance: hashString(JSON.stringify(Array.from(g.importance, (v) => Math.fround(v)))),
    })),
  };
  return hashString(JSON.stringify({ algorithm: 'nsga2/v1', trajectory: sortKeys(trajectory), shape }));
}

function sortKeys<T extends object>(value: T): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// ---------------------------------------------------------------------------------------------
// Archive, state, result

export interface ArchivePoint {
  /** `encodeGenome` text (base64 of the packed bits). */
  readonly genome: string;
  readonly objectives: readonly number[];
  readonly extras: Readonly<Record<string, number>>;
  /** Generation in which the point was evaluated (0 = initial population). */
  readonly generation: number;
}

export interface SearchCounters {
  /** Offspring re-mutated because they repeated an archived (or sibling) genome. */
  readonly duplicateRetries: number;
  /** Offspring dropped after `duplicateRetries` re-mutations still gave a duplicate. */
  readonly duplicatesDropped: number;
  /** Channels turned on by repair. */
  readonly repairedChannels: number;
}

/** The checkpoint: plain JSON data (no typed arrays, no Infinity/NaN, no -0). */
export interface SearchState {
  readonly format: 'emo-dir/nsga2-state';
  readonly version: 1;
  readonly configHash: string;
  /** Completed generations; 0 = the initial population has been evaluated. */
  readonly generation: number;
  /** Genomes evaluated so far (= archive length; the fitness cache never re-evaluates). */
  readonly evaluations: number;
  /** Injected-clock time spent, summed over all sessions of this search. */
  readonly elapsedMs: number;
  readonly rng: RngState;
  /** Archive indices of the current population, in survival order. */
  readonly population: readonly number[];
  readonly archive: readonly ArchivePoint[];
  readonly counters: SearchCounters;
}

export type StopReason = 'generations' | 'evaluations' | 'time';

export interface SearchResult {
  readonly state: SearchState;
  readonly stopReason: StopReason;
  /** `front(state.archive)`. */
  readonly front: ArchivePoint[];
}

const finite = z.number().refine(Number.isFinite, 'must be finite');
const searchStateSchema = z.strictObject({
  format: z.literal('emo-dir/nsga2-state'),
  version: z.literal(1),
  configHash: z.string(),
  generation: z.number().int().min(0),
  evaluations: z.number().int().min(0),
  elapsedMs: z.number().min(0),
  rng: z.strictObject({
    algorithm: z.literal(RNG_ALGORITHM),
    words: z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]),
  }),
  population: z.array(z.number().int().min(0)),
  archive: z.array(
    z.strictObject({
      genome: z.string(),
      objectives: z.array(finite),
      extras: z.record(z.string(), finite),
      generation: z.number().int().min(0),
    }),
  ),
  counters: z.strictObject({
    duplicateRetries: z.number().int().min(0),
    duplicatesDropped: z.number().int().min(0),
    repairedChannels: z.number().int().min(0),
  }),
});

/**
 * Validates an untrusted checkpoint (e.g. JSON.parse of a stored file) against the problem and
 * config it is to resume: schema, config hash, archive consistency. Errors say what is wrong.
 */
export function validateSearchState(value: unknown, problem: Problem, config: Nsga2Config): SearchState {
  const parsed = searchStateSchema.safeParse(value);
  if (!parsed.success) throw new Error(`invalid NSGA-II checkpoint: ${z.prettifyError(parsed.error)}`);
  const state = parsed.data as SearchState;
  const expected = searchConfigHash(problem, config);
  if (state.configHash !== expected) {
    throw new Error(
      `NSGA-II checkpoint was written for config hash ${state.configHash}, but this search has ${expected}: ` +
        'the seed, operator settings or the problem (genome length, groups, importances) changed; start a new search',
    );
  }
  Rng.fromState(state.rng); // range checks of the words
  if (state.evaluations !== state.archive.length) {
    throw new Error(`NSGA-II checkpoint: evaluations ${state.evaluations} != archive length ${state.archive.length}`);
  }
  if (state.population.length === 0) throw new Error('NSGA-II checkpoint: empty population');
  const seen = new Set<string>();
  state.archive.forEach((point, i) => {
    decodeGenome(point.genome, problem.genomeLength); // throws on a genome of another length
    if (seen.has(point.genome)) throw new Error(`NSGA-II checkpoint: archive entry ${i} repeats a genome`);
    seen.add(point.genome);
    if (point.objectives.length !== problem.objectiveCount) {
      throw new Error(`NSGA-II checkpoint: archive entry ${i} has ${point.objectives.length} objectives, expected ${problem.objectiveCount}`);
    }
  });
  for (const index of state.population) {
    if (index >= state.archive.length) throw new Error(`NSGA-II checkpoint: population index ${index} outside the archive`);
  }
  return state;
}

/**
 * The Pareto front of an archive: non-dominated points (one per distinct objective vector),
 * sorted by the first objective, then the next.
 */
export function front(archive: readonly ArchivePoint[]): ArchivePoint[] {
  return paretoFront(archive.map((p) => p.objectives)).map((i) => archive[i]);
}

// ---------------------------------------------------------------------------------------------
// Operators (composition)

/** The operators of one search. Defaults come from the config; tests or variants may swap any. */
export interface Nsga2Operators {
  sampling(rng: Rng, groups: readonly PreparedGroup[], genomeLength: number, size: number): Genome[];
  selection(rng: Rng, rank: ArrayLike<number>, crowding: ArrayLike<number>, count: number): number[];
  crossover(rng: Rng, a: Genome, b: Genome, groups: readonly PreparedGroup[]): [Genome, Genome];
  /** Mutates in place; returns the number of flipped bits. */
  mutation(rng: Rng, genome: Genome, groups: readonly PreparedGroup[]): number;
  /** Repairs in place; returns the number of channels turned on. */
  repair(genome: Genome, groups: readonly PreparedGroup[]): number;
  /** Indices of the survivors among `objectives`. */
  survival(objectives: readonly (readonly number[])[], size: number): number[];
}

export function defaultOperators(config: ResolvedNsga2Config): Nsga2Operators {
  return {
    sampling: (rng, groups, length, size) =>
      sampleInitialPopulation(rng, groups, length, size, { importanceNoise: config.importanceNoise, ratioJitter: config.ratioJitter }),
    selection: binaryTournament,
    crossover: (rng, a, b, groups) => groupUniformCrossover(rng, a, b, groups, { probability: config.crossoverProbability }),
    mutation: (rng, genome, groups) => bitFlipMutation(rng, genome, groups, { rate: config.mutationRate, importanceBias: config.importanceBias }),
    repair: repairGenome,
    survival: rankAndCrowdingSurvival,
  };
}

// ---------------------------------------------------------------------------------------------
// The run

export interface RunOptions {
  /** Milliseconds; injectable so time budgets are testable. Default `performance.now`. */
  readonly clock?: () => number;
  /** Called after every generation (0 included) with a snapshot; awaited, so it may persist it. */
  readonly onGeneration?: (state: SearchState) => void | Promise<void>;
  /** A checkpoint to continue (validated with `validateSearchState`). */
  readonly resumeFrom?: unknown;
  /**
   * Evaluations known from outside the checkpoint, keyed by `encodeGenome` text: e.g. the
   * evaluation log of an attempt that was killed mid-generation, so a restart does not pay for
   * that generation's evaluations again. A genome found here is archived without calling
   * `problem.evaluate` (it still counts as an evaluation, so the trajectory is unchanged).
   */
  readonly knownEvaluations?: ReadonlyMap<string, Evaluation>;
  /**
   * Replaces default operators. Custom operators are not part of the config hash: resuming with
   * different operators is the caller's responsibility.
   */
  readonly operators?: Partial<Nsga2Operators>;
}

/** Runs (or, with `resumeFrom`, continues) a search until a termination criterion holds. */
export async function runNsga2(problem: Problem, config: Nsga2Config, options: RunOptions = {}): Promise<SearchResult> {
  return new Nsga2Run(problem, config, options).run();
}

/** Continues a search from a checkpoint (any JSON value; validated). */
export async function resumeNsga2(problem: Problem, config: Nsga2Config, state: unknown, options: Omit<RunOptions, 'resumeFrom'> = {}): Promise<SearchResult> {
  return runNsga2(problem, config, { ...options, resumeFrom: state });
}

class Nsga2Run {
  private readonly config: ResolvedNsga2Config;
  private readonly groups: PreparedGroup[];
  private readonly operators: Nsga2Operators;
  private readonly clock: () => number;
  private readonly configHash: string;

  private rng!: Rng;
  private generation = 0;
  private elapsedBefore = 0;
  private sessionStart = 0;
  private archive: ArchivePoint[] = [];
  /** Decoded genomes, parallel to `archive`. */
  private genomes: Genome[] = [];
  /** The fitness cache / duplicate check: encoding -> archive index. */
  private index = new Map<string, number>();
  private population: number[] = [];
  private counters = { duplicateRetries: 0, duplicatesDropped: 0, repairedChannels: 0 };

  constructor(
    private readonly problem: Problem,
    rawConfig: Nsga2Config,
    private readonly options: RunOptions,
  ) {
    this.config = resolveConfig(rawConfig, problem.genomeLength);
    this.groups = prepareGroups(problem.groups, problem.genomeLength, this.config);
    this.operators = { ...defaultOperators(this.config), ...options.operators };
    this.clock = options.clock ?? (() => performance.now());
    this.configHash = searchConfigHash(problem, rawConfig);
  }

  async run(): Promise<SearchResult> {
    this.sessionStart = this.clock();
    if (this.options.resumeFrom !== undefined) {
      this.restore(validateSearchState(this.options.resumeFrom, this.problem, this.config));
    } else {
      this.rng = Rng.fromSeed(this.config.seed);
      await this.initialise();
      await this.checkpoint();
    }
    for (;;) {
      const stop = this.stopReason();
      if (stop) {
        const state = this.snapshot();
        return { state, stopReason: stop, front: front(state.archive) };
      }
      await this.step();
      await this.checkpoint();
    }
  }

  private stopReason(): StopReason | undefined {
    const { generations, maxEvaluations, timeBudgetMs } = this.config;
    if (this.generation >= generations) return 'generations';
    if (maxEvaluations !== undefined && this.archive.length >= maxEvaluations) return 'evaluations';
    if (timeBudgetMs !== undefined && this.elapsed() >= timeBudgetMs) return 'time';
    return undefined;
  }

  private elapsed(): number {
    return this.elapsedBefore + Math.max(0, this.clock() - this.sessionStart);
  }

  private remainingEvaluations(): number {
    return this.config.maxEvaluations === undefined ? Infinity : this.config.maxEvaluations - this.archive.length;
  }

  private async initialise(): Promise<void> {
    const size = this.config.populationSize;
    const candidates = this.operators.sampling(this.rng, this.groups, this.problem.genomeLength, size);
    const fresh: Genome[] = [];
    const batchKeys = new Set<string>();
    for (const genome of candidates) {
      if (fresh.length >= Math.min(size, this.remainingEvaluations())) break;
      this.counters.repairedChannels += this.operators.repair(genome, this.groups);
      const unique = this.makeUnique(genome, batchKeys);
      if (unique) fresh.push(unique);
    }
    this.population = await this.evaluate(fresh);
  }

  /** One generation: mating selection, variation, evaluation of new genomes, survival. */
  private async step(): Promise<void> {
    this.generation++;
    const size = this.config.populationSize;
    const objectives = this.population.map((i) => this.archive[i].objectives);
    const { rank, crowding } = rankAndCrowding(objectives);
    const wanted = Math.min(size, this.remainingEvaluations());
    const pairs = Math.ceil(size / 2);
    const parents = this.operators.selection(this.rng, rank, crowding, 2 * pairs);
    const offspring: Genome[] = [];
    const batchKeys = new Set<string>();
    for (let p = 0; p < pairs && offspring.length < wanted; p++) {
      const a = this.genomes[this.population[parents[2 * p]]];
      const b = this.genomes[this.population[parents[2 * p + 1]]];
      for (const child of this.operators.crossover(this.rng, a, b, this.groups)) {
        if (offspring.length >= wanted) break;
        this.operators.mutation(this.rng, child, this.groups);
        this.counters.repairedChannels += this.operators.repair(child, this.groups);
        const unique = this.makeUnique(child, batchKeys);
        if (unique) offspring.push(unique);
      }
    }
    const added = await this.evaluate(offspring);
    const candidates = [...this.population, ...added];
    const survivors = this.operators.survival(candidates.map((i) => this.archive[i].objectives), size);
    this.population = survivors.map((k) => candidates[k]);
  }

  /**
   * Returns `genome` if neither the archive nor this batch has it; otherwise re-mutates it (a
   * mutation that flips nothing is followed by one forced random flip, so every retry moves)
   * and repairs it, up to `duplicateRetries` times; then gives up (undefined).
   */
  private makeUnique(genome: Genome, batchKeys: Set<string>): Genome | undefined {
    let key = encodeGenome(genome);
    for (let attempt = 0; this.index.has(key) || batchKeys.has(key); attempt++) {
      if (attempt >= this.config.duplicateRetries) {
        this.counters.duplicatesDropped++;
        return undefined;
      }
      this.counters.duplicateRetries++;
      if (this.operators.mutation(this.rng, genome, this.groups) === 0 && genome.length > 0) {
        genome[this.rng.int(genome.length)] ^= 1;
      }
      this.counters.repairedChannels += this.operators.repair(genome, this.groups);
      key = encodeGenome(genome);
    }
    batchKeys.add(key);
    return genome;
  }

  /** Evaluates new genomes in one batch, archives them, returns their archive indices. */
  private async evaluate(genomes: Genome[]): Promise<number[]> {
    if (genomes.length === 0) return [];
    const known = this.options.knownEvaluations;
    const keys = genomes.map(encodeGenome);
    const unknown = genomes.filter((_, k) => !known?.has(keys[k]));
    const computed = unknown.length > 0 ? await this.problem.evaluate(unknown) : [];
    if (computed.length !== unknown.length) {
      throw new Error(`problem.evaluate returned ${computed.length} evaluations for ${unknown.length} genomes`);
    }
    let next = 0;
    const evaluations = keys.map((key) => known?.get(key) ?? computed[next++]);
    return genomes.map((genome, k) => {
      const { objectives, extras = {} } = evaluations[k];
      if (objectives.length !== this.problem.objectiveCount || !objectives.every(Number.isFinite)) {
        throw new Error(
          `problem.evaluate: genome ${k} of generation ${this.generation} has objectives ${JSON.stringify(objectives)}, ` +
            `expected ${this.problem.objectiveCount} finite numbers`,
        );
      }
      for (const [name, value] of Object.entries(extras)) {
        if (!Number.isFinite(value)) throw new Error(`problem.evaluate: extra metric ${name} of genome ${k} is ${value}`);
      }
      const key = keys[k];
      const index = this.archive.length;
      // `+ 0` turns -0 into 0: JSON writes -0 as 0, and a resumed run must see identical numbers.
      this.archive.push({ genome: key, objectives: objectives.map((v) => v + 0), extras: { ...extras }, generation: this.generation });
      this.genomes.push(genome.slice());
      this.index.set(key, index);
      return index;
    });
  }

  private snapshot(): SearchState {
    return {
      format: 'emo-dir/nsga2-state',
      version: 1,
      configHash: this.configHash,
      generation: this.generation,
      evaluations: this.archive.length,
      elapsedMs: this.elapsed(),
      rng: this.rng.state(),
      population: this.population.slice(),
      archive: this.archive.slice(),
      counters: { ...this.counters },
    };
  }

  private async checkpoint(): Promise<void> {
    await this.options.onGeneration?.(this.snapshot());
  }

  private restore(state: SearchState): void {
    this.rng = Rng.fromState(state.rng);
    this.generation = state.generation;
    this.elapsedBefore = state.elapsedMs;
    this.archive = state.archive.map((p) => ({ ...p, objectives: p.objectives.map((v) => v + 0), extras: { ...p.extras } }));
    this.genomes = this.archive.map((p) => decodeGenome(p.genome, this.problem.genomeLength));
    this.index = new Map(this.archive.map((p, i) => [p.genome, i]));
    this.population = state.population.slice();
    this.counters = { ...state.counters };
  }
}
