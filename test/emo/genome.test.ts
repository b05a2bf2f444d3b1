import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countKept, decodeGenome, encodeGenome, fullGenome, hashGenome } from '../../src/emo/genome.ts';

const genomeArb = fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 300 }).map((bits) => Uint8Array.from(bits));

test('encode/decode round-trips every genome', () => {
  fc.assert(
    fc.property(genomeArb, (genome) => {
      const text = encodeGenome(genome);
      assert.deepEqual(decodeGenome(text, genome.length), genome);
    }),
  );
});

test('encoding is injective and the hash is stable for equal genomes', () => {
  fc.assert(
    fc.property(genomeArb, fc.nat(), (genome, flip) => {
      fc.pre(genome.length > 0);
      const other = genome.slice();
      other[flip % genome.length] ^= 1;
      assert.notEqual(encodeGenome(other), encodeGenome(genome));
      assert.equal(hashGenome(genome.slice()), hashGenome(genome));
    }),
  );
  // Pinned value: the hash must not change between versions (it names genomes in logs).
  assert.equal(encodeGenome(Uint8Array.from([1, 0, 1, 1, 0, 0, 0, 0, 1])), 'DQE=');
  assert.match(hashGenome(fullGenome(10)), /^[0-9a-f]{14}$/);
});

test('decode rejects wrong lengths, stray padding bits and non-base64', () => {
  const text = encodeGenome(fullGenome(12));
  assert.throws(() => decodeGenome(text, 20), /expected 3/);
  assert.throws(() => decodeGenome(text, 10), /past channel 10/);
  assert.throws(() => decodeGenome('not base64!', 12), /not base64/);
  assert.equal(countKept(decodeGenome(text, 12)), 12);
});
