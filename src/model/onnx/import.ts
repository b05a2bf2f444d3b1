/**
 * ONNX ModelProto -> functional tfjs LayersModel (NHWC). Walks the graph's nodes in order (ONNX
 * requires topological order); a node is either folded to constants (ops/constant.ts) or
 * converted to layers by its op's converter (ops/index.ts); any other op is refused with an
 * error naming the node, its op type and the opset. The model carries its ONNX origin in its
 * metadata (metadata.ts) for the export.
 */
import { tf } from '../../engine/backend.ts';
import '../custom-layers.ts';
import { Attributes, OnnxImportError, type LayerOptions, type NodeContext } from './context.ts';
import { constantFrom } from './fold.ts';
import { setOnnxOrigin, type OnnxLayerOrigin, type OnnxOrigin } from './metadata.ts';
import { canFold, FOLDABLE_OPS, foldNode } from './ops/constant.ts';
import { CONVERTERS, SUPPORTED_OPS } from './ops/index.ts';
import type { ModelProto, NodeProto, ValueInfoProto } from './proto.ts';
import { decodeTensor, type ExternalData } from './tensor.ts';
import { onnxShapeOf, type Activation, type ConstantValue, type Value } from './values.ts';

export interface ImportOptions {
  /** Names the file in errors (a path, or a store key with the store). */
  readonly file: string;
  /** Reads external initializer data, relative to the model file. */
  readonly external?: ExternalData;
  /** The tfjs model's name. Default: the graph's name. */
  readonly name?: string;
}

const DEFAULT_DOMAINS: ReadonlySet<string> = new Set(['', 'ai.onnx']);

/** A tfjs-safe layer name: letters, digits, '.', '_' and '-', starting with a letter or digit. */
export function layerNameFor(onnxName: string): string {
  const cleaned = onnxName.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '').replace(/_+$/, '');
  return cleaned === '' ? 'node' : cleaned;
}

function dimsOf(info: ValueInfoProto): (number | string)[] | undefined {
  const shape = info.type?.tensor_type?.shape;
  if (shape === undefined) return undefined;
  return shape.dim.map((d) => d.dim_param ?? d.dim_value ?? '?');
}

function defaultOpset(model: ModelProto, file: string): number {
  const entry = model.opset_import.find((o) => DEFAULT_DOMAINS.has(o.domain));
  if (entry === undefined) throw new OnnxImportError(file, '(model)', '-', 0, 'the model imports no default-domain (ai.onnx) opset');
  return entry.version;
}

export function importOnnxModel(model: ModelProto, options: ImportOptions): tf.LayersModel {
  const { file } = options;
  const graph = model.graph;
  const opset = defaultOpset(model, file);
  const fail: (node: string, op: string, problem: string, cause?: unknown) => never = (node, op, problem, cause) => {
    throw new OnnxImportError(file, node, op, opset, problem, cause === undefined ? undefined : { cause });
  };

  const values = new Map<string, Value>();
  const initializerNames = new Set<string>();
  for (const initializer of graph.initializer) {
    try {
      values.set(initializer.name, { kind: 'constant', constant: constantFrom(decodeTensor(initializer, options.external)), name: initializer.name });
    } catch (error) {
      fail(`initializer ${initializer.name}`, '-', (error as Error).message, error);
    }
    initializerNames.add(initializer.name);
  }

  // ---- the input ----
  const realInputs = graph.input.filter((i) => !initializerNames.has(i.name));
  if (realInputs.length !== 1) {
    fail('(graph)', '-', `the graph has ${realInputs.length} inputs (${realInputs.map((i) => i.name).join(', ')}); exactly one is supported`);
  }
  const inputInfo = realInputs[0];
  const inputDims = dimsOf(inputInfo);
  if (inputDims === undefined || !(inputDims.length === 4 || inputDims.length === 2)) {
    fail(`input ${inputInfo.name}`, '-', `the input must be [N, C, H, W] or [N, F], got ${inputDims === undefined ? 'no shape' : `[${inputDims.join(', ')}]`}`);
  }
  const featureDims = inputDims.slice(1);
  if (!featureDims.every((d): d is number => typeof d === 'number' && d > 0)) {
    fail(`input ${inputInfo.name}`, '-', `every dimension but the batch must be a fixed size, got [${inputDims.join(', ')}]`);
  }
  const declaredBatch = typeof inputDims[0] === 'number' && inputDims[0] > 0 ? inputDims[0] : undefined;
  const usedNames = new Set<string>();
  const unique = (base: string): string => {
    let name = base;
    for (let k = 2; usedNames.has(name); k++) name = `${base}_${k}`;
    usedNames.add(name);
    return name;
  };
  const inputLayerName = unique(layerNameFor(inputInfo.name));
  const nhwc = featureDims.length === 3 ? [featureDims[1], featureDims[2], featureDims[0]] : featureDims;
  const inputTensor = tf.input({ shape: nhwc as number[], name: inputLayerName });
  values.set(inputInfo.name, { kind: 'activation', tensor: inputTensor, shape: featureDims as number[], nonNegative: false });

  // ---- the nodes ----
  const consumers = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const name of node.input) if (name !== '') consumers.set(name, [...(consumers.get(name) ?? []), node]);
  }
  const origins: Record<string, OnnxLayerOrigin> = {};
  const layers: tf.layers.Layer[] = [];
  const absorbedBy = new Map<NodeProto, NodeProto>();
  const mapForm = new WeakMap<Activation, Activation>();

  try {
    graph.node.forEach((node, index) => {
      if (absorbedBy.has(node)) return;
      const nodeName = node.name !== '' ? node.name : `${node.op_type}_${index}`;
      const op = node.op_type;
      const nodeFail: (problem: string, cause?: unknown) => never = (problem, cause) => fail(nodeName, op, problem, cause);
      if (!DEFAULT_DOMAINS.has(node.domain)) nodeFail(`op domain '${node.domain}' is not supported (only the default ONNX domain)`);
      const inputs = node.input.map((name) => {
        if (name === '') return undefined;
        const value = values.get(name);
        if (value === undefined) nodeFail(`input '${name}' is not produced by any earlier node, initializer or graph input`);
        return value;
      });
      const attrs = new Attributes(node);

      if (canFold(op, inputs)) {
        let folded;
        try {
          folded = foldNode({ op, opset, attrs, inputs, ...(options.external ? { external: options.external } : {}) });
        } catch (error) {
          return nodeFail((error as Error).message, error);
        }
        // An Identity of an initializer (how exporters share one) keeps a name the export can reuse.
        folded.forEach((constant, i) => values.set(node.output[i], { kind: 'constant', constant, name: op === 'Identity' ? node.output[i] : '' }));
        return;
      }
      const converter = CONVERTERS[op];
      if (converter === undefined) {
        if (FOLDABLE_OPS.has(op)) nodeFail(`${op} is supported only on constants (shape computations), not on a tensor computed from the model input`);
        nodeFail(`op type '${op}' is not supported (supported: ${SUPPORTED_OPS.join(', ')}; shape ops on constants are folded: ${[...FOLDABLE_OPS].sort().join(', ')})`);
      }

      const absorbed: NodeProto[] = [];
      const activationAt = (i: number): Activation => {
        const value = inputs[i];
        if (value === undefined) return nodeFail(`input ${i} is missing`);
        if (value.kind !== 'activation') return nodeFail(`input ${i} ('${node.input[i]}') is a constant; a tensor computed from the model input is expected`);
        return value;
      };
      const makeLayer = (make: (name: string) => tf.layers.Layer, layerInputs: readonly Activation[], layerOptions: LayerOptions = {}): Activation => {
        const suffix = layerOptions.suffix ?? '';
        const name = unique(layerNameFor(suffix === '' ? nodeName : `${nodeName}_${suffix}`));
        const tensors = layerOptions.weights?.tensors ?? [];
        try {
          const layer = make(name);
          layers.push(layer);
          const applied = layer.apply(layerInputs.length === 1 ? layerInputs[0].tensor : layerInputs.map((x) => x.tensor)) as tf.SymbolicTensor;
          if (tensors.length > 0) layer.setWeights([...tensors]);
          const names = layerOptions.weights?.names;
          origins[name] = { node: node.name, op, ...(names && names.length > 0 ? { weights: [...names] } : {}) };
          return {
            kind: 'activation',
            tensor: applied,
            shape: layerOptions.shape ?? onnxShapeOf(applied),
            nonNegative: layerOptions.nonNegative ?? false,
            ...(layerOptions.squeezed ? { squeezed: true } : {}),
            ...(layerOptions.flattenedFrom ? { flattenedFrom: layerOptions.flattenedFrom } : {}),
          };
        } finally {
          for (const t of tensors) t.dispose();
        }
      };
      const ctx: NodeContext = {
        node,
        nodeName,
        opset,
        attrs,
        declaredBatch,
        input: (i) => inputs[i],
        activation: activationAt,
        map: (i) => {
          const x = activationAt(i);
          if (x.shape.length !== 3) nodeFail(`input ${i} has shape [N, ${x.shape.join(', ')}]; an [N, C, H, W] map is expected`);
          if (!x.squeezed) return x;
          const cached = mapForm.get(x);
          if (cached !== undefined) return cached;
          const channels = x.shape[0];
          const map = makeLayer((name) => tf.layers.reshape({ name, targetShape: [1, 1, channels] }), [x], { suffix: 'map', nonNegative: x.nonNegative });
          mapForm.set(x, map);
          return map;
        },
        constant: (i, what) => {
          const value = inputs[i];
          if (value === undefined) return nodeFail(`${what} is missing`);
          if (value.kind !== 'constant') return nodeFail(`${what} must be a constant (an initializer), not a tensor computed from the model input`);
          return value;
        },
        constantNamed: (name) => {
          const value = values.get(name);
          return value?.kind === 'constant' ? (value as ConstantValue) : undefined;
        },
        layer: makeLayer,
        output: (value, i = 0) => {
          for (const target of [node, ...absorbed]) {
            const name = target.output[i];
            if (name === undefined || name === '') continue;
            values.set(name, value);
            if (value.kind === 'activation') {
              const origin = origins[value.tensor.sourceLayer.name];
              if (origin !== undefined) origin.output = name;
            }
          }
        },
        consumers: (i) => consumers.get(node.output[i]) ?? [],
        absorb: (other) => {
          absorbed.push(other);
          absorbedBy.set(other, node);
        },
        fail: nodeFail,
      };
      try {
        converter(ctx);
      } catch (error) {
        if (error instanceof OnnxImportError) throw error;
        nodeFail((error as Error).message, error);
      }
    });

    // ---- the outputs ----
    const outputs = graph.output.map((info) => {
      const value = values.get(info.name);
      if (value === undefined) return fail(`output ${info.name}`, '-', 'no node produces this graph output');
      if (value.kind !== 'activation') return fail(`output ${info.name}`, '-', 'the graph output is a constant');
      if (value.flattenedFrom !== undefined) {
        return fail(`output ${info.name}`, '-', 'the graph output is a flattened [C, H, W] map, whose feature order differs in NHWC');
      }
      return { info, value };
    });
    if (outputs.length === 0) fail('(graph)', '-', 'the graph has no outputs');
    const outputTensors = outputs.map(({ value }) => value.tensor);
    const name = options.name ?? (graph.name !== '' ? layerNameFor(graph.name) : 'onnx_model');
    const tfModel = tf.model({ inputs: inputTensor, outputs: outputTensors.length === 1 ? outputTensors[0] : outputTensors, name });
    const origin: OnnxOrigin = {
      irVersion: Math.max(1, model.ir_version),
      opset,
      producerName: model.producer_name,
      producerVersion: model.producer_version,
      graphName: graph.name,
      inputs: [{ name: inputInfo.name, layer: inputLayerName, dims: inputDims }],
      outputs: outputs.map(({ info, value }) => ({
        name: info.name,
        layer: value.tensor.sourceLayer.name,
        dims: dimsOf(info) ?? [typeof inputDims[0] === 'string' ? inputDims[0] : (declaredBatch ?? 1), ...value.shape],
      })),
      layers: origins,
    };
    setOnnxOrigin(tfModel, origin);
    return tfModel;
  } catch (error) {
    for (const layer of layers) {
      try {
        layer.dispose();
      } catch {
        // A layer that was never built holds nothing to free.
      }
    }
    throw error;
  }
}
