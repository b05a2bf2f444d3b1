/**
 * Starts s3rver (an S3 emulator) for a test file, in a child process on 127.0.0.1 with an
 * ephemeral port and a fresh temporary directory. See s3rver-child.mjs for why a child process.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { S3StoreOptions } from '../../src/store/s3-store.ts';

export interface RunningS3rver {
  readonly endpoint: string;
  readonly bucket: string;
  stop(): Promise<void>;
}

// A safety net for a child that hangs, not an expectation: start-up takes a second or two, much
// longer on a loaded machine; a child that fails exits and is reported at once.
const START_TIMEOUT_MS = 5 * 60_000;
const STOP_TIMEOUT_MS = 5_000;

/** S3Store options for a running s3rver: its endpoint, path-style URLs and the fixed credentials it checks. */
export function s3rverStoreOptions(s3rver: RunningS3rver): S3StoreOptions {
  return {
    bucket: s3rver.bucket,
    endpoint: s3rver.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 2,
  };
}

export async function startS3rver(bucket = 'emo-dir-test'): Promise<RunningS3rver> {
  const directory = await mkdtemp(join(tmpdir(), 'emo-dir-s3rver-'));
  const script = new URL('./s3rver-child.mjs', import.meta.url).pathname;
  // NODE_OPTIONS is dropped: the runner's `--import tsx` is not needed for a .mjs child.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script, directory, bucket], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    await rm(directory, { recursive: true, force: true });
  };

  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with ${code} before listening: ${stderr}`));
      });
      createInterface({ input: child.stdout }).once('line', (line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    return { endpoint: `http://127.0.0.1:${port}`, bucket, stop };
  } catch (error) {
    child.kill('SIGKILL');
    await stop();
    throw error;
  }
}
