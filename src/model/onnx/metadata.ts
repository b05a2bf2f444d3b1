/**
 * What an imported model remembers of its ONNX origin, so that the export writes a file that
 * drops into the user's serving stack: the opset, the input/output names and dims (a dynamic
 * batch axis stays `"batch"`), and for every layer the node, output value and initializer names
 * it came from. Stored in model.json's `userDefinedMetadata.onnx` (tfjs saves and loads it with
 * the model); pruning rebuilds models without it, so the export reads it from the original model.
 * One schema, used by the importer (writer) and the exporter (reader).
 */
import { z } from 'zod';
import type { tf } from '../../engine/backend.ts';
import { parseWith } from '../../schema/validate.ts';

const dimSchema = z.union([z.number().int().min(0), z.string()]);

export const onnxTensorInfoSchema = z.strictObject({
  /** The ONNX value name. */
  name: z.string().min(1),
  /** The tfjs layer whose output it is. */
  layer: z.string().min(1),
  /** ONNX dims: numbers, or a dim_param name for symbolic axes (the batch). */
  dims: z.array(dimSchema),
});

export const onnxLayerOriginSchema = z.strictObject({
  /** Name of the ONNX node this layer was made from ('' when the node had none). */
  node: z.string(),
  op: z.string().min(1),
  /** The ONNX value the layer's output stands for (a helper layer of a node has none). */
  output: z.string().optional(),
  /** Initializer names of the layer's weights, in tfjs weight order ('' where there was none, e.g. a scaled Gemm kernel). */
  weights: z.array(z.string()).optional(),
});

export const onnxOriginSchema = z.strictObject({
  irVersion: z.number().int().min(1),
  /** The default-domain opset the file was written in; the export writes the same. */
  opset: z.number().int().min(1),
  producerName: z.string(),
  producerVersion: z.string(),
  graphName: z.string(),
  inputs: z.array(onnxTensorInfoSchema).min(1),
  outputs: z.array(onnxTensorInfoSchema).min(1),
  layers: z.record(z.string(), onnxLayerOriginSchema),
});

export type OnnxOrigin = z.output<typeof onnxOriginSchema>;
export type OnnxLayerOrigin = z.output<typeof onnxLayerOriginSchema>;

export const ONNX_METADATA_KEY = 'onnx';

/** The ONNX origin recorded in a model's metadata, or undefined for a model that was not imported. */
export function onnxOriginOf(model: tf.LayersModel): OnnxOrigin | undefined {
  const metadata = model.getUserDefinedMetadata() as Record<string, unknown> | undefined;
  const origin = metadata?.[ONNX_METADATA_KEY];
  if (origin === undefined) return undefined;
  return parseWith(onnxOriginSchema, origin, `model '${model.name}' userDefinedMetadata.${ONNX_METADATA_KEY}`);
}

/** Records `origin` in the model's metadata (keeping other metadata keys). */
export function setOnnxOrigin(model: tf.LayersModel, origin: OnnxOrigin): void {
  const metadata = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
  model.setUserDefinedMetadata({ ...metadata, [ONNX_METADATA_KEY]: origin });
}
