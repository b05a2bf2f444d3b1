/**
 * A stream of batches started ahead of its consumer: `startEarly` pulls the first batch now, so
 * a streamed epoch fills its shuffle buffer and reads its first shards while the caller does
 * something else (finalize: its "before" evaluation), not in the first timed training steps.
 * The batches, and their order, are the stream's own; only when the first one is pulled changes.
 */
export interface EarlyBatches<T extends { dispose(): void }> {
  /** The whole stream, first batch included (once; its first batch may still be in the making). */
  take(): AsyncIterable<T>;
  /**
   * Ends the stream unless a taken stream is being iterated (disposes the batch pulled early);
   * idempotent. A stream taken but never iterated then yields nothing.
   */
  close(): Promise<void>;
}

/**
 * Starts `batches` now. A failure of the early pull is reported by the taken stream, never as an
 * unhandled rejection.
 */
export function startEarly<T extends { dispose(): void }>(batches: AsyncIterable<T>): EarlyBatches<T> {
  const iterator = batches[Symbol.asyncIterator]();
  const first = iterator.next();
  // Handled where the stream is taken or closed.
  first.catch(() => undefined);
  // 'running' once the taken stream is iterated: until then close() may still end it.
  let state: 'untaken' | 'taken' | 'running' | 'closed' = 'untaken';
  const closed = (): boolean => state === 'closed';
  return {
    take(): AsyncIterable<T> {
      if (state !== 'untaken') throw new Error('startEarly: the stream was already taken or closed');
      state = 'taken';
      return (async function* (): AsyncGenerator<T> {
        if (closed()) return;
        state = 'running';
        try {
          for (let next = await first; !next.done; next = await iterator.next()) yield next.value;
        } finally {
          await iterator.return?.();
        }
      })();
    },
    async close(): Promise<void> {
      if (state === 'running' || state === 'closed') return;
      state = 'closed';
      try {
        const early = await first;
        if (!early.done) early.value.dispose();
      } catch {
        // The stream failed before anyone used it: there is no one to report it to.
      } finally {
        await iterator.return?.();
      }
    },
  };
}
