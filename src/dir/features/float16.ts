/**
 * IEEE 754 binary16 ("half") <-> float32, for boundary features stored at half the bytes
 * (`featureDtype: 'float16'`). Node 20 has no Float16Array, so the codec is here: encoding rounds
 * to nearest, ties to even (what hardware conversions do), keeps subnormals, maps overflow to
 * +-Infinity and keeps NaN a NaN; decoding is one table lookup per value.
 *
 * Precision: 11 significant bits (relative error <= 2^-11 ~ 4.9e-4 for normal values) and a
 * range of +-65504, ample for batch-normalised, ReLU'd activations.
 */

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The binary16 bits nearest to `value` (ties to even). */
export function toFloat16Bits(value: number): number {
  scratch[0] = value;
  const bits = scratchBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half: the value is m * 2^-24 with m = (1.mantissa) >> (14 - halfExponent).
    const shift = 14 - halfExponent;
    if (shift > 24) return sign;
    const full = mantissa | 0x800000;
    const kept = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept);
  }
  const result = sign | (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  return rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1) ? result + 1 : result;
}

let decodeTable: Float32Array | undefined;

/** All 65536 half values as float32 (256 KiB, built on first use). */
function table(): Float32Array {
  if (decodeTable) return decodeTable;
  const values = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) values[bits] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) values[bits] = mantissa === 0 ? sign * Infinity : NaN;
    else values[bits] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  decodeTable = values;
  return values;
}

/** float32 value of binary16 `bits`. */
export function fromFloat16Bits(bits: number): number {
  return table()[bits & 0xffff];
}

/** Encodes `values` into `out` (same length). */
export function encodeFloat16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  if (out.length !== values.length) throw new Error(`encodeFloat16: ${values.length} values into ${out.length} slots`);
  for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i]);
  return out;
}

/** Decodes `bits` into `out` (same length). */
export function decodeFloat16(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (out.length !== bits.length) throw new Error(`decodeFloat16: ${bits.length} values into ${out.length} slots`);
  const values = table();
  for (let i = 0; i < bits.length; i++) out[i] = values[bits[i]];
  return out;
}
