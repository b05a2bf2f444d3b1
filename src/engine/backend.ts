import * as tf from '@tensorflow/tfjs';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface EngineOptions {
  /** Overrides EMO_DIR_BACKEND. Default: tensorflow (tfjs-node-gpu, else tfjs-node) if it loads, else wasm. */
  readonly backend?: BackendName;
  readonly log?: (message: string) => void;
}

let active: BackendName | undefined;

/**
 * Chooses and initialises the tfjs backend once per process and logs the choice.
 * Calling it again returns the active backend (a different explicit request is an error).
 * PLACEHOLDER: the engine helper replaces this with the full version (WASM training kernels).
 */
export async function initEngine(options: EngineOptions = {}): Promise<BackendName> {
  const requested = options.backend ?? (process.env.EMO_DIR_BACKEND as BackendName | undefined);
  if (active) {
    if (requested && requested !== active) {
      throw new Error(`engine already initialised with backend '${active}', cannot switch to '${requested}'`);
    }
    return active;
  }
  const chosen: BackendName = requested ?? 'wasm';
  if (chosen === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(chosen);
  await tf.ready();
  active = chosen;
  (options.log ?? ((m: string) => process.stderr.write(`${m}\n`)))(`emo-dir engine: backend=${chosen}`);
  return chosen;
}

export { tf };
