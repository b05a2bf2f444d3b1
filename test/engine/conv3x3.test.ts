/**
 * The native Winograd 3x3 convolution (src/engine/native) against the pure-JS `cpu` backend:
 * forward, FusedConv2D with bias/relu, both backprop kernels and tf.grad through a small
 * model, on odd shapes and channel counts; both binaries (simd128 and relaxed-simd) on their
 * own memory; the fallbacks; memory safety inside tfjs's heap; and that the committed binaries
 * are what scripts/build-wasm-kernels.sh builds.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { tf } from '../../src/engine/backend.ts';
import { convKernelVariant, nativeConvAvailable } from '../../src/engine/native/conv-kernels.ts';
import { onBackend, relativeError, seededValues, setupBackends, sizeOf } from './helpers.ts';

const TOLERANCE = 1e-4;

/** The WebAssembly JS API this test uses (lib ES2023 without DOM has no typings for it). */
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: { new (bytes: Uint8Array): object; imports(module: object): Array<{ module: string; name: string; kind: string }> };
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: unknown };
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
};
const nativeDir = fileURLToPath(new URL('../../src/engine/native/', import.meta.url));

/** [batch, height, width, in channels] and out channels. */
interface Case {
  readonly x: [number, number, number, number];
  readonly cout: number;
}

const cases: Case[] = [
  { x: [1, 7, 5, 3], cout: 5 },
  { x: [3, 5, 7, 17], cout: 1 },
  { x: [1, 8, 8, 1], cout: 17 },
  { x: [3, 9, 6, 5], cout: 4 },
  { x: [1, 1, 1, 3], cout: 2 },
  { x: [1, 2, 3, 4], cout: 3 },
  { x: [2, 13, 11, 6], cout: 9 },
  // ResNet-20 shapes (stem and the three stages).
  { x: [2, 32, 32, 3], cout: 16 },
  { x: [2, 32, 32, 16], cout: 16 },
  { x: [2, 16, 16, 32], cout: 32 },
  { x: [2, 8, 8, 64], cout: 64 },
];

const describeCase = (c: Case): string => `x=${c.x.join('x')} cout=${c.cout}`;

interface Results {
  readonly conv: Float32Array;
  readonly fusedBiasRelu: Float32Array;
  readonly fusedBias: Float32Array;
  readonly fusedRelu: Float32Array;
  readonly dx: Float32Array;
  readonly dw: Float32Array;
}

/** Every native entry point on one case, through tf ops and the kernels as tfjs calls them. */
function run(c: Case, seed: number): Results {
  return tf.tidy(() => {
    const wShape: [number, number, number, number] = [3, 3, c.x[3], c.cout];
    const x = tf.tensor4d(seededValues(sizeOf(c.x), seed), c.x);
    const w = tf.tensor4d(seededValues(sizeOf(wShape), seed + 1), wShape);
    const bias = tf.tensor1d(seededValues(c.cout, seed + 2));
    const dy = tf.tensor4d(seededValues(sizeOf(c.x) / c.x[3] * c.cout, seed + 3), [c.x[0], c.x[1], c.x[2], c.cout]);
    const fused = (b: tf.Tensor1D | undefined, activation: 'relu' | 'linear'): Float32Array =>
      tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', ...(b ? { bias: b } : {}), activation }).dataSync() as Float32Array;
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC' };
    const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x } as unknown as NamedAttrMap) as tf.Tensor;
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: wShape } as unknown as NamedAttrMap) as tf.Tensor;
    return {
      conv: tf.conv2d(x, w, 1, 'same').dataSync() as Float32Array,
      fusedBiasRelu: fused(bias, 'relu'),
      fusedBias: fused(bias, 'linear'),
      fusedRelu: fused(undefined, 'relu'),
      dx: dx.dataSync() as Float32Array,
      dw: dw.dataSync() as Float32Array,
    };
  });
}

function assertClose(actual: Record<string, Float32Array>, reference: Record<string, Float32Array>): void {
  for (const key of Object.keys(reference)) {
    const error = relativeError(actual[key], reference[key]);
    assert.ok(error < TOLERANCE, `${key}: relative error ${error.toExponential(2)} >= ${TOLERANCE}`);
  }
}

/** tfjs data buffers of the wasm backend: catches intermediates a kernel forgot to free. */
function wasmDataIds(): number {
  return (tf.findBackend('wasm') as unknown as { numDataIds(): number }).numDataIds();
}

describe('native conv3x3 matches the cpu backend', () => {
  before(setupBackends);

  it('is in use on the wasm backend (unless EMO_DIR_CONV_KERNEL=xnnpack)', async () => {
    const { variant } = convKernelVariant();
    const available = await onBackend('wasm', () => nativeConvAvailable(tf.backend()));
    if (process.env.EMO_DIR_CONV_KERNEL === 'xnnpack') assert.equal(variant, 'xnnpack');
    else assert.ok(variant !== 'xnnpack' && available, `conv kernel variant ${variant}, available ${available}`);
  });

  cases.forEach((c, index) => {
    it(describeCase(c), async () => {
      const reference = await onBackend('cpu', () => run(c, 500 + index));
      const [tensors, dataIds] = await onBackend('wasm', () => [tf.memory().numTensors, wasmDataIds()]);
      const actual = await onBackend('wasm', () => run(c, 500 + index));
      assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
      assert.equal(wasmDataIds(), dataIds, 'wasm data leaked');
      assertClose({ ...actual }, { ...reference });
    });
  });

  it('computes tf.grad of a small conv net like the cpu backend', async () => {
    const model = (): Record<string, Float32Array> =>
      tf.tidy(() => {
        const x = tf.tensor4d(seededValues(2 * 9 * 7 * 3, 41), [2, 9, 7, 3]);
        const w1 = tf.tensor4d(seededValues(9 * 3 * 5, 42), [3, 3, 3, 5]);
        const b1 = tf.tensor1d(seededValues(5, 43));
        const w2 = tf.tensor4d(seededValues(9 * 5 * 4, 44), [3, 3, 5, 4]);
        const g = tf.tensor4d(seededValues(2 * 9 * 7 * 4, 45), [2, 9, 7, 4]);
        const loss = (a: tf.Tensor, k1: tf.Tensor, bias: tf.Tensor, k2: tf.Tensor): tf.Scalar => {
          const h = tf.fused.conv2d({ x: a as tf.Tensor4D, filter: k1 as tf.Tensor4D, strides: 1, pad: 'same', bias, activation: 'relu' });
          return tf.sum(tf.mul(tf.conv2d(h, k2 as tf.Tensor4D, 1, 'same'), g));
        };
        const grads = tf.grads(loss as (...args: tf.Tensor[]) => tf.Tensor)([x, w1, b1, w2]);
        const [dx, dw1, db1, dw2] = grads.map((t) => t.dataSync() as Float32Array);
        return { dx, dw1, db1, dw2 };
      });
    const reference = await onBackend('cpu', model);
    const tensors = await onBackend('wasm', () => tf.memory().numTensors);
    const actual = await onBackend('wasm', model);
    assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
    assertClose(actual, reference);
  });

  it('runs other convolutions and activations (direct native kernel or stock) like the cpu backend', async () => {
    const others = (): Record<string, Float32Array> =>
      tf.tidy(() => {
        const x = tf.tensor4d(seededValues(2 * 9 * 8 * 5, 61), [2, 9, 8, 5]);
        const w = tf.tensor4d(seededValues(9 * 5 * 6, 62), [3, 3, 5, 6]);
        const bias = tf.tensor1d(seededValues(6, 63));
        const alpha = tf.tensor1d(seededValues(6, 64));
        const fused = (extra: Partial<Parameters<typeof tf.fused.conv2d>[0]>): Float32Array =>
          tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias, ...extra }).dataSync() as Float32Array;
        return {
          stride2: tf.conv2d(x, w, 2, 'same').dataSync() as Float32Array,
          stride21: tf.conv2d(x, w, [2, 1], 'valid').dataSync() as Float32Array,
          fusedStride2: fused({ strides: 2, activation: 'relu' }),
          pointwiseStride2: tf.conv2d(x, tf.slice(w, [1, 1, 0, 0], [1, 1, 5, 6]) as tf.Tensor4D, 2, 'same').dataSync() as Float32Array,
          valid: tf.conv2d(x, w, 1, 'valid').dataSync() as Float32Array,
          dilated: tf.conv2d(x, w, 1, 'same', 'NHWC', 2).dataSync() as Float32Array,
          leaky: fused({ activation: 'leakyrelu', leakyreluAlpha: 0.2 }),
          prelu: fused({ activation: 'prelu', preluActivationWeights: alpha }),
          relu6: fused({ activation: 'relu6' }),
          explicitPad: tf
            .conv2d(x, w, 1, [
              [0, 0],
              [1, 1],
              [1, 1],
              [0, 0],
            ])
            .dataSync() as Float32Array,
        };
      });
    const reference = await onBackend('cpu', others);
    const dataIds = await onBackend('wasm', wasmDataIds);
    const actual = await onBackend('wasm', others);
    assert.equal(wasmDataIds(), dataIds, 'wasm data leaked');
    assertClose(actual, reference);
  });

  it('keeps tfjs results right over many calls while the wasm memory grows', async () => {
    const c: Case = { x: [2, 12, 10, 7], cout: 6 };
    const reference = await onBackend('cpu', () => run(c, 700));
    await onBackend('wasm', () => {
      const held: tf.Tensor[] = [];
      for (let i = 0; i < 12; i++) {
        // Interleave our kernel with tfjs's own and grow the heap between calls.
        held.push(tf.fill([2 << 20], i));
        assertClose({ ...run(c, 700) }, { ...reference });
        const ranges = tf.tidy(() => held.map((t) => [t.min().dataSync()[0], t.max().dataSync()[0]]));
        ranges.forEach(([min, max], j) => assert.ok(min === j && max === j, `tensor ${j} changed: [${min}, ${max}]`));
      }
      tf.dispose(held);
    });
  });
});

/** A plain float64 3x3 'same' convolution (+ bias, relu) of NHWC data: the binaries' reference. */
function referenceConv(x: Float32Array, shape: number[], w: Float32Array, cout: number, bias: Float32Array, relu: boolean): Float64Array {
  const [n, h, wd, cin] = shape;
  const y = new Float64Array(n * h * wd * cout);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < wd; j++)
        for (let o = 0; o < cout; o++) {
          let sum = bias[o];
          for (let kh = 0; kh < 3; kh++)
            for (let kw = 0; kw < 3; kw++) {
              const [yi, xj] = [i + kh - 1, j + kw - 1];
              if (yi < 0 || yi >= h || xj < 0 || xj >= wd) continue;
              for (let c = 0; c < cin; c++) sum += x[((b * h + yi) * wd + xj) * cin + c] * w[((kh * 3 + kw) * cin + c) * cout + o];
            }
          y[((b * h + i) * wd + j) * cout + o] = relu ? Math.max(0, sum) : sum;
        }
  return y;
}

interface RawExports {
  wino_conv_scratch_floats(n: number, h: number, w: number, cin: number, cout: number): number;
  wino_conv(x: number, f: number, flip: number, bias: number, y: number, s: number, n: number, h: number, w: number, cin: number, cout: number, relu: number): void;
}

describe('both conv3x3 binaries on their own memory', () => {
  for (const file of ['conv3x3-simd128.wasm', 'conv3x3-relaxed.wasm']) {
    it(file, (t) => {
      const bytes = readFileSync(join(nativeDir, file));
      convKernelVariant(); // enables V8's relaxed-SIMD flag when the runtime needs it
      if (!WebAssembly.validate(bytes)) {
        t.skip(`${file} does not validate on this runtime`);
        return;
      }
      // Nothing but tfjs's memory may be imported (a libc call or a stack would show up here).
      assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(bytes)), [{ module: 'env', name: 'memory', kind: 'memory' }]);
      const memory = new WebAssembly.Memory({ initial: 64 });
      const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as unknown as RawExports;
      const shape = [2, 11, 9, 6];
      const cout = 7;
      const heap = new Float32Array(memory.buffer);
      const x = seededValues(sizeOf(shape), 81);
      const w = seededValues(9 * 6 * cout, 82);
      const bias = seededValues(cout, 83);
      // Data away from address 0, then a canary after the output that must survive.
      const [xAt, wAt, bAt, yAt] = [4096, 65536, 98304, 131072];
      const ySize = shape[0] * shape[1] * shape[2] * cout;
      heap.set(x, xAt / 4);
      heap.set(w, wAt / 4);
      heap.set(bias, bAt / 4);
      heap.fill(12345, yAt / 4 + ySize, yAt / 4 + ySize + 64);
      const scratchAt = 262144;
      assert.ok(scratchAt + 4 * exports.wino_conv_scratch_floats(2, 11, 9, 6, cout) < memory.buffer.byteLength);
      exports.wino_conv(xAt, wAt, 0, bAt, yAt, scratchAt, 2, 11, 9, 6, cout, 1);
      const y = new Float32Array(memory.buffer, yAt, ySize);
      const error = relativeError(y, referenceConv(x, shape, w, cout, bias, true));
      assert.ok(error < TOLERANCE, `relative error ${error.toExponential(2)}`);
      assert.ok(new Float32Array(memory.buffer, yAt + 4 * ySize, 64).every((v) => v === 12345), 'wrote past the output');
    });
  }
});

describe('committed conv3x3 binaries', () => {
  it('are what scripts/build-wasm-kernels.sh builds', (t) => {
    const tools = ['clang-14', 'llvm-objdump-14'].filter((tool) => spawnSync('which', [tool]).status !== 0);
    if (tools.length > 0 || spawnSync('test', ['-x', '/usr/lib/llvm-14/bin/wasm-ld']).status !== 0) {
      t.skip(`clang-14 toolchain not installed (${tools.join(', ') || 'wasm-ld'} missing): cannot rebuild the binaries`);
      return;
    }
    const out = mkdtempSync(join(tmpdir(), 'emo-dir-wasm-'));
    try {
      const script = fileURLToPath(new URL('../../scripts/build-wasm-kernels.sh', import.meta.url));
      const build = spawnSync('bash', [script, out], { encoding: 'utf8' });
      assert.equal(build.status, 0, `build failed: ${build.stderr}`);
      for (const file of ['conv3x3-simd128.wasm', 'conv3x3-relaxed.wasm']) {
        assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(nativeDir, file))), `${file} differs from a fresh build: rerun the script`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
