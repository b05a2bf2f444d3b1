/**
 * Constant folding for the small integer subgraphs exporters emit around Reshape, Pad, Resize and
 * Flatten: `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` for `x.view(x.size(0), -1)`, or
 * `ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose -> Cast` for the pads of `F.pad`.
 * Such a node never becomes a layer: when all its inputs are constants (initializers, Constant
 * nodes, or earlier folded nodes) the importer evaluates it here.
 *
 * The batch size is not known at import time (tfjs models take any batch), so `Shape` of an
 * activation yields the symbolic `BATCH` in its first element. Gathering, concatenating, casting
 * and reshaping carry it along; arithmetic on it is refused, which is also why a Reshape whose
 * target computes with the batch size cannot be imported.
 */
import { elementCount, type TensorValue } from './tensor.ts';

export const BATCH = 'batch';
export type Dim = number | typeof BATCH;

/** A constant tensor: weights (float, Float32Array) or shape arithmetic (int, possibly with BATCH). */
export interface Constant {
  readonly dims: readonly number[];
  readonly float: boolean;
  readonly values: Float32Array | readonly Dim[];
}

export function constantFrom(value: TensorValue): Constant {
  return { dims: value.dims, float: value.kind === 'float', values: value.values };
}

export function intConstant(dims: readonly number[], values: readonly Dim[]): Constant {
  return { dims, float: false, values };
}

/** The values as numbers; `what` names them in the error when one is the symbolic batch size. */
export function numbers(constant: Constant, what: string): number[] {
  const out: number[] = [];
  for (const v of constant.values) {
    if (v === BATCH) throw new Error(`${what} depends on the batch size, which is not known when the model is imported`);
    out.push(v);
  }
  return out;
}

export function hasBatch(constant: Constant): boolean {
  return !(constant.values instanceof Float32Array) && (constant.values as readonly Dim[]).includes(BATCH);
}

function list(constant: Constant): Dim[] {
  return Array.from(constant.values as ArrayLike<Dim>);
}

function strides(dims: readonly number[]): number[] {
  const out = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) out[i] = out[i + 1] * dims[i + 1];
  return out;
}

function normalizeAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  return a;
}

function make(dims: readonly number[], values: Dim[], float: boolean): Constant {
  return { dims, float, values: float && !values.includes(BATCH) ? Float32Array.from(values as number[]) : values };
}

export function gather(data: Constant, indices: Constant, axisAttr: number): Constant {
  const rank = data.dims.length;
  if (rank === 0) throw new Error('Gather of a scalar');
  const axis = normalizeAxis(axisAttr, rank, 'axis');
  const idx = numbers(indices, 'Gather indices').map((i) => (i < 0 ? i + data.dims[axis] : i));
  if (idx.some((i) => i < 0 || i >= data.dims[axis])) throw new Error(`Gather index out of range for axis size ${data.dims[axis]}`);
  const outer = elementCount(data.dims.slice(0, axis));
  const inner = elementCount(data.dims.slice(axis + 1));
  const values = list(data);
  const out: Dim[] = [];
  for (let o = 0; o < outer; o++) {
    for (const i of idx) {
      for (let k = 0; k < inner; k++) out.push(values[(o * data.dims[axis] + i) * inner + k]);
    }
  }
  const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  return make(dims, out, data.float);
}

export function unsqueeze(data: Constant, axes: readonly number[]): Constant {
  const rank = data.dims.length + axes.length;
  const normalized = axes.map((a) => normalizeAxis(a, rank, 'Unsqueeze axis'));
  const dims: number[] = [];
  let source = 0;
  for (let i = 0; i < rank; i++) dims.push(normalized.includes(i) ? 1 : data.dims[source++]);
  return { ...data, dims };
}

export function squeeze(data: Constant, axes: readonly number[] | undefined): Constant {
  const rank = data.dims.length;
  const drop = axes === undefined ? data.dims.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : axes.map((a) => normalizeAxis(a, rank, 'Squeeze axis'));
  for (const a of drop) if (data.dims[a] !== 1) throw new Error(`Squeeze of axis ${a} of size ${data.dims[a]}`);
  return { ...data, dims: data.dims.filter((_, i) => !drop.includes(i)) };
}

export function concat(parts: readonly Constant[], axisAttr: number): Constant {
  const rank = parts[0].dims.length;
  const axis = normalizeAxis(axisAttr, rank, 'Concat axis');
  const outer = elementCount(parts[0].dims.slice(0, axis));
  const out: Dim[] = [];
  for (let o = 0; o < outer; o++) {
    for (const part of parts) {
      const chunk = elementCount(part.dims.slice(axis));
      const values = list(part);
      for (let k = 0; k < chunk; k++) out.push(values[o * chunk + k]);
    }
  }
  const dims = [...parts[0].dims];
  dims[axis] = parts.reduce((sum, p) => sum + p.dims[axis], 0);
  return make(dims, out, parts.some((p) => p.float));
}

/** ONNX Reshape semantics (0 copies the input dimension unless allowzero, -1 is inferred). */
export function reshapeDims(inputDims: readonly Dim[], target: readonly Dim[], allowZero: boolean): Dim[] {
  const out = target.map((d, i) => (d === 0 && !allowZero ? (inputDims[i] ?? 0) : d));
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    if (out.indexOf(-1, unknown + 1) >= 0) throw new Error('Reshape target has more than one -1');
    const known = out.filter((_, i) => i !== unknown);
    if (known.includes(BATCH) !== inputDims.includes(BATCH)) throw new Error('Reshape target moves the batch size');
    const total = inputDims.filter((d): d is number => d !== BATCH).reduce((p, d) => p * d, 1);
    const rest = known.filter((d): d is number => d !== BATCH).reduce((p, d) => p * d, 1);
    if (rest === 0 || total % rest !== 0) throw new Error(`Reshape of [${inputDims.join(', ')}] to [${target.join(', ')}]: sizes do not divide`);
    out[unknown] = total / rest;
  }
  return out;
}

export function reshape(data: Constant, target: Constant, allowZero: boolean): Constant {
  const dims = reshapeDims(data.dims, numbers(target, 'Reshape shape of a constant'), allowZero) as number[];
  if (elementCount(dims) !== elementCount(data.dims)) throw new Error(`Reshape of [${data.dims.join(', ')}] to [${dims.join(', ')}]`);
  return { ...data, dims };
}

export function transpose(data: Constant, permAttr: readonly number[] | undefined): Constant {
  const rank = data.dims.length;
  const perm = permAttr ?? data.dims.map((_, i) => rank - 1 - i);
  const dims = perm.map((p) => data.dims[p]);
  const inStrides = strides(data.dims);
  const outStrides = strides(dims);
  const values = list(data);
  const out = new Array<Dim>(values.length);
  for (let flat = 0; flat < values.length; flat++) {
    let rem = flat;
    let source = 0;
    for (let axis = 0; axis < rank; axis++) {
      const coord = Math.floor(rem / outStrides[axis]);
      rem -= coord * outStrides[axis];
      source += coord * inStrides[perm[axis]];
    }
    out[flat] = values[source];
  }
  return make(dims, out, data.float);
}

/** ONNX Slice (clamped starts/ends, negative steps). */
export function slice(data: Constant, starts: readonly number[], ends: readonly number[], axesIn: readonly number[] | undefined, stepsIn: readonly number[] | undefined): Constant {
  const rank = data.dims.length;
  const axes = (axesIn ?? starts.map((_, i) => i)).map((a) => normalizeAxis(a, rank, 'Slice axis'));
  const steps = stepsIn ?? starts.map(() => 1);
  const ranges = data.dims.map((d) => ({ start: 0, end: d, step: 1 }));
  axes.forEach((axis, i) => {
    const size = data.dims[axis];
    const step = steps[i];
    if (step === 0) throw new Error('Slice step 0');
    const clamp = (v: number, low: number, high: number): number => Math.min(Math.max(v, low), high);
    let start = starts[i] < 0 ? starts[i] + size : starts[i];
    let end = ends[i] < 0 ? ends[i] + size : ends[i];
    if (step > 0) {
      start = clamp(start, 0, size);
      end = clamp(end, 0, size);
    } else {
      start = clamp(start, 0, size - 1);
      end = clamp(end, -1, size - 1);
    }
    ranges[axis] = { start, end, step };
  });
  const indices = ranges.map(({ start, end, step }) => {
    const out: number[] = [];
    for (let v = start; step > 0 ? v < end : v > end; v += step) out.push(v);
    return out;
  });
  const dims = indices.map((ix) => ix.length);
  const inStrides = strides(data.dims);
  const values = list(data);
  const out: Dim[] = [];
  const walk = (axis: number, offset: number): void => {
    if (axis === rank) {
      out.push(values[offset]);
      return;
    }
    for (const i of indices[axis]) walk(axis + 1, offset + i * inStrides[axis]);
  };
  if (rank === 0) out.push(values[0]);
  else walk(0, 0);
  return make(dims, out, data.float);
}

export function constantOfShape(shape: Constant, fill: Constant | undefined): Constant {
  const dims = numbers(shape, 'ConstantOfShape shape');
  const value = fill === undefined ? 0 : numbers(fill, 'ConstantOfShape value')[0];
  return make(dims, new Array<Dim>(elementCount(dims)).fill(value), fill?.float ?? true);
}

export function cast(data: Constant, toFloat: boolean): Constant {
  if (toFloat === data.float) return data;
  if (toFloat) return make(data.dims, list(data), true);
  return { dims: data.dims, float: false, values: list(data).map((v) => (v === BATCH ? v : Math.trunc(v))) };
}

/** Numpy-broadcast element-wise arithmetic; the batch size passes only through `x * 1`, `x / 1`, `x + 0`, `x - 0`. */
export function arithmetic(op: 'Add' | 'Sub' | 'Mul' | 'Div', a: Constant, b: Constant): Constant {
  const rank = Math.max(a.dims.length, b.dims.length);
  const pad = (dims: readonly number[]): number[] => [...new Array<number>(rank - dims.length).fill(1), ...dims];
  const da = pad(a.dims);
  const db = pad(b.dims);
  const dims = da.map((d, i) => {
    if (d !== db[i] && d !== 1 && db[i] !== 1) throw new Error(`${op} of shapes [${a.dims.join(', ')}] and [${b.dims.join(', ')}]`);
    return Math.max(d, db[i]);
  });
  const sa = strides(da).map((s, i) => (da[i] === 1 ? 0 : s));
  const sb = strides(db).map((s, i) => (db[i] === 1 ? 0 : s));
  const so = strides(dims);
  const va = list(a);
  const vb = list(b);
  const float = a.float || b.float;
  const out: Dim[] = [];
  for (let flat = 0; flat < elementCount(dims); flat++) {
    let rem = flat;
    let ia = 0;
    let ib = 0;
    for (let axis = 0; axis < rank; axis++) {
      const coord = Math.floor(rem / so[axis]);
      rem -= coord * so[axis];
      ia += coord * sa[axis];
      ib += coord * sb[axis];
    }
    out.push(apply(op, va[ia], vb[ib], float));
  }
  return make(dims, out, float);
}

function apply(op: 'Add' | 'Sub' | 'Mul' | 'Div', x: Dim, y: Dim, float: boolean): Dim {
  if (x === BATCH || y === BATCH) {
    const other = x === BATCH ? y : x;
    const identity = (op === 'Mul' && other === 1) || (op === 'Div' && y === 1) || ((op === 'Add' || op === 'Sub') && y === 0);
    if (identity && (x === BATCH || op === 'Mul' || op === 'Add')) return BATCH;
    throw new Error(`${op} computes with the batch size, which is not known when the model is imported`);
  }
  switch (op) {
    case 'Add':
      return x + y;
    case 'Sub':
      return x - y;
    case 'Mul':
      return x * y;
    case 'Div':
      return float ? x / y : Math.trunc(x / y);
  }
}
