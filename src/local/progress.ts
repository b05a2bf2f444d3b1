/**
 * Progress of an embedded run (DESIGN §4: "progress is shown per sub-network and generation").
 *
 * Workers report progress as JSON lines on stdout, e.g.
 *   {"event":"generation","subnet":"000","generation":3,"generations":8,"evaluations":40,"hypervolume":0.41}
 *   {"event":"phase","subnet":"000","phase":"features"}
 * Everything here is a pure function of those lines and of the job runner's lifecycle events
 * (`ProgressModel`, `format*`), except `ProgressDisplay`, the thin writer that draws them: on a
 * TTY one bar per job, redrawn in place with ANSI escapes at most every `throttleMs`; elsewhere
 * (CI logs, `--json` runs that keep stdout for the result) plain log lines; with `quiet` only
 * the lines that matter (job ends, retries, failures). Worker output that is not progress goes
 * to the plain log, but not to a TTY unless asked (`--verbose`): there the jobs' log files in the
 * store hold it (job-logs.ts).
 */
import { workerEventSchema, type GenerationProgressEvent, type WorkerProgressEvent } from '../schema/progress.ts';
import type { JobEvent, LocalJob, OutputStream } from './job-runner.ts';

export type { WorkerProgressEvent };


/** The progress event on a worker's output line, or undefined for any other line. */
export function parseProgressLine(line: string): WorkerProgressEvent | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  const parsed = workerEventSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

export type JobProgressStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';

export interface JobProgress {
  readonly label: string;
  readonly status: JobProgressStatus;
  readonly attempt: number;
  readonly phase?: string;
  readonly generation?: number;
  readonly generations?: number;
  readonly evaluations?: number;
  readonly hypervolume?: number;
  /** Epoch ms the current attempt started. */
  readonly startedAt?: number;
  /** Epoch ms the job ended. */
  readonly endedAt?: number;
}

/** Lines a plain log shows for an update, and whether the bars changed. */
export interface ProgressUpdate {
  readonly changed: boolean;
  /** Shown in every mode (ends, retries, failures). */
  readonly important: readonly string[];
  /** Shown in plain logs (generations, phases); on a TTY the bars show them. */
  readonly detail: readonly string[];
  /** What a worker wrote that is not progress, `[label] line`: on screen only where the display shows worker output. */
  readonly output: readonly string[];
}

const NO_UPDATE: ProgressUpdate = { changed: false, important: [], detail: [], output: [] };

function fixed(value: number, digits: number): string {
  return value.toFixed(digits);
}

/** `search 000: generation 3/8, 40 evaluations, hypervolume 0.410`. */
export function formatGenerationLine(label: string, event: GenerationProgressEvent): string {
  const parts = [`generation ${event.generation}${event.generations === undefined ? '' : `/${event.generations}`}`];
  if (event.evaluations !== undefined) parts.push(`${event.evaluations} evaluations`);
  if (event.hypervolume !== undefined) parts.push(`hypervolume ${fixed(event.hypervolume, 3)}`);
  return `${label}: ${parts.join(', ')}`;
}

/** `[#######.....]`: `fraction` of `width` cells filled (clamped to 0..1). */
export function formatBar(fraction: number, width: number): string {
  const cells = Math.max(1, width);
  const clamped = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const filled = Math.round(clamped * cells);
  return `[${'#'.repeat(filled)}${'.'.repeat(cells - filled)}]`;
}

export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** The fraction of a job done, as far as its progress says (generations; ends are 0 or 1). */
export function progressFraction(progress: JobProgress): number {
  if (progress.status === 'succeeded') return 1;
  if (progress.generation !== undefined && progress.generations !== undefined) return progress.generation / progress.generations;
  return 0;
}

/** One bar line of the TTY display, cut to `columns`. */
export function formatProgressLine(progress: JobProgress, now: number, columns = 100, labelWidth = progress.label.length): string {
  const label = progress.label.padEnd(labelWidth);
  const status =
    progress.status === 'running'
      ? progress.attempt > 1
        ? `attempt ${progress.attempt}`
        : ''
      : progress.status;
  const facts: string[] = [];
  if (progress.generation !== undefined) {
    facts.push(`gen ${progress.generation}${progress.generations === undefined ? '' : `/${progress.generations}`}`);
  }
  if (progress.evaluations !== undefined) facts.push(`${progress.evaluations} evals`);
  if (progress.hypervolume !== undefined) facts.push(`HV ${fixed(progress.hypervolume, 3)}`);
  if (progress.phase !== undefined && progress.status === 'running') facts.push(progress.phase);
  if (status !== '') facts.push(status);
  if (progress.startedAt !== undefined) facts.push(formatDuration(((progress.endedAt ?? now) - progress.startedAt) / 1000));
  const line = `${label} ${formatBar(progressFraction(progress), 20)} ${facts.join('  ')}`.trimEnd();
  return line.length > columns ? `${line.slice(0, Math.max(0, columns - 1))}…` : line;
}

/** Per-job progress, updated from job events and worker output lines; pure apart from time stamps. */
export class ProgressModel {
  readonly #jobs = new Map<string, JobProgress>();

  /** Jobs in the order they were first seen. */
  get jobs(): readonly JobProgress[] {
    return [...this.#jobs.values()];
  }

  #update(label: string, change: Partial<JobProgress>): void {
    const current = this.#jobs.get(label) ?? { label, status: 'queued' as const, attempt: 0 };
    this.#jobs.set(label, { ...current, ...change });
  }

  applyJobEvent(event: JobEvent, now: number): ProgressUpdate {
    const { label } = event.job;
    switch (event.type) {
      case 'queued':
        this.#update(label, { status: 'queued' });
        return { changed: true, important: [], detail: [`${label}: queued`], output: [] };
      case 'started':
        this.#update(label, { status: 'running', attempt: event.attempt, startedAt: now, endedAt: undefined });
        return { changed: true, important: [], detail: [`${label}: started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`], output: [] };
      case 'attempt-failed': {
        const how = event.attempt.signal !== null ? `killed by ${event.attempt.signal}` : `exit code ${event.attempt.exitCode ?? 'none'}`;
        this.#update(label, { status: event.willRetry ? 'retrying' : 'failed' });
        return {
          changed: true,
          important: [`${label}: attempt ${event.attempt.attempt} failed (${how}, ${event.attempt.statusReason})${event.willRetry ? ', retrying' : ''}`],
          detail: [],
          output: [],
        };
      }
      case 'succeeded':
        this.#update(label, { status: 'succeeded', endedAt: now });
        return { changed: true, important: [`${label}: done in ${formatDuration(event.record.workerSeconds)}`], detail: [], output: [] };
      case 'failed':
        this.#update(label, { status: 'failed', endedAt: now });
        return { changed: true, important: [`${label}: failed: ${event.record.statusReason}`], detail: [], output: [] };
      case 'cancelled':
        this.#update(label, { status: 'cancelled', endedAt: now });
        return { changed: true, important: [`${label}: cancelled (${event.record.statusReason})`], detail: [], output: [] };
    }
  }

  /** A line a worker wrote: progress JSON updates the job, anything else is worker output. */
  applyOutput(job: LocalJob, line: string, stream: OutputStream): ProgressUpdate {
    const event = stream === 'stdout' ? parseProgressLine(line) : undefined;
    if (event === undefined) return line.trim() === '' ? NO_UPDATE : { changed: false, important: [], detail: [], output: [`[${job.label}] ${line}`] };
    if (event.event === 'generation') {
      this.#update(job.label, {
        generation: event.generation,
        ...(event.generations === undefined ? {} : { generations: event.generations }),
        ...(event.evaluations === undefined ? {} : { evaluations: event.evaluations }),
        ...(event.hypervolume === undefined ? {} : { hypervolume: event.hypervolume }),
      });
      return { changed: true, important: [], detail: [formatGenerationLine(job.label, event)], output: [] };
    }
    this.#update(job.label, { phase: event.phase });
    return { changed: true, important: [], detail: [`${job.label}: ${event.phase}${event.message === undefined ? '' : `: ${event.message}`}`], output: [] };
  }

  /** The bar lines, labels aligned. */
  render(now: number, columns = 100): string[] {
    const jobs = this.jobs;
    const labelWidth = Math.max(0, ...jobs.map((job) => job.label.length));
    return jobs.map((job) => formatProgressLine(job, now, columns, labelWidth));
  }
}

/** The stream a display writes to (process.stderr, or a test double). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export type ProgressMode = 'tty' | 'plain' | 'quiet';

export interface ProgressDisplayOptions {
  readonly stream: ProgressStream;
  /** Default: 'tty' when the stream is a TTY, else 'plain'. */
  readonly mode?: ProgressMode;
  /**
   * Whether worker output (not progress) is shown. Default: in plain logs yes; on a TTY no (the
   * bars are the screen, the output goes to the jobs' log files: job-logs.ts); quiet never.
   * `emo-dir run --verbose` sets it.
   */
  readonly showWorkerOutput?: boolean;
  /** Minimum time between redraws on a TTY. Default 100 ms. */
  readonly throttleMs?: number;
  readonly now?: () => number;
}

// Cursor to the start of the line n lines up; erase the line; erase to the end of the screen.
const cursorUp = (lines: number): string => (lines > 0 ? `\x1b[${lines}F` : '\r');
const ERASE_LINE = '\x1b[2K';
const ERASE_DOWN = '\x1b[J';

/** Writes a ProgressModel to a stream: redrawn bars on a TTY, log lines elsewhere. */
export class ProgressDisplay {
  readonly model = new ProgressModel();
  readonly mode: ProgressMode;
  readonly showWorkerOutput: boolean;
  readonly #stream: ProgressStream;
  readonly #throttleMs: number;
  readonly #now: () => number;
  #drawn = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ProgressDisplayOptions) {
    this.#stream = options.stream;
    this.mode = options.mode ?? (options.stream.isTTY === true ? 'tty' : 'plain');
    this.showWorkerOutput = this.mode !== 'quiet' && (options.showWorkerOutput ?? this.mode === 'plain');
    this.#throttleMs = options.throttleMs ?? 100;
    this.#now = options.now ?? Date.now;
  }

  onJobEvent = (event: JobEvent): void => this.#apply(this.model.applyJobEvent(event, this.#now()));

  onOutput = (job: LocalJob, line: string, stream: OutputStream): void => this.#apply(this.model.applyOutput(job, line, stream));

  /** A line of the run itself (state transitions, the result), shown in every mode, also after close. */
  log = (line: string): void => {
    if (this.mode === 'tty' && !this.#closed) this.#withBarsCleared(() => this.#stream.write(`${line}\n`));
    else this.#stream.write(`${line}\n`);
  };

  /** Draws the final state once and stops redrawing (log lines then go below the bars). */
  close(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    if (this.mode === 'tty') this.#draw();
    this.#closed = true;
  }

  #apply(update: ProgressUpdate): void {
    if (this.#closed) return;
    const output = this.showWorkerOutput ? update.output : [];
    if (this.mode === 'tty') {
      // On a TTY the bars show generations and phases; shown worker output scrolls above them.
      const lines = [...update.important, ...output];
      if (lines.length > 0) this.#withBarsCleared(() => this.#stream.write(`${lines.join('\n')}\n`));
      if (update.changed) this.#scheduleDraw();
      return;
    }
    const lines = this.mode === 'quiet' ? update.important : [...update.important, ...update.detail, ...output];
    if (lines.length > 0) this.#stream.write(`${lines.join('\n')}\n`);
  }

  #scheduleDraw(): void {
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastDraw + this.#throttleMs - this.#now());
    if (wait === 0) {
      this.#draw();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) this.#draw();
    }, wait);
    this.#timer.unref();
  }

  #withBarsCleared(write: () => void): void {
    if (this.#drawn > 0) this.#stream.write(`${cursorUp(this.#drawn)}${ERASE_DOWN}`);
    this.#drawn = 0;
    write();
    this.#draw();
  }

  #draw(): void {
    const lines = this.model.render(this.#now(), Math.max(20, (this.#stream.columns ?? 100) - 1));
    let text = this.#drawn > 0 ? cursorUp(this.#drawn) : '';
    for (const line of lines) text += `${ERASE_LINE}${line}\n`;
    text += ERASE_DOWN;
    this.#stream.write(text);
    this.#drawn = lines.length;
    this.#lastDraw = this.#now();
  }
}
