/**
 * Node-level constant folding (the array work is in fold.ts): evaluates a node whose inputs are
 * all constants, or a `Shape` of an activation, to constants. `FOLDABLE_OPS` lists what can be
 * evaluated; the importer folds a node of these types whenever its inputs allow it.
 */
import type { Attributes } from '../context.ts';
import {
  arithmetic,
  BATCH,
  cast,
  concat,
  constantFrom,
  constantOfShape,
  gather,
  intConstant,
  numbers,
  reshape,
  slice,
  squeeze,
  transpose,
  unsqueeze,
  type Constant,
} from '../fold.ts';
import { DataType, type TensorProto } from '../proto.ts';
import { decodeTensor, type ExternalData } from '../tensor.ts';
import type { Value } from '../values.ts';

export const FOLDABLE_OPS: ReadonlySet<string> = new Set([
  'Constant',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'Reshape',
  'Slice',
  'Transpose',
  'ConstantOfShape',
  'Cast',
  'Identity',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Neg',
  'Flatten',
]);

const FLOAT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);

export interface FoldInput {
  readonly op: string;
  readonly opset: number;
  readonly attrs: Attributes;
  /** Node inputs; undefined for an empty or missing optional input. */
  readonly inputs: readonly (Value | undefined)[];
  readonly external?: ExternalData;
}

/** Whether the node can be folded with these inputs (all constants, or Shape of anything). */
export function canFold(op: string, inputs: readonly (Value | undefined)[]): boolean {
  if (!FOLDABLE_OPS.has(op)) return false;
  if (op === 'Shape') return inputs[0] !== undefined;
  return inputs.every((v) => v === undefined || v.kind === 'constant');
}

function constantAttribute(attrs: Attributes, external: ExternalData | undefined): Constant {
  const tensor: TensorProto | undefined = attrs.tensor('value');
  if (tensor !== undefined) return constantFrom(decodeTensor(tensor, external));
  if (attrs.has('value_float')) return { dims: [], float: true, values: Float32Array.of(attrs.float('value_float', 0)) };
  if (attrs.has('value_floats')) {
    const values = attrs.floats('value_floats')!;
    return { dims: [values.length], float: true, values: Float32Array.from(values) };
  }
  if (attrs.has('value_int')) return intConstant([], [attrs.int('value_int', 0)]);
  if (attrs.has('value_ints')) {
    const values = attrs.ints('value_ints')!;
    return intConstant([values.length], values);
  }
  throw new Error('Constant without a value, value_float(s) or value_int(s) attribute (sparse and string constants are not supported)');
}

/** Evaluates one node to its output constants. Throws plain Errors; the importer names the node. */
export function foldNode({ op, opset, attrs, inputs, external }: FoldInput): Constant[] {
  const constant = (i: number, what: string): Constant => {
    const value = inputs[i];
    if (value === undefined || value.kind !== 'constant') throw new Error(`${what} (input ${i}) is missing`);
    return value.constant;
  };
  const optionalInts = (i: number, what: string): number[] | undefined =>
    inputs[i] === undefined ? undefined : numbers(constant(i, what), what);
  switch (op) {
    case 'Constant':
      return [constantAttribute(attrs, external)];
    case 'Shape': {
      const value = inputs[0]!;
      const dims: (number | typeof BATCH)[] =
        value.kind === 'constant' ? [...value.constant.dims] : [BATCH, ...value.shape];
      const start = attrs.int('start', 0);
      const end = attrs.has('end') ? attrs.int('end', 0) : dims.length;
      const norm = (v: number): number => Math.min(Math.max(v < 0 ? v + dims.length : v, 0), dims.length);
      const picked = dims.slice(norm(start), norm(end));
      return [intConstant([picked.length], picked)];
    }
    case 'Gather':
      return [gather(constant(0, 'data'), constant(1, 'indices'), attrs.int('axis', 0))];
    case 'Unsqueeze': {
      const axes = opset >= 13 ? optionalInts(1, 'axes') : attrs.ints('axes');
      if (axes === undefined) throw new Error('Unsqueeze without axes');
      return [unsqueeze(constant(0, 'data'), axes)];
    }
    case 'Squeeze':
      return [squeeze(constant(0, 'data'), opset >= 13 ? optionalInts(1, 'axes') : attrs.ints('axes'))];
    case 'Concat':
      return [concat(inputs.map((_, i) => constant(i, 'a part')), attrs.int('axis', 0))];
    case 'Reshape':
      return [reshape(constant(0, 'data'), constant(1, 'shape'), attrs.int('allowzero', 0) === 1)];
    case 'Flatten': {
      const data = constant(0, 'data');
      const axis = attrs.int('axis', 1);
      const a = axis < 0 ? axis + data.dims.length : axis;
      const outer = data.dims.slice(0, a).reduce((p, d) => p * d, 1);
      return [{ ...data, dims: [outer, data.dims.slice(a).reduce((p, d) => p * d, 1)] }];
    }
    case 'Slice': {
      if (opset < 10) {
        const starts = attrs.ints('starts') ?? [];
        return [slice(constant(0, 'data'), starts, attrs.ints('ends') ?? [], attrs.ints('axes'), undefined)];
      }
      return [
        slice(constant(0, 'data'), numbers(constant(1, 'starts'), 'starts'), numbers(constant(2, 'ends'), 'ends'), optionalInts(3, 'axes'), optionalInts(4, 'steps')),
      ];
    }
    case 'Transpose':
      return [transpose(constant(0, 'data'), attrs.ints('perm'))];
    case 'ConstantOfShape': {
      const value = attrs.tensor('value');
      return [constantOfShape(constant(0, 'shape'), value === undefined ? undefined : constantFrom(decodeTensor(value, external)))];
    }
    case 'Cast':
      return [cast(constant(0, 'input'), FLOAT_TYPES.has(attrs.int('to', DataType.FLOAT)))];
    case 'Identity':
      return [constant(0, 'input')];
    case 'Neg':
      return [arithmetic('Mul', constant(0, 'input'), intConstant([], [-1]))];
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
      return [arithmetic(op, constant(0, 'A'), constant(1, 'B'))];
    default:
      throw new Error(`cannot fold ${op}`);
  }
}
