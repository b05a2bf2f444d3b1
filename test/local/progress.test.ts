import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobEvent, JobRecord, LocalJob } from '../../src/local/job-runner.ts';
import {
  ProgressDisplay,
  ProgressModel,
  formatBar,
  formatDuration,
  formatProgressLine,
  parseProgressLine,
} from '../../src/local/progress.ts';

const job: LocalJob = {
  jobId: 'j1', jobName: 'emo-dir-search', definition: 'search', command: [], environment: {}, label: 'search 000',
};
const generation = (n: number): string =>
  JSON.stringify({ event: 'generation', subnet: '000', generation: n, generations: 8, evaluations: n * 10, hypervolume: n / 20 });
const record = (fields: Partial<JobRecord> = {}): JobRecord => ({
  job, status: 'SUCCEEDED', statusReason: '', attempts: [], createdAt: 0, stoppedAt: 0, workerSeconds: 75, logTail: [], ...fields,
});

describe('progress formatting (pure)', () => {
  it('parses worker progress lines and ignores everything else', () => {
    assert.deepEqual(parseProgressLine(generation(3)), {
      event: 'generation', subnet: '000', generation: 3, generations: 8, evaluations: 30, hypervolume: 0.15,
    });
    assert.deepEqual(parseProgressLine('{"event":"phase","subnet":"000","phase":"features"}'), { event: 'phase', subnet: '000', phase: 'features' });
    assert.equal(parseProgressLine('loading model...'), undefined);
    assert.equal(parseProgressLine('{"event":"generation"}'), undefined, 'a generation without its number');
    assert.equal(parseProgressLine('{"level":"info","msg":"x"}'), undefined);
    assert.equal(parseProgressLine('{not json'), undefined);
  });

  it('draws bars, durations and job lines', () => {
    assert.equal(formatBar(0.5, 10), '[#####.....]');
    assert.equal(formatBar(2, 4), '[####]');
    assert.equal(formatBar(Number.NaN, 4), '[....]');
    assert.equal(formatDuration(59.9), '59s');
    assert.equal(formatDuration(125), '2m05s');
    assert.equal(formatDuration(3 * 3600 + 120), '3h02m');
    const line = formatProgressLine(
      { label: 'search 000', status: 'running', attempt: 2, generation: 4, generations: 8, evaluations: 40, hypervolume: 0.4123, phase: 'search', startedAt: 0 },
      12_000,
    );
    assert.equal(line, 'search 000 [##########..........] gen 4/8  40 evals  HV 0.412  search  attempt 2  12s');
    assert.equal(formatProgressLine({ label: 'x', status: 'queued', attempt: 0 }, 0, 100, 4), 'x    [....................] queued');
    assert.ok(formatProgressLine({ label: 'x'.repeat(200), status: 'queued', attempt: 0 }, 0, 40).length <= 40);
  });

  it('follows a job through retries to its end', () => {
    const model = new ProgressModel();
    const events: JobEvent[] = [
      { type: 'queued', job },
      { type: 'started', job, attempt: 1 },
    ];
    for (const event of events) model.applyJobEvent(event, 1_000);
    const update = model.applyOutput(job, generation(2), 'stdout');
    assert.deepEqual(update.detail, ['search 000: generation 2/8, 20 evaluations, hypervolume 0.100']);
    assert.equal(model.jobs[0].generation, 2);
    // Progress JSON on stderr is worker output, not progress.
    assert.deepEqual(model.applyOutput(job, generation(5), 'stderr').output, [`[search 000] ${generation(5)}`]);
    assert.equal(model.jobs[0].generation, 2);
    const failed = model.applyJobEvent(
      { type: 'attempt-failed', job, willRetry: true, attempt: { attempt: 1, startedAt: 0, stoppedAt: 1, exitCode: null, signal: 'SIGKILL', reason: 'r', statusReason: 'Host EC2 (instance local) terminated.' } },
      2_000,
    );
    assert.deepEqual(failed.important, ['search 000: attempt 1 failed (killed by SIGKILL, Host EC2 (instance local) terminated.), retrying']);
    assert.equal(model.jobs[0].status, 'retrying');
    model.applyJobEvent({ type: 'started', job, attempt: 2 }, 3_000);
    const done = model.applyJobEvent({ type: 'succeeded', job, record: record() }, 9_000);
    assert.deepEqual(done.important, ['search 000: done in 1m15s']);
    assert.equal(model.render(9_000)[0], 'search 000 [####################] gen 2/8  20 evals  HV 0.100  succeeded  6s');
  });
});

describe('ProgressDisplay', () => {
  function stream(isTTY: boolean) {
    const writes: string[] = [];
    let written: (() => void) | undefined;
    /** Resolves at the next write (a minute without one is a display that never redraws). */
    const nextWrite = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no write for a minute')), 60_000);
        written = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    const write = (text: string): number => {
      writes.push(text);
      written?.();
      written = undefined;
      return writes.length;
    };
    return { writes, nextWrite, stream: { isTTY, columns: 80, write } };
  }

  it('writes plain lines off a TTY, and only important ones when quiet', () => {
    const plain = stream(false);
    const display = new ProgressDisplay({ stream: plain.stream });
    assert.equal(display.mode, 'plain');
    display.onJobEvent({ type: 'started', job, attempt: 1 });
    display.onOutput(job, generation(1), 'stdout');
    display.onOutput(job, 'hello', 'stderr');
    display.onJobEvent({ type: 'succeeded', job, record: record() });
    assert.equal(plain.writes.join(''), 'search 000: started\nsearch 000: generation 1/8, 10 evaluations, hypervolume 0.050\n[search 000] hello\nsearch 000: done in 1m15s\n');
    assert.ok(!plain.writes.join('').includes('\x1b['), 'no escape codes in logs');

    const quiet = stream(true);
    const quietDisplay = new ProgressDisplay({ stream: quiet.stream, mode: 'quiet' });
    quietDisplay.onJobEvent({ type: 'started', job, attempt: 1 });
    quietDisplay.onOutput(job, generation(1), 'stdout');
    quietDisplay.onJobEvent({ type: 'failed', job, record: record({ status: 'FAILED', statusReason: 'exit code 1' }) });
    assert.equal(quiet.writes.join(''), 'search 000: failed: exit code 1\n');
  });

  it('keeps worker output off a TTY (it is in the job logs) unless asked, and shows failures either way', () => {
    for (const showWorkerOutput of [undefined, true]) {
      const tty = stream(true);
      const display = new ProgressDisplay({ stream: tty.stream, throttleMs: 1_000_000, ...(showWorkerOutput ? { showWorkerOutput } : {}) });
      display.onOutput(job, 'loading model...', 'stderr');
      display.onJobEvent({ type: 'failed', job, record: record({ status: 'FAILED', statusReason: 'exit code 1' }) });
      const text = tty.writes.join('');
      assert.equal(text.includes('[search 000] loading model...'), showWorkerOutput === true, text);
      assert.ok(text.includes('search 000: failed: exit code 1'), text);
    }
    assert.equal(new ProgressDisplay({ stream: stream(false).stream }).showWorkerOutput, true, 'plain logs show it');
    assert.equal(new ProgressDisplay({ stream: stream(false).stream, mode: 'quiet', showWorkerOutput: true }).showWorkerOutput, false, 'quiet never');
  });

  it('redraws bars in place on a TTY, at most once per throttle interval', async () => {
    const tty = stream(true);
    let now = 0;
    const display = new ProgressDisplay({ stream: tty.stream, throttleMs: 50, now: () => now });
    assert.equal(display.mode, 'tty');
    display.onJobEvent({ type: 'started', job, attempt: 1 });
    // The first change draws at once (one bar, cleared to the end of the screen).
    assert.deepEqual(tty.writes, ['\x1b[2Ksearch 000 [....................] 0s\n\x1b[J']);
    now = 10;
    display.onOutput(job, generation(1), 'stdout');
    display.onOutput(job, generation(2), 'stdout');
    assert.equal(tty.writes.length, 1, 'updates within the interval wait');
    now = 60;
    // The redraw waits for the rest of the interval on a real timer: wait for it, not a guess.
    await tty.nextWrite();
    assert.equal(tty.writes.length, 2);
    // The redraw moves up over the one drawn line and shows only the latest generation.
    assert.equal(tty.writes[1], '\x1b[1F\x1b[2Ksearch 000 [#####...............] gen 2/8  20 evals  HV 0.100  0s\n\x1b[J');
    // A log line goes above the bars: clear them, write, draw again.
    display.log('> Merge');
    assert.deepEqual(tty.writes.slice(2), ['\x1b[1F\x1b[J', '> Merge\n', '\x1b[2Ksearch 000 [#####...............] gen 2/8  20 evals  HV 0.100  0s\n\x1b[J']);
    display.close();
    const count = tty.writes.length;
    display.onOutput(job, generation(3), 'stdout');
    assert.equal(tty.writes.length, count, 'no redraw after close');
    display.log('summary');
    assert.deepEqual(tty.writes.slice(count), ['summary\n'], 'logs after close are plain lines below the bars');
  });
});
