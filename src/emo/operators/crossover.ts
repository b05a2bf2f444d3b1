/**
 * Group-wise uniform crossover: for every channel group a coin decides whether child 1 takes
 * that group's bits from parent A (and child 2 from B) or the other way round.
 *
 * Why whole groups: a group's mask is one layer's channel selection, shaped by repair to a legal
 * count; mixing bits inside a group would mostly produce illegal counts that repair then
 * inflates. Swapping whole groups keeps both children legal when the parents are, and the
 * crossover explores combinations of per-layer decisions, which is what the search is about.
 */
import type { Genome } from '../genome.ts';
import type { PreparedGroup } from '../groups.ts';
import type { Rng } from '../rng.ts';

export interface CrossoverOptions {
  /** Probability that a pair is recombined at all; otherwise the children copy the parents. */
  readonly probability: number;
}

export function groupUniformCrossover(
  rng: Rng,
  parentA: Genome,
  parentB: Genome,
  groups: readonly PreparedGroup[],
  options: CrossoverOptions,
): [Genome, Genome] {
  const childA = parentA.slice();
  const childB = parentB.slice();
  if (!rng.bernoulli(options.probability)) return [childA, childB];
  for (const group of groups) {
    if (rng.bernoulli(0.5)) {
      const end = group.offset + group.length;
      childA.set(parentB.subarray(group.offset, end), group.offset);
      childB.set(parentA.subarray(group.offset, end), group.offset);
    }
  }
  return [childA, childB];
}
