import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countKept, decodeGenome, encodeGenome, type Genome } from '../../src/emo/genome.ts';
import { prepareGroups } from '../../src/emo/groups.ts';
import { hypervolume2d } from '../../src/emo/hypervolume.ts';
import { isRepaired } from '../../src/emo/operators/repair.ts';
import { front, resumeNsga2, runNsga2, validateSearchState, type Nsga2Config, type Problem, type SearchState } from '../../src/emo/nsga2.ts';
import { dominates } from '../../src/emo/sort.ts';
import { Rng } from '../../src/emo/rng.ts';

/**
 * A known bi-objective bit problem: objective 1 = fraction of channels kept, objective 2 =
 * weighted loss = share of the total channel weight that was dropped. Importance is a noisy
 * copy of the weight, as L1 norms are of true saliency. The true front drops channels in
 * ascending weight order. `clock` advances 5 ms per evaluated genome, so time is deterministic.
 */
function bitProblem(seed: number, groupLengths = [24, 16, 24]) {
  const rng = Rng.fromSeed(seed);
  let offset = 0;
  const weights: number[] = [];
  const groups = groupLengths.map((length) => {
    const w = Array.from({ length }, () => rng.next() ** 2);
    weights.push(...w);
    const group = { offset, length, importance: Float32Array.from(w, (v) => v + 0.2 * rng.next()) };
    offset += length;
    return group;
  });
  const total = weights.reduce((a, b) => a + b, 0);
  const seen = new Set<string>();
  let now = 0;
  let calls = 0;
  const problem: Problem = {
    genomeLength: offset,
    groups,
    objectiveCount: 2,
    async evaluate(genomes: readonly Genome[]) {
      calls++;
      await Promise.resolve(); // really async, as a GPU evaluation is
      return genomes.map((genome) => {
        const key = encodeGenome(genome);
        assert.ok(!seen.has(key), 'a genome was evaluated twice');
        seen.add(key);
        now += 5;
        let dropped = 0;
        for (let i = 0; i < genome.length; i++) if (!genome[i]) dropped += weights[i];
        const kept = countKept(genome);
        return { objectives: [kept / genome.length, dropped / total], extras: { kept } };
      });
    },
  };
  /** Exact front: for each kept count, drop the lightest channels each group may lose (greedy is optimal). */
  function trueFront(minKeep: number): number[][] {
    const droppable: number[] = [];
    for (const g of groups) {
      const keepAtLeast = Math.max(1, Math.ceil(minKeep * g.length - 1e-9));
      const order = Array.from({ length: g.length }, (_, c) => weights[g.offset + c]).sort((x, y) => x - y);
      droppable.push(...order.slice(0, g.length - keepAtLeast));
    }
    droppable.sort((x, y) => x - y);
    const points = [[1, 0]];
    let lost = 0;
    droppable.forEach((w, k) => {
      lost += w;
      points.push([(offset - k - 1) / offset, lost / total]);
    });
    return points;
  }
  return { problem, clock: () => now, calls: () => calls, seen, trueFront };
}

const baseConfig: Nsga2Config = { seed: 17, populationSize: 16, generations: 6, minKeep: 0.25, roundTo: 2 };

test('a resumed run ends with exactly the state and front of an uninterrupted run', async () => {
  const straight = bitProblem(1);
  const states: SearchState[] = [];
  const full = await runNsga2(straight.problem, baseConfig, { clock: straight.clock, onGeneration: (s) => void states.push(s) });
  assert.equal(full.stopReason, 'generations');
  assert.deepEqual(states.map((s) => s.generation), [0, 1, 2, 3, 4, 5, 6]);

  const first = bitProblem(1);
  let saved = '';
  const half = await runNsga2(first.problem, { ...baseConfig, generations: 3 }, { clock: first.clock, onGeneration: (s) => void (saved = JSON.stringify(s)) });
  assert.equal(half.state.generation, 3);
  // A fresh process: new problem instance (its own fake clock continues from the saved time).
  const second = bitProblem(1);
  const resumed = await resumeNsga2(second.problem, baseConfig, JSON.parse(saved), { clock: () => second.clock() });

  assert.deepEqual(resumed.front, full.front);
  assert.deepEqual(resumed.state.archive, full.state.archive);
  assert.deepEqual(resumed.state.population, full.state.population);
  assert.deepEqual(resumed.state.rng, full.state.rng);
  assert.deepEqual(resumed.state.counters, full.state.counters);
  assert.deepEqual(resumed.state, full.state);
  // Checkpoints written mid-run are the same too (the gen-3 checkpoint is what we resumed from).
  assert.deepEqual(JSON.parse(saved), JSON.parse(JSON.stringify(states[3])));
  // The resumed session did not re-evaluate anything from before the checkpoint.
  assert.equal(second.seen.size, full.state.evaluations - half.state.evaluations);
});

test('known evaluations (e.g. logged before a crash) are reused without changing the trajectory', async () => {
  const reference = bitProblem(6);
  const full = await runNsga2(reference.problem, baseConfig, { clock: reference.clock });
  // Pretend generations 0-3 were evaluated and logged by an attempt that died before writing
  // any checkpoint.
  const logged = new Map(
    full.state.archive
      .filter((p) => p.generation <= 3)
      .map((p) => [p.genome, { objectives: p.objectives, extras: p.extras }] as const),
  );
  const restarted = bitProblem(6);
  const again = await runNsga2(restarted.problem, baseConfig, { clock: reference.clock, knownEvaluations: logged });
  assert.deepEqual(again.state.archive, full.state.archive);
  assert.deepEqual(again.front, full.front);
  assert.equal(restarted.seen.size, full.state.evaluations - logged.size, 'only unlogged genomes were evaluated');
});

test('NSGA-II improves the hypervolume over generations and approaches the true front', async () => {
  const { problem, clock, trueFront } = bitProblem(2, [32, 32, 32]);
  const hv: number[] = [];
  const result = await runNsga2(problem, { seed: 3, populationSize: 24, generations: 30, minKeep: 0.1, roundTo: 1 }, {
    clock,
    onGeneration: (s) => void hv.push(hypervolume2d(front(s.archive).map((p) => p.objectives), [1.1, 1.1])),
  });
  for (let g = 1; g < hv.length; g++) assert.ok(hv[g] >= hv[g - 1] - 1e-12, 'archive hypervolume never shrinks');
  const best = hypervolume2d(trueFront(0.1), [1.1, 1.1]);
  const last = hv[hv.length - 1];
  // The initial population (importance-sorted) already starts close; the search must close at
  // least half of the remaining gap to the exact front.
  assert.ok(last - hv[0] > 0.5 * (best - hv[0]), `hypervolume ${hv[0]} -> ${last}, optimum ${best}`);
  assert.ok(last <= best + 1e-12);
  // Front: non-dominated, sorted by the first objective, includes the unpruned anchor.
  const points = result.front;
  for (let i = 0; i < points.length; i++) {
    for (let j = 0; j < points.length; j++) assert.ok(!dominates(points[j].objectives, points[i].objectives));
    if (i > 0) assert.ok(points[i - 1].objectives[0] < points[i].objectives[0]);
  }
  assert.deepEqual(points[points.length - 1].objectives, [1, 0]);
  assert.equal(points[points.length - 1].extras.kept, 96);
});

test('archive invariants: every genome repaired and unique, all-ones present, budgets respected', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        seed: fc.integer(),
        populationSize: fc.integer({ min: 2, max: 12 }),
        generations: fc.integer({ min: 0, max: 5 }),
        maxEvaluations: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
        minKeep: fc.double({ min: 0, max: 1, noNaN: true }),
        roundTo: fc.integer({ min: 1, max: 4 }),
        importanceBias: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
      fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }),
      async (config, lengths) => {
        const { problem, clock } = bitProblem(config.seed, lengths);
        const result = await runNsga2(problem, config, { clock });
        const prepared = prepareGroups(problem.groups, problem.genomeLength, config);
        const { archive, population } = result.state;
        assert.equal(new Set(archive.map((p) => p.genome)).size, archive.length);
        for (const point of archive) assert.ok(isRepaired(decodeGenome(point.genome, problem.genomeLength), prepared));
        assert.equal(countKept(decodeGenome(archive[0].genome, problem.genomeLength)), problem.genomeLength);
        if (config.maxEvaluations !== undefined) assert.ok(archive.length <= config.maxEvaluations);
        assert.ok(population.length <= config.populationSize && population.length >= 1);
        assert.ok(result.state.generation <= config.generations);
        assert.deepEqual(JSON.parse(JSON.stringify(result.state)), result.state, 'state is plain JSON');
      },
    ),
    { numRuns: 40 },
  );
});

test('termination by evaluation budget and by (injected) wall time', async () => {
  const a = bitProblem(4);
  const byBudget = await runNsga2(a.problem, { ...baseConfig, generations: 100, maxEvaluations: 50 }, { clock: a.clock });
  assert.equal(byBudget.stopReason, 'evaluations');
  assert.equal(byBudget.state.evaluations, 50);
  const b = bitProblem(4);
  // 5 ms per evaluation, 16 per generation: 200 ms allows the initial population and two more.
  const byTime = await runNsga2(b.problem, { ...baseConfig, generations: 100, timeBudgetMs: 200 }, { clock: b.clock });
  assert.equal(byTime.stopReason, 'time');
  assert.ok(byTime.state.generation >= 2 && byTime.state.generation <= 3, `generation ${byTime.state.generation}`);
  assert.ok(byTime.state.elapsedMs >= 200);
});

test('resume rejects a checkpoint of another config or a corrupted one, with a clear message', async () => {
  const { problem, clock } = bitProblem(5);
  const result = await runNsga2(problem, { ...baseConfig, generations: 1 }, { clock });
  const state = JSON.parse(JSON.stringify(result.state)) as SearchState;
  await assert.rejects(resumeNsga2(problem, { ...baseConfig, seed: 99 }, state), /config hash .* start a new search/);
  await assert.rejects(resumeNsga2(problem, { ...baseConfig, mutationRate: 0.5 }, state), /config hash/);
  assert.throws(() => validateSearchState({ ...state, population: [10_000] }, problem, baseConfig), /outside the archive/);
  assert.throws(() => validateSearchState({ ...state, rng: { algorithm: 'pcg' } }, problem, baseConfig), /invalid NSGA-II checkpoint/);
  // Termination settings are not part of the hash: a search may be extended.
  const extended = await resumeNsga2(problem, { ...baseConfig, generations: 2, timeBudgetMs: 1e9 }, state, { clock });
  assert.equal(extended.state.generation, 2);
});
