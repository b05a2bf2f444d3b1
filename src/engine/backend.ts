/**
 * Compute engine: picks the tfjs backend once per process (DESIGN.md §5).
 *
 * Order: `EMO_DIR_BACKEND` or `initEngine({ backend })` if given; else `tensorflow` through
 * @tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node (both optional dependencies, usually
 * absent), else `wasm`. With the default kernel set (`fast`, EMO_DIR_KERNELS) it also installs:
 * - ./wasm-kernels.ts: wasm kernels that training needs and tfjs-backend-wasm lacks or does
 *   slowly (conv/depthwise backprop, batch norm, reductions, identity), and the project's
 *   WebAssembly convolutions (./native: Winograd 3x3 and direct GEMM; EMO_DIR_CONV_KERNEL);
 * - ./gradients.ts: leaner gradients for FusedBatchNorm, Mean, Sum (every backend);
 * - ./batchnorm.ts: tf.layers.batchNormalization's training branch as one op with a
 *   closed-form gradient (every backend).
 * Together they take a ResNet-20 train step on wasm from ~11 to ~45 img/s per CPU-second
 * (bench/engine.ts --kernels missing-only vs fast), and the native convolutions to ~110
 * (--conv-kernel xnnpack vs the default).
 */
import * as tf from '@tensorflow/tfjs';
import { installBatchNormTraining } from './batchnorm.ts';
import { registerLeanGradients } from './gradients.ts';
import { convKernelVariant, nativeConvAvailable } from './native/conv-kernels.ts';
import { registerWasmTrainingKernels } from './wasm-kernels.ts';
import type { WasmKernelSet } from './wasm-kernels.ts';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export const backendNames: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Packages that provide the `tensorflow` backend, in order of preference. */
export const tensorflowPackages = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

export interface EngineOptions {
  /** Overrides EMO_DIR_BACKEND. Default: tensorflow (tfjs-node-gpu, else tfjs-node) if it loads, else wasm. */
  readonly backend?: BackendName;
  /**
   * Threads for the math library. `tensorflow`: sets TF_NUM_INTRAOP_THREADS before loading it
   * (unless already set). `wasm`: Node always gets 1 (see `wasmThreadsNote`).
   */
  readonly threads?: number;
  /**
   * wasm: `fast` (default) registers the project's kernels, lean gradients and the fused
   * training batch norm (./batchnorm.ts); `missing-only`
   * only the kernels tfjs-backend-wasm lacks (the stock baseline, for benchmarks). Overrides
   * EMO_DIR_KERNELS.
   */
  readonly kernels?: WasmKernelSet;
  readonly log?: (message: string) => void;
  /** Loads an optional package; injectable so tests can simulate installed/missing packages. */
  readonly importModule?: (specifier: string) => Promise<unknown>;
}

export interface EngineInfo {
  readonly backend: BackendName;
  /** The package that provides the backend. */
  readonly provider: string;
  /** Threads the backend computes with (wasm: 1 in Node; tensorflow: as configured, 0 = TF default). */
  readonly threads: number;
  /** wasm only: whether the SIMD binary is in use. */
  readonly simd?: boolean;
  /** Packages tried and skipped on the way to this backend, with the reason. */
  readonly skipped: readonly string[];
}

/**
 * Why wasm runs on one thread in Node: the threaded tfjs-backend-wasm binary starts its
 * pthreads as Web Workers from `blob:` URLs, which Node's worker_threads rejects
 * (ERR_WORKER_PATH), so tfjs reports WASM_HAS_MULTITHREAD_SUPPORT = false and
 * `setThreadsCount` has no effect. Forcing the flag makes backend initialisation fail.
 */
export const wasmThreadsNote = 'tfjs-backend-wasm is single-threaded in Node (its pthread workers need blob: URLs)';

let active: EngineInfo | undefined;
let pending: Promise<EngineInfo> | undefined;

/** Parses a backend name from the environment or a flag; `where` names the source in errors. */
export function parseBackendName(value: string | undefined, where: string): BackendName | undefined {
  if (value === undefined || value === '') return undefined;
  if ((backendNames as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`${where}: unknown backend '${value}', expected one of ${backendNames.join('|')}`);
}

function parseKernelSet(value: string | undefined): WasmKernelSet {
  if (value === undefined || value === '' || value === 'fast') return 'fast';
  if (value === 'missing-only') return value;
  throw new Error(`EMO_DIR_KERNELS: unknown kernel set '${value}', expected fast|missing-only`);
}

function defaultImport(specifier: string): Promise<unknown> {
  // A variable specifier keeps TypeScript from resolving the optional packages at typecheck time.
  const name: string = specifier;
  return import(name);
}

/** One short reason a package did not load: "not installed" or the first line of its error. */
function loadFailure(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  const message = error instanceof Error ? error.message : String(error);
  return `failed to load: ${message.split('\n')[0]}`;
}

export interface BackendChoice {
  readonly backend: BackendName;
  readonly provider: string;
  /** Packages tried and skipped on the way, with the reason (for the log line). */
  readonly skipped: readonly string[];
}

/**
 * Loads the package of the requested backend (or walks the default order) and returns the
 * choice without activating it. Throws if an explicitly requested backend cannot load.
 */
export async function chooseBackend(
  requested: BackendName | undefined,
  importModule: (specifier: string) => Promise<unknown> = defaultImport,
): Promise<BackendChoice> {
  const skipped: string[] = [];
  if (requested === undefined || requested === 'tensorflow') {
    for (const pkg of tensorflowPackages) {
      try {
        await importModule(pkg);
        return { backend: 'tensorflow', provider: pkg, skipped };
      } catch (error) {
        skipped.push(`${pkg} ${loadFailure(error)}`);
      }
    }
    if (requested === 'tensorflow') {
      throw new Error(
        `emo-dir engine: backend 'tensorflow' requested but unavailable (${skipped.join('; ')}); ` +
          `install @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu, or use EMO_DIR_BACKEND=wasm`,
      );
    }
  }
  if (requested === 'cpu') return { backend: 'cpu', provider: '@tensorflow/tfjs-backend-cpu', skipped };
  await importModule('@tensorflow/tfjs-backend-wasm');
  return { backend: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', skipped };
}

async function activate(options: EngineOptions, requested: BackendName | undefined): Promise<EngineInfo> {
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const threadsRequested = options.threads;
  if (threadsRequested !== undefined && (!Number.isInteger(threadsRequested) || threadsRequested < 1)) {
    throw new Error(`emo-dir engine: threads must be a positive integer, got ${threadsRequested}`);
  }
  if (threadsRequested !== undefined && requested !== 'wasm' && requested !== 'cpu') {
    // TensorFlow reads its pool sizes when the native library loads, so set them first.
    process.env.TF_NUM_INTRAOP_THREADS ??= String(threadsRequested);
    process.env.TF_NUM_INTEROP_THREADS ??= '1';
  }
  const choice = await chooseBackend(requested, options.importModule ?? defaultImport);
  const kernels = options.kernels ?? parseKernelSet(process.env.EMO_DIR_KERNELS);
  if (choice.backend === 'wasm') registerWasmTrainingKernels(kernels);
  if (kernels === 'fast') {
    registerLeanGradients();
    installBatchNormTraining();
  }
  const ok = await tf.setBackend(choice.backend);
  if (!ok) throw new Error(`emo-dir engine: backend '${choice.backend}' (${choice.provider}) failed to initialise`);
  await tf.ready();
  if (choice.backend === 'cpu') {
    // The cpu backend prints a multi-line "install tfjs-node" banner on first use; emo-dir chose
    // cpu on purpose (tests, or light work such as Plan) and already logged why, in one line.
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }

  let threads = 1;
  let simd: boolean | undefined;
  let detail = '';
  if (choice.backend === 'wasm') {
    simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    detail = ` simd=${simd ? 'on' : 'off'} kernels=${kernels} conv=${wasmConvKernel(kernels)}`;
    if (threadsRequested !== undefined && threadsRequested > 1) detail += ` (threads=${threadsRequested} ignored: ${wasmThreadsNote})`;
  } else if (choice.backend === 'tensorflow') {
    threads = Number(process.env.TF_NUM_INTRAOP_THREADS ?? 0);
  }
  const fallback = choice.skipped.length > 0 ? ` (${choice.skipped.join('; ')})` : '';
  log(`emo-dir engine: backend=${choice.backend} via ${choice.provider} threads=${threads || 'default'}${detail}${fallback}`);
  return { backend: choice.backend, provider: choice.provider, threads, skipped: choice.skipped, ...(simd === undefined ? {} : { simd }) };
}

/** The conv kernels the wasm backend runs, for the log line (with why, if not the requested ones). */
function wasmConvKernel(kernels: WasmKernelSet): string {
  if (kernels !== 'fast') return 'xnnpack';
  const { variant, note } = convKernelVariant();
  const used = variant !== 'xnnpack' && !nativeConvAvailable(tf.backend()) ? 'xnnpack' : variant;
  const why = used !== variant ? 'tfjs wasm memory not found' : note;
  return why === undefined ? used : `${used} (${why})`;
}

/**
 * Chooses and initialises the tfjs backend once per process and logs the choice in one line.
 * Calling it again returns the active backend (a different explicit request is an error).
 */
export async function initEngine(options: EngineOptions = {}): Promise<BackendName> {
  const requested = options.backend ?? parseBackendName(process.env.EMO_DIR_BACKEND, 'EMO_DIR_BACKEND');
  if (active === undefined && pending === undefined) {
    pending = activate(options, requested).then(
      (info) => (active = info),
      (error: unknown) => {
        pending = undefined; // let the caller retry with another backend
        throw error;
      },
    );
  }
  const info = active ?? (await (pending as Promise<EngineInfo>));
  if (options.backend !== undefined && options.backend !== info.backend) {
    throw new Error(`emo-dir engine: already initialised with backend '${info.backend}', cannot switch to '${options.backend}'`);
  }
  return info.backend;
}

/** The active engine, or undefined before `initEngine()` resolved. */
export function engineInfo(): EngineInfo | undefined {
  return active;
}


/** What the active engine computes on (DESIGN §3 "Scale": a GPU job must not run on the CPU). */
export interface DeviceReport {
  readonly backend: BackendName;
  readonly provider: string;
  /** Whether TensorFlow found a GPU device and places ops on it (always false on wasm/cpu). */
  readonly gpu: boolean;
  /** libtensorflow's version (tensorflow backend only). */
  readonly tensorflowVersion?: string;
  /** One line for logs: what runs where. */
  readonly description: string;
}

/** What tfjs-node's backend exposes about its device (absent on the other backends). */
interface TensorflowBackendLike {
  readonly isUsingGpuDevice?: unknown;
  readonly binding?: { readonly TF_Version?: unknown };
}

/**
 * The active engine's device. tfjs-node lists TensorFlow's devices when its backend starts and
 * uses the first GPU if there is one; a libtensorflow that cannot load CUDA, cuDNN or the driver
 * logs a warning and runs every op on the CPU, which only this flag reveals.
 */
export function deviceReport(): DeviceReport {
  const info = engineInfo();
  if (!info) throw new Error('emo-dir engine: deviceReport() before initEngine()');
  const backend = tf.backend() as unknown as TensorflowBackendLike;
  const gpu = info.backend === 'tensorflow' && backend.isUsingGpuDevice === true;
  const version = info.backend === 'tensorflow' && typeof backend.binding?.TF_Version === 'string' ? backend.binding.TF_Version : undefined;
  const engine = `backend ${info.backend} via ${info.provider}${version ? `, libtensorflow ${version}` : ''}`;
  const why = info.skipped.length > 0 ? `; ${info.skipped.join('; ')}` : '';
  const description = gpu ? `GPU (${engine})` : `CPU only (${engine}${why})`;
  return { backend: info.backend, provider: info.provider, gpu, ...(version ? { tensorflowVersion: version } : {}), description };
}

/** The engine runs without a GPU where one is required. */
export class NoGpuError extends Error {
  constructor(readonly report: DeviceReport) {
    super(
      `no GPU: TensorFlow sees no GPU device, the engine runs on the ${report.description}; ` +
        'a GPU job on the CPU would bill GPU hours at CPU speed (a CUDA, cuDNN or driver mismatch makes TensorFlow fall back silently)',
    );
    this.name = 'NoGpuError';
  }
}

/** The device report when a GPU is in use; NoGpuError (one line) otherwise. */
export function requireGpu(report: DeviceReport = deviceReport()): DeviceReport {
  if (!report.gpu) throw new NoGpuError(report);
  return report;
}

export { tf };
