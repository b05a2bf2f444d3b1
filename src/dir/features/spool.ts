/**
 * Where boundary-feature rows live while a worker uses them: in memory, or in spool files on
 * local disk read back with positioned reads (the bounded-memory default; DESIGN §3 "Scale").
 *
 * A spool file is created, then unlinked at once, and used through its descriptor: the kernel
 * frees its blocks when the descriptor closes, which is also when the process dies, so a job
 * killed with SIGKILL (spot reclaim, OOM) leaves nothing behind in the temp directory. The OS
 * page cache holds the rows a worker reads again and again (every candidate replays the same
 * seeded recovery batches) without counting them in the process's RSS, and gives them back
 * under memory pressure instead of getting the job killed.
 *
 * A `FeatureSpool` groups the files of one use (one feature computation or load) and closes
 * them when every holder has released it; a file that becomes unreachable unreleased is closed
 * by a FinalizationRegistry (a forgotten release costs disk until GC, never correctness).
 */
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Raw bytes by position. */
export interface ByteStorage {
  readonly byteLength: number;
  /** Where the bytes are, for error messages. */
  readonly location: string;
  /** Fills `target` with the bytes at [position, position + target.length). */
  read(target: Uint8Array, position: number): void;
  /** Writes `source` at `position` (within byteLength). */
  write(source: Uint8Array, position: number): void;
}

/** Where rows are kept: in memory, or in spool files under a directory (default: the OS temp dir). */
export type FeatureStorage = 'memory' | { readonly spoolDir: string };

export const DEFAULT_FEATURE_STORAGE: FeatureStorage = { spoolDir: tmpdir() };

function checkRange(storage: ByteStorage, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || position + length > storage.byteLength) {
    throw new RangeError(`${storage.location}: bytes [${position}, ${position + length}) outside 0..${storage.byteLength}`);
  }
}

class MemoryStorage implements ByteStorage {
  readonly location = 'memory';
  private readonly bytes: Uint8Array;

  constructor(readonly byteLength: number) {
    this.bytes = new Uint8Array(byteLength);
  }

  read(target: Uint8Array, position: number): void {
    checkRange(this, position, target.length);
    target.set(this.bytes.subarray(position, position + target.length));
  }

  write(source: Uint8Array, position: number): void {
    checkRange(this, position, source.length);
    this.bytes.set(source, position);
  }
}

/** Node refuses single reads/writes above 2 GiB - 1; large ranges go in pieces. */
const MAX_IO_BYTES = 1 << 30;

/** What a finalizer needs to free a spool file nobody closed (no reference to the file itself). */
interface OpenFile {
  readonly fd: number;
  /** Set when the file could not be unlinked at creation (e.g. Windows). */
  readonly path?: string;
}

function closeOpenFile(file: OpenFile): void {
  closeSync(file.fd);
  if (file.path !== undefined) unlinkSync(file.path);
}

/** Frees spool files that became unreachable without release(). */
const unreleased = new FinalizationRegistry<OpenFile>(closeOpenFile);

class SpoolFile implements ByteStorage {
  private open: OpenFile | undefined;

  constructor(
    open: OpenFile,
    readonly byteLength: number,
    readonly location: string,
  ) {
    this.open = open;
    unreleased.register(this, open, this);
  }

  private descriptor(): number {
    if (this.open === undefined) throw new Error(`${this.location}: spool file used after its spool was released`);
    return this.open.fd;
  }

  read(target: Uint8Array, position: number): void {
    checkRange(this, position, target.length);
    const fd = this.descriptor();
    let done = 0;
    while (done < target.length) {
      const read = readSync(fd, target, done, Math.min(MAX_IO_BYTES, target.length - done), position + done);
      if (read === 0) throw new Error(`${this.location}: spool file ends at byte ${position + done}, expected ${this.byteLength} bytes`);
      done += read;
    }
  }

  write(source: Uint8Array, position: number): void {
    checkRange(this, position, source.length);
    const fd = this.descriptor();
    let done = 0;
    try {
      while (done < source.length) {
        done += writeSync(fd, source, done, Math.min(MAX_IO_BYTES, source.length - done), position + done);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new Error(`${this.location}: no space left for ${this.byteLength} bytes of boundary features (set TMPDIR to a larger volume)`, { cause: error });
      }
      throw error;
    }
  }

  close(): void {
    if (this.open === undefined) return;
    const open = this.open;
    this.open = undefined;
    // fd numbers are reused: a finalizer must never close this one again.
    unreleased.unregister(this);
    closeOpenFile(open);
  }
}

export class FeatureSpool {
  private readonly files: SpoolFile[] = [];
  private holders = 1;

  private constructor(readonly storage: FeatureStorage) {}

  /** A spool with one holder, its creator, who calls release() when done with it. */
  static open(storage: FeatureStorage = DEFAULT_FEATURE_STORAGE): FeatureSpool {
    return new FeatureSpool(storage);
  }

  /** New zero-filled storage of `byteLength` bytes; `name` labels it in errors. */
  allocate(byteLength: number, name: string): ByteStorage {
    if (this.holders === 0) throw new Error(`feature spool: allocate('${name}') after release`);
    if (this.storage === 'memory') return new MemoryStorage(byteLength);
    const path = join(this.storage.spoolDir, `emo-dir-features-${process.pid}-${randomBytes(6).toString('hex')}-${name}.bin`);
    const fd = openSync(path, 'wx+', 0o600);
    let open: OpenFile = { fd };
    try {
      unlinkSync(path);
    } catch {
      open = { fd, path }; // an open file that cannot be unlinked (Windows) is removed on close instead
    }
    const file = new SpoolFile(open, byteLength, `spool file ${path} (${name})`);
    this.files.push(file);
    return file;
  }

  /** Adds a holder and returns its release (idempotent): e.g. one per BoundaryFeatures sharing the files. */
  holder(): () => void {
    if (this.holders === 0) throw new Error('feature spool: holder() after release');
    this.holders++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release();
    };
  }

  /** Drops one holder; the last one closes (and so frees) every file. */
  release(): void {
    if (this.holders === 0) return;
    this.holders--;
    if (this.holders > 0) return;
    for (const file of this.files) file.close();
  }
}
