/**
 * The order in which a streamed epoch visits a sharded image set, as a pure function of
 * (shard sizes, selection, seed, epoch, shuffle buffer size): no pixels, no I/O, no timing.
 *
 * Shuffled epochs (what tf.data's `shuffle(buffer)` does over a shard-interleaved stream):
 *   1. shards in a permutation drawn from (seed, epoch);
 *   2. each shard's images in a permutation drawn from (seed, epoch, shard): a shard is read
 *      whole anyway, so mixing inside it costs nothing;
 *   3. those images pass through a buffer of `capacity` slots: while it fills, images go in; once
 *      full, each arriving image evicts (emits) a uniformly drawn slot and takes its place; at the
 *      end the buffer drains in random order. So images of different shards mix, and memory is
 *      `capacity` images, whatever the size of the data set.
 * Unshuffled epochs (evaluation) visit shards and images in index order, with no buffer.
 *
 * Every selected image is emitted exactly once. The reader (stream-batches.ts) runs these same
 * events and moves pixels along; a resumed epoch replays them without pixels up to the batch it
 * resumes at, then reads the images the buffer holds at that moment by random access, so a
 * resumed fine-tune sees exactly the batches an uninterrupted one would.
 */
import { createRng, permutation } from './prng.ts';

// Stream tags keep the three generators independent of each other and of batches.ts' streams.
const SHARD_STREAM = 0x73686f72; // 'shor'
const WITHIN_STREAM = 0x7769746e; // 'witn'
const BUFFER_STREAM = 0x62756666; // 'buff'

export interface StreamOrderOptions {
  /** Images per shard, in index order: image i of shard s has global index (sum of earlier counts) + i. */
  readonly shardCounts: readonly number[];
  readonly shuffle: boolean;
  readonly seed: number;
  readonly epoch: number;
  /** Slots of the shuffle buffer (shuffled epochs only); capped at the number of selected images. */
  readonly shuffleBuffer: number;
  /** Visit only images whose flag is 1 (indexed by global index); default all. */
  readonly selected?: Uint8Array;
}

/**
 * One step of the stream. `push`: image `global` (image `local` of shard `shard`) goes into
 * `slot`. `emit`: the image in `slot` leaves the buffer (is the next image of the epoch).
 * `pass`: with no buffer, image `global` is the next image of the epoch straight from its shard.
 * `move`: while draining, the image in slot `from` moves to slot `to` (which was just emitted).
 */
export type StreamEvent =
  | { readonly kind: 'push'; readonly global: number; readonly shard: number; readonly local: number; readonly slot: number }
  | { readonly kind: 'emit'; readonly global: number; readonly slot: number }
  | { readonly kind: 'pass'; readonly global: number; readonly shard: number; readonly local: number }
  | { readonly kind: 'move'; readonly from: number; readonly to: number };

export class StreamPlan {
  readonly capacity: number;
  /** Global index of the image in each slot (valid for slots < filled). */
  readonly slots: Int32Array;
  /** Slots in use at this point of `events()`. */
  filled = 0;
  /** Images the epoch emits. */
  readonly total: number;
  /** Shards that hold selected images, in visiting order (what a reader prefetches). */
  readonly shardOrder: Int32Array;
  readonly #options: StreamOrderOptions;
  readonly #shardStart: number[];

  constructor(options: StreamOrderOptions) {
    const { shardCounts, selected } = options;
    this.#options = options;
    this.#shardStart = [];
    let start = 0;
    const used: number[] = [];
    let total = 0;
    shardCounts.forEach((count, shard) => {
      if (!Number.isInteger(count) || count < 0) throw new Error(`stream order: shard ${shard} has ${count} images`);
      this.#shardStart.push(start);
      let inShard = count;
      if (selected) {
        inShard = 0;
        for (let i = start; i < start + count; i++) inShard += selected[i];
      }
      if (inShard > 0) used.push(shard);
      total += inShard;
      start += count;
    });
    if (selected && selected.length !== start) throw new Error(`stream order: selection has ${selected.length} flags for ${start} images`);
    if (options.shuffle && (!Number.isInteger(options.shuffleBuffer) || options.shuffleBuffer < 1)) {
      throw new Error(`stream order: shuffleBuffer must be a positive integer, got ${options.shuffleBuffer}`);
    }
    this.total = total;
    this.capacity = options.shuffle ? Math.min(options.shuffleBuffer, total) : 0;
    this.slots = new Int32Array(this.capacity);
    const order = Int32Array.from(used);
    if (options.shuffle) {
      const perm = permutation(order.length, createRng(options.seed, options.epoch, SHARD_STREAM));
      this.shardOrder = Int32Array.from(perm, (i) => order[i]);
    } else {
      this.shardOrder = order;
    }
  }

  /** The epoch's events, in order (see StreamEvent). Run once per plan. */
  *events(): Generator<StreamEvent> {
    const { shardCounts, selected, shuffle, seed, epoch } = this.#options;
    const rng = createRng(seed, epoch, BUFFER_STREAM);
    const { capacity, slots } = this;
    for (const shard of this.shardOrder) {
      const count = shardCounts[shard];
      const start = this.#shardStart[shard];
      const within = shuffle ? permutation(count, createRng(seed, epoch, shard, WITHIN_STREAM)) : undefined;
      for (let k = 0; k < count; k++) {
        const local = within ? within[k] : k;
        const global = start + local;
        if (selected && selected[global] === 0) continue;
        if (capacity === 0) {
          yield { kind: 'pass', global, shard, local };
        } else if (this.filled < capacity) {
          slots[this.filled] = global;
          yield { kind: 'push', global, shard, local, slot: this.filled };
          this.filled++;
        } else {
          const slot = rng.nextInt(capacity);
          yield { kind: 'emit', global: slots[slot], slot };
          slots[slot] = global;
          yield { kind: 'push', global, shard, local, slot };
        }
      }
    }
    while (this.filled > 0) {
      const slot = rng.nextInt(this.filled);
      yield { kind: 'emit', global: slots[slot], slot };
      const last = this.filled - 1;
      if (slot !== last) {
        slots[slot] = slots[last];
        yield { kind: 'move', from: last, to: slot };
      }
      this.filled--;
    }
  }
}

/** The global indices of one epoch in the order the stream emits them. */
export function streamOrder(options: StreamOrderOptions): Int32Array {
  const plan = new StreamPlan(options);
  const order = new Int32Array(plan.total);
  let at = 0;
  for (const event of plan.events()) {
    if (event.kind === 'emit' || event.kind === 'pass') order[at++] = event.global;
  }
  return order;
}
