/**
 * A local run's worker output, one log per Batch job in the run's store:
 * `runs/<runId>/logs/<label>.log` (`search-k1.log`, `finalize-flops-50.log`), what CloudWatch
 * holds for a cloud run. Every line a worker writes goes there, with a marker line per attempt
 * and per end, so a failure's whole story is one file away (its path is printed on failure) while
 * the terminal shows only the progress bars.
 *
 * In a file store the log is appended as lines arrive (follow it with `tail -f`); elsewhere (an
 * S3 store) it is kept in memory, at most `maxBytes` per job with the oldest lines dropped, and
 * written when an attempt or the job ends. A job submitted again under the same label (the
 * On-Demand retry of a capacity-cancelled job) continues the same log.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { FileStore } from '../store/file-store.ts';
import { runKeys } from '../store/keys.ts';
import type { ObjectStore } from '../store/object-store.ts';
import type { JobEvent, LocalJob, OutputStream } from './job-runner.ts';

export const DEFAULT_MAX_LOG_BYTES = 8 * 1024 * 1024;

interface BufferedLog {
  lines: string[];
  bytes: number;
  dropped: number;
  dirty: boolean;
}

export class JobLogs {
  readonly #store: ObjectStore;
  readonly #runId: string;
  readonly #maxBytes: number;
  readonly #streams = new Map<string, WriteStream>();
  readonly #buffers = new Map<string, BufferedLog>();
  /** Per job, the last write: writes of one log are chained, so an older one never lands last. */
  readonly #writes = new Map<string, Promise<void>>();
  readonly #failures: string[] = [];
  readonly #labels = new Set<string>();

  constructor(store: ObjectStore, runId: string, options: { readonly maxBytes?: number } = {}) {
    this.#store = store;
    this.#runId = runId;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_LOG_BYTES;
  }

  /** The store key of a job's log. */
  keyOf(label: string): string {
    return runKeys(this.#runId).jobLog(label);
  }

  /** Where a person finds a job's log: a file path in a file store, the object's URL elsewhere. */
  locationOf(label: string): string {
    const key = this.keyOf(label);
    return this.#store instanceof FileStore ? join(this.#store.root, ...key.split('/')) : `${this.#store.location}/${key}`;
  }

  /** Every job that wrote a log, label -> location. */
  get written(): Readonly<Record<string, string>> {
    return Object.fromEntries([...this.#labels].map((label) => [label, this.locationOf(label)]));
  }

  onOutput = (job: LocalJob, line: string, stream: OutputStream): void => {
    this.#append(job.label, stream === 'stderr' ? `[stderr] ${line}` : line);
  };

  onJobEvent = (event: JobEvent): void => {
    const { label } = event.job;
    switch (event.type) {
      case 'queued':
        return;
      case 'started':
        this.#append(label, `--- ${label}: attempt ${event.attempt} started ${new Date().toISOString()} ---`);
        return;
      case 'attempt-failed':
        this.#append(label, `--- ${label}: attempt ${event.attempt.attempt} failed: ${event.attempt.statusReason} (${event.attempt.reason})${event.willRetry ? ', retrying' : ''} ---`);
        this.#flush(label);
        return;
      default:
        // Cancelled while queued: nothing ran, so there is no log to start.
        if (event.record.attempts.length === 0 && !this.#has(label)) return;
        this.#append(label, `--- ${label}: ${event.record.status} ${event.record.statusReason} ---`);
        this.#flush(label);
    }
  };

  /** Writes what is buffered and closes the files; resolves when every write is done. */
  async close(): Promise<void> {
    for (const label of this.#buffers.keys()) this.#flush(label);
    await Promise.all(
      [...this.#streams.values()].map((stream) => new Promise<void>((resolve) => (stream.writableFinished ? resolve() : stream.end(resolve)))),
    );
    this.#streams.clear();
    await Promise.all([...this.#writes.values()]);
  }

  /** Why logs could not be written (a full disk, a store error); never thrown into the run. */
  get failures(): readonly string[] {
    return this.#failures;
  }

  #has(label: string): boolean {
    return this.#labels.has(label);
  }

  #append(label: string, line: string): void {
    this.#labels.add(label);
    if (this.#store instanceof FileStore) {
      let stream = this.#streams.get(label);
      if (stream === undefined) {
        const path = this.locationOf(label);
        try {
          mkdirSync(dirname(path), { recursive: true });
        } catch (error) {
          this.#failures.push(`${path}: ${(error as Error).message}`);
        }
        stream = createWriteStream(path, { flags: 'a' });
        stream.on('error', (error) => this.#failures.push(`${path}: ${error.message}`));
        this.#streams.set(label, stream);
      }
      stream.write(`${line}\n`);
      return;
    }
    const log = this.#buffers.get(label) ?? { lines: [], bytes: 0, dropped: 0, dirty: false };
    this.#buffers.set(label, log);
    log.lines.push(line);
    log.bytes += Buffer.byteLength(line) + 1;
    log.dirty = true;
    while (log.bytes > this.#maxBytes && log.lines.length > 1) {
      log.bytes -= Buffer.byteLength(log.lines.shift() as string) + 1;
      log.dropped++;
    }
  }

  #flush(label: string): void {
    const log = this.#buffers.get(label);
    if (log === undefined || !log.dirty) return;
    log.dirty = false;
    const head = log.dropped > 0 ? `--- ${log.dropped} earlier lines dropped (over ${this.#maxBytes} bytes) ---\n` : '';
    const body = `${head}${log.lines.join('\n')}\n`;
    const previous = this.#writes.get(label) ?? Promise.resolve();
    this.#writes.set(
      label,
      previous.then(() =>
        this.#store.put(this.keyOf(label), body, { contentType: 'text/plain' }).catch((error: unknown) => {
          this.#failures.push(`${this.locationOf(label)}: ${(error as Error).message}`);
        }),
      ),
    );
  }
}
