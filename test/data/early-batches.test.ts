import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEarly } from '../../src/data/early-batches.ts';

interface Item {
  readonly value: number;
  disposed: boolean;
  dispose(): void;
}

/** A stream of `count` items that records what was pulled, disposed and whether it was ended. */
function recorded(count: number, failAt?: number): { events: string[]; items: Item[]; batches: AsyncIterable<Item> } {
  const events: string[] = [];
  const items: Item[] = [];
  return {
    events,
    items,
    batches: (async function* (): AsyncGenerator<Item> {
        events.push('start');
        try {
          for (let value = 0; value < count; value++) {
            if (value === failAt) throw new Error(`shard ${value} is corrupt`);
            const item: Item = {
              value,
              disposed: false,
              dispose(): void {
                this.disposed = true;
              },
            };
            items.push(item);
            events.push(`pull ${value}`);
            yield item;
          }
        } finally {
          events.push('end');
        }
      })(),
  };
}

test('startEarly: pulls the first item before take(); the taken stream is the whole stream in order', async () => {
  const stream = recorded(4);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(stream.events, [], 'a generator does not start by itself');
  const early = startEarly(stream.batches);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(stream.events, ['start', 'pull 0'], 'the first item is pulled before anyone asks');
  const seen: number[] = [];
  for await (const item of early.take()) seen.push(item.value);
  assert.deepEqual(seen, [0, 1, 2, 3]);
  assert.equal(stream.events.at(-1), 'end');
  await early.close();
  assert.ok(stream.items.every((item) => !item.disposed), 'close after take leaves the consumer its items');
  assert.throws(() => early.take(), /already taken/);
});

test('startEarly: a consumer stopping early ends the stream; close() of an untaken stream disposes the early item', async () => {
  const stopped = recorded(5);
  for await (const item of startEarly(stopped.batches).take()) {
    if (item.value === 1) break;
  }
  assert.deepEqual(stopped.events, ['start', 'pull 0', 'pull 1', 'end']);

  const untaken = recorded(5);
  const early = startEarly(untaken.batches);
  await early.close();
  assert.deepEqual(untaken.events, ['start', 'pull 0', 'end']);
  assert.equal(untaken.items[0].disposed, true);
  assert.throws(() => early.take(), /already taken or closed/);

  // Taken but never iterated (the consumer failed first): close() still ends it.
  const idle = recorded(5);
  const neverIterated = startEarly(idle.batches);
  const taken = neverIterated.take();
  await neverIterated.close();
  assert.deepEqual(idle.events, ['start', 'pull 0', 'end']);
  assert.equal(idle.items[0].disposed, true);
  const late: number[] = [];
  for await (const item of taken) late.push(item.value);
  assert.deepEqual(late, [], 'a closed stream yields nothing, not its disposed first item');
});

test('startEarly: a failure of the early pull is reported by the taken stream (and swallowed by close)', async () => {
  const failing = recorded(3, 0);
  const early = startEarly(failing.batches);
  await new Promise((resolve) => setImmediate(resolve));
  await assert.rejects(
    (async () => {
      for await (const item of early.take()) item.dispose();
    })(),
    /shard 0 is corrupt/,
  );
  await startEarly(recorded(3, 0).batches).close();
});
