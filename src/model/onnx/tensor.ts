/**
 * TensorProto values as JS arrays, and back. Values may sit in `raw_data` (little-endian), in the
 * typed repeated fields (`float_data`, `int64_data`, ...), or in an external file
 * (`data_location: EXTERNAL`, `external_data: location/offset/length`), which `ExternalData`
 * reads relative to the model file. Floating point tensors decode to Float32Array (what tfjs
 * weights are), integer and boolean tensors to number[] (shapes, axes, pads: small).
 */
import { DataType, DATA_LOCATION_EXTERNAL, type TensorProto } from './proto.ts';

/** Reads the bytes of a file named by a tensor's external_data `location`, relative to the model. */
export interface ExternalData {
  /** `location` as written in the model; the reader resolves it and refuses paths leaving the model's directory. */
  read(location: string): Uint8Array;
  /** For messages: the full name of `location`. */
  describe(location: string): string;
}

export interface FloatTensor {
  readonly kind: 'float';
  readonly dims: readonly number[];
  readonly values: Float32Array;
}

export interface IntTensor {
  readonly kind: 'int';
  readonly dims: readonly number[];
  readonly values: readonly number[];
}

export type TensorValue = FloatTensor | IntTensor;

const FLOAT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);
const INT_TYPES: ReadonlySet<number> = new Set([
  DataType.UINT8,
  DataType.INT8,
  DataType.UINT16,
  DataType.INT16,
  DataType.INT32,
  DataType.INT64,
  DataType.BOOL,
  DataType.UINT32,
  DataType.UINT64,
]);

const BYTES_PER_ELEMENT: Readonly<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
};

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, d) => product * d, 1);
}

/** IEEE half -> float. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Reads element `i` of little-endian `bytes` of `dataType`. */
function readElement(view: DataView, dataType: number, i: number): number {
  switch (dataType) {
    case DataType.FLOAT:
      return view.getFloat32(i * 4, true);
    case DataType.DOUBLE:
      return view.getFloat64(i * 8, true);
    case DataType.FLOAT16:
      return halfToFloat(view.getUint16(i * 2, true));
    case DataType.UINT8:
    case DataType.BOOL:
      return view.getUint8(i);
    case DataType.INT8:
      return view.getInt8(i);
    case DataType.UINT16:
      return view.getUint16(i * 2, true);
    case DataType.INT16:
      return view.getInt16(i * 2, true);
    case DataType.INT32:
      return view.getInt32(i * 4, true);
    case DataType.UINT32:
      return view.getUint32(i * 4, true);
    case DataType.INT64:
      return Number(view.getBigInt64(i * 8, true));
    case DataType.UINT64:
      return Number(view.getBigUint64(i * 8, true));
    default:
      throw new Error(`unsupported data type ${dataType}`);
  }
}

/** The tensor's bytes from raw_data or its external file, checked against its element count. */
function storedBytes(tensor: TensorProto, external: ExternalData | undefined): Uint8Array | undefined {
  if (tensor.data_location === DATA_LOCATION_EXTERNAL) {
    const entries = new Map(tensor.external_data.map((e) => [e.key, e.value]));
    const location = entries.get('location');
    if (location === undefined || location === '') throw new Error('external data without a location');
    if (external === undefined) throw new Error(`its values are in the external file '${location}', and no directory to read it from was given`);
    const file = external.read(location);
    const offset = Number(entries.get('offset') ?? '0');
    const length = entries.has('length') ? Number(entries.get('length')) : file.byteLength - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > file.byteLength) {
      throw new Error(`external data range offset ${offset} length ${length} is outside ${external.describe(location)} (${file.byteLength} bytes)`);
    }
    return file.subarray(offset, offset + length);
  }
  return tensor.raw_data;
}

/** Decodes a TensorProto; errors (thrown as plain Errors) say what is wrong, the caller names the tensor. */
export function decodeTensor(tensor: TensorProto, external?: ExternalData): TensorValue {
  const dims = tensor.dims;
  const count = elementCount(dims);
  const dataType = tensor.data_type;
  const isFloat = FLOAT_TYPES.has(dataType);
  if (!isFloat && !INT_TYPES.has(dataType)) throw new Error(`data type ${dataType} is not supported (float, double, float16 and integer types are)`);
  const bytes = storedBytes(tensor, external);
  let values: number[] | Float32Array;
  if (bytes !== undefined && (bytes.byteLength > 0 || count === 0)) {
    const width = BYTES_PER_ELEMENT[dataType];
    if (bytes.byteLength !== count * width) {
      throw new Error(`holds ${bytes.byteLength} bytes, its shape [${dims.join(', ')}] needs ${count * width}`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dataType === DataType.FLOAT) {
      const floats = new Float32Array(count);
      for (let i = 0; i < count; i++) floats[i] = view.getFloat32(i * 4, true);
      values = floats;
    } else {
      values = new Array<number>(count);
      for (let i = 0; i < count; i++) values[i] = readElement(view, dataType, i);
    }
  } else {
    const typed = typedField(tensor);
    if (typed.length !== count) throw new Error(`holds ${typed.length} values, its shape [${dims.join(', ')}] needs ${count}`);
    values = dataType === DataType.FLOAT16 ? typed.map(halfToFloat) : typed;
  }
  if (isFloat) return { kind: 'float', dims, values: values instanceof Float32Array ? values : Float32Array.from(values) };
  return { kind: 'int', dims, values: values instanceof Float32Array ? Array.from(values) : values };
}

/** The repeated field that holds values of this data type when raw_data is absent. */
function typedField(tensor: TensorProto): number[] {
  switch (tensor.data_type) {
    case DataType.FLOAT:
    case DataType.FLOAT16:
      // float16 values are stored as their bit patterns in int32_data.
      return tensor.data_type === DataType.FLOAT ? tensor.float_data : tensor.int32_data;
    case DataType.DOUBLE:
      return tensor.double_data;
    case DataType.INT64:
      return tensor.int64_data;
    case DataType.UINT32:
    case DataType.UINT64:
      return tensor.uint64_data;
    default:
      return tensor.int32_data;
  }
}

/** A float TensorProto with raw little-endian data. */
export function floatTensorProto(name: string, dims: readonly number[], values: Float32Array): TensorProto {
  if (values.length !== elementCount(dims)) throw new Error(`tensor ${name}: ${values.length} values for shape [${dims.join(', ')}]`);
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return emptyTensor(name, dims, DataType.FLOAT, raw);
}

/** An int64 TensorProto (shapes, pads, axes). */
export function int64TensorProto(name: string, dims: readonly number[], values: readonly number[]): TensorProto {
  if (values.length !== elementCount(dims)) throw new Error(`tensor ${name}: ${values.length} values for shape [${dims.join(', ')}]`);
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]), true);
  return emptyTensor(name, dims, DataType.INT64, raw);
}

function emptyTensor(name: string, dims: readonly number[], dataType: number, raw: Uint8Array): TensorProto {
  return {
    name,
    dims: [...dims],
    data_type: dataType,
    raw_data: raw,
    float_data: [],
    int32_data: [],
    int64_data: [],
    double_data: [],
    uint64_data: [],
    external_data: [],
    data_location: 0,
  };
}
