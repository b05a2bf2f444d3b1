/** Constant folding against hand-computed numpy results (the arrays PyTorch's exports build). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arithmetic, BATCH, concat, constantOfShape, gather, intConstant, numbers, reshape, slice, transpose, unsqueeze } from '../../../src/model/onnx/fold.ts';

const values = (c: { values: ArrayLike<unknown> }): unknown[] => Array.from(c.values);

test("F.pad's pads subgraph: ConstantOfShape, Concat, Reshape, Slice(::-1), Transpose, Reshape", () => {
  // torch 1.13 turns F.pad(x, (1, 2, 0, 1)) into exactly these steps.
  const zeros = constantOfShape(intConstant([1], [4]), intConstant([1], [0]));
  const joined = concat([intConstant([4], [1, 2, 0, 1]), { ...zeros, float: false, values: Array.from(zeros.values) }], 0);
  const pairs = reshape(joined, intConstant([2], [-1, 2]), false);
  const reversed = slice(pairs, [-1], [-Number.MAX_SAFE_INTEGER], [0], [-1]);
  const flipped = transpose(reversed, [1, 0]);
  const pads = reshape(flipped, intConstant([1], [-1]), false);
  // ONNX order [N, C, H, W] begins then ends: top 0, left 1, bottom 1, right 2.
  assert.deepEqual(values(pads), [0, 0, 0, 1, 0, 0, 1, 2]);
});

test('the batch size flows through Gather/Unsqueeze/Concat and is refused in arithmetic', () => {
  const shape = intConstant([4], [BATCH, 8, 4, 4]);
  const batch = unsqueeze(gather(shape, intConstant([], [0]), 0), [0]);
  const target = concat([batch, intConstant([1], [-1])], 0);
  assert.deepEqual(values(target), [BATCH, -1]);
  assert.deepEqual(values(arithmetic('Mul', gather(shape, intConstant([], [0]), 0), intConstant([], [1]))), [BATCH]);
  assert.throws(() => arithmetic('Mul', gather(shape, intConstant([], [0]), 0), intConstant([], [2])), /batch size/);
  assert.throws(() => numbers(target, 'the target'), /the target depends on the batch size/);
});

test('slices with negative steps, clamped ends and axes; gathers along an inner axis', () => {
  const data = intConstant([2, 3], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(values(slice(data, [0, 1], [2, 9], [0, 1], [1, 1])), [2, 3, 5, 6]);
  assert.deepEqual(values(slice(data, [2], [-10], [1], [-2])), [3, 1, 6, 4]);
  assert.deepEqual(values(gather(data, intConstant([2], [2, 0]), 1)), [3, 1, 6, 4]);
  assert.deepEqual(gather(data, intConstant([2], [2, 0]), 1).dims, [2, 2]);
  assert.deepEqual(values(transpose(data, undefined)), [1, 4, 2, 5, 3, 6]);
});
