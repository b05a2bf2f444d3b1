/**
 * Bit-flip mutation, optionally biased by channel importance.
 *
 * Unbiased, every bit flips with probability `rate` (default 1/L: one flip per genome on
 * average). With `importanceBias` b in [0, 1] and a channel's importance rank q in [0, 1]
 * (1 = most important in its group), a kept channel is dropped with probability
 * rate * (1 + b (1 - 2q)) and a dropped one restored with rate * (1 + b (2q - 1)): unimportant
 * channels go first and important ones come back first, while the mean rate over a group stays
 * `rate`, so the bias redistributes mutations without changing how many happen.
 */
import type { Genome } from '../genome.ts';
import type { PreparedGroup } from '../groups.ts';
import type { Rng } from '../rng.ts';

export interface MutationOptions {
  /** Per-bit flip probability, in [0, 1]. */
  readonly rate: number;
  /** 0 = plain bit-flip; 1 = fully importance-biased (see the module comment). */
  readonly importanceBias: number;
}

/** Mutates `genome` in place (one `rng.next()` per bit) and returns the number of flipped bits. */
export function bitFlipMutation(rng: Rng, genome: Genome, groups: readonly PreparedGroup[], options: MutationOptions): number {
  const { rate, importanceBias: bias } = options;
  let flips = 0;
  for (const group of groups) {
    for (let c = 0; c < group.length; c++) {
      const i = group.offset + c;
      const q = group.importanceRank[c];
      const p = genome[i] ? rate * (1 + bias * (1 - 2 * q)) : rate * (1 + bias * (2 * q - 1));
      if (rng.next() < p) {
        genome[i] ^= 1;
        flips++;
      }
    }
  }
  return flips;
}
