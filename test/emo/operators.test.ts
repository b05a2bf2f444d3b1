import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countKept, encodeGenome } from '../../src/emo/genome.ts';
import { isLegalKeptCount, minimumKept, prepareGroups, type ChannelGroup, type PreparedGroup } from '../../src/emo/groups.ts';
import { groupUniformCrossover } from '../../src/emo/operators/crossover.ts';
import { bitFlipMutation } from '../../src/emo/operators/mutation.ts';
import { isRepaired, repairGenome } from '../../src/emo/operators/repair.ts';
import { sampleInitialPopulation } from '../../src/emo/operators/sampling.ts';
import { binaryTournament } from '../../src/emo/operators/tournament.ts';
import { rankAndCrowdingSurvival } from '../../src/emo/operators/survival.ts';
import { nonDominatedSort } from '../../src/emo/sort.ts';
import { Rng } from '../../src/emo/rng.ts';

/** Random groups (with random importances) plus a random genome over them. */
const setupArb = fc
  .record({
    lengths: fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 6 }),
    minKeep: fc.double({ min: 0, max: 1, noNaN: true }),
    roundTo: fc.integer({ min: 1, max: 8 }),
    seed: fc.integer(),
  })
  .map(({ lengths, minKeep, roundTo, seed }) => {
    const rng = Rng.fromSeed(seed);
    let offset = 0;
    const groups: ChannelGroup[] = lengths.map((length) => {
      // Importances from a small set so ties occur.
      const group = { offset, length, importance: Float32Array.from({ length }, () => rng.int(5)) };
      offset += length;
      return group;
    });
    const genome = Uint8Array.from({ length: offset }, () => rng.int(2));
    return { groups, length: offset, rule: { minKeep, roundTo }, genome, rng };
  });

function keptIn(genome: Uint8Array, g: PreparedGroup): number {
  return countKept(genome, g.offset, g.length);
}

test('repair: every group satisfies minKeep and roundTo, only turns channels on, and is idempotent', () => {
  fc.assert(
    fc.property(setupArb, ({ groups, length, rule, genome }) => {
      const prepared = prepareGroups(groups, length, rule);
      const repaired = genome.slice();
      repairGenome(repaired, prepared);
      for (const g of prepared) {
        const kept = keptIn(repaired, g);
        assert.ok(kept >= Math.max(1, Math.ceil(rule.minKeep * g.length - 1e-9)), 'minKeep');
        assert.ok(kept % rule.roundTo === 0 || kept === g.length, 'roundTo');
        // Smallest legal count >= the original count: nothing is turned on needlessly.
        const before = keptIn(genome, g);
        for (let k = before; k < kept; k++) assert.ok(!isLegalKeptCount(g, k), `count ${k} was already legal`);
      }
      for (let i = 0; i < length; i++) assert.ok(repaired[i] >= genome[i], 'repair never turns a channel off');
      assert.ok(isRepaired(repaired, prepared));
      const again = repaired.slice();
      assert.equal(repairGenome(again, prepared), 0);
      assert.deepEqual(again, repaired);
    }),
  );
});

test('repair leaves already-valid genomes unchanged and turns on the most important channels first', () => {
  fc.assert(
    fc.property(setupArb, ({ groups, length, rule, genome }) => {
      const prepared = prepareGroups(groups, length, rule);
      if (isRepaired(genome, prepared)) {
        const copy = genome.slice();
        assert.equal(repairGenome(copy, prepared), 0);
        assert.deepEqual(copy, genome);
      }
      const repaired = genome.slice();
      repairGenome(repaired, prepared);
      for (const g of prepared) {
        // Every channel repair turned on is at least as important as every channel it left off.
        for (let a = 0; a < g.length; a++) {
          if (!(repaired[g.offset + a] && !genome[g.offset + a])) continue;
          for (let b = 0; b < g.length; b++) {
            if (!repaired[g.offset + b]) assert.ok(groups[prepared.indexOf(g)].importance[a] >= groups[prepared.indexOf(g)].importance[b]);
          }
        }
      }
    }),
  );
});

test('roundTo is capped at the group size; minKeep 0 still keeps one channel', () => {
  const [g] = prepareGroups([{ offset: 0, length: 10, importance: new Float32Array(10) }], 10, { minKeep: 0.3, roundTo: 8 });
  assert.equal(minimumKept(g), 8);
  assert.ok(isLegalKeptCount(g, 10));
  assert.ok(!isLegalKeptCount(g, 9));
  const [h] = prepareGroups([{ offset: 0, length: 10, importance: new Float32Array(10) }], 10, { minKeep: 0, roundTo: 1 });
  assert.equal(minimumKept(h), 1);
  assert.throws(() => prepareGroups([{ offset: 1, length: 3, importance: [1, 2, 3] }], 4, { minKeep: 0, roundTo: 1 }), /group 0: offset 1/);
  assert.throws(() => prepareGroups([{ offset: 0, length: 3, importance: [1, 2, 3] }], 4, { minKeep: 0, roundTo: 1 }), /cover 3 bits/);
});

test('group-wise crossover: every group of a child comes whole from one parent, children are complementary', () => {
  fc.assert(
    fc.property(setupArb, ({ groups, length, rule, genome, rng }) => {
      const prepared = prepareGroups(groups, length, rule);
      const other = Uint8Array.from(genome, (b) => b ^ 1); // differs everywhere
      const [c1, c2] = groupUniformCrossover(rng, genome, other, prepared, { probability: 1 });
      for (const g of prepared) {
        const part = (x: Uint8Array) => encodeGenome(x.subarray(g.offset, g.offset + g.length));
        const fromA = part(c1) === part(genome);
        assert.ok(fromA || part(c1) === part(other));
        assert.equal(part(c2), fromA ? part(other) : part(genome));
      }
    }),
  );
});

test('mutation: rate 0 changes nothing, rate 1 flips every bit; the bias drops unimportant channels first', () => {
  const rng = Rng.fromSeed(5);
  const importance = Float32Array.from({ length: 100 }, (_, c) => c);
  const prepared = prepareGroups([{ offset: 0, length: 100, importance }], 100, { minKeep: 0, roundTo: 1 });
  const genome = new Uint8Array(100).fill(1);
  assert.equal(bitFlipMutation(rng, genome, prepared, { rate: 0, importanceBias: 1 }), 0);
  const flipped = new Uint8Array(100).fill(1);
  assert.equal(bitFlipMutation(rng, flipped, prepared, { rate: 0.5, importanceBias: 0 }) > 0, true);
  const all = Uint8Array.from(genome);
  bitFlipMutation(rng, all, prepared, { rate: 1, importanceBias: 0 });
  assert.equal(countKept(all), 0);
  // Biased drops over many trials: the bottom half (low importance) loses far more channels.
  let lowDrops = 0;
  let highDrops = 0;
  let total = 0;
  for (let t = 0; t < 400; t++) {
    const g = new Uint8Array(100).fill(1);
    total += bitFlipMutation(rng, g, prepared, { rate: 0.05, importanceBias: 1 });
    for (let c = 0; c < 100; c++) {
      if (g[c]) continue;
      if (c < 50) lowDrops++;
      else highDrops++;
    }
  }
  assert.ok(lowDrops > 2 * highDrops, `low ${lowDrops} high ${highDrops}`);
  assert.ok(Math.abs(total / 400 - 5) < 0.5, `mean flips ${total / 400} should stay rate * L`);
});

test('sampling: all-ones first, every genome legal, keep-ratios span minKeep..1', () => {
  const rng = Rng.fromSeed(11);
  const groups = [0, 1, 2].map((g) => ({ offset: g * 32, length: 32, importance: Float32Array.from({ length: 32 }, (_, c) => (c * 7919) % 32) }));
  const prepared = prepareGroups(groups, 96, { minKeep: 0.25, roundTo: 4 });
  const population = sampleInitialPopulation(rng, prepared, 96, 20, { importanceNoise: 0.1, ratioJitter: 0.05 });
  assert.equal(population.length, 20);
  assert.equal(countKept(population[0]), 96);
  // The cheap anchor: every group at minKeep (8 of 32), its 8 most important channels.
  assert.equal(countKept(population[1]), 24);
  for (const p of prepared) for (let k = 0; k < 32; k++) assert.equal(population[1][p.offset + p.byImportance[k]], k < 8 ? 1 : 0);
  for (const genome of population) assert.ok(isRepaired(genome, prepared));
  const ratios = population.map((g) => countKept(g) / 96);
  assert.ok(Math.min(...ratios) < 0.4, `min ratio ${Math.min(...ratios)}`);
  assert.ok(ratios.filter((r) => r < 1).length >= 15);
  // Mostly importance-driven: the most important channel of each group is kept far more often
  // than the least important one.
  const keptCount = (c: number) => population.filter((g) => prepared.every((p) => g[p.offset + p.byImportance[c]])).length;
  assert.ok(keptCount(0) > keptCount(31));
});

test('tournament prefers lower rank, then larger crowding; survival keeps whole better fronts', () => {
  const rng = Rng.fromSeed(1);
  const winners = binaryTournament(rng, [0, 1], [0, 5], 50);
  assert.ok(winners.every((w) => w === 0));
  const byCrowding = binaryTournament(rng, [2, 2], [1, Infinity], 50);
  assert.ok(byCrowding.every((w) => w === 1));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 9 })), { minLength: 1, maxLength: 30 }), fc.nat(), (pairs, s) => {
      const points = pairs.map(([a, b]) => [a, b]);
      const size = 1 + (s % points.length);
      const survivors = rankAndCrowdingSurvival(points, size);
      assert.equal(survivors.length, size);
      assert.equal(new Set(survivors).size, size);
      const { rank } = nonDominatedSort(points);
      const worst = Math.max(...survivors.map((i) => rank[i]));
      // Nobody of a strictly better rank than the worst survivor's is left out.
      points.forEach((_, i) => {
        if (rank[i] < worst) assert.ok(survivors.includes(i));
      });
    }),
  );
});
