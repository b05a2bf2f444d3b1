/**
 * Binary tournament on (rank, crowding), the NSGA-II mating selection: of two random
 * individuals the lower non-domination rank wins; on equal rank the larger crowding distance
 * (the lonelier point, which keeps the front spread); on a full tie a coin flip.
 */
import type { Rng } from '../rng.ts';

export function binaryTournament(rng: Rng, rank: ArrayLike<number>, crowding: ArrayLike<number>, count: number): number[] {
  const n = rank.length;
  if (n === 0) throw new Error('binaryTournament: empty population');
  const winners: number[] = [];
  for (let k = 0; k < count; k++) {
    if (n === 1) {
      winners.push(0);
      continue;
    }
    // Two distinct contestants: draw b from the n - 1 others.
    const a = rng.int(n);
    let b = rng.int(n - 1);
    if (b >= a) b++;
    if (rank[a] !== rank[b]) winners.push(rank[a] < rank[b] ? a : b);
    else if (crowding[a] !== crowding[b]) winners.push(crowding[a] > crowding[b] ? a : b);
    else winners.push(rng.bernoulli(0.5) ? a : b);
  }
  return winners;
}
