/**
 * Bitset genomes: one bit per prunable channel, 1 = keep.
 *
 * In memory a genome is a `Uint8Array` of 0/1, one byte per channel. Packed words would be
 * smaller, but the hot operations (group-wise crossover, per-channel mutation, repair by
 * importance order, mask building for the model) all address single channels, and a genome has
 * at most a few thousand channels, so plain indexing is both the simplest and fast enough; the
 * packing happens only at the boundary, in `encodeGenome`, where size matters (checkpoints,
 * fronts, cache keys).
 */

export type Genome = Uint8Array;

/** A genome of `length` channels, all kept (the unpruned network). */
export function fullGenome(length: number): Genome {
  return new Uint8Array(length).fill(1);
}

/** Number of kept channels in [start, start + length) (the whole genome by default). */
export function countKept(genome: Genome, start = 0, length = genome.length - start): number {
  let kept = 0;
  for (let i = start; i < start + length; i++) kept += genome[i];
  return kept;
}

/** Throws unless every entry is 0 or 1 (a genome from outside, e.g. a test or a problem). */
export function assertGenome(genome: Genome, length: number, where = 'genome'): void {
  if (!(genome instanceof Uint8Array)) throw new Error(`${where}: expected a Uint8Array`);
  if (genome.length !== length) throw new Error(`${where}: length ${genome.length}, expected ${length}`);
  for (let i = 0; i < genome.length; i++) {
    if (genome[i] > 1) throw new Error(`${where}: bit ${i} is ${genome[i]}, expected 0 or 1`);
  }
}

export function genomesEqual(a: Genome, b: Genome): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Packs the bits little-endian (bit i -> byte i >> 3, bit i & 7) and writes standard base64.
 * The length is not part of the text: the problem knows it, and `decodeGenome` checks it.
 * The encoding is injective for a fixed length, so it doubles as the exact key of the fitness
 * cache and the duplicate check (no hash collision can merge two genomes).
 */
export function encodeGenome(genome: Genome): string {
  const bytes = new Uint8Array((genome.length + 7) >>> 3);
  for (let i = 0; i < genome.length; i++) {
    if (genome[i]) bytes[i >>> 3] |= 1 << (i & 7);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Inverse of `encodeGenome`. Rejects text that is not canonical base64, has the wrong byte count
 * for `length` channels, or sets padding bits past the end, so a genome from a checkpoint or a
 * front of another sub-network fails loudly instead of being silently truncated.
 */
export function decodeGenome(text: string, length: number): Genome {
  if (!Number.isInteger(length) || length < 0) throw new Error(`decodeGenome: bad length ${length}`);
  if (typeof text !== 'string' || !BASE64.test(text)) {
    throw new Error(`decodeGenome: not base64: ${JSON.stringify(String(text).slice(0, 40))}`);
  }
  const bytes = Buffer.from(text, 'base64');
  const expected = (length + 7) >>> 3;
  if (bytes.length !== expected) {
    throw new Error(`decodeGenome: ${bytes.length} bytes, expected ${expected} for ${length} channels`);
  }
  const genome = new Uint8Array(length);
  for (let i = 0; i < length; i++) genome[i] = (bytes[i >>> 3] >>> (i & 7)) & 1;
  if (length & 7 && bytes[expected - 1] >>> (length & 7) !== 0) {
    throw new Error(`decodeGenome: bits set past channel ${length} (genome of another length?)`);
  }
  return genome;
}

/**
 * A stable 53-bit hash (cyrb53) of any string, as 14 hex digits. Used for config hashes and for
 * short genome ids in logs; it never changes between runs, platforms or Node versions.
 */
export function hashString(text: string, seed = 0): string {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const value = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return value.toString(16).padStart(14, '0');
}

/**
 * Stable hash of a genome (its length and bits). Short id for logs and reports; the search keys
 * its cache by the full `encodeGenome` text, which cannot collide.
 */
export function hashGenome(genome: Genome): string {
  return hashString(`${genome.length}:${encodeGenome(genome)}`);
}
