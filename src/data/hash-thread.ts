/**
 * sha256 of shared memory on a helper thread, so checking a prefetched shard (0.15-0.2 s per
 * 150 MB) does not take the thread that feeds the accelerator. A streamed epoch reads its shards
 * into SharedArrayBuffer-backed buffers (stream-batches.ts), which the helper reads in place:
 * nothing is copied or transferred. Other memory is hashed on the calling thread.
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
parentPort.on('message', ({ id, buffer, offset, length }) => {
  try {
    parentPort.postMessage({ id, hex: createHash('sha256').update(new Uint8Array(buffer, offset, length)).digest('hex') });
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

  digest(bytes: Uint8Array): Promise<string> {
    const worker = this.#start();
    const id = this.#next++;
    return new Promise<string>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Referenced only while a digest is awaited: an idle helper never keeps the process alive.
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength });
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
  return bytes.buffer instanceof SharedArrayBuffer ? thread.digest(bytes) : Promise.resolve(sha256Hex(bytes));
}

/** A byte array in shared memory (what the helper thread can read in place). */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}
