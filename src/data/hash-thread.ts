/**
 * sha256 of shared memory on a helper thread, so checking a prefetched shard (0.15-0.2 s per
 * 150 MB) does not take the thread that feeds the accelerator. A streamed epoch reads its shards
 * into SharedArrayBuffer-backed buffers (stream-batches.ts), which the helper reads in place:
 * nothing is copied or transferred. Other memory is hashed on the calling thread.
 *
 * The helper also faults fresh shared buffers in (`prefaultShared`): the first write to each page
 * of a new 150 MB buffer costs ~450 ms of kernel time on this project's dev VM, which a stream
 * would otherwise pay on the training thread in its first epoch. The helper touches each page
 * with an atomic add of 0, which maps the page writable and leaves any byte another thread may
 * already have written unchanged, so a buffer may be in use while it is being faulted in.
 *
 * (WebCrypto's asynchronous digest is no help: in Node 20 it blocks the caller for longer than
 * hashing does, measured at ~0.5 s per 37 MB against 0.03 s for createHash.)
 */
import { Worker } from 'node:worker_threads';
import { sha256Hex } from './fs-util.ts';

// Plain CommonJS evaluated in the thread: no loader, no project imports.
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, kind, buffer, offset, length }) => {
  try {
    const bytes = new Uint8Array(buffer, offset, length);
    if (kind === 'prefault') {
      // 4096: the smallest page size of the platforms Node runs on; larger pages are touched more than once.
      for (let i = 0; i < length; i += 4096) Atomics.add(bytes, i, 0);
      if (length > 0) Atomics.add(bytes, length - 1, 0);
      parentPort.postMessage({ id, hex: '' });
      return;
    }
    parentPort.postMessage({ id, hex: createHash('sha256').update(bytes).digest('hex') });
  } catch (error) {
    parentPort.postMessage({ id, error: String((error && error.message) || error) });
  }
});
`;

interface Reply {
  readonly id: number;
  readonly hex?: string;
  readonly error?: string;
}

class HashThread {
  #worker: Worker | undefined;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (hex: string) => void; reject: (error: Error) => void }>();

  /** sha256 hex of `bytes` ('digest') or '' once every page of `bytes` is faulted in ('prefault'). */
  request(kind: 'digest' | 'prefault', bytes: Uint8Array): Promise<string> {
    const worker = this.#start();
    const id = this.#next++;
    return new Promise<string>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Referenced only while a digest is awaited: an idle helper never keeps the process alive.
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, kind, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength });
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(SOURCE, { eval: true, execArgv: [] });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiting = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) worker.unref();
      if (!waiting) return;
      if (reply.hex !== undefined) waiting.resolve(reply.hex);
      else waiting.reject(new Error(`sha256 helper thread: ${reply.error ?? 'no digest'}`));
    });
    const fail = (error: Error): void => {
      // 'error' is followed by 'exit'; by then a new digest may have started a new helper.
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const waiting of this.#pending.values()) waiting.reject(error);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`sha256 helper thread exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

const thread = new HashThread();

/** sha256 hex of `bytes`: on the helper thread when they live in shared memory, else here. */
export function sha256HexShared(bytes: Uint8Array): Promise<string> {
  return bytes.buffer instanceof SharedArrayBuffer ? thread.request('digest', bytes) : Promise.resolve(sha256Hex(bytes));
}

/** Bytes faulted in per request to the helper (~25 ms of page faults here). */
const PREFAULT_CHUNK = 8 << 20;

/**
 * Faults every page of `bytes` (shared memory) in on the helper thread; resolves when done. The
 * contents are unchanged, and other threads may read and write `bytes` meanwhile.
 */
export async function prefaultShared(bytes: Uint8Array): Promise<void> {
  if (!(bytes.buffer instanceof SharedArrayBuffer)) throw new TypeError('prefaultShared: the bytes must live in a SharedArrayBuffer');
  // In chunks, one in flight at a time: a shard's digest asked for meanwhile waits for one chunk
  // (~25 ms), not for the whole buffer.
  for (let start = 0; start < bytes.length; start += PREFAULT_CHUNK) await thread.request('prefault', bytes.subarray(start, start + PREFAULT_CHUNK));
}

/** A byte array in shared memory (what the helper thread can read in place). */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}
