/**
 * Training kernels for the tfjs `wasm` backend.
 *
 * tfjs-backend-wasm 4.22 can run inference but not train a CNN well:
 * - `Conv2DBackpropFilter` and the depthwise backprop kernels are not registered at all, so the
 *   first `tf.grad` through a conv throws;
 * - its `Conv2DBackpropInput` is a naive six-deep C++ loop (no SIMD, no blocking): about half
 *   of a ResNet-20 train step;
 * - its `FusedBatchNorm` divides by sqrt(variance + eps) per element: a quarter of ResNet-20
 *   inference.
 *
 * Convolutions go to the project's own WebAssembly kernels (./native/conv-kernels.ts) where
 * they win: the 3x3 stride-1 'same' convs that dominate ResNets (Conv2D, FusedConv2D with bias
 * and/or relu, both gradients) by Winograd, ~2-3x faster than XNNPACK; strided forward convs
 * and the gradients of all other dense convs by a direct GEMM. The remaining cases (e.g. 1x1
 * stride-1 forward, other fused activations, dilation) keep the stock or composed kernels.
 *
 * The other kernels here are composed from kernels the wasm backend does fast (XNNPACK
 * convolution, transpose, pad, slice), so they run at XNNPACK speed; the composed conv
 * gradients remain as the fallback when the native module is off (EMO_DIR_CONV_KERNEL=xnnpack).
 *
 * The kernels call the wasm backend's own kernel functions directly on `TensorInfo`s (not tf
 * ops): a kernel runs inside the engine's kernel scope, so no tape or tidy is involved, and
 * every intermediate is released through `Scratch.dispose()` (tests check that no tensor data
 * is left behind).
 */
import * as tf from '@tensorflow/tfjs';
import type {
  KernelBackend,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { conv3x3, conv3x3FilterGrad, convDirect, convDirectFilterGrad, convDirectInputGrad, nativeConvAvailable } from './native/conv-kernels.ts';

const WASM = 'wasm';

/** Kernel names this module registers for the wasm backend (and tests check). */
export const wasmTrainingKernelNames = [
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'FusedBatchNorm',
  'Identity',
  'Cast',
  'Sum',
  'Mean',
] as const;

type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];
type Pad = 'valid' | 'same' | number | ExplicitPad;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;

/**
 * Runs wasm kernels on TensorInfos and remembers every output, so one `dispose()` frees all
 * intermediates. `keep()` takes the final result out of the list.
 */
class Scratch {
  private readonly owned: TensorInfo[] = [];

  constructor(readonly backend: KernelBackend) {}

  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const kernel = tf.getKernel(kernelName, WASM);
    if (kernel === undefined) {
      throw new Error(`emo-dir wasm kernels: kernel '${kernelName}' is not registered for backend 'wasm'`);
    }
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.backend });
    if (Array.isArray(out)) {
      throw new Error(`emo-dir wasm kernels: kernel '${kernelName}' returned several outputs, one expected`);
    }
    this.owned.push(out);
    return out;
  }

  /** Runs the stock wasm kernel that this module replaced (see registerWasmTrainingKernels). */
  runStock(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    return this.own(runStock(kernelName, { inputs, attrs, backend: this.backend }));
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Zero padding; `paddings` is one [before, after] pair per axis (non-negative). */
  pad(x: TensorInfo, paddings: Array<[number, number]>): TensorInfo {
    if (paddings.every(([before, after]) => before === 0 && after === 0)) return x;
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }

  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    if (size.every((s, axis) => s === x.shape[axis]) && begin.every((b) => b === 0)) return x;
    return this.run('Slice', { x }, { begin, size });
  }

  /** Adds a TensorInfo made outside `run` (e.g. by backend.write) to the disposal list. */
  own(x: TensorInfo): TensorInfo {
    this.owned.push(x);
    return x;
  }

  /** Removes this TensorInfo from the disposal list: the caller owns it. */
  keep(x: TensorInfo): TensorInfo {
    const index = this.owned.lastIndexOf(x);
    if (index >= 0) {
      this.owned.splice(index, 1);
      return x;
    }
    // `x` is an input of the kernel (a no-op pad or slice returned it): the engine needs an
    // output it may dispose independently, so hand back a reference-counted alias.
    const alias = this.run('Identity', { x });
    this.owned.pop();
    return alias;
  }

  dispose(): void {
    for (const info of this.owned) this.backend.disposeData(info.dataId);
    this.owned.length = 0;
  }
}

function withScratch(backend: KernelBackend, body: (s: Scratch) => TensorInfo): TensorInfo {
  const scratch = new Scratch(backend);
  try {
    return scratch.keep(body(scratch));
  } finally {
    scratch.dispose();
  }
}

/** The named input of a kernel call; tfjs passes every declared input, so absence is a bug. */
function input(inputs: NamedTensorInfoMap, name: string, kernelName: string): TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new Error(`emo-dir wasm kernels: ${kernelName} called without input '${name}'`);
  return info;
}

function assertChannelsLast(kernelName: string, dataFormat: unknown): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`emo-dir wasm kernels: ${kernelName} supports only NHWC data, got dataFormat '${String(dataFormat)}'`);
  }
}

function pair(value: number | [number, number] | undefined): [number, number] {
  if (value === undefined) return [1, 1];
  return typeof value === 'number' ? [value, value] : value;
}

/**
 * Pads (positive) or crops (negative) the two spatial axes of an NHWC tensor: returns the
 * tensor with `top`/`bottom`/`left`/`right` rows/columns added or removed.
 */
function padOrCrop(s: Scratch, x: TensorInfo, top: number, bottom: number, left: number, right: number): TensorInfo {
  const [b, h, w, c] = x.shape;
  const cropped = s.slice(
    x,
    [0, Math.max(0, -top), Math.max(0, -left), 0],
    [b, h - Math.max(0, -top) - Math.max(0, -bottom), w - Math.max(0, -left) - Math.max(0, -right), c],
  );
  return s.pad(cropped, [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ]);
}

/**
 * Inserts `sh - 1` zero rows after every row and `sw - 1` zero columns after every column of an
 * NHWC tensor ([b, h, w, c] -> [b, h*sh, w*sw, c]): the "fractionally strided" input of a
 * transposed convolution. Done as reshape + pad + reshape, i.e. one wasm pad.
 */
function dilateSpatial(s: Scratch, x: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return x;
  const [b, h, w, c] = x.shape;
  const expanded = s.reshape(x, [b, h, 1, w, 1, c]);
  const padded = s.pad(expanded, [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return s.reshape(padded, [b, h * sh, w * sw, c]);
}

/**
 * Conv2DBackpropFilter as one XNNPACK convolution: with the batch as the channel axis,
 *   dW[kh, kw, ci, co] = sum_{b, oh, ow} x[b, oh*s + kh - padTop, ow*s + kw - padLeft, ci] * dy[b, oh, ow, co]
 * is a convolution of x^T = [ci, H, W, b] ("ci images with b channels") by the filter
 * dy^T = [OH, OW, b, co] with dilation = stride, whose output is [ci, KH, KW, co].
 * XNNPACK runs it as one GEMM over an indirection buffer (no im2col copy).
 */
function conv2DBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const x = input(args.inputs, 'x', 'Conv2DBackpropFilter');
  const dy = input(args.inputs, 'dy', 'Conv2DBackpropFilter');
  const attrs = args.attrs ?? {};
  assertChannelsLast('Conv2DBackpropFilter', attrs.dataFormat);
  const filterShape = attrs.filterShape as [number, number, number, number];
  const native =
    dy.dtype === 'float32' &&
    isNativeConv(x, filterShape, attrs) &&
    sameShape(dy.shape, [...x.shape.slice(0, 3), filterShape[3]]) &&
    x.shape[3] === filterShape[2];
  if (native && useNativeConv(args.backend)) return conv3x3FilterGrad(args.backend, x, dy);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    attrs.strides as number | [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as RoundingMode,
  );
  if (isDirectConv(args.backend, info, x, dy)) return convDirectFilterGrad(args.backend, x, dy, info);
  const [kh, kw] = filterShape;
  return withScratch(args.backend, (s) => {
    const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    // Rows the dilated dy filter covers: the padded input must be exactly (kh - 1) + (oh - 1) * sh + 1
    // rows high so that the correlation yields kh rows; extra input rows (valid padding with a
    // remainder) are cropped.
    const bottom = kh - 1 + (oh - 1) * sh + 1 - h - top;
    const right = kw - 1 + (ow - 1) * sw + 1 - w - left;
    const xT = s.transpose(x, [3, 1, 2, 0]);
    // Padding goes to XNNPACK as explicit padding (no padded copy); only crops need a slice.
    const xFit = padOrCrop(s, xT, Math.min(0, top), Math.min(0, bottom), Math.min(0, left), Math.min(0, right));
    const dyT = s.transpose(dy, [1, 2, 0, 3]);
    const dwT = s.run('Conv2D', { x: xFit, filter: dyT }, {
      strides: [1, 1],
      pad: [
        [0, 0],
        [Math.max(0, top), Math.max(0, bottom)],
        [Math.max(0, left), Math.max(0, right)],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations: [sh, sw],
    });
    return s.transpose(dwT, [1, 2, 0, 3]);
  });
}

/** [kh, kw, ci, co] -> rotated by 180 degrees with in/out channels swapped: [kh, kw, co, ci]. */
function flippedFilter(s: Scratch, filter: TensorInfo): TensorInfo {
  const [kh, kw] = filter.shape;
  const reversed = kh === 1 && kw === 1 ? filter : s.run('Reverse', { x: filter }, { dims: [0, 1] });
  return s.transpose(reversed, [0, 1, 3, 2]);
}

/**
 * Conv2DBackpropInput (also the forward pass of conv2dTranspose) as a stride-1 XNNPACK
 * convolution of dy, zero-dilated by the stride, with the flipped filter:
 *   dx[i] = sum_k D[i + k - (KH - 1 - padTop)] * W[KH - 1 - k],  D = dy with stride-1 zeros.
 * 1x1 filters skip the dilation of the wide tensor: the channel mixing runs first on the
 * small dy, then the result is spread onto the stride grid.
 */
function conv2DBackpropInput(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const dy = input(args.inputs, 'dy', 'Conv2DBackpropInput');
  const filter = input(args.inputs, 'filter', 'Conv2DBackpropInput');
  const attrs = args.attrs ?? {};
  assertChannelsLast('Conv2DBackpropInput', attrs.dataFormat);
  const inputShape = attrs.inputShape as [number, number, number, number];
  const native =
    filter.dtype === 'float32' && isNativeConv(dy, filter.shape, attrs) && sameShape(dy.shape, [...inputShape.slice(0, 3), filter.shape[3]]);
  if (native && useNativeConv(args.backend)) {
    // dx = conv3x3(dy, filter rotated by 180 degrees with in/out channels swapped), pad 1.
    return conv3x3(args.backend, { x: dy, filter, relu: false, flip: true, cout: filter.shape[2] });
  }
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides as number | [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as RoundingMode,
  );
  if (isDirectConv(args.backend, info, dy, filter)) return convDirectInputGrad(args.backend, dy, filter, info);
  return withScratch(args.backend, (s) => transposedConv(s, dy, filter, info, [1, 1], false));
}

/**
 * Shared by the dense and depthwise input gradients: `dy` [b, OH, OW, c_out] to dx [b, H, W, c_in].
 * `dilation` is the forward conv's dilation (its flipped conv uses the same one).
 */
function transposedConv(
  s: Scratch,
  dy: TensorInfo,
  filter: TensorInfo,
  info: ReturnType<typeof tf.backend_util.computeConv2DInfo>,
  dilation: [number, number],
  depthwise: boolean,
): TensorInfo {
  const { strideHeight: sh, strideWidth: sw, inHeight: h, inWidth: w } = info;
  const [dh, dw] = dilation;
  const [kh, kw] = filter.shape;
  const effH = (kh - 1) * dh + 1;
  const effW = (kw - 1) * dw + 1;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (!depthwise && kh === 1 && kw === 1) {
    // dx = spread(dy . W^T): mix channels on the small tensor, then place rows on the grid.
    const mixed = s.run('Conv2D', { x: dy, filter: s.transpose(filter, [0, 1, 3, 2]) }, {
      strides: [1, 1],
      pad: 'valid',
      dataFormat: 'NHWC',
      dilations: [1, 1],
    });
    const spread = dilateSpatial(s, mixed, sh, sw);
    // Row j*sh of `spread` is input row j*sh - top: shift by `top`, then fit to h rows.
    return padOrCrop(s, spread, -top, h + top - spread.shape[1], -left, w + left - spread.shape[2]);
  }
  const spread = dilateSpatial(s, dy, sh, sw);
  // The valid correlation needs h + effH - 1 rows, of which the first effH - 1 - top are zeros.
  const padTop = effH - 1 - top;
  const padLeft = effW - 1 - left;
  const padBottom = h + effH - 1 - padTop - spread.shape[1];
  const padRight = w + effW - 1 - padLeft - spread.shape[2];
  const convAttrs = { strides: [1, 1], dataFormat: 'NHWC', dilations: [dh, dw] };
  if (!depthwise) {
    const flipped = flippedFilter(s, filter);
    // Explicit padding goes to XNNPACK directly when it is non-negative (no padded copy).
    if (padTop >= 0 && padBottom >= 0 && padLeft >= 0 && padRight >= 0) {
      return s.run('Conv2D', { x: spread, filter: flipped }, {
        ...convAttrs,
        pad: [
          [0, 0],
          [padTop, padBottom],
          [padLeft, padRight],
          [0, 0],
        ],
      });
    }
    const fitted = padOrCrop(s, spread, padTop, padBottom, padLeft, padRight);
    return s.run('Conv2D', { x: fitted, filter: flipped }, { ...convAttrs, pad: 'valid' });
  }
  // Depthwise: filter [kh, kw, c, m], dy has c*m channels (channel c*m + q from filter[.., c, q]).
  const [, , c, m] = filter.shape;
  const reversed = kh === 1 && kw === 1 ? filter : s.run('Reverse', { x: filter }, { dims: [0, 1] });
  const perChannel = s.reshape(reversed, [kh, kw, c * m, 1]);
  const fitted = padOrCrop(s, spread, padTop, padBottom, padLeft, padRight);
  const dxPerOutput = s.run('DepthwiseConv2dNative', { x: fitted, filter: perChannel }, { ...convAttrs, pad: 'valid' });
  if (m === 1) return dxPerOutput;
  const [b] = dy.shape;
  const grouped = s.reshape(dxPerOutput, [b, h, w, c, m]);
  return s.run('Sum', { x: grouped }, { axis: [4], keepDims: false });
}

function depthwiseInfo(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: NamedAttrMap,
): { info: ReturnType<typeof tf.backend_util.computeConv2DInfo>; dilation: [number, number] } {
  const dilation = pair(attrs.dilations as number | [number, number] | undefined);
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides as number | [number, number],
    dilation,
    attrs.pad as Pad,
    attrs.dimRoundingMode as RoundingMode,
    true,
  );
  return { info, dilation };
}

function depthwiseBackpropInput(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const dy = input(args.inputs, 'dy', 'DepthwiseConv2dNativeBackpropInput');
  const filter = input(args.inputs, 'filter', 'DepthwiseConv2dNativeBackpropInput');
  const attrs = args.attrs ?? {};
  assertChannelsLast('DepthwiseConv2dNativeBackpropInput', attrs.dataFormat);
  const { info, dilation } = depthwiseInfo(
    attrs.inputShape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs,
  );
  return withScratch(args.backend, (s) => transposedConv(s, dy, filter, info, dilation, true));
}

/**
 * Depthwise filter gradient, one filter tap at a time: for tap (i, j) the input window is a
 * strided slice of the padded x, and dW[i, j, c, q] = sum_{b, oh, ow} window[.., c] * dy[.., c*m + q].
 * (A depthwise filter has few taps and the products are elementwise, so there is no GEMM to win.)
 */
function depthwiseBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const x = input(args.inputs, 'x', 'DepthwiseConv2dNativeBackpropFilter');
  const dy = input(args.inputs, 'dy', 'DepthwiseConv2dNativeBackpropFilter');
  const attrs = args.attrs ?? {};
  assertChannelsLast('DepthwiseConv2dNativeBackpropFilter', attrs.dataFormat);
  const filterShape = attrs.filterShape as [number, number, number, number];
  const { info, dilation } = depthwiseInfo(x.shape as [number, number, number, number], filterShape, attrs);
  const [kh, kw, c, m] = filterShape;
  return withScratch(args.backend, (s) => {
    const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: b } = info;
    const [dh, dw] = dilation;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const bottom = Math.max(0, (kh - 1) * dh + (oh - 1) * sh + 1 - h - top);
    const right = Math.max(0, (kw - 1) * dw + (ow - 1) * sw + 1 - w - left);
    const xPad = s.pad(x, [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ]);
    const dyGrouped = s.reshape(dy, [b, oh, ow, c, m]);
    const taps: TensorInfo[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const window = s.run('StridedSlice', { x: xPad }, {
          begin: [0, i * dh, j * dw, 0],
          end: [b, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, c],
          strides: [1, sh, sw, 1],
          beginMask: 0,
          endMask: 0,
          ellipsisMask: 0,
          newAxisMask: 0,
          shrinkAxisMask: 0,
        });
        const product = s.run('Multiply', { a: s.reshape(window, [b, oh, ow, c, 1]), b: dyGrouped });
        taps.push(s.run('Sum', { x: product }, { axis: [0, 1, 2], keepDims: false }));
      }
    }
    const stacked = taps.length === 1 ? taps[0] : s.run('Concat', taps as unknown as NamedTensorInfoMap, { axis: 0 });
    return s.reshape(stacked, [kh, kw, c, m]);
  });
}

/**
 * Whether convolutions go to the native kernels: only with the `fast` set (`missing-only` is the
 * stock baseline, whose Conv2DBackpropFilter must stay the composed one) and when the module
 * loaded on this backend (not EMO_DIR_CONV_KERNEL=xnnpack).
 */
function useNativeConv(backend: KernelBackend): boolean {
  return registered === 'fast' && nativeConvAvailable(backend);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isOnes(value: unknown): boolean {
  return value === undefined || value === 1 || (Array.isArray(value) && value.every((v) => v === 1));
}

/** 'same', or 1, or explicit padding of one row/column on every side of H and W. */
function isPadOne(pad: unknown): boolean {
  if (pad === 'same' || pad === 1) return true;
  return Array.isArray(pad) && JSON.stringify(pad) === '[[0,0],[1,1],[1,1],[0,0]]';
}

/**
 * Whether a conv of `x` (or dy) with a filter of this shape and these attributes is the case of
 * the native kernel: float32 NHWC, 3x3 filter, stride 1, dilation 1, pad 1, non-empty. (Whether
 * native kernels are on at all, e.g. not EMO_DIR_CONV_KERNEL=xnnpack, is `useNativeConv`.)
 */
function isNativeConv(x: TensorInfo, filterShape: readonly number[], attrs: NamedAttrMap): boolean {
  return (
    x.dtype === 'float32' &&
    x.shape.length === 4 &&
    filterShape.length === 4 &&
    filterShape[0] === 3 &&
    filterShape[1] === 3 &&
    x.shape.every((d) => d > 0) &&
    filterShape.every((d) => d > 0) &&
    (attrs.dataFormat === undefined || attrs.dataFormat === 'NHWC') &&
    isOnes(attrs.strides) &&
    isOnes(attrs.dilations) &&
    isPadOne(attrs.pad)
  );
}

/**
 * Whether the native direct kernel (im2col GEMM) takes a conv of this geometry: float32,
 * non-empty, dilation 1, and the native module loaded. Used for every filter gradient and input
 * gradient (3-19x faster than the composed XNNPACK kernels) and for strided forward convs
 * larger than 1x1 (XNNPACK's slowest case; 1x1 forward stays with XNNPACK, which is as fast).
 */
function isDirectConv(backend: KernelBackend, info: ReturnType<typeof tf.backend_util.computeConv2DInfo>, ...tensors: TensorInfo[]): boolean {
  const sizes = [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels];
  return (
    tensors.every((t) => t.dtype === 'float32') &&
    sizes.every((d) => d > 0) &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    useNativeConv(backend)
  );
}

/** The geometry of a forward conv when the direct kernel should run it (strided, larger than 1x1), else undefined. */
function stridedConvInfo(
  backend: KernelBackend,
  x: TensorInfo,
  filter: TensorInfo,
  attrs: NamedAttrMap,
): ReturnType<typeof tf.backend_util.computeConv2DInfo> | undefined {
  if (x.shape.length !== 4 || filter.shape.length !== 4 || x.shape[3] !== filter.shape[2]) return undefined;
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') return undefined;
  if (isOnes(attrs.strides) || (filter.shape[0] === 1 && filter.shape[1] === 1)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides as number | [number, number],
    attrs.dilations as number | [number, number],
    attrs.pad as Pad,
    attrs.dimRoundingMode as RoundingMode,
  );
  return isDirectConv(backend, info, x, filter) ? info : undefined;
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap };

function conv2D(args: KernelArgs): TensorInfo {
  const x = input(args.inputs, 'x', 'Conv2D');
  const filter = input(args.inputs, 'filter', 'Conv2D');
  const attrs = args.attrs ?? {};
  const native = filter.dtype === 'float32' && x.shape[3] === filter.shape[2] && isNativeConv(x, filter.shape, attrs);
  if (!native || !useNativeConv(args.backend)) {
    const strided = stridedConvInfo(args.backend, x, filter, attrs);
    if (strided !== undefined) return convDirect(args.backend, { x, filter, relu: false, geometry: strided });
    return runStock('Conv2D', args);
  }
  return conv3x3(args.backend, { x, filter, relu: false, flip: false, cout: filter.shape[3] });
}

/** A bias the native kernel takes: float32 with one value per output channel ([C] or [1, .., C]). */
function isChannelBias(bias: TensorInfo | undefined, channels: number): boolean {
  if (bias === undefined) return true;
  return bias.dtype === 'float32' && bias.shape[bias.shape.length - 1] === channels && bias.shape.slice(0, -1).every((d) => d === 1);
}

/** FusedConv2D with bias and/or relu; other activations (prelu, leakyrelu, relu6, ...) go to the stock kernel. */
function fusedConv2D(args: KernelArgs): TensorInfo {
  const x = input(args.inputs, 'x', 'FusedConv2D');
  const filter = input(args.inputs, 'filter', 'FusedConv2D');
  const attrs = args.attrs ?? {};
  const activation = attrs.activation ?? 'linear';
  const bias = args.inputs.bias ?? undefined;
  const supported =
    (activation === 'linear' || activation === 'relu') &&
    args.inputs.preluActivationWeights == null &&
    filter.dtype === 'float32' &&
    isChannelBias(bias, filter.shape[3]);
  const winograd = supported && x.shape[3] === filter.shape[2] && isNativeConv(x, filter.shape, attrs) && useNativeConv(args.backend);
  if (!winograd) {
    const strided = supported ? stridedConvInfo(args.backend, x, filter, attrs) : undefined;
    if (strided === undefined) return runStock('FusedConv2D', args);
    return convDirect(args.backend, { x, filter, ...(bias === undefined ? {} : { bias }), relu: activation === 'relu', geometry: strided });
  }
  return conv3x3(args.backend, {
    x,
    filter,
    ...(bias === undefined ? {} : { bias }),
    relu: activation === 'relu',
    flip: false,
    cout: filter.shape[3],
  });
}

/** The stock wasm kernels this module replaces, kept for the cases it hands back to them. */
const stockKernels = new Map<string, KernelConfig>();
/** Stock kernels whose setupFunc ran, per backend instance. */
const stockReady = new WeakMap<KernelBackend, Set<string>>();

/**
 * Runs the stock kernel. Its setupFunc (which binds the C++ entry point) is run here once per
 * backend, because a kernel unregistered before the backend initialised never got it.
 */
function runStock(kernelName: string, args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const stock = stockKernels.get(kernelName);
  if (stock === undefined) throw new Error(`emo-dir wasm kernels: no stock wasm kernel '${kernelName}' to fall back to`);
  let ready = stockReady.get(args.backend);
  if (ready === undefined) {
    ready = new Set();
    stockReady.set(args.backend, ready);
  }
  if (!ready.has(kernelName)) {
    stock.setupFunc?.(args.backend);
    ready.add(kernelName);
  }
  return stock.kernelFunc(args) as TensorInfo;
}

/** Reads a small per-channel parameter and broadcasts a scalar to `channels` values. */
function channelValues(backend: KernelBackend, info: TensorInfo | undefined, channels: number, fallback: number): Float32Array | undefined {
  if (info === undefined) return new Float32Array(channels).fill(fallback);
  const size = info.shape.reduce((a, b) => a * b, 1);
  // Per-channel means a [C] (or [1, .., 1, C]) tensor; anything else goes to the stock kernel.
  if (size !== channels && size !== 1) return undefined;
  if (info.shape.slice(0, -1).some((d) => d !== 1)) return undefined;
  const values = backend.readSync(info.dataId) as Float32Array;
  return size === channels ? values : new Float32Array(channels).fill(values[0]);
}

/**
 * FusedBatchNorm (inference form, and the forward of training mode after tf.moments) as one
 * XNNPACK 1x1 depthwise convolution with bias: y = x * a + b per channel, with
 * a = scale / sqrt(variance + eps) and b = offset - mean * a folded on the host (C values).
 * The stock wasm kernel does the division per element: ~3x slower.
 */
function fusedBatchNorm(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const x = input(args.inputs, 'x', 'FusedBatchNorm');
  const { backend } = args;
  const channels = x.shape[x.shape.length - 1];
  const epsilon = (args.attrs?.varianceEpsilon as number | undefined) ?? 0.001;
  const mean = channelValues(backend, input(args.inputs, 'mean', 'FusedBatchNorm'), channels, 0);
  const variance = channelValues(backend, input(args.inputs, 'variance', 'FusedBatchNorm'), channels, 1);
  const scale = channelValues(backend, args.inputs.scale, channels, 1);
  const offset = channelValues(backend, args.inputs.offset, channels, 0);
  if (mean === undefined || variance === undefined || scale === undefined || offset === undefined || x.dtype !== 'float32') {
    return runStock('FusedBatchNorm', args);
  }
  const a = new Float32Array(channels);
  const b = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    a[c] = scale[c] / Math.sqrt(variance[c] + epsilon);
    b[c] = offset[c] - mean[c] * a[c];
  }
  return withScratch(backend, (s) => {
    const filter = s.own({ dataId: backend.write(a, [1, 1, channels, 1], 'float32'), shape: [1, 1, channels, 1], dtype: 'float32' });
    const bias = s.own({ dataId: backend.write(b, [channels], 'float32'), shape: [channels], dtype: 'float32' });
    const size = x.shape.reduce((p, d) => p * d, 1);
    const image = x.shape.length === 4 ? x : s.reshape(x, [1, size / channels, 1, channels]);
    const y = s.run('FusedDepthwiseConv2D', { x: image, filter, bias }, {
      strides: [1, 1],
      pad: 'valid',
      dilations: [1, 1],
      dataFormat: 'NHWC',
      activation: 'linear',
    });
    return x.shape.length === 4 ? y : s.reshape(y, x.shape);
  });
}

/**
 * Identity as a reference-counted alias of the input, as the cpu backend does it. The stock
 * wasm Identity copies the whole buffer, and training calls it ~10 times per layer (tf.clone in
 * the Cast and Identity gradients, tfjs-layers' add). tfjs tensors are immutable and wasm
 * kernels always write fresh outputs, so sharing the buffer is safe.
 */
function identity(args: { inputs: NamedTensorInfoMap; backend: KernelBackend }): TensorInfo {
  const x = input(args.inputs, 'x', 'Identity');
  if (x.dtype === 'string') return runStock('Identity', args);
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Cast to the same dtype is an alias too (tf.moments casts its float32 input to float32). */
function cast(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const x = input(args.inputs, 'x', 'Cast');
  if (args.attrs?.dtype !== x.dtype || x.dtype === 'string') return runStock('Cast', args);
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Taps of the depthwise "sum" filter: 25 is a native XNNPACK dwconv tile (5x5), ~6x faster than Sum. */
const SUM_TAPS = 25;
const onesFilters = new WeakMap<KernelBackend, Map<number, TensorInfo>>();

/**
 * A [SUM_TAPS, 1, channels, 1] filter of ones, made once per backend and channel count and
 * kept: XNNPACK caches its packed operator by filter id, so reusing the filter reuses that too.
 */
function onesFilter(backend: KernelBackend, channels: number): TensorInfo {
  let byChannels = onesFilters.get(backend);
  if (byChannels === undefined) {
    byChannels = new Map();
    onesFilters.set(backend, byChannels);
  }
  let filter = byChannels.get(channels);
  if (filter === undefined) {
    const shape = [SUM_TAPS, 1, channels, 1];
    filter = { dataId: backend.write(new Float32Array(SUM_TAPS * channels).fill(1), shape, 'float32'), shape, dtype: 'float32' };
    byChannels.set(channels, filter);
  }
  return filter;
}

/** Whether `axis` reduces exactly the leading axes of a rank >= 2 tensor (per-channel statistics). */
function reducesLeadingAxes(x: TensorInfo, axis: unknown): boolean {
  if (x.shape.length < 2 || x.dtype !== 'float32') return false;
  const axes = [...tf.util.parseAxisParam(axis as number | number[], x.shape)].sort((a, b) => a - b);
  return axes.length === x.shape.length - 1 && axes.every((a, i) => a === i);
}

/**
 * Sum over the leading axes of [..., C] (batch-norm statistics and their gradients). The stock
 * wasm Sum/Mean transpose the tensor so the reduced axes are innermost and then add with a
 * scalar loop; here a depthwise conv with a 25x1 ones filter and stride 25 sums groups of 25
 * rows per channel with XNNPACK SIMD, and the stock Sum finishes the 25x smaller remainder.
 */
function sumLeadingAxes(s: Scratch, x: TensorInfo): TensorInfo {
  const channels = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((p, d) => p * d, 1) / channels;
  const sumRows = (t: TensorInfo): TensorInfo => s.runStock('Sum', { x: t }, { axis: [0, 1, 2], keepDims: false });
  const image = s.reshape(x, [1, rows, 1, channels]);
  if (rows < 2 * SUM_TAPS) return sumRows(image);
  // Implicit zero padding at the end lets the last window cover the remainder rows (a Slice
  // of the tail would cost more than the whole reduction: the wasm Slice is slow).
  const padEnd = (SUM_TAPS - (rows % SUM_TAPS)) % SUM_TAPS;
  const partial = s.run('DepthwiseConv2dNative', { x: image, filter: onesFilter(s.backend, channels) }, {
    strides: [SUM_TAPS, 1],
    pad: [
      [0, 0],
      [0, padEnd],
      [0, 0],
      [0, 0],
    ],
    dilations: [1, 1],
    dataFormat: 'NHWC',
  });
  return sumRows(partial);
}

function reduceLeading(kind: 'Sum' | 'Mean', args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const x = input(args.inputs, 'x', kind);
  const attrs = args.attrs ?? {};
  if (!reducesLeadingAxes(x, attrs.axis)) return runStock(kind, args);
  return withScratch(args.backend, (s) => {
    const channels = x.shape[x.shape.length - 1];
    let result = sumLeadingAxes(s, x);
    if (kind === 'Mean') {
      const rows = x.shape.reduce((p, d) => p * d, 1) / channels;
      const inverse = s.own({ dataId: s.backend.write(new Float32Array([1 / rows]), [], 'float32'), shape: [], dtype: 'float32' });
      result = s.run('Multiply', { a: result, b: inverse });
    }
    const outShape = attrs.keepDims === true ? [...x.shape.slice(0, -1).map(() => 1), channels] : [channels];
    return s.reshape(result, outShape);
  });
}

/** The kernel functions by name (exported for the parity tests, which call them directly). */
export const wasmTrainingKernels: Readonly<Record<(typeof wasmTrainingKernelNames)[number], KernelFunc>> = {
  Conv2D: conv2D as unknown as KernelFunc,
  FusedConv2D: fusedConv2D as unknown as KernelFunc,
  Conv2DBackpropFilter: conv2DBackpropFilter as unknown as KernelFunc,
  Conv2DBackpropInput: conv2DBackpropInput as unknown as KernelFunc,
  DepthwiseConv2dNativeBackpropFilter: depthwiseBackpropFilter as unknown as KernelFunc,
  DepthwiseConv2dNativeBackpropInput: depthwiseBackpropInput as unknown as KernelFunc,
  FusedBatchNorm: fusedBatchNorm as unknown as KernelFunc,
  Identity: identity as unknown as KernelFunc,
  Cast: cast as unknown as KernelFunc,
  Sum: ((args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }) => reduceLeading('Sum', args)) as unknown as KernelFunc,
  Mean: ((args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }) => reduceLeading('Mean', args)) as unknown as KernelFunc,
};

/**
 * Which kernels to register: `fast` (all of them) or `missing-only` (just the ones the wasm
 * backend lacks, so training runs with every stock kernel: the baseline the fast set is
 * measured against).
 */
export type WasmKernelSet = 'fast' | 'missing-only';

let registered: WasmKernelSet | undefined;

/**
 * Registers the kernels for the wasm backend (once per process). The stock kernels replaced
 * (Conv2D, FusedConv2D, Conv2DBackpropInput, FusedBatchNorm, Identity, Cast, Sum, Mean) are
 * unregistered first, so tfjs does not warn about a duplicate, and kept as fallbacks.
 */
export function registerWasmTrainingKernels(set: WasmKernelSet = 'fast'): void {
  if (registered !== undefined) {
    if (registered !== set) throw new Error(`emo-dir wasm kernels: already registered as '${registered}', cannot switch to '${set}'`);
    return;
  }
  for (const kernelName of wasmTrainingKernelNames) {
    const stock = tf.getKernel(kernelName, WASM);
    if (stock !== undefined && set === 'missing-only') continue;
    if (stock !== undefined) {
      stockKernels.set(kernelName, stock);
      tf.unregisterKernel(kernelName, WASM);
    }
    tf.registerKernel({ kernelName, backendName: WASM, kernelFunc: wasmTrainingKernels[kernelName] });
  }
  registered = set;
}
