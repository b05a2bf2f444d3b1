/**
 * tfjs LayersModel (NHWC) -> ONNX ModelProto (NCHW), for the layer classes the pruning library
 * supports. The reverse of import.ts: kernels transposed back, pads made explicit, an NHWC flatten
 * followed by a Dense written as an NCHW Flatten with the Dense's rows permuted (so a PyTorch
 * Linear after `torch.flatten` round-trips to the same graph), and helper layers the importer
 * made (a pad before a conv, a crop after a transposed conv, the Reshape after a global pool)
 * folded back into their node. With the model's ONNX origin (metadata.ts) the file has the
 * original opset, input/output names and dims, node names and initializer names; without it,
 * names are the tfjs layer names and the opset is 13.
 */
import type { z } from 'zod';
import { tf } from '../../engine/backend.ts';
import { float, GraphEmitter, int, ints, text, type AttributeValue } from './emitter.ts';
import type { OnnxOrigin } from './metadata.ts';
import { permuteFlattenedRows } from './ops/dense.ts';
import { padsToOnnx, samePads2D, type Pads2D } from './padding.ts';
import { DataType, encodeModel, type ModelProtoInput, type valueInfoProtoSchema } from './proto.ts';

type ValueInfoOut = z.input<typeof valueInfoProtoSchema>;
type Config = Record<string, unknown>;

export const DEFAULT_EXPORT_OPSET = 13;
export const MIN_EXPORT_OPSET = 9;

export interface ExportOptions {
  /** The ONNX origin of the model, or of the model it was pruned from (names, opset, dims). */
  readonly origin?: OnnxOrigin;
  /** Default: the origin's opset, else 13. */
  readonly opset?: number;
}

export class OnnxExportError extends Error {
  constructor(
    readonly layer: string,
    readonly className: string,
    readonly problem: string,
  ) {
    super(`ONNX export: layer '${layer}' (${className}): ${problem}`);
    this.name = 'OnnxExportError';
  }
}

/** An exported value: its ONNX name and layout. */
interface Emitted {
  readonly name: string;
  readonly rank: number;
  /** The same values as [N, C, 1, 1] (a global pool's output before its Flatten). */
  readonly map1x1?: string;
  /** The ONNX value is an NCHW flatten of this [C, H, W]; the tfjs tensor is the NHWC flatten. */
  readonly nchwFlat?: readonly [number, number, number];
}

interface Visit {
  readonly layer: tf.layers.Layer;
  readonly inputs: readonly tf.SymbolicTensor[];
  readonly output: tf.SymbolicTensor;
}

function tensorKey(tensor: tf.SymbolicTensor): string {
  return `${tensor.sourceLayer.name}#${tensor.nodeIndex}#${tensor.tensorIndex}`;
}

/** The model's layer calls reachable from its outputs, inputs before consumers. */
function layerCalls(model: tf.LayersModel): Visit[] {
  const visits = new Map<string, Visit>();
  const order: Visit[] = [];
  const visit = (tensor: tf.SymbolicTensor, path: Set<string>): void => {
    const key = tensorKey(tensor);
    if (visits.has(key)) return;
    if (path.has(key)) throw new OnnxExportError(tensor.sourceLayer.name, tensor.sourceLayer.getClassName(), 'the layer graph has a cycle');
    const layer = tensor.sourceLayer;
    const inbound = layer.inboundNodes[tensor.nodeIndex];
    if (inbound.outputTensors.length !== 1) throw new OnnxExportError(layer.name, layer.getClassName(), 'layers with several outputs are not supported');
    const inputs = layer.getClassName() === 'InputLayer' ? [] : inbound.inputTensors;
    path.add(key);
    for (const input of inputs) visit(input, path);
    path.delete(key);
    const entry = { layer, inputs, output: inbound.outputTensors[0] };
    visits.set(key, entry);
    order.push(entry);
  };
  for (const output of model.outputs) visit(output, new Set());
  return order;
}

/** The IR version that goes with an opset (the checker and onnxruntime want at least this). */
function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset === 9) return 4;
  if (opset === 10) return 5;
  if (opset === 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

function weightValues(tensor: tf.Tensor): Float32Array {
  return Float32Array.from(tensor.dataSync() as Float32Array);
}

/** `values` of `dims` transposed by `perm` (row-major), on the CPU. */
function transposeValues(values: Float32Array, dims: readonly number[], perm: readonly number[]): { dims: number[]; values: Float32Array } {
  const outDims = perm.map((p) => dims[p]);
  const inStrides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(values.length);
  const rank = dims.length;
  const index = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < values.length; flat++) {
    let source = 0;
    for (let a = 0; a < rank; a++) source += index[a] * inStrides[perm[a]];
    out[flat] = values[source];
    for (let a = rank - 1; a >= 0; a--) {
      if (++index[a] < outDims[a]) break;
      index[a] = 0;
    }
  }
  return { dims: outDims, values: out };
}

function pairOf(value: unknown, fallback: [number, number]): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2) return [Number(value[0]), Number(value[1])];
  return fallback;
}

function padsOf(value: unknown): Pads2D {
  if (typeof value === 'number') {
    return [
      [value, value],
      [value, value],
    ];
  }
  if (Array.isArray(value) && value.length === 2) {
    const axis = (v: unknown): [number, number] => (typeof v === 'number' ? [v, v] : pairOf(v, [0, 0]));
    return [axis(value[0]), axis(value[1])];
  }
  return [
    [0, 0],
    [0, 0],
  ];
}

function addPads(a: Pads2D, b: Pads2D): Pads2D {
  return [
    [a[0][0] + b[0][0], a[0][1] + b[0][1]],
    [a[1][0] + b[1][0], a[1][1] + b[1][1]],
  ];
}

/** Element-wise layers without weights: applied to an NCHW-flattened value they commute with the permutation. */
const ORDER_FREE_CLASSES: ReadonlySet<string> = new Set(['Activation', 'ReLU', 'LeakyReLU', 'ELU', 'Dropout', 'HardSigmoid', 'HardSwish', 'Clip', 'Scale', 'Shift']);

export function exportOnnx(model: tf.LayersModel, options: ExportOptions = {}): ModelProtoInput {
  const origin = options.origin;
  const opset = options.opset ?? origin?.opset ?? DEFAULT_EXPORT_OPSET;
  if (opset < MIN_EXPORT_OPSET) throw new OnnxExportError(model.name, 'LayersModel', `opset ${opset} is not supported for export (${MIN_EXPORT_OPSET} or later)`);
  if (model.inputs.length !== 1) throw new OnnxExportError(model.name, 'LayersModel', `${model.inputs.length} inputs; exactly one is supported`);
  const calls = layerCalls(model);
  const consumerCount = new Map<string, number>();
  for (const call of calls) for (const input of call.inputs) consumerCount.set(tensorKey(input), (consumerCount.get(tensorKey(input)) ?? 0) + 1);
  for (const output of model.outputs) consumerCount.set(tensorKey(output), (consumerCount.get(tensorKey(output)) ?? 0) + 1);

  const emitter = new GraphEmitter();
  const emitted = new Map<string, Emitted>();
  const producer = new Map<string, Visit>(calls.map((c) => [tensorKey(c.output), c]));
  const inputOf = (tensor: tf.SymbolicTensor): Emitted => {
    const value = emitted.get(tensorKey(tensor));
    if (value === undefined) throw new Error(`internal: ${tensorKey(tensor)} used before it was exported`);
    return value;
  };

  // ---- the graph input ----
  const inputTensor = model.inputs[0];
  const inputShape = inputTensor.shape.slice(1) as number[];
  const inputOrigin = origin?.inputs[0];
  const inputName = emitter.reserve(inputOrigin?.name ?? inputTensor.sourceLayer.name);
  const nchwInput = inputShape.length === 3 ? [inputShape[2], inputShape[0], inputShape[1]] : inputShape;
  const batchDim = inputOrigin?.dims[0] ?? 'batch';
  emitted.set(tensorKey(inputTensor), { name: inputName, rank: inputShape.length + 1 });

  for (const call of calls) {
    const { layer, inputs, output } = call;
    const className = layer.getClassName();
    if (className === 'InputLayer') continue;
    const config = layer.getConfig() as Config;
    const layerOrigin = origin?.layers[layer.name];
    const nodeName = layerOrigin?.node || layer.name;
    const outName = layerOrigin?.output ?? layer.name;
    const refuse = (problem: string): never => {
      throw new OnnxExportError(layer.name, className, problem);
    };
    const weights = layer.getWeights();
    const weightName = (i: number, role: string): string => layerOrigin?.weights?.[i] || `${layer.name}.${role}`;
    const inShape = (i = 0): number[] => inputs[i].shape.slice(1) as number[];
    const set = (value: Emitted): void => {
      emitted.set(tensorKey(output), value);
    };
    /** The input as NCHW/NC values in tfjs feature order (undoing an NCHW-flatten tag). */
    const exact = (i = 0): Emitted => {
      const value = inputOf(inputs[i]);
      if (value.nchwFlat === undefined) return value;
      const [c, h, w] = value.nchwFlat;
      const shape = emitter.int64(`${layer.name}.unflatten_shape`, [-1, c, h, w]);
      const map = emitter.node('Reshape', [value.name, shape], { name: `${nodeName}_unflatten` });
      const nhwc = emitter.node('Transpose', [map], { name: `${nodeName}_to_nhwc`, attrs: { perm: ints([0, 2, 3, 1]) } });
      return { name: emitter.node('Flatten', [nhwc], { name: `${nodeName}_flatten_nhwc`, attrs: { axis: int(1) } }), rank: 2 };
    };
    /** Applies a tfjs activation name after `value` (none for linear). */
    const activation = (value: string, name: string | undefined, rank: number, finalName: string): string => {
      const act = name ?? 'linear';
      const node = (op: string, ins: string[], attrs?: Record<string, AttributeValue>, suffix = ''): string =>
        emitter.node(op, ins, { name: `${nodeName}${suffix}`, output: suffix === '' ? finalName : `${finalName}${suffix}`, ...(attrs ? { attrs } : {}) });
      switch (act) {
        case 'linear':
          return value;
        case 'relu':
          return node('Relu', [value]);
        case 'relu6':
          return clip(value, 0, 6, nodeName, finalName);
        case 'sigmoid':
          return node('Sigmoid', [value]);
        case 'tanh':
          return node('Tanh', [value]);
        case 'elu':
          return node('Elu', [value]);
        case 'selu':
          return node('Selu', [value]);
        case 'softplus':
          return node('Softplus', [value]);
        case 'softsign':
          return node('Softsign', [value]);
        case 'hardSigmoid':
          return node('HardSigmoid', [value], { alpha: float(0.2), beta: float(0.5) });
        case 'swish': {
          const gate = node('Sigmoid', [value], undefined, '_sigmoid');
          return node('Mul', [value, gate]);
        }
        case 'softmax':
          if (rank === 4 && opset < 13) return refuse('softmax over channels of a map needs opset 13 or later');
          return node('Softmax', [value], { axis: int(opset < 13 ? 1 : rank === 4 ? 1 : -1) });
        default:
          return refuse(`activation '${act}' has no ONNX export`);
      }
    };
    const clip = (value: string, min: number, max: number, name: string, out: string): string => {
      if (opset < 11) return emitter.node('Clip', [value], { name, output: out, attrs: { min: float(min), max: float(max) } });
      const low = emitter.float(`${name}.min`, { dims: [], values: Float32Array.of(min) });
      const high = emitter.float(`${name}.max`, { dims: [], values: Float32Array.of(max) });
      return emitter.node('Clip', [value, low, high], { name, output: out });
    };
    /** The producer of input `i` when it is a padding layer of `classes` that only this layer reads (and, for an imported model, made from the same node). */
    const foldablePad = (i: number, classes: readonly string[]): { pads: Pads2D; source: tf.SymbolicTensor } | undefined => {
      const pad = producer.get(tensorKey(inputs[i]));
      if (pad === undefined || !classes.includes(pad.layer.getClassName())) return undefined;
      if ((consumerCount.get(tensorKey(inputs[i])) ?? 0) !== 1) return undefined;
      const padOrigin = origin?.layers[pad.layer.name];
      if (origin !== undefined && (padOrigin === undefined || layerOrigin === undefined || padOrigin.node !== layerOrigin.node)) return undefined;
      return { pads: padsOf((pad.layer.getConfig() as Config).padding), source: pad.inputs[0] };
    };

    switch (className) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        if (config.dataFormat === 'channelsFirst') refuse('channelsFirst is not supported');
        const folded = foldablePad(0, ['ZeroPadding2D']);
        const x = inputOf(folded?.source ?? inputs[0]);
        const sourceShape = (folded?.source ?? inputs[0]).shape.slice(1) as number[];
        const kernelSize = pairOf(config.kernelSize, [1, 1]);
        const strides = pairOf(config.strides, [1, 1]);
        const dilations = pairOf(config.dilationRate, [1, 1]);
        const paddedSize: [number, number] = [inShape()[0], inShape()[1]];
        const same = config.padding === 'same' ? samePads2D(paddedSize, kernelSize, strides, dilations) : padsOf(0);
        const pads = folded ? addPads(folded.pads, same) : same;
        if (sourceShape.length !== 3) refuse('input is not an NHWC map');
        const attrs = (group: number, k: [number, number]): Record<string, AttributeValue> => ({
          dilations: ints(dilations),
          group: int(group),
          kernel_shape: ints(k),
          pads: ints(padsToOnnx(pads)),
          strides: ints(strides),
        });
        const useBias = config.useBias === true;
        let value: string;
        if (className === 'Conv2D') {
          const kernel = weights[0];
          const w = transposeValues(weightValues(kernel), kernel.shape, [3, 2, 0, 1]);
          const ins = [x.name, emitter.float(weightName(0, 'weight'), w)];
          if (useBias) ins.push(emitter.float(weightName(1, 'bias'), { dims: [weights[1].shape[0]], values: weightValues(weights[1]) }));
          value = emitter.node('Conv', ins, { name: nodeName, output: config.activation && config.activation !== 'linear' ? `${outName}_linear` : outName, attrs: attrs(1, kernelSize) });
        } else {
          const depthwise = weights[0];
          const [kh, kw, channels, multiplier] = depthwise.shape;
          const dw = transposeValues(weightValues(depthwise), depthwise.shape, [2, 3, 0, 1]);
          const dwWeight = emitter.float(weightName(0, 'weight'), { dims: [channels * multiplier, 1, kh, kw], values: dw.values });
          const separable = className === 'SeparableConv2D';
          const ins = [x.name, dwWeight];
          if (useBias && !separable) ins.push(emitter.float(weightName(1, 'bias'), { dims: [weights[1].shape[0]], values: weightValues(weights[1]) }));
          value = emitter.node('Conv', ins, {
            name: separable ? `${nodeName}_depthwise` : nodeName,
            output: separable || (config.activation && config.activation !== 'linear') ? `${outName}_depthwise` : outName,
            attrs: attrs(channels, kernelSize),
          });
          if (separable) {
            const pointwise = weights[1];
            const pw = transposeValues(weightValues(pointwise), pointwise.shape, [3, 2, 0, 1]);
            const pwIns = [value, emitter.float(`${layer.name}.pointwise_weight`, pw)];
            if (useBias) pwIns.push(emitter.float(`${layer.name}.bias`, { dims: [weights[2].shape[0]], values: weightValues(weights[2]) }));
            value = emitter.node('Conv', pwIns, {
              name: nodeName,
              output: config.activation && config.activation !== 'linear' ? `${outName}_linear` : outName,
              attrs: { dilations: ints([1, 1]), group: int(1), kernel_shape: ints([1, 1]), pads: ints([0, 0, 0, 0]), strides: ints([1, 1]) },
            });
          }
        }
        set({ name: activation(value, config.activation as string | undefined, 4, outName), rank: 4 });
        break;
      }
      case 'Conv2DTranspose': {
        const x = inputOf(inputs[0]);
        const kernelSize = pairOf(config.kernelSize, [1, 1]);
        const strides = pairOf(config.strides, [1, 1]);
        if (pairOf(config.dilationRate, [1, 1]).some((d) => d !== 1)) refuse('dilation is not supported');
        const kernel = weights[0];
        const w = transposeValues(weightValues(kernel), kernel.shape, [3, 2, 0, 1]);
        const pads: Pads2D = [
          [0, 0],
          [0, 0],
        ];
        const outputPadding = [0, 1].map((a) => Math.max(strides[a] - kernelSize[a], 0));
        if (config.padding === 'same') {
          for (const a of [0, 1]) {
            const total = Math.max(kernelSize[a] - strides[a], 0);
            pads[a] = [Math.floor(total / 2), total - Math.floor(total / 2)];
          }
        }
        // A Cropping2D made from the same node (the importer's way of writing pads) folds back in.
        const consumers = calls.filter((c) => c.inputs.some((t) => tensorKey(t) === tensorKey(output)));
        const crop = consumers.length === 1 && consumers[0].layer.getClassName() === 'Cropping2D' && (consumerCount.get(tensorKey(output)) ?? 0) === 1
          ? consumers[0]
          : undefined;
        const cropOrigin = crop ? origin?.layers[crop.layer.name] : undefined;
        const foldCrop = crop !== undefined && (origin === undefined || (cropOrigin !== undefined && cropOrigin.node === layerOrigin?.node));
        let finalName = outName;
        if (foldCrop) {
          const cropping = padsOf((crop.layer.getConfig() as Config).cropping);
          for (const a of [0, 1]) pads[a] = [pads[a][0] + cropping[a][0], pads[a][1] + cropping[a][1]];
          finalName = origin?.layers[crop.layer.name]?.output ?? crop.layer.name;
        }
        const ins = [x.name, emitter.float(weightName(0, 'weight'), w)];
        if (config.useBias === true) ins.push(emitter.float(weightName(1, 'bias'), { dims: [weights[1].shape[0]], values: weightValues(weights[1]) }));
        const attrs: Record<string, AttributeValue> = {
          dilations: ints([1, 1]),
          group: int(1),
          kernel_shape: ints(kernelSize),
          pads: ints(padsToOnnx(pads)),
          strides: ints(strides),
        };
        if (outputPadding.some((p) => p > 0)) attrs.output_padding = ints(outputPadding);
        const act = config.activation as string | undefined;
        if (foldCrop && act !== undefined && act !== 'linear') refuse('a fused activation before a folded crop');
        const value = emitter.node('ConvTranspose', ins, { name: nodeName, output: act && act !== 'linear' ? `${finalName}_linear` : finalName, attrs });
        const result: Emitted = { name: activation(value, act, 4, finalName), rank: 4 };
        set(result);
        if (foldCrop) emitted.set(tensorKey(crop.output), result);
        break;
      }
      case 'Cropping2D': {
        if (emitted.has(tensorKey(output))) break; // folded into its transposed conv
        const x = inputOf(inputs[0]);
        const [[top, bottom], [left, right]] = padsOf(config.cropping);
        const [h, w] = inShape();
        const starts = [top, left];
        const ends = [h - bottom, w - right];
        if (opset < 10) {
          set({ name: emitter.node('Slice', [x.name], { name: nodeName, output: outName, attrs: { starts: ints(starts), ends: ints(ends), axes: ints([2, 3]) } }), rank: 4 });
        } else {
          const ins = [x.name, emitter.int64(`${layer.name}.starts`, starts), emitter.int64(`${layer.name}.ends`, ends), emitter.int64(`${layer.name}.axes`, [2, 3])];
          set({ name: emitter.node('Slice', ins, { name: nodeName, output: outName }), rank: 4 });
        }
        break;
      }
      case 'Dense': {
        const x = inputOf(inputs[0]);
        if (x.rank !== 2) refuse(`input has rank ${x.rank}; only [N, K] inputs are supported`);
        const kernel = weights[0];
        const [rows, units] = kernel.shape;
        let values = weightValues(kernel);
        if (x.nchwFlat !== undefined) values = permuteFlattenedRows(values, units, x.nchwFlat, false);
        const useBias = config.useBias === true;
        const act = config.activation as string | undefined;
        const linearName = act && act !== 'linear' ? `${outName}_linear` : outName;
        let value: string;
        if (layerOrigin?.op === 'MatMul') {
          // Written as it came: MatMul (+ Add of the bias).
          const product = emitter.node('MatMul', [x.name, emitter.float(weightName(0, 'weight'), { dims: [rows, units], values })], {
            name: nodeName,
            output: useBias ? `${outName}_matmul` : linearName,
          });
          value = useBias
            ? emitter.node('Add', [product, emitter.float(weightName(1, 'bias'), { dims: [units], values: weightValues(weights[1]) })], {
                name: `${nodeName}_bias`,
                output: linearName,
              })
            : product;
        } else {
          const transposed = transposeValues(values, [rows, units], [1, 0]);
          const ins = [x.name, emitter.float(weightName(0, 'weight'), transposed)];
          if (useBias) ins.push(emitter.float(weightName(1, 'bias'), { dims: [units], values: weightValues(weights[1]) }));
          value = emitter.node('Gemm', ins, { name: nodeName, output: linearName, attrs: { alpha: float(1), beta: float(1), transB: int(1) } });
        }
        set({ name: activation(value, act, 2, outName), rank: 2 });
        break;
      }
      case 'BatchNormalization': {
        const x = exact();
        const rank = inputs[0].shape.length;
        const axis = config.axis as number;
        if (axis !== -1 && axis !== rank - 1) refuse(`axis ${axis}: only the channel axis (last in NHWC) is supported`);
        const channels = inputs[0].shape[rank - 1] as number;
        const scale = config.scale !== false;
        const center = config.center !== false;
        // tfjs weight order: [gamma?, beta?, movingMean, movingVariance]; absent ones are 1 and 0.
        const roles = [...(scale ? ['weight'] : []), ...(center ? ['bias'] : []), 'running_mean', 'running_var'];
        const byRole = new Map(roles.map((role, i) => [role, { values: weightValues(weights[i]), name: weightName(i, role) }]));
        const param = (role: string, fill: number): { values: Float32Array; name: string } =>
          byRole.get(role) ?? { values: new Float32Array(channels).fill(fill), name: `${layer.name}.${role}` };
        const params = [param('weight', 1), param('bias', 0), param('running_mean', 0), param('running_var', 1)];
        const [gamma, beta, mean, variance] = params.map((p) => p.values);
        const names = params.map((p) => p.name);
        const ins = [gamma, beta, mean, variance].map((v, i) => emitter.float(names[i], { dims: [channels], values: v }));
        const attrs: Record<string, AttributeValue> = { epsilon: float(config.epsilon as number), momentum: float(config.momentum as number) };
        set({ name: emitter.node('BatchNormalization', [x.name, ...ins], { name: nodeName, output: outName, attrs }), rank: x.rank });
        break;
      }
      case 'Activation':
      case 'ReLU':
      case 'LeakyReLU':
      case 'ELU':
      case 'HardSigmoid':
      case 'HardSwish':
      case 'Clip':
      case 'Scale':
      case 'Shift':
      case 'Softmax': {
        const source = inputOf(inputs[0]);
        const x = ORDER_FREE_CLASSES.has(className) ? source : exact();
        const rank = x.rank;
        let value: string;
        const node = (op: string, ins: string[], attrs?: Record<string, AttributeValue>): string =>
          emitter.node(op, ins, { name: nodeName, output: outName, ...(attrs ? { attrs } : {}) });
        switch (className) {
          case 'Activation':
            value = activation(x.name, config.activation as string, rank, outName);
            break;
          case 'ReLU':
            value = typeof config.maxValue === 'number' ? clip(x.name, 0, config.maxValue, nodeName, outName) : node('Relu', [x.name]);
            break;
          case 'LeakyReLU':
            value = node('LeakyRelu', [x.name], { alpha: float(config.alpha as number) });
            break;
          case 'ELU':
            value = node('Elu', [x.name], { alpha: float(config.alpha as number) });
            break;
          case 'HardSigmoid':
            value = node('HardSigmoid', [x.name], { alpha: float(config.alpha as number), beta: float(config.beta as number) });
            break;
          case 'HardSwish':
            if (opset >= 14) {
              value = node('HardSwish', [x.name]);
            } else {
              const gate = emitter.node('HardSigmoid', [x.name], { name: `${nodeName}_gate`, attrs: { alpha: float(1 / 6), beta: float(0.5) } });
              value = node('Mul', [x.name, gate]);
            }
            break;
          case 'Clip':
            value = clip(x.name, config.min as number, config.max as number, nodeName, outName);
            break;
          case 'Scale': {
            const factor = config.scale as number;
            if (layerOrigin?.op === 'Div') value = node('Div', [x.name, emitter.float(`${layer.name}.divisor`, { dims: [], values: Float32Array.of(1 / factor) })]);
            else value = node('Mul', [x.name, emitter.float(`${layer.name}.scale`, { dims: [], values: Float32Array.of(factor) })]);
            break;
          }
          case 'Shift': {
            const offset = config.offset as number;
            if (layerOrigin?.op === 'Sub') value = node('Sub', [x.name, emitter.float(`${layer.name}.offset`, { dims: [], values: Float32Array.of(-offset) })]);
            else value = node('Add', [x.name, emitter.float(`${layer.name}.offset`, { dims: [], values: Float32Array.of(offset) })]);
            break;
          }
          default: {
            const axis = config.axis as number | number[];
            const last = Array.isArray(axis) ? axis.length === 1 && (axis[0] === -1 || axis[0] === rank - 1) : axis === -1 || axis === rank - 1;
            if (!last) refuse(`softmax axis ${JSON.stringify(axis)}: only the channel axis is supported`);
            if (rank === 4 && opset < 13) refuse('softmax over channels of a map needs opset 13 or later');
            value = node('Softmax', [x.name], { axis: int(opset < 13 ? 1 : rank === 4 ? 1 : -1) });
          }
        }
        set({ name: value, rank, ...(source.nchwFlat && ORDER_FREE_CLASSES.has(className) ? { nchwFlat: source.nchwFlat } : {}) });
        break;
      }
      case 'PReLU': {
        const x = exact();
        const alpha = weights[0];
        // tfjs alpha is NHWC-shaped ([H|1, W|1, C|1]); ONNX slope broadcasts against NCHW.
        const slope = alpha.shape.length === 3 ? transposeValues(weightValues(alpha), alpha.shape, [2, 0, 1]) : { dims: alpha.shape, values: weightValues(alpha) };
        const slopeDims = slope.values.length === 1 ? [1] : slope.dims;
        set({ name: emitter.node('PRelu', [x.name, emitter.float(weightName(0, 'slope'), { dims: slopeDims, values: slope.values })], { name: nodeName, output: outName }), rank: x.rank });
        break;
      }
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'SpatialDropout2D':
      case 'GaussianDropout':
      case 'GaussianNoise':
      case 'AlphaDropout':
        set(inputOf(inputs[0]));
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const max = className === 'MaxPooling2D';
        const folded = foldablePad(0, max ? (origin ? ['NegInfPadding2D', 'ZeroPadding2D'] : ['NegInfPadding2D']) : config.padding === 'valid' ? ['ZeroPadding2D'] : []);
        const x = inputOf(folded?.source ?? inputs[0]);
        const poolSize = pairOf(config.poolSize, [2, 2]);
        const strides = pairOf(config.strides, poolSize);
        const [h, w] = inShape();
        const same = config.padding === 'same' ? samePads2D([h, w], poolSize, strides, [1, 1]) : padsOf(0);
        const pads = folded ? addPads(folded.pads, same) : same;
        const attrs: Record<string, AttributeValue> = { kernel_shape: ints(poolSize), pads: ints(padsToOnnx(pads)), strides: ints(strides) };
        if (!max) attrs.count_include_pad = int(folded ? 1 : 0);
        set({ name: emitter.node(max ? 'MaxPool' : 'AveragePool', [x.name], { name: nodeName, output: outName, attrs }), rank: 4 });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        const x = inputOf(inputs[0]);
        const op = className === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool';
        const map = emitter.node(op, [x.name], { name: nodeName, output: `${outName}_map` });
        const flat = emitter.node('Flatten', [map], { name: `${nodeName}_flatten`, output: outName, attrs: { axis: int(1) } });
        set({ name: flat, rank: 2, map1x1: map });
        break;
      }
      case 'Flatten': {
        const x = inputOf(inputs[0]);
        const shape = inShape();
        if (x.rank === 2) {
          set(x);
        } else if (x.map1x1 !== undefined || (shape.length === 3 && shape[0] * shape[1] === 1)) {
          set({ name: emitter.node('Flatten', [x.map1x1 ?? x.name], { name: nodeName, output: outName, attrs: { axis: int(1) } }), rank: 2 });
        } else if (shape.length === 3) {
          const flat = emitter.node('Flatten', [x.name], { name: nodeName, output: outName, attrs: { axis: int(1) } });
          set({ name: flat, rank: 2, nchwFlat: [shape[2], shape[0], shape[1]] });
        } else {
          refuse(`input of rank ${shape.length + 1}`);
        }
        break;
      }
      case 'Reshape': {
        const x = inputOf(inputs[0]);
        const target = (config.targetShape as number[]).map(Number);
        const shape = inShape();
        if (x.rank === 2 && target.length === 3 && target[0] === 1 && target[1] === 1) {
          // [N, C] -> [N, 1, 1, C] NHWC = [N, C, 1, 1] NCHW: the global pool's map, or a Reshape.
          if (x.map1x1 !== undefined && x.nchwFlat === undefined) {
            set({ name: x.map1x1, rank: 4 });
          } else {
            const plain = exact();
            const dims = emitter.int64(`${layer.name}.shape`, [-1, target[2], 1, 1]);
            set({ name: emitter.node('Reshape', [plain.name, dims], { name: nodeName, output: outName }), rank: 4 });
          }
        } else if (target.length === 1 && (x.rank === 2 || (shape.length === 3 && shape[0] * shape[1] === 1))) {
          set({ name: emitter.node('Flatten', [x.map1x1 ?? x.name], { name: nodeName, output: outName, attrs: { axis: int(1) } }), rank: 2 });
        } else {
          // General case: through NHWC, exactly as tfjs reshapes.
          const plain = exact();
          const nhwc = plain.rank === 4 ? emitter.node('Transpose', [plain.name], { name: `${nodeName}_to_nhwc`, attrs: { perm: ints([0, 2, 3, 1]) } }) : plain.name;
          const dims = emitter.int64(`${layer.name}.shape`, [-1, ...target]);
          const reshaped = emitter.node('Reshape', [nhwc, dims], { name: target.length === 3 ? `${nodeName}_nhwc` : nodeName, output: target.length === 3 ? `${outName}_nhwc` : outName });
          const value = target.length === 3 ? emitter.node('Transpose', [reshaped], { name: nodeName, output: outName, attrs: { perm: ints([0, 3, 1, 2]) } }) : reshaped;
          set({ name: value, rank: target.length + 1 });
        }
        break;
      }
      case 'ZeroPadding2D':
      case 'NegInfPadding2D': {
        const x = inputOf(inputs[0]);
        const [[top, bottom], [left, right]] = padsOf(config.padding);
        const pads = [0, 0, top, left, 0, 0, bottom, right];
        const value = className === 'ZeroPadding2D' ? 0 : -Infinity;
        let name: string;
        if (opset < 11) {
          name = emitter.node('Pad', [x.name], { name: nodeName, output: outName, attrs: { mode: text('constant'), pads: ints(pads), value: float(value) } });
        } else {
          const ins = [x.name, emitter.int64(`${layer.name}.pads`, pads)];
          if (value !== 0) ins.push(emitter.float(`${layer.name}.value`, { dims: [], values: Float32Array.of(value) }));
          name = emitter.node('Pad', ins, { name: nodeName, output: outName, attrs: { mode: text('constant') } });
        }
        set({ name, rank: 4 });
        break;
      }
      case 'UpSampling2D': {
        const x = inputOf(inputs[0]);
        if (config.interpolation !== undefined && config.interpolation !== 'nearest') refuse(`interpolation '${String(config.interpolation)}': only nearest is supported`);
        const size = pairOf(config.size, [2, 2]);
        const scales = emitter.float(`${layer.name}.scales`, { dims: [4], values: Float32Array.of(1, 1, size[0], size[1]) });
        let name: string;
        if (opset < 10) {
          name = emitter.node('Upsample', [x.name, scales], { name: nodeName, output: outName, attrs: { mode: text('nearest') } });
        } else if (opset === 10) {
          name = emitter.node('Resize', [x.name, scales], { name: nodeName, output: outName, attrs: { mode: text('nearest') } });
        } else {
          // roi is a required input until opset 13 (unused by nearest asymmetric): an empty tensor.
          const roi = opset < 13 ? emitter.float(`${layer.name}.roi`, { dims: [0], values: new Float32Array(0) }) : '';
          name = emitter.node('Resize', [x.name, roi, scales], {
            name: nodeName,
            output: outName,
            attrs: { coordinate_transformation_mode: text('asymmetric'), mode: text('nearest'), nearest_mode: text('floor') },
          });
        }
        set({ name, rank: 4 });
        break;
      }
      case 'Add':
      case 'Multiply':
      case 'Average':
      case 'Maximum':
      case 'Minimum':
      case 'Subtract': {
        const values = inputs.map((t) => inputOf(t));
        const tags = values.map((v) => v.nchwFlat?.join(','));
        const keepTag = tags.every((t) => t !== undefined && t === tags[0]);
        const operands = keepTag ? values : inputs.map((_, i) => exact(i));
        const names = operands.map((v) => v.name);
        const op = { Add: 'Sum', Multiply: 'Mul', Average: 'Mean', Maximum: 'Max', Minimum: 'Min', Subtract: 'Sub' }[className]!;
        let name: string;
        if ((op === 'Sum' || op === 'Mul') && names.length > 2) {
          if (op === 'Sum') {
            name = emitter.node('Sum', names, { name: nodeName, output: outName });
          } else {
            let acc = names[0];
            for (let i = 1; i < names.length; i++) acc = emitter.node('Mul', [acc, names[i]], { name: i === names.length - 1 ? nodeName : `${nodeName}_${i}`, output: i === names.length - 1 ? outName : `${outName}_${i}` });
            name = acc;
          }
        } else {
          name = emitter.node(op === 'Sum' ? 'Add' : op, names, { name: nodeName, output: outName });
        }
        set({ name, rank: Math.max(...operands.map((v) => v.rank)), ...(keepTag ? { nchwFlat: values[0].nchwFlat } : {}) });
        break;
      }
      case 'Concatenate': {
        const operands = inputs.map((_, i) => exact(i));
        const rank = inputs[0].shape.length;
        const axis = config.axis as number;
        if (axis !== -1 && axis !== rank - 1) refuse(`axis ${axis}: only the channel axis is supported`);
        set({ name: emitter.node('Concat', operands.map((v) => v.name), { name: nodeName, output: outName, attrs: { axis: int(1) } }), rank });
        break;
      }
      default:
        refuse('this layer class has no ONNX export');
    }
  }

  // ---- outputs ----
  const outputs: ValueInfoOut[] = model.outputs.map((tensor, i) => {
    let value = emitted.get(tensorKey(tensor))!;
    const outOrigin = origin?.outputs.find((o) => o.layer === tensor.sourceLayer.name) ?? origin?.outputs[i];
    const wanted = outOrigin?.name ?? tensor.sourceLayer.name;
    if (value.nchwFlat !== undefined) {
      // The ONNX value must hold tfjs' (NHWC) order: permute it back.
      const [c, h, w] = value.nchwFlat;
      const shape = emitter.int64(`${wanted}.unflatten_shape`, [-1, c, h, w]);
      const map = emitter.node('Reshape', [value.name, shape], { name: `${wanted}_unflatten` });
      const nhwc = emitter.node('Transpose', [map], { name: `${wanted}_to_nhwc`, attrs: { perm: ints([0, 2, 3, 1]) } });
      value = { name: emitter.node('Flatten', [nhwc], { name: `${wanted}_flatten_nhwc`, attrs: { axis: int(1) } }), rank: 2 };
    }
    let name = value.name;
    if (name !== wanted || name === inputName) name = emitter.node('Identity', [value.name], { name: `${wanted}_identity`, output: wanted });
    const shape = tensor.shape.slice(1) as number[];
    const nchw = shape.length === 3 ? [shape[2], shape[0], shape[1]] : shape;
    return valueInfo(name, [outOrigin?.dims[0] ?? batchDim, ...nchw]);
  });
  const inputs = [valueInfo(inputName, [batchDim, ...nchwInput])];
  return {
    ir_version: origin !== undefined && origin.opset === opset ? origin.irVersion : irVersionFor(opset),
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'emo-dir',
    producer_version: origin ? `pruned from ${origin.producerName} ${origin.producerVersion}`.trim() : '',
    graph: emitter.graph(origin?.graphName || model.name, inputs, outputs),
  };
}

function valueInfo(name: string, dims: readonly (number | string)[]): ValueInfoOut {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/** The serialized ONNX file of `model`. */
export function encodeOnnx(model: tf.LayersModel, options: ExportOptions = {}): Uint8Array {
  return encodeModel(exportOnnx(model, options));
}

