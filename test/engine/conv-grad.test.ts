/**
 * Gradient parity of the wasm training kernels against the pure-JS `cpu` backend, which is
 * the reference implementation of tfjs (slow, straightforward loops).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { tf } from '../../src/engine/backend.ts';
import { onBackend, relativeError, seededValues, setupBackends, sizeOf } from './helpers.ts';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  readonly x: [number, number, number, number];
  readonly kernel: [number, number];
  readonly outChannels: number;
  readonly strides: number | [number, number];
  readonly pad: Pad;
}

const TOLERANCE = 1e-4;

const convCases: ConvCase[] = [
  { x: [2, 7, 7, 3], kernel: [3, 3], outChannels: 4, strides: 1, pad: 'same' },
  { x: [2, 7, 7, 3], kernel: [3, 3], outChannels: 4, strides: 1, pad: 'valid' },
  { x: [3, 9, 8, 5], kernel: [3, 3], outChannels: 6, strides: 2, pad: 'same' },
  { x: [3, 9, 8, 5], kernel: [3, 3], outChannels: 6, strides: 2, pad: 'valid' },
  { x: [2, 11, 10, 4], kernel: [3, 3], outChannels: 3, strides: 3, pad: 'same' },
  { x: [2, 11, 10, 4], kernel: [3, 3], outChannels: 3, strides: 3, pad: 'valid' },
  { x: [2, 8, 8, 6], kernel: [1, 1], outChannels: 5, strides: 1, pad: 'same' },
  { x: [2, 9, 9, 6], kernel: [1, 1], outChannels: 5, strides: 2, pad: 'same' },
  { x: [2, 10, 9, 6], kernel: [1, 1], outChannels: 5, strides: 3, pad: 'valid' },
  { x: [2, 9, 11, 3], kernel: [5, 3], outChannels: 4, strides: 1, pad: 'same' },
  { x: [2, 9, 11, 3], kernel: [5, 3], outChannels: 4, strides: 2, pad: 'same' },
  { x: [2, 13, 11, 3], kernel: [5, 3], outChannels: 4, strides: 3, pad: 'valid' },
  { x: [2, 9, 10, 3], kernel: [3, 3], outChannels: 4, strides: [2, 1], pad: 'same' },
  {
    x: [2, 8, 9, 3],
    kernel: [3, 3],
    outChannels: 4,
    strides: 2,
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
  },
  // ResNet-20 shapes: the stem and a stride-2 stage entry.
  { x: [2, 32, 32, 3], kernel: [3, 3], outChannels: 16, strides: 1, pad: 'same' },
  { x: [2, 32, 32, 16], kernel: [3, 3], outChannels: 32, strides: 2, pad: 'same' },
];

function describeCase(c: ConvCase): string {
  const pad = typeof c.pad === 'string' ? c.pad : JSON.stringify(c.pad);
  return `x=${c.x.join('x')} k=${c.kernel.join('x')} co=${c.outChannels} s=${JSON.stringify(c.strides)} pad=${pad}`;
}

interface ConvGrads {
  readonly dx: Float32Array;
  readonly dw: Float32Array;
  readonly dxKernel: Float32Array;
  readonly dwKernel: Float32Array;
}

/** Gradients of sum(conv(x, w) * g) through tf.grads, plus both backprop kernels called directly. */
function convGrads(c: ConvCase, seed: number): ConvGrads {
  return tf.tidy(() => {
    const wShape: [number, number, number, number] = [c.kernel[0], c.kernel[1], c.x[3], c.outChannels];
    const x = tf.tensor4d(seededValues(sizeOf(c.x), seed), c.x);
    const w = tf.tensor4d(seededValues(sizeOf(wShape), seed + 1), wShape);
    const y = tf.conv2d(x, w, c.strides, c.pad);
    const g = tf.tensor(seededValues(y.size, seed + 2), y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), g)))([x, w]);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' } as unknown as NamedAttrMap;
    const dxKernel = tf.engine().runKernel('Conv2DBackpropInput', { dy: g, filter: w }, { ...attrs, inputShape: c.x } as unknown as NamedAttrMap) as tf.Tensor;
    const dwKernel = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: g }, { ...attrs, filterShape: wShape } as unknown as NamedAttrMap) as tf.Tensor;
    return {
      dx: dx.dataSync() as Float32Array,
      dw: dw.dataSync() as Float32Array,
      dxKernel: dxKernel.dataSync() as Float32Array,
      dwKernel: dwKernel.dataSync() as Float32Array,
    };
  });
}

interface DepthwiseCase {
  readonly x: [number, number, number, number];
  readonly kernel: [number, number];
  readonly multiplier: number;
  readonly strides: number;
  readonly dilations: number;
  readonly pad: 'same' | 'valid';
}

const depthwiseCases: DepthwiseCase[] = [
  { x: [2, 7, 7, 3], kernel: [3, 3], multiplier: 1, strides: 1, dilations: 1, pad: 'same' },
  { x: [2, 9, 8, 4], kernel: [3, 3], multiplier: 2, strides: 2, dilations: 1, pad: 'same' },
  { x: [2, 11, 10, 3], kernel: [5, 3], multiplier: 1, strides: 3, dilations: 1, pad: 'valid' },
  { x: [3, 10, 9, 2], kernel: [3, 3], multiplier: 3, strides: 1, dilations: 2, pad: 'same' },
  { x: [2, 9, 9, 4], kernel: [1, 1], multiplier: 2, strides: 2, dilations: 1, pad: 'valid' },
];

/**
 * Depthwise gradients via the kernels directly (tfjs' own gradient refuses dilation > 1).
 * With `expandDilation` the filter is zero-dilated and run with dilation 1, and the filter
 * gradient is read back at the dilated taps: the reference for dilated cases, because the cpu
 * backend's DepthwiseConv2dNativeBackpropInput ignores the dilation attribute.
 */
function depthwiseGrads(c: DepthwiseCase, seed: number, expandDilation = false): { dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const [kh, kw] = c.kernel;
    const [channels, m] = [c.x[3], c.multiplier];
    const wShape: [number, number, number, number] = [kh, kw, channels, m];
    const x = tf.tensor4d(seededValues(sizeOf(c.x), seed), c.x);
    const wValues = seededValues(sizeOf(wShape), seed + 1);
    const w = tf.tensor4d(wValues, wShape);
    const y = tf.depthwiseConv2d(x, w, c.strides, c.pad, 'NHWC', c.dilations);
    const g = tf.tensor(seededValues(y.size, seed + 2), y.shape);
    const d = expandDilation ? c.dilations : 1;
    const runShape: [number, number, number, number] = [(kh - 1) * d + 1, (kw - 1) * d + 1, channels, m];
    const runValues = new Float32Array(sizeOf(runShape));
    const tapSize = channels * m;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        runValues.set(wValues.subarray((i * kw + j) * tapSize, (i * kw + j + 1) * tapSize), (i * d * runShape[1] + j * d) * tapSize);
      }
    }
    const runFilter = tf.tensor4d(runValues, runShape);
    const attrs = { strides: c.strides, pad: c.pad, dilations: c.dilations / d };
    const dx = tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: g, filter: runFilter }, { ...attrs, inputShape: c.x } as unknown as NamedAttrMap) as tf.Tensor;
    const dwRun = (tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy: g }, { ...attrs, filterShape: runShape } as unknown as NamedAttrMap) as tf.Tensor).dataSync();
    const dw = new Float32Array(sizeOf(wShape));
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        dw.set(dwRun.subarray((i * d * runShape[1] + j * d) * tapSize, (i * d * runShape[1] + j * d + 1) * tapSize), (i * kw + j) * tapSize);
      }
    }
    return { dx: dx.dataSync() as Float32Array, dw };
  });
}

describe('wasm conv2d gradients match the cpu backend', () => {
  before(setupBackends);
  convCases.forEach((c, index) => {
    it(describeCase(c), async () => {
      const reference = await onBackend('cpu', () => convGrads(c, 100 + index));
      const before = await onBackend('wasm', () => tf.memory().numTensors);
      const actual = await onBackend('wasm', () => convGrads(c, 100 + index));
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      for (const key of ['dx', 'dw', 'dxKernel', 'dwKernel'] as const) {
        const error = relativeError(actual[key], reference[key]);
        assert.ok(error < TOLERANCE, `${key}: relative error ${error.toExponential(2)} >= ${TOLERANCE}`);
      }
    });
  });
});

describe('wasm depthwise conv gradients match the cpu backend', () => {
  before(setupBackends);
  depthwiseCases.forEach((c, index) => {
    it(`x=${c.x.join('x')} k=${c.kernel.join('x')} m=${c.multiplier} s=${c.strides} d=${c.dilations} ${c.pad}`, async () => {
      const reference = await onBackend('cpu', () => depthwiseGrads(c, 300 + index, true));
      const actual = await onBackend('wasm', () => depthwiseGrads(c, 300 + index));
      for (const key of ['dx', 'dw'] as const) {
        const error = relativeError(actual[key], reference[key]);
        assert.ok(error < TOLERANCE, `${key}: relative error ${error.toExponential(2)} >= ${TOLERANCE}`);
      }
    });
  });
});
