/**
 * Loader of the project's WebAssembly convolution kernels (./conv3x3.c) for the tfjs wasm
 * backend: Winograd F(4x4, 3x3) for 3x3 stride-1 'same' convs and their input gradient,
 * F(2x2, 3x3) for their filter gradient, and a direct im2col GEMM for strided convs and the
 * gradients of every other dense conv.
 *
 * The module imports tfjs-backend-wasm's own WebAssembly.Memory, so it reads the input tensors
 * and writes the output tensor where tfjs keeps them: no copies. It has no static data and no
 * shadow stack (scripts/build-wasm-kernels.sh checks), so it never writes memory it was not
 * handed; scratch comes from tfjs's malloc and is freed after each call.
 *
 * Variants (EMO_DIR_CONV_KERNEL): `relaxed-simd` uses f32x4.relaxed_madd (an FMA on x86 with
 * FMA3), which V8 11 (Node 20) accepts only behind --experimental-wasm-relaxed-simd: the flag is
 * set at run time if the binary does not validate without it. `simd128` is plain SIMD.
 * `auto` (default) takes relaxed-simd if it validates, else simd128. `xnnpack` disables these
 * kernels (XNNPACK convolutions and ../wasm-kernels.ts's composed gradients: the baseline).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * The slice of the WebAssembly JS API used here: the project compiles against lib ES2023 without
 * DOM, whose typings lack the (Node-provided) WebAssembly global.
 */
interface WasmModule {
  readonly brand?: 'WebAssembly.Module';
}
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { readonly exports: unknown };
  Memory: new (descriptor: { initial: number }) => object;
};

export type ConvKernelVariant = 'relaxed-simd' | 'simd128' | 'xnnpack';
type ConvKernelRequest = ConvKernelVariant | 'auto';

const binaries: Record<Exclude<ConvKernelVariant, 'xnnpack'>, string> = {
  'relaxed-simd': 'conv3x3-relaxed.wasm',
  simd128: 'conv3x3-simd128.wasm',
};

/** The parts of tfjs-backend-wasm's BackendWasm this module uses. */
interface WasmBackend {
  readonly wasm: {
    readonly asm?: { readonly memory?: unknown };
    _malloc(bytes: number): number;
    _free(pointer: number): void;
  };
  getMemoryOffset(dataId: object): number;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: object): boolean;
}

interface Exports {
  wino_conv_scratch_floats(n: number, h: number, w: number, cin: number, cout: number): number;
  wino_conv(
    x: number,
    filter: number,
    flip: number,
    bias: number,
    y: number,
    scratch: number,
    n: number,
    h: number,
    w: number,
    cin: number,
    cout: number,
    relu: number,
  ): void;
  wino_filter_grad_scratch_floats(n: number, h: number, w: number, cin: number, cout: number): number;
  wino_filter_grad(x: number, dy: number, dw: number, scratch: number, n: number, h: number, w: number, cin: number, cout: number): void;
  direct_scratch_floats(kh: number, kw: number, cin: number, cout: number): number;
  /** Geometry arguments after the pointers: n, h, w, cin, oh, ow, cout, kh, kw, sh, sw, pt, pl. */
  direct_conv(x: number, w: number, bias: number, y: number, scratch: number, ...geometryThenRelu: number[]): void;
  direct_input_grad(dy: number, w: number, dx: number, scratch: number, ...geometry: number[]): void;
  direct_filter_grad(x: number, dy: number, dw: number, scratch: number, ...geometry: number[]): void;
}

function parseRequest(value: string | undefined): ConvKernelRequest {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'relaxed-simd' || value === 'simd128' || value === 'xnnpack') return value;
  throw new Error(`EMO_DIR_CONV_KERNEL: unknown conv kernel '${value}', expected auto|relaxed-simd|simd128|xnnpack`);
}

function readBinary(name: string): Uint8Array | undefined {
  try {
    return readFileSync(new URL(`./${name}`, import.meta.url));
  } catch {
    return undefined; // e.g. a bundle without the .wasm next to it: the stock kernels remain
  }
}

/** Whether the relaxed binary validates, enabling V8's relaxed-SIMD flag if that is what it takes. */
function relaxedSimdUsable(bytes: Uint8Array): boolean {
  if (WebAssembly.validate(bytes)) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return WebAssembly.validate(bytes);
}

interface Selected {
  readonly variant: ConvKernelVariant;
  readonly module?: WasmModule;
  /** Why a requested variant was not taken (for the engine's log line). */
  readonly note?: string;
}

let selected: Selected | undefined;

function select(request: ConvKernelRequest): Selected {
  if (request === 'xnnpack') return { variant: 'xnnpack' };
  const notes: string[] = [];
  if (request === 'auto' || request === 'relaxed-simd') {
    const bytes = readBinary(binaries['relaxed-simd']);
    if (bytes !== undefined && relaxedSimdUsable(bytes)) return { variant: 'relaxed-simd', module: new WebAssembly.Module(bytes) };
    notes.push(bytes === undefined ? `${binaries['relaxed-simd']} missing` : 'relaxed SIMD unsupported');
  }
  const bytes = readBinary(binaries.simd128);
  if (bytes !== undefined && WebAssembly.validate(bytes)) {
    return { variant: 'simd128', module: new WebAssembly.Module(bytes), ...(notes.length > 0 ? { note: notes.join('; ') } : {}) };
  }
  notes.push(bytes === undefined ? `${binaries.simd128} missing` : 'wasm SIMD unsupported');
  return { variant: 'xnnpack', note: notes.join('; ') };
}

/** The conv kernel variant in use (chosen once per process from EMO_DIR_CONV_KERNEL and the runtime). */
export function convKernelVariant(): { variant: ConvKernelVariant; note?: string } {
  selected ??= select(parseRequest(process.env.EMO_DIR_CONV_KERNEL));
  return { variant: selected.variant, ...(selected.note === undefined ? {} : { note: selected.note }) };
}

const instances = new WeakMap<KernelBackend, Exports | null>();

/** The kernel module instantiated on this backend's memory, or undefined when unavailable. */
function exportsFor(backend: KernelBackend): Exports | undefined {
  const known = instances.get(backend);
  if (known !== undefined) return known ?? undefined;
  convKernelVariant();
  const memory = (backend as unknown as Partial<WasmBackend>).wasm?.asm?.memory;
  let result: Exports | null = null;
  if (selected?.module !== undefined && memory instanceof WebAssembly.Memory) {
    const instance = new WebAssembly.Instance(selected.module, { env: { memory } });
    result = instance.exports as unknown as Exports;
  }
  instances.set(backend, result);
  return result ?? undefined;
}

export interface Conv3x3Args {
  readonly x: TensorInfo;
  readonly filter: TensorInfo;
  readonly bias?: TensorInfo;
  readonly relu: boolean;
  /** The filter is that of the forward conv whose input gradient this is ([3, 3, cout, cin] rotated). */
  readonly flip: boolean;
  /** Output channels. */
  readonly cout: number;
}

/** Whether the native kernel is available for this backend (loaded and its memory found). */
export function nativeConvAvailable(backend: KernelBackend): boolean {
  return exportsFor(backend) !== undefined;
}

function kernelFor(backend: KernelBackend): { kernel: Exports; wasm: WasmBackend } {
  const kernel = exportsFor(backend);
  if (kernel === undefined) throw new Error('emo-dir conv kernels: native conv3x3 is not available');
  return { kernel, wasm: backend as unknown as WasmBackend };
}

/** A new float32 output filled by `body`; disposed again if `body` throws. */
function produce(wasm: WasmBackend, shape: number[], body: (out: TensorInfo) => void): TensorInfo {
  const out = wasm.makeOutput(shape, 'float32');
  try {
    body(out);
  } catch (error) {
    wasm.disposeData(out.dataId);
    throw error;
  }
  return out;
}

/** Runs `body` with `bytes` of tfjs-heap scratch, freed afterwards. */
function withHeap<T>(wasm: WasmBackend, bytes: number, body: (pointer: number) => T): T {
  const pointer = wasm.wasm._malloc(bytes) >>> 0;
  if (pointer === 0) throw new Error(`emo-dir conv kernels: out of wasm memory (${bytes} bytes)`);
  try {
    return body(pointer);
  } finally {
    wasm.wasm._free(pointer);
  }
}

/**
 * 3x3 stride-1 pad-1 NHWC convolution of `x` [n, h, w, cin] into a new float32 output
 * [n, h, w, cout]. The caller checks shapes and dtypes, and `nativeConvAvailable` first.
 */
export function conv3x3(backend: KernelBackend, args: Conv3x3Args): TensorInfo {
  const { kernel, wasm } = kernelFor(backend);
  const [n, h, w, cin] = args.x.shape;
  const { cout } = args;
  // malloc may grow the memory: offsets stay valid, and the kernel reads the memory directly.
  return produce(wasm, [n, h, w, cout], (out) =>
    withHeap(wasm, 4 * kernel.wino_conv_scratch_floats(n, h, w, cin, cout), (scratch) => {
      const x = wasm.getMemoryOffset(args.x.dataId);
      const filter = wasm.getMemoryOffset(args.filter.dataId);
      const bias = args.bias === undefined ? 0 : wasm.getMemoryOffset(args.bias.dataId);
      const y = wasm.getMemoryOffset(out.dataId);
      kernel.wino_conv(x, filter, args.flip ? 1 : 0, bias, y, scratch, n, h, w, cin, cout, args.relu ? 1 : 0);
    }),
  );
}

/**
 * Filter gradient [3, 3, cin, cout] of the 3x3 stride-1 pad-1 NHWC convolution of `x`
 * [n, h, w, cin] whose output gradient is `dy` [n, h, w, cout].
 */
export function conv3x3FilterGrad(backend: KernelBackend, x: TensorInfo, dy: TensorInfo): TensorInfo {
  const { kernel, wasm } = kernelFor(backend);
  const [n, h, w, cin] = x.shape;
  const cout = dy.shape[3];
  return produce(wasm, [3, 3, cin, cout], (out) =>
    withHeap(wasm, 4 * kernel.wino_filter_grad_scratch_floats(n, h, w, cin, cout), (scratch) => {
      const xAt = wasm.getMemoryOffset(x.dataId);
      const dyAt = wasm.getMemoryOffset(dy.dataId);
      kernel.wino_filter_grad(xAt, dyAt, wasm.getMemoryOffset(out.dataId), scratch, n, h, w, cin, cout);
    }),
  );
}

/** The parts of tfjs's Conv2DInfo (backend_util.computeConv2DInfo) the direct kernels need. */
export interface ConvGeometry {
  readonly batchSize: number;
  readonly inHeight: number;
  readonly inWidth: number;
  readonly inChannels: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly outChannels: number;
  readonly filterHeight: number;
  readonly filterWidth: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly padInfo: { readonly top: number; readonly left: number };
}

function geometryArgs(g: ConvGeometry): number[] {
  return [
    g.batchSize,
    g.inHeight,
    g.inWidth,
    g.inChannels,
    g.outHeight,
    g.outWidth,
    g.outChannels,
    g.filterHeight,
    g.filterWidth,
    g.strideHeight,
    g.strideWidth,
    g.padInfo.top,
    g.padInfo.left,
  ];
}

function directScratchBytes(kernel: Exports, g: ConvGeometry): number {
  return 4 * kernel.direct_scratch_floats(g.filterHeight, g.filterWidth, g.inChannels, g.outChannels);
}

/**
 * Direct (im2col-per-block GEMM) NHWC convolution, any filter size, stride and padding,
 * dilation 1: for the strided convolutions, where XNNPACK on wasm is slowest.
 */
export function convDirect(
  backend: KernelBackend,
  args: { x: TensorInfo; filter: TensorInfo; bias?: TensorInfo; relu: boolean; geometry: ConvGeometry },
): TensorInfo {
  const { kernel, wasm } = kernelFor(backend);
  const g = args.geometry;
  return produce(wasm, [g.batchSize, g.outHeight, g.outWidth, g.outChannels], (out) =>
    withHeap(wasm, directScratchBytes(kernel, g), (scratch) => {
      const x = wasm.getMemoryOffset(args.x.dataId);
      const filter = wasm.getMemoryOffset(args.filter.dataId);
      const bias = args.bias === undefined ? 0 : wasm.getMemoryOffset(args.bias.dataId);
      kernel.direct_conv(x, filter, bias, wasm.getMemoryOffset(out.dataId), scratch, ...geometryArgs(g), args.relu ? 1 : 0);
    }),
  );
}

/** Input gradient [n, h, w, cin] of the direct convolution for `dy` [n, oh, ow, cout] and its filter. */
export function convDirectInputGrad(backend: KernelBackend, dy: TensorInfo, filter: TensorInfo, g: ConvGeometry): TensorInfo {
  const { kernel, wasm } = kernelFor(backend);
  return produce(wasm, [g.batchSize, g.inHeight, g.inWidth, g.inChannels], (out) =>
    withHeap(wasm, directScratchBytes(kernel, g), (scratch) => {
      const dyAt = wasm.getMemoryOffset(dy.dataId);
      kernel.direct_input_grad(dyAt, wasm.getMemoryOffset(filter.dataId), wasm.getMemoryOffset(out.dataId), scratch, ...geometryArgs(g));
    }),
  );
}

/** Filter gradient [kh, kw, cin, cout] of the direct convolution of `x` with output gradient `dy`. */
export function convDirectFilterGrad(backend: KernelBackend, x: TensorInfo, dy: TensorInfo, g: ConvGeometry): TensorInfo {
  const { kernel, wasm } = kernelFor(backend);
  return produce(wasm, [g.filterHeight, g.filterWidth, g.inChannels, g.outChannels], (out) =>
    withHeap(wasm, directScratchBytes(kernel, g), (scratch) => {
      const xAt = wasm.getMemoryOffset(x.dataId);
      kernel.direct_filter_grad(xAt, wasm.getMemoryOffset(dy.dataId), wasm.getMemoryOffset(out.dataId), scratch, ...geometryArgs(g));
    }),
  );
}
