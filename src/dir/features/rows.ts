/**
 * One array of boundary-feature rows (e.g. X_k of the search-train subset): `count` rows of
 * `rowLength` values, stored as float32 or float16 in a ByteStorage (memory or a spool file),
 * read back as float32 by row number. Writing is append-only, in row order, as the features are
 * computed (or downloaded from the cache).
 *
 * float32 rows are stored as their exact bytes and gathered with byte copies, so a batch built
 * from them is bit-identical whatever the storage. float16 rows are decoded on read.
 */
import { decodeFloat16, encodeFloat16 } from './float16.ts';
import type { ByteStorage, FeatureSpool } from './spool.ts';

export type FeatureDtype = 'float32' | 'float16';

export const FEATURE_DTYPES: readonly FeatureDtype[] = ['float32', 'float16'];

export function bytesPerValue(dtype: FeatureDtype): number {
  return dtype === 'float32' ? 4 : 2;
}

export interface FeatureRows {
  readonly count: number;
  /** Values per row (the product of the row shape). */
  readonly rowLength: number;
  /** How the values are stored. */
  readonly dtype: FeatureDtype;
  readonly rowBytes: number;
  /** The float32 values of `rows` (any order, repeats allowed), concatenated in that order. */
  gather(rows: ArrayLike<number>): Float32Array;
  /** The stored bytes of rows [start, start + count) (for writing cache shards). */
  readBytes(start: number, count: number): Uint8Array;
}

export interface FeatureRowsWriter {
  /** Appends whole rows given as float32 (encoded to the storage dtype). */
  append(values: Float32Array): void;
  /** Appends whole rows already encoded in the storage dtype (cache shards). */
  appendBytes(bytes: Uint8Array): void;
  /** The rows written so far become the array; throws unless all `count` rows were written. */
  finish(): FeatureRows;
}

class StoredRows implements FeatureRows {
  readonly rowBytes: number;

  constructor(
    private readonly storage: ByteStorage,
    readonly count: number,
    readonly rowLength: number,
    readonly dtype: FeatureDtype,
  ) {
    this.rowBytes = rowLength * bytesPerValue(dtype);
  }

  gather(rows: ArrayLike<number>): Float32Array {
    const out = new Float32Array(rows.length * this.rowLength);
    // float16: read runs into a staging buffer, then decode; float32: read straight into `out`.
    const staging = this.dtype === 'float16' ? new Uint16Array(out.length) : out;
    const bytes = new Uint8Array(staging.buffer, staging.byteOffset, staging.byteLength);
    // Runs of consecutive rows (evaluation batches are runs) are read with one call.
    for (let start = 0; start < rows.length; ) {
      const first = this.checkRow(rows[start]);
      let end = start + 1;
      while (end < rows.length && rows[end] === first + (end - start)) end++;
      this.storage.read(bytes.subarray(start * this.rowBytes, end * this.rowBytes), first * this.rowBytes);
      start = end;
    }
    if (staging !== out) decodeFloat16(staging as Uint16Array, out);
    return out;
  }

  readBytes(start: number, count: number): Uint8Array {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.count) {
      throw new RangeError(`${this.storage.location}: rows [${start}, ${start + count}) outside 0..${this.count}`);
    }
    const bytes = new Uint8Array(count * this.rowBytes);
    this.storage.read(bytes, start * this.rowBytes);
    return bytes;
  }

  private checkRow(row: number): number {
    if (!Number.isInteger(row) || row < 0 || row >= this.count) {
      throw new RangeError(`${this.storage.location}: row ${row} outside 0..${this.count - 1}`);
    }
    return row;
  }
}

/** A writer of `count` rows of `rowLength` values into new storage from `spool`. */
export function createRowsWriter(spool: FeatureSpool, options: { count: number; rowLength: number; dtype: FeatureDtype; name: string }): FeatureRowsWriter {
  const { count, rowLength, dtype, name } = options;
  const rowBytes = rowLength * bytesPerValue(dtype);
  const storage = spool.allocate(count * rowBytes, name);
  let written = 0;
  let finished: FeatureRows | undefined;
  const appendBytes = (bytes: Uint8Array): void => {
    if (finished) throw new Error(`${storage.location}: append after finish()`);
    if (bytes.length % rowBytes !== 0) throw new Error(`${storage.location}: ${bytes.length} bytes are not whole rows of ${rowBytes}`);
    const rows = bytes.length / rowBytes;
    if (written + rows > count) throw new Error(`${storage.location}: ${written + rows} rows written, ${count} allocated`);
    storage.write(bytes, written * rowBytes);
    written += rows;
  };
  return {
    append(values) {
      const encoded = dtype === 'float32' ? values : encodeFloat16(values);
      appendBytes(new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength));
    },
    appendBytes,
    finish() {
      if (written !== count) throw new Error(`${storage.location}: ${written} of ${count} rows written`);
      finished ??= new StoredRows(storage, count, rowLength, dtype);
      return finished;
    },
  };
}
