// The binary16 codec of float16 feature storage (src/dir/features/float16.ts): every half value
// decodes to what IEEE 754 says and encodes back to itself; any float32 encodes to the NEAREST
// half (ties to even), checked against the neighbouring half values rather than a second codec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeFloat16, encodeFloat16, fromFloat16Bits, toFloat16Bits } from '../../src/dir/features/float16.ts';

test('known values: one, max, smallest normal and subnormal, infinities, NaN, signed zero', () => {
  assert.equal(toFloat16Bits(1), 0x3c00);
  assert.equal(toFloat16Bits(-2), 0xc000);
  assert.equal(toFloat16Bits(65504), 0x7bff);
  assert.equal(toFloat16Bits(65520), 0x7c00, '65520 is the tie between 65504 and 2^16: rounds to even = Infinity');
  assert.equal(toFloat16Bits(65519), 0x7bff);
  assert.equal(toFloat16Bits(2 ** -14), 0x0400);
  assert.equal(toFloat16Bits(2 ** -24), 0x0001);
  assert.equal(toFloat16Bits(2 ** -25), 0x0000, 'the tie between 0 and the smallest subnormal rounds to even (0)');
  assert.equal(toFloat16Bits(2 ** -25 * 1.5), 0x0001);
  assert.equal(toFloat16Bits(Infinity), 0x7c00);
  assert.equal(toFloat16Bits(-Infinity), 0xfc00);
  assert.equal(toFloat16Bits(-0), 0x8000);
  assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN))));
  assert.equal(fromFloat16Bits(0x3555), 0.333251953125);
  assert.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00, 'tie below an even significand stays');
  assert.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, 'tie above an odd significand goes up to even');
});

test('every half value round-trips through float32', () => {
  for (let bits = 0; bits < 65536; bits++) {
    const value = fromFloat16Bits(bits);
    if (Number.isNaN(value)) {
      assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(value))));
      continue;
    }
    assert.equal(toFloat16Bits(value), bits, `0x${bits.toString(16)} = ${value}`);
  }
});

test('any float32 in range encodes to the nearest half value, ties to even', () => {
  // Beyond +-65520 IEEE rounding overflows to Infinity (the known-values test covers it).
  fc.assert(
    fc.property(fc.float({ noNaN: true, min: -65519, max: 65519 }), (x) => {
      const bits = toFloat16Bits(x);
      const value = fromFloat16Bits(bits);
      const magnitude = bits & 0x7fff;
      const sign = bits & 0x8000;
      // The neighbours on both sides of the chosen value (same sign; across zero for magnitude 0).
      const neighbours = [magnitude + 1, magnitude - 1].filter((m) => m >= 0 && m <= 0x7c00).map((m) => fromFloat16Bits(sign | m));
      if (magnitude === 0) neighbours.push(fromFloat16Bits((sign ^ 0x8000) | 1));
      const error = Math.abs(x - value);
      for (const other of neighbours) {
        const otherError = Math.abs(x - other);
        if (otherError < error) return false;
        if (otherError === error && Number.isFinite(value) && (magnitude & 1) === 1) return false; // a tie must pick the even one
      }
      return true;
    }),
    { numRuns: 20000 },
  );
});

test('array codec: encode then decode is the element-wise conversion; lengths must match', () => {
  const values = Float32Array.from([0.1, -3.75, 1e-6, 123456, 5e-9]);
  const decoded = decodeFloat16(encodeFloat16(values));
  assert.deepEqual(Array.from(decoded), Array.from(values, (v) => fromFloat16Bits(toFloat16Bits(v))));
  assert.equal(decoded[3], Infinity);
  assert.throws(() => encodeFloat16(values, new Uint16Array(2)), /5 values into 2 slots/);
  assert.throws(() => decodeFloat16(new Uint16Array(3), new Float32Array(1)), /3 values into 1 slots/);
});
