/**
 * `emo-dir report`: fetch a run's self-contained `report.html` (written by the Report step) to
 * a local file. The file is written to a temporary name and renamed, so an interrupted download
 * never leaves half a report under the requested name.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { runKeys } from '../store/keys.ts';
import { NotFoundError, type ObjectStore } from '../store/object-store.ts';

export class ReportNotReadyError extends Error {
  constructor(readonly runId: string, readonly key: string, location: string, hasRun: boolean) {
    super(
      hasRun
        ? `run ${runId} has no report yet (${key} is missing in ${location}); ` +
            `see its progress with: emo-dir status ${runId}`
        : `no run ${runId} in ${location} (nothing under ${runKeys(runId).prefix})`,
    );
    this.name = 'ReportNotReadyError';
  }
}

export interface DownloadReportOptions {
  readonly runId: string;
  readonly store: ObjectStore;
  readonly outFile: string;
}

export interface DownloadedReport {
  readonly runId: string;
  readonly key: string;
  readonly outFile: string;
  readonly bytes: number;
}

export async function downloadReport(options: DownloadReportOptions): Promise<DownloadedReport> {
  const keys = runKeys(options.runId);
  const key = keys.report.html;
  let body: Uint8Array;
  try {
    body = await options.store.get(key);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    const hasRun = (await options.store.list(keys.prefix)).length > 0;
    throw new ReportNotReadyError(options.runId, key, options.store.location, hasRun);
  }
  const outFile = resolve(options.outFile);
  await mkdir(dirname(outFile), { recursive: true });
  const tmp = `${outFile}.${randomBytes(6).toString('hex')}.part`;
  try {
    await writeFile(tmp, body);
    await rename(tmp, outFile);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`cannot write the report to ${outFile}: ${(error as Error).message}`, { cause: error });
  }
  return { runId: options.runId, key, outFile, bytes: body.byteLength };
}
