/**
 * A small seeded PRNG for data order and augmentation: xoshiro128** (Blackman & Vigna), seeded
 * through splitmix32 so that nearby seeds (epoch 0, 1, 2...) give unrelated streams.
 *
 * Why not Math.random: training must be reproducible (same seed + epoch => same batches) and a
 * resumed run must see the batches an uninterrupted one would. The EMO search has its own RNG
 * (src/emo); this one is only for data so the two never share a stream.
 */
import { RNG_ALGORITHM, Rng as XoshiroRng } from '../emo/rng.ts';

export interface Rng {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform integer in [0, n), unbiased (rejection sampling); n in 1..2^32. */
  nextInt(n: number): number;
  /** The four 32-bit state words, to checkpoint and restore with rngFromState. */
  state(): [number, number, number, number];
}

/** splitmix32 step: a bijective mixer, also used to hash seed components together. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Combines integers (seed, epoch, batch index, a stream tag...) into one 32-bit seed. Order
 * matters, so (1, 2) and (2, 1) differ. Inputs are taken modulo 2^32.
 */
export function mixSeed(...parts: readonly number[]): number {
  let h = 0x2545f491;
  for (const part of parts) {
    if (!Number.isFinite(part)) throw new Error(`mixSeed: seed part must be a finite number, got ${part}`);
    // Fold in high bits too so seeds above 2^32 are not silently aliased.
    const low = part >>> 0;
    const high = Math.floor(part / 4294967296) >>> 0;
    h = splitmix32(h ^ low);
    if (high !== 0) h = splitmix32(h ^ high);
  }
  return h;
}

/**
 * xoshiro128** from an explicit state (as returned by Rng.state()); the state must not be all zero.
 * The generator step is the EMO's (src/emo/rng.ts): one implementation of the algorithm, with
 * this module adding the data side's seeding (mixSeed of several parts) and 32-bit draws.
 */
export function rngFromState(initial: readonly [number, number, number, number]): Rng {
  if ((initial[0] | initial[1] | initial[2] | initial[3]) === 0) {
    throw new Error('rngFromState: xoshiro128** state must not be all zero');
  }
  const core = XoshiroRng.fromState({
    algorithm: RNG_ALGORITHM,
    words: [initial[0] >>> 0, initial[1] >>> 0, initial[2] >>> 0, initial[3] >>> 0],
  });
  const nextUint32 = (): number => core.nextUint32();
  return {
    nextUint32,
    next: () => nextUint32() / 4294967296,
    nextInt(n: number): number {
      if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new Error(`nextInt: n must be an integer in 1..2^32, got ${n}`);
      // Reject the top partial range so every residue is equally likely.
      const limit = 4294967296 - (4294967296 % n);
      for (;;) {
        const x = nextUint32();
        if (x < limit) return x % n;
      }
    },
    state: () => {
      const [s0, s1, s2, s3] = core.state().words;
      return [s0, s1, s2, s3];
    },
  };
}

/** A generator seeded from any number of integer parts (see mixSeed). */
export function createRng(...seedParts: readonly number[]): Rng {
  const seed = mixSeed(...seedParts);
  // Four splitmix32 outputs from successive counters: never all zero in practice, and checked.
  const state: [number, number, number, number] = [
    splitmix32(seed),
    splitmix32(seed + 1),
    splitmix32(seed + 2),
    splitmix32(seed + 3),
  ];
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;
  return rngFromState(state);
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(array: T, rng: Rng): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A uniformly random permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return shuffleInPlace(order, rng);
}
