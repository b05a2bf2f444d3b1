/** Shared helpers of the engine tests: seeded data, backend switching, a robust error measure. */
import { tf } from '../../src/engine/backend.ts';
import { registerWasmTrainingKernels } from '../../src/engine/wasm-kernels.ts';
import { registerLeanGradients } from '../../src/engine/gradients.ts';
import '@tensorflow/tfjs-backend-wasm';

/** Deterministic N(0,1)-ish values (xorshift32 + Box-Muller), so a failure is reproducible. */
export function seededValues(count: number, seed: number): Float32Array {
  let state = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return (state + 0.5) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * max|a - b| / max(1, max|b|): relative to the reference's scale, absolute near zero, so
 * neither tiny references nor cancellation in sums make it blow up.
 */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  if (actual.length !== reference.length) throw new Error(`length ${actual.length} != reference length ${reference.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < reference.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - reference[i]));
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  return Number.isNaN(maxDiff) ? Infinity : maxDiff / Math.max(1, maxRef);
}

/** Makes both backends available in this process (the engine's choice stays untouched). */
export async function setupBackends(): Promise<void> {
  registerWasmTrainingKernels();
  registerLeanGradients();
  await tf.setBackend('cpu');
  await tf.setBackend('wasm');
  await tf.ready();
}

/** Runs `fn` with `backend` active; returns plain arrays so nothing outlives the switch. */
export async function onBackend<T>(backend: 'cpu' | 'wasm', fn: () => T): Promise<T> {
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`backend ${backend} failed to initialise`);
  }
  return fn();
}
