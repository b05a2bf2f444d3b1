/**
 * Fixed, seeded, class-stratified index samples: the EMO-DIR *search subset* and
 * *search-validation subset* (DESIGN §2) are drawn with these so every candidate evaluation,
 * and every restart of a task, sees the same images with the class balance of the data set.
 */
import { indicesByClass } from './dataset.ts';
import type { LabelledSet } from './dataset.ts';
import { createRng, shuffleInPlace } from './prng.ts';

const SAMPLE_STREAM = 0x73616d70; // 'samp'

export interface StratifiedSampleOptions {
  /** Images per class (classes with fewer images give all they have). Give this or `total`. */
  readonly perClass?: number;
  /**
   * Total images (e.g. the spec's searchTrain = 2048), spread as evenly as possible over the
   * classes that have images (water-filling; the remainder goes one each to the lowest class
   * indices).
   */
  readonly total?: number;
  readonly seed?: number;
  /** Indices never drawn (e.g. the search subset when drawing the search-validation subset). */
  readonly exclude?: ArrayLike<number>;
}

/**
 * Up to `perClass` indices of each class, drawn uniformly without replacement with a generator
 * seeded from `seed`, returned sorted ascending (cache-friendly reads; order does not matter
 * because batching shuffles). Reads labels only, so an ImageSource samples the same way.
 */
export function stratifiedSample(dataset: LabelledSet, options: StratifiedSampleOptions): Int32Array {
  const { perClass, total, seed = 0 } = options;
  if ((perClass === undefined) === (total === undefined)) throw new Error(`stratifiedSample(${dataset.name}): give exactly one of perClass and total`);
  const size = (perClass ?? total) as number;
  if (!Number.isInteger(size) || size <= 0) {
    throw new Error(`stratifiedSample(${dataset.name}): ${perClass !== undefined ? 'perClass' : 'total'} must be a positive integer, got ${size}`);
  }
  const excluded = new Uint8Array(dataset.count);
  if (options.exclude) {
    for (let i = 0; i < options.exclude.length; i++) {
      const index = options.exclude[i];
      if (!Number.isInteger(index) || index < 0 || index >= dataset.count) {
        throw new Error(`stratifiedSample(${dataset.name}): exclude[${i}] = ${index} is outside 0..${dataset.count - 1}`);
      }
      excluded[index] = 1;
    }
  }
  const available = indicesByClass(dataset).map((members, label) => {
    const free = members.filter((index) => excluded[index] === 0);
    // One generator per class: a class's draw does not depend on other classes' sizes.
    return shuffleInPlace(free, createRng(seed, label, SAMPLE_STREAM));
  });
  const quotas = perClass !== undefined ? available.map((free) => Math.min(perClass, free.length)) : totalQuotas(size, available.map((free) => free.length));
  const chosen: number[] = [];
  available.forEach((free, label) => {
    for (let i = 0; i < quotas[label]; i++) chosen.push(free[i]);
  });
  return Int32Array.from(chosen).sort();
}

/**
 * Water-filling: every class gets min(capacity, L) for the largest level L that fits in `total`,
 * then the leftover goes one each to the lowest-indexed classes that still have images. Sums to
 * min(total, sum of capacities); as even as the capacities allow.
 */
function totalQuotas(total: number, capacity: readonly number[]): number[] {
  const filled = (level: number): number => capacity.reduce((sum, cap) => sum + Math.min(cap, level), 0);
  let low = 0;
  let high = Math.max(0, ...capacity);
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (filled(mid) <= total) low = mid;
    else high = mid - 1;
  }
  const quotas = capacity.map((cap) => Math.min(cap, low));
  let leftover = Math.min(total, filled(Infinity)) - filled(low);
  for (let label = 0; label < capacity.length && leftover > 0; label++) {
    if (quotas[label] < capacity[label]) {
      quotas[label]++;
      leftover--;
    }
  }
  return quotas;
}
