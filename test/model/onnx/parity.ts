/**
 * Parity between onnxruntime (the reference) and a tfjs model: same random NCHW inputs, outputs
 * compared as max |tfjs - ort| / max(1, max |ort|) (the error relative to the output's scale).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { tf } from '../../../src/engine/backend.ts';
import { onnxOriginOf } from '../../../src/model/onnx/metadata.ts';

/** The committed ONNX files made by scripts/onnx/export_fixtures.py. */
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** The NCHW dims to feed an imported model: the declared batch when the export fixed it, else 3. */
export function inputDims(model: tf.LayersModel): number[] {
  const declared = onnxOriginOf(model)?.inputs[0].dims[0];
  const batch = typeof declared === 'number' ? declared : 3;
  const shape = model.inputs[0].shape.slice(1) as number[];
  return shape.length === 3 ? [batch, shape[2], shape[0], shape[1]] : [batch, ...shape];
}

type Ort = typeof import('onnxruntime-node');
const require = createRequire(import.meta.url);
// onnxruntime-node is CommonJS with a native binding: load it once, on first use.
let ort: Ort | undefined;
export function onnxRuntime(): Ort {
  ort ??= require('onnxruntime-node') as Ort;
  return ort;
}

/** Deterministic inputs in [-2, 2) (an LCG: no Math.random in tests). */
export function randomInput(dims: readonly number[], seed: number): Float32Array {
  const out = new Float32Array(dims.reduce((p, d) => p * d, 1));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 32) * 4 - 2;
  }
  return out;
}

export interface OrtRun {
  readonly inputName: string;
  /** Outputs in the session's output order, flat NCHW values and dims. */
  readonly outputs: readonly { name: string; dims: readonly number[]; values: Float32Array }[];
}

export async function runOrt(model: string | Uint8Array, input: Float32Array, dims: readonly number[]): Promise<OrtRun> {
  const runtime = onnxRuntime();
  const session = typeof model === 'string' ? await runtime.InferenceSession.create(model) : await runtime.InferenceSession.create(model);
  try {
    const inputName = session.inputNames[0];
    const result = await session.run({ [inputName]: new runtime.Tensor('float32', input, [...dims]) });
    return {
      inputName,
      outputs: session.outputNames.map((name) => {
        const tensor = result[name];
        return { name, dims: tensor.dims, values: Float32Array.from(tensor.data as Float32Array) };
      }),
    };
  } finally {
    await session.release();
  }
}

/** tfjs outputs for an NCHW input, each back in NCHW order (rank-4 outputs transposed). */
export function runTfjs(model: tf.LayersModel, input: Float32Array, dims: readonly number[]): Float32Array[] {
  return tf.tidy(() => {
    let x = tf.tensor(input, [...dims]);
    if (dims.length === 4) x = tf.transpose(x, [0, 2, 3, 1]);
    const predicted = model.predict(x);
    const outputs = Array.isArray(predicted) ? predicted : [predicted];
    return outputs.map((y) => (y.rank === 4 ? tf.transpose(y, [0, 3, 1, 2]) : y).dataSync() as Float32Array).map((v) => Float32Array.from(v));
  });
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  return diff;
}

/** max |a - b| / max(1, max |reference|). */
export function relativeError(actual: Float32Array, reference: Float32Array): number {
  if (actual.length !== reference.length) return Infinity;
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < reference.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - reference[i]));
    scale = Math.max(scale, Math.abs(reference[i]));
  }
  return diff / scale;
}
