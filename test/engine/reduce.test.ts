/**
 * The wasm Sum/Mean over leading axes (depthwise-conv form, src/engine/wasm-kernels.ts) and
 * the cases it hands to the stock kernels, against the cpu backend.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/backend.ts';
import { onBackend, relativeError, seededValues, setupBackends, sizeOf } from './helpers.ts';

interface ReduceCase {
  readonly shape: number[];
  readonly axis: number | number[];
  readonly keepDims: boolean;
  readonly dtype?: 'int32';
}

const cases: ReduceCase[] = [
  { shape: [64, 5, 5, 7], axis: [0, 1, 2], keepDims: false }, // rows divisible by 25
  { shape: [3, 7, 11, 5], axis: [0, 1, 2], keepDims: true }, // remainder of 6 rows
  { shape: [2, 9, 9, 33], axis: [2, 0, 1], keepDims: false }, // axes in any order
  { shape: [130, 3], axis: 0, keepDims: false }, // rank 2 (dense BN)
  { shape: [40, 3], axis: [0], keepDims: true }, // fewer than 50 rows: stock path
  { shape: [4, 6, 5], axis: [1, 2], keepDims: false }, // not leading axes: stock path
  { shape: [4, 6, 5], axis: -1, keepDims: true }, // innermost axis: stock path
  { shape: [30, 4], axis: 0, keepDims: false, dtype: 'int32' }, // int: stock path
];

function reduce(kind: 'sum' | 'mean', c: ReduceCase, seed: number): Float32Array {
  return tf.tidy(() => {
    const values = seededValues(sizeOf(c.shape), seed).map((v) => (c.dtype === 'int32' ? Math.round(10 * v) : v));
    const x = tf.tensor(values, c.shape, c.dtype ?? 'float32');
    const y = kind === 'sum' ? tf.sum(x, c.axis, c.keepDims) : tf.mean(x, c.axis, c.keepDims);
    assert.deepEqual(y.shape, tf.sum(tf.zerosLike(x), c.axis, c.keepDims).shape);
    return Float32Array.from(y.dataSync());
  });
}

describe('wasm Sum and Mean match the cpu backend', () => {
  before(setupBackends);
  for (const kind of ['sum', 'mean'] as const) {
    cases.forEach((c, index) => {
      it(`${kind} ${c.shape.join('x')} axis=${JSON.stringify(c.axis)} keepDims=${c.keepDims}${c.dtype ? ` ${c.dtype}` : ''}`, async () => {
        const reference = await onBackend('cpu', () => reduce(kind, c, 50 + index));
        const dataIds = await onBackend('wasm', () => tf.engine().backend.numDataIds());
        const actual = await onBackend('wasm', () => reduce(kind, c, 50 + index));
        // The kernel keeps one ones-filter per channel count alive on purpose (operator cache).
        assert.ok(tf.engine().backend.numDataIds() <= dataIds + 1, 'wasm tensor data leaked');
        const error = relativeError(actual, reference);
        assert.ok(error < 1e-5, `relative error ${error.toExponential(2)}`);
      });
    });
  }
});
