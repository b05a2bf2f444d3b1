/**
 * ONNX files as typed objects: decoding and encoding `onnx.ModelProto` with protobufjs and the
 * official IR definition (`onnx.proto` beside this file). A decoded model is checked with zod
 * against the subset of the IR the importer reads, so a malformed file fails here with the path
 * of the bad field (`graph.node[12].attribute[0].ints[1]`) instead of deep inside the importer.
 *
 * int64 fields become JS numbers (`longs: Number`): dims, attribute ints and opset versions are
 * far below 2^53; the INT64 "infinities" PyTorch writes as Slice ends lose precision but keep
 * their sign and size, which is all slicing needs.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { z } from 'zod';
import { formatPath } from '../../schema/validate.ts';
import { ModelFileError } from '../errors.ts';

/** TensorProto.DataType values the importer and exporter use. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

/** AttributeProto.AttributeType values. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;

/** TensorProto.DataLocation: EXTERNAL means the values live in another file (external_data). */
export const DATA_LOCATION_EXTERNAL = 1;

const bytesSchema = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'must be bytes');
const numberList = z.array(z.number()).default([]);

export const tensorProtoSchema = z.object({
  dims: numberList,
  data_type: z.number().int().default(0),
  name: z.string().default(''),
  raw_data: bytesSchema.optional(),
  float_data: numberList,
  int32_data: numberList,
  int64_data: numberList,
  double_data: numberList,
  uint64_data: numberList,
  external_data: z.array(z.object({ key: z.string().default(''), value: z.string().default('') })).default([]),
  data_location: z.number().int().default(0),
});
export type TensorProto = z.output<typeof tensorProtoSchema>;

export const attributeProtoSchema = z.object({
  name: z.string().min(1, 'attribute without a name'),
  type: z.number().int().default(0),
  f: z.number().optional(),
  i: z.number().optional(),
  s: bytesSchema.optional(),
  t: tensorProtoSchema.optional(),
  floats: numberList,
  ints: numberList,
  strings: z.array(bytesSchema).default([]),
});
export type AttributeProto = z.output<typeof attributeProtoSchema>;

export const nodeProtoSchema = z.object({
  input: z.array(z.string()).default([]),
  output: z.array(z.string()).default([]),
  name: z.string().default(''),
  op_type: z.string().min(1, 'node without an op_type'),
  domain: z.string().default(''),
  attribute: z.array(attributeProtoSchema).default([]),
});
export type NodeProto = z.output<typeof nodeProtoSchema>;

const dimensionSchema = z.object({ dim_value: z.number().optional(), dim_param: z.string().optional() });
export const valueInfoProtoSchema = z.object({
  name: z.string().min(1, 'value without a name'),
  type: z
    .object({
      tensor_type: z
        .object({ elem_type: z.number().int().default(0), shape: z.object({ dim: z.array(dimensionSchema).default([]) }).optional() })
        .optional(),
    })
    .optional(),
});
export type ValueInfoProto = z.output<typeof valueInfoProtoSchema>;

export const graphProtoSchema = z.object({
  name: z.string().default(''),
  node: z.array(nodeProtoSchema).default([]),
  initializer: z.array(tensorProtoSchema).default([]),
  input: z.array(valueInfoProtoSchema).default([]),
  output: z.array(valueInfoProtoSchema).default([]),
  value_info: z.array(valueInfoProtoSchema).default([]),
});
export type GraphProto = z.output<typeof graphProtoSchema>;

export const operatorSetIdSchema = z.object({ domain: z.string().default(''), version: z.number().int() });
export type OperatorSetId = z.output<typeof operatorSetIdSchema>;

export const modelProtoSchema = z.object({
  ir_version: z.number().int().default(0),
  opset_import: z.array(operatorSetIdSchema).default([]),
  producer_name: z.string().default(''),
  producer_version: z.string().default(''),
  domain: z.string().default(''),
  model_version: z.number().int().default(0),
  doc_string: z.string().default(''),
  graph: graphProtoSchema,
  metadata_props: z.array(z.object({ key: z.string().default(''), value: z.string().default('') })).default([]),
});
export type ModelProto = z.output<typeof modelProtoSchema>;

let modelType: protobuf.Type | undefined;

/** The protobufjs type of onnx.ModelProto, parsed once from the bundled onnx.proto. */
function onnxModelType(): protobuf.Type {
  if (modelType === undefined) {
    const source = readFileSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)), 'utf8');
    modelType = protobuf.parse(source, { keepCase: true }).root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/** Decodes and checks a serialized ModelProto; errors name `file` and the bad field. */
export function decodeModel(bytes: Uint8Array, file: string): ModelProto {
  const type = onnxModelType();
  let raw: Record<string, unknown>;
  try {
    raw = type.toObject(type.decode(bytes), { longs: Number, enums: Number, defaults: false });
  } catch (error) {
    throw new ModelFileError(file, `is not an ONNX model (protobuf decoding failed: ${(error as Error).message})`, { cause: error });
  }
  if (raw.graph === undefined) throw new ModelFileError(file, 'is not an ONNX model (it has no graph)');
  const parsed = modelProtoSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelFileError(file, `malformed ONNX model: ${formatPath(issue.path)}: ${issue.message}`);
  }
  return parsed.data;
}

/** A ModelProto to write: the decoded shape with every list optional. */
export type ModelProtoInput = z.input<typeof modelProtoSchema>;

/** Serializes a ModelProto. */
export function encodeModel(model: ModelProtoInput): Uint8Array {
  const type = onnxModelType();
  const problem = type.verify(model);
  if (problem !== null) throw new Error(`cannot encode ONNX model: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}
