import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { timed, uncoveredMs, type Interval } from '../../src/local/timing.ts';

test('uncovered time counts overlapping intervals once and clips to the window', () => {
  assert.equal(uncoveredMs(0, 100, []), 100);
  assert.equal(uncoveredMs(0, 100, [{ start: 10, end: 30 }, { start: 20, end: 40 }]), 70);
  assert.equal(uncoveredMs(0, 100, [{ start: -50, end: 10 }, { start: 90, end: 500 }]), 80);
  assert.equal(uncoveredMs(0, 100, [{ start: 0, end: 100 }, { start: 5, end: 6 }]), 0);
});

test('uncovered time equals a brute-force count over unit steps', () => {
  const interval = fc.tuple(fc.integer({ min: -20, max: 120 }), fc.integer({ min: 0, max: 60 })).map(([start, length]) => ({ start, end: start + length }));
  fc.assert(
    fc.property(fc.array(interval, { maxLength: 8 }), (busy: Interval[]) => {
      let idle = 0;
      for (let t = 0; t < 100; t++) if (!busy.some((b) => b.start <= t && t + 1 <= b.end)) idle++;
      assert.equal(uncoveredMs(0, 100, busy), idle);
    }),
  );
});

test('timed records an interval even when the call throws', async () => {
  const intervals: Interval[] = [];
  const ok = timed(async (x: number) => x * 2, intervals);
  const bad = timed(async () => {
    throw new Error('boom');
  }, intervals);
  assert.equal(await ok(21), 42);
  await assert.rejects(bad(), /boom/);
  assert.equal(intervals.length, 2);
  assert.ok(intervals.every((i) => i.end >= i.start), 'intervals are ordered');
});
