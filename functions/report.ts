/**
 * Report (DESIGN §3 step 5; statemachine/README.md). One function serves two states:
 *
 * - `Report` { action: "report", runId, searchJobs?, finalizeJobs? }: build `report.json` from
 *   the store, render `report.html`, write `status.json` (src/report/build.ts `writeReport`).
 *   `*Jobs` are the Maps' results `[{ runId, subnet | target, job: { jobId, status } }]`; a job
 *   that did not succeed becomes a problem in the report.
 *   Returns { reportKey, htmlKey, statusKey, status } (the state machine keeps reportKey, htmlKey).
 * - `RecordFailure` { action: "recordFailure", runId, error: { Error, Cause } }: see
 *   functions/record-failure.ts. Returns { runId, statusKey } (ignored).
 *
 * Environment (functions/lib/env.ts): EMO_DIR_STORE (or BUCKET); optional
 * EMO_DIR_USD_PER_GPU_HOUR for the report's cost estimate.
 */
import { z } from 'zod';
import { recordFailure, writeReport, type RecordedFailure, type ReportJob, type WrittenReport } from '../src/report/build.ts';
import { nameSchema } from '../src/schema/spec.ts';
import { defineHandler, type LambdaHandler } from './lib/handler.ts';
import { readEnv, storeFromEnv } from './lib/env.ts';
import type { HandlerDependencies } from './plan.ts';
import { caughtErrorSchema } from './record-failure.ts';

/** One iteration result of a Batch Map (ItemSelector + ResultSelector of the ASL). */
const mapJobSchema = z.looseObject({
  runId: z.string().optional(),
  subnet: z.string().optional(),
  target: z.string().optional(),
  job: z.looseObject({ jobId: z.string().optional(), status: z.string().optional() }).optional(),
});

export const reportEventSchema = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('report'),
    runId: nameSchema,
    searchJobs: z.array(mapJobSchema).optional(),
    finalizeJobs: z.array(mapJobSchema).optional(),
  }),
  z.object({ action: z.literal('recordFailure'), runId: nameSchema, error: caughtErrorSchema }),
]);
export type ReportEvent = z.output<typeof reportEventSchema>;

const reportEnvSchema = z.looseObject({
  EMO_DIR_USD_PER_GPU_HOUR: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'must be a non-negative number')
    .transform(Number)
    .optional(),
});

function jobsOf(stage: ReportJob['stage'], jobs: readonly z.output<typeof mapJobSchema>[] | undefined): ReportJob[] {
  return (jobs ?? []).map((entry, index) => ({
    stage,
    subject: (stage === 'search' ? entry.subnet : entry.target) ?? `#${index}`,
    ...(entry.job?.jobId === undefined ? {} : { jobId: entry.job.jobId }),
    ...(entry.job?.status === undefined ? {} : { status: entry.job.status }),
  }));
}

export function createReportHandler(deps: HandlerDependencies = {}): LambdaHandler<WrittenReport | RecordedFailure> {
  // Resolved on first use, not at import (see functions/plan.ts).
  let resolved = deps.store;
  const store = () => (resolved ??= storeFromEnv(deps.env ?? process.env, 'the report function'));
  return defineHandler(
    reportEventSchema,
    async (event, { logger }) => {
      const now = deps.now?.();
      if (event.action === 'recordFailure') {
        logger.warn('run failed', { error: event.error.Error });
        return recordFailure(store(), event.runId, event.error, now === undefined ? {} : { now });
      }
      const env = readEnv(reportEnvSchema, 'the report function', deps.env ?? process.env);
      const written = await writeReport(store(), event.runId, {
        jobs: [...jobsOf('search', event.searchJobs), ...jobsOf('finalize', event.finalizeJobs)],
        ...(now === undefined ? {} : { now }),
        ...(env.EMO_DIR_USD_PER_GPU_HOUR === undefined ? {} : { usdPerGpuHour: env.EMO_DIR_USD_PER_GPU_HOUR }),
      });
      logger.info('report written', { ...written });
      return written;
    },
    { name: 'report', logger: deps.logger },
  );
}

export const handler = createReportHandler();
