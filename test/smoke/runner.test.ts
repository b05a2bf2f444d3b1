import { test } from 'node:test';
import assert from 'node:assert/strict';

test('the test runner loads TypeScript', () => {
  const sum: number = [1, 2, 3].reduce((a, b) => a + b, 0);
  assert.equal(sum, 6);
});
