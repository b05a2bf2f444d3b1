/**
 * Seeded pseudo-random numbers for the search, with a state that survives JSON.
 *
 * Why our own generator: a resumed search must continue with exactly the draws an uninterrupted
 * one would have made, so the whole generator state has to be written into the checkpoint.
 * `Math.random` cannot be seeded or saved. xoshiro128** (Blackman & Vigna) keeps four 32-bit
 * words, runs on `Math.imul` and 32-bit shifts only (no BigInt, fast in V8), and passes BigCrush;
 * its 2^128 - 1 period is far beyond what a search draws.
 *
 * Every method advances the state by a fixed, documented number of words or by a rejection loop
 * that is itself deterministic, so `Rng.fromState(rng.state())` reproduces the rest of the
 * sequence exactly.
 */

export const RNG_ALGORITHM = 'xoshiro128**';

/** The full generator state: plain JSON (four unsigned 32-bit integers). */
export interface RngState {
  readonly algorithm: typeof RNG_ALGORITHM;
  readonly words: readonly [number, number, number, number];
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: spreads a seed over the state so that nearby seeds give unrelated streams. */
function splitmix32(seed: number): [number, number] {
  const next = (seed + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [next, z >>> 0];
}

function isUint32(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < TWO_POW_32;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(words: readonly [number, number, number, number]) {
    [this.s0, this.s1, this.s2, this.s3] = words;
  }

  /**
   * A generator from a seed: any safe integer (negative and > 2^32 included, both 32-bit halves
   * are mixed in, so seeds that differ only in their high bits still give different streams).
   */
  static fromSeed(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng seed must be a safe integer, got ${seed}`);
    const low = seed | 0;
    const high = Math.floor(seed / TWO_POW_32) | 0;
    let mix = low ^ Math.imul(high, 0x27d4eb2d);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(mix);
      mix = next;
      words.push(out);
    }
    // The all-zero state is the one fixed point of xoshiro; splitmix32 makes it vanishingly
    // unlikely, but a generator stuck at zero would be silent, so rule it out.
    if ((words[0] | words[1] | words[2] | words[3]) === 0) words[0] = 1;
    return new Rng(words as [number, number, number, number]);
  }

  /** Restores a generator saved with `state()`; it continues the saved sequence exactly. */
  static fromState(state: RngState): Rng {
    if (state === null || typeof state !== 'object' || state.algorithm !== RNG_ALGORITHM) {
      throw new Error(`Rng state must be a ${RNG_ALGORITHM} state, got ${JSON.stringify(state)}`);
    }
    const words = state.words;
    if (!Array.isArray(words) || words.length !== 4 || !words.every(isUint32)) {
      throw new Error(`Rng state needs four unsigned 32-bit words, got ${JSON.stringify(words)}`);
    }
    if (words.every((w) => w === 0)) throw new Error('Rng state must not be all zero');
    return new Rng([words[0], words[1], words[2], words[3]]);
  }

  /** A snapshot of the full state (a fresh object; later draws do not change it). */
  state(): RngState {
    return { algorithm: RNG_ALGORITHM, words: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0] };
  }

  /** An independent copy at the same position. */
  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** The next unsigned 32-bit integer (one state step). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** A float uniform in [0, 1) with 53 random bits (two state steps). */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / TWO_POW_53;
  }

  /**
   * An integer uniform in [0, n). Unbiased: for n <= 2^32 by rejection of the top partial block
   * of 32-bit values; above that from `next()` (53 bits are plenty for any array we index).
   */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`Rng.int needs a positive integer, got ${n}`);
    if (n > TWO_POW_32) return Math.floor(this.next() * n);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const u = this.nextUint32();
      if (u < limit) return u % n;
    }
  }

  /** True with probability p (one `next()`). */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** A standard normal draw (Box-Muller, two `next()` calls; no cached spare, so no hidden state). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1], keeps log finite
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** One element drawn uniformly; throws on an empty list. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.choice on an empty list');
    return items[this.int(items.length)];
  }
}
