/**
 * The Report step (DESIGN §3 step 5): gather everything a run left in the store into one
 * `report.json` (src/schema/report.ts) and render `report.html` from it (./html.ts).
 *
 * Defensive by design: the report is most useful exactly when something went wrong, so nothing
 * a step may fail to write is required. A missing or malformed front, plan, joint front or
 * metrics.json becomes an entry of `problems` (stage, subject, what and which key), and the
 * affected part of the report is left out; only a run without a readable spec fails the build
 * (there is then no run to report on). Status:
 *   succeeded  every target has metrics and nothing is wrong;
 *   partial    some targets have metrics, something else is missing or failed;
 *   failed     no target has metrics.
 *
 * The report is re-rendered whenever asked (a later `emo-dir report` after a fix), so both files
 * are overwritten; every input stays create-only.
 */
import { z } from 'zod';
import { loadFront, type LoadedFront } from '../dir/merge-run.ts';
import {
  jointFrontFileSchema,
  manifestSchema,
  planSchema,
  type JointFrontFile,
  type Manifest,
  type Plan,
  type PlanScheme,
} from '../dir/manifest.ts';
import {
  REPORT_SCHEMA_VERSION,
  parseReport,
  reportSubnetworkSchema,
  reportTargetSchema,
  type Report,
  type ReportFrontPoint,
  type ReportProblem,
  type ReportSubnetwork,
  type ReportTarget,
} from '../schema/report.ts';
import { runStatusRecordSchema } from '../schema/messages.ts';
import { finalizeMetricsSchema, type FinalizeMetrics } from '../schema/metrics.ts';
import { modelRegistrationsSchema } from '../schema/model-registry.ts';
import { searchLogEntrySchema } from '../schema/progress.ts';
import { runSpecSchema, targetName, type RunSpec } from '../schema/spec.ts';
import { formatPath, parseWith } from '../schema/validate.ts';
import { runKeys, type RunKeys } from '../store/keys.ts';
import { NotFoundError, getJson, getText, putJson, type ObjectStore } from '../store/object-store.ts';
import { renderReportHtml } from './html.ts';

// ---------------------------------------------------------------------------------------------
// targets/<t>/metrics.json, as the finalize step writes it (validated here, leniently: unknown
// fields pass, so finalize may add diagnostics without breaking the report)

/** metrics.json, read with its one schema (src/schema/metrics.ts, written by finalize). */
export const metricsFileSchema = finalizeMetricsSchema;
export type MetricsFile = FinalizeMetrics;

export interface BuildReportOptions {
  /** generatedAt / finishedAt. Default: now. */
  readonly now?: Date;
  /** When the run started. Default: the manifest's createdAt (the end of Plan, close enough). */
  readonly startedAt?: Date;
  /** Wall-clock seconds of the run. Default: now - startedAt. */
  readonly wallSeconds?: number;
  /** Seconds inside search/finalize workers. Default: the sum of what fronts and metrics report. */
  readonly workerSeconds?: number;
  /** Embedded runs: wall time covered by no worker and no handler (the runner's own cost). */
  readonly overheadSeconds?: number;
  /** GPU price for a cost estimate (cloud runs). */
  readonly usdPerGpuHour?: number;
  readonly backend?: string;
  /** Batch jobs of the Search and Finalize Maps, as the Report state receives them. */
  readonly jobs?: readonly ReportJob[];
}

export interface ReportJob {
  readonly stage: 'search' | 'finalize';
  /** Sub-network id or target name. */
  readonly subject: string;
  readonly jobId?: string;
  /** Batch job status (SUCCEEDED, FAILED, ...). */
  readonly status?: string;
}


// ---------------------------------------------------------------------------------------------
// Reading what exists

type Read<T> = { ok: true; value: T } | { ok: false; missing: boolean; message: string };

/** Reads and validates `key`; a missing object or a bad one is a value, not an exception. */
async function readDocument<S extends z.ZodType>(store: ObjectStore, key: string, schema: S): Promise<Read<z.output<S>>> {
  try {
    return { ok: true, value: parseWith(schema, await getJson(store, key), key) };
  } catch (error) {
    if (error instanceof NotFoundError) return { ok: false, missing: true, message: `${key} is missing` };
    return { ok: false, missing: false, message: (error as Error).message };
  }
}

/**
 * What a sub-network's `log.jsonl` (src/dir/search-task.ts) says about its search: the search's
 * own elapsed time (the `done` line's `searchElapsedMs`, which adds up resumed sessions; else the
 * last `generation` line's `elapsedMs`) and the hypervolume of the last generation.
 */
export async function searchLogSummary(store: ObjectStore, key: string): Promise<{ seconds?: number; hypervolume?: number }> {
  let text: string;
  try {
    text = await getText(store, key);
  } catch {
    return {};
  }
  let doneMs: number | undefined;
  let generationMs: number | undefined;
  let hypervolume: number | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line) as unknown;
    } catch {
      continue; // a line cut by a crash: not a source
    }
    const parsed = searchLogEntrySchema.safeParse(raw);
    if (!parsed.success) continue;
    const entry = parsed.data;
    if (entry.event === 'done' && entry.searchElapsedMs !== undefined) doneMs = entry.searchElapsedMs;
    if (entry.event === 'generation') {
      if (entry.elapsedMs !== undefined) generationMs = entry.elapsedMs;
      if (entry.hypervolume !== undefined && Number.isFinite(entry.hypervolume) && entry.hypervolume >= 0) hypervolume = entry.hypervolume;
    }
  }
  const ms = doneMs ?? generationMs;
  return {
    ...(ms === undefined || !(ms >= 0) ? {} : { seconds: ms / 1000 }),
    ...(hypervolume === undefined ? {} : { hypervolume }),
  };
}

/** Short message of a zod failure, with the first issues' paths. */
function zodMessage(error: z.ZodError): string {
  return error.issues
    .slice(0, 4)
    .map((issue) => `${formatPath(issue.path) || '(root)'}: ${issue.message}`)
    .join('; ');
}

/** The scheme finalize kept: its declared rank, else the one whose estimate metrics repeats, else rank 1. */
function chosenScheme(plan: Plan, metrics: MetricsFile | undefined): PlanScheme | undefined {
  if (plan.schemes.length === 0) return undefined;
  if (metrics?.schemeRank !== undefined) {
    const byRank = plan.schemes.find((s) => s.rank === metrics.schemeRank);
    if (byRank) return byRank;
  }
  const estimate = metrics?.estimatedImpairment;
  if (estimate !== undefined) {
    const byEstimate = plan.schemes.find((s) => Math.abs(s.estimatedImpairment - estimate) <= 1e-9 * Math.max(1, Math.abs(estimate)));
    if (byEstimate) return byEstimate;
  }
  return plan.schemes[0];
}

// ---------------------------------------------------------------------------------------------
// Building

/** Builds (and validates) the report of `runId` from the store. */
export async function buildReport(store: ObjectStore, runId: string, options: BuildReportOptions = {}): Promise<Report> {
  const keys: RunKeys = runKeys(runId);
  const now = options.now ?? new Date();
  const problems: ReportProblem[] = [];
  const problem = (stage: string, message: string, subject?: string): void => {
    problems.push({ stage, message, ...(subject === undefined ? {} : { subject }) });
  };

  // The spec is the one thing a report cannot do without: it names the model and the targets.
  const spec: RunSpec = parseWith(runSpecSchema, await getJson(store, keys.spec), `run spec ${keys.spec} (in ${store.location})`);

  // A failure recorded by the RecordFailure state: the run did not finish, whatever else exists.
  const record = await readDocument(store, keys.status, runStatusRecordSchema);
  const failed = record.ok && record.value.state === 'failed';
  if (record.ok && failed) problem('pipeline', `the execution failed: ${record.value.message ?? record.value.error ?? 'no message recorded'}`);
  for (const job of options.jobs ?? []) {
    if (job.status !== undefined && job.status !== 'SUCCEEDED') {
      problem(job.stage, `Batch job ${job.jobId ?? '(no id)'} ended ${job.status}`, job.subject);
    }
  }

  const manifestRead = await readDocument(store, keys.manifest, manifestSchema);
  const manifest: Manifest | undefined = manifestRead.ok ? manifestRead.value : undefined;
  if (!manifestRead.ok) problem('plan', `no usable manifest: ${manifestRead.message}`);

  // Targets come from the manifest when there is one (its names are the keys), else the spec.
  const targets = manifest?.targets ?? spec.targets.map((t) => ({ name: targetName(t), kind: t.kind, value: t.value }));

  const plans = new Map<string, Plan>();
  const metrics = new Map<string, MetricsFile>();
  const targetErrors = new Map<string, string>();
  for (const target of targets) {
    const planKey = keys.merge.plan(target.name);
    const planRead = await readDocument(store, planKey, planSchema);
    if (planRead.ok) {
      plans.set(target.name, planRead.value);
      if (planRead.value.error !== undefined) {
        targetErrors.set(target.name, planRead.value.error);
        problem('merge', planRead.value.error, target.name);
        continue;
      }
    } else if (!planRead.missing || manifest !== undefined) {
      // A missing plan without a manifest is already explained by the plan problem above.
      problem('merge', `no plan: ${planRead.message}`, target.name);
    }
    const metricsKey = keys.target(target.name).metrics;
    const metricsRead = await readDocument(store, metricsKey, metricsFileSchema);
    if (metricsRead.ok) {
      if (metricsRead.value.target !== target.name) {
        const message = `${metricsKey}: field target is '${metricsRead.value.target}', expected '${target.name}'`;
        targetErrors.set(target.name, message);
        problem('finalize', message, target.name);
      } else {
        metrics.set(target.name, metricsRead.value);
      }
    } else {
      const message = metricsRead.missing ? `finalize produced no metrics (${metricsKey} is missing)` : `unusable metrics: ${metricsRead.message}`;
      targetErrors.set(target.name, message);
      // Without a plan the finalize never ran: the merge problem already says so.
      if (planRead.ok) problem('finalize', message, target.name);
    }
  }

  // Sub-networks and their fronts.
  const subnetworks: ReportSubnetwork[] = [];
  let searchSeconds = 0;
  let backend = options.backend;
  for (const subnet of manifest?.division.subnetworks ?? []) {
    const entry: Record<string, unknown> = {
      id: subnet.id,
      layers: subnet.layers.length,
      groupIds: [...subnet.groupIds],
      macs: subnet.macs,
      params: subnet.params,
    };
    let front: LoadedFront | undefined;
    try {
      front = await loadFront(store, runId, subnet);
    } catch (error) {
      problem('search', (error as Error).message, subnet.id);
    }
    if (front !== undefined) {
      // Report points in the piece's scope, like `macs` above, whatever scope the front used.
      const offsetMacs = front.scope === 'prunable' ? subnet.macs - subnet.prunableMacs : 0;
      const offsetParams = front.scope === 'prunable' ? subnet.params - subnet.prunableParams : 0;
      const accuracy = new Map(front.file.points.map((p) => [p.id, p.accuracy]));
      entry.front = front.points.map((p): ReportFrontPoint => {
        const pointAccuracy = accuracy.get(p.pointId);
        return {
          id: p.pointId,
          flopsRatio: front.file.original.macs > 0 ? p.macs / front.file.original.macs : 1,
          flops: p.macs + offsetMacs,
          params: p.params + offsetParams,
          impairment: p.impairment,
          ...(pointAccuracy === undefined ? {} : { accuracy: pointAccuracy }),
        };
      });
      if (front.file.evaluations !== undefined) entry.evaluations = front.file.evaluations;
      if (front.file.generations !== undefined) entry.generations = front.file.generations;
      const logged = await searchLogSummary(store, keys.subnet(subnet.id).log);
      const hypervolume = front.file.hypervolume ?? logged.hypervolume;
      if (hypervolume !== undefined) entry.hypervolume = hypervolume;
      const seconds = front.file.searchSeconds ?? logged.seconds;
      if (seconds !== undefined) {
        entry.searchSeconds = seconds;
        searchSeconds += seconds;
      }
      if (backend === undefined && typeof front.file.backend === 'string' && front.file.backend !== '') backend = front.file.backend;
      const chosen: Record<string, string> = {};
      for (const [name, plan] of plans) {
        const scheme = chosenScheme(plan, metrics.get(name));
        const pick = scheme?.picks.find((p) => p.subnet === subnet.id);
        if (pick !== undefined && front.points.some((p) => p.pointId === pick.pointId)) chosen[name] = pick.pointId;
        else if (pick !== undefined) problem('merge', `plan ${name} picks point '${pick.pointId}', which is not on the front of ${subnet.id}`, subnet.id);
      }
      if (Object.keys(chosen).length > 0) entry.chosen = chosen;
    }
    const parsed = reportSubnetworkSchema.safeParse(entry);
    if (parsed.success) subnetworks.push(parsed.data);
    else {
      problem('search', `front of ${subnet.id} cannot be shown: ${zodMessage(parsed.error)}`, subnet.id);
      const { front: _front, chosen: _chosen, ...bare } = entry;
      subnetworks.push(reportSubnetworkSchema.parse(bare));
    }
  }

  // The joint front.
  let jointFront: JointFrontFile | undefined;
  if (manifest !== undefined) {
    const jointRead = await readDocument(store, keys.merge.jointFront, jointFrontFileSchema);
    if (jointRead.ok) jointFront = jointRead.value;
    else if (!jointRead.missing || subnetworks.every((s) => s.front !== undefined)) problem('merge', `no joint front: ${jointRead.message}`);
  }

  // Model package versions the RegisterModels step created (runs from the SageMaker model registry).
  const modelPackages = new Map<string, string>();
  const registrations = await readDocument(store, keys.modelPackages, modelRegistrationsSchema);
  if (registrations.ok) {
    for (const entry of registrations.value.targets) {
      if ('modelPackageArn' in entry) modelPackages.set(entry.target, entry.modelPackageArn);
      else problem('register', entry.error, entry.target);
    }
  } else if (!registrations.missing) {
    problem('register', `unreadable registration record: ${registrations.message}`);
  }

  // Target rows.
  let finalizeSeconds = 0;
  const reportTargets: ReportTarget[] = targets.map((target) => {
    const base = { name: target.name, kind: target.kind, value: target.value };
    const m = metrics.get(target.name);
    const plan = plans.get(target.name);
    const scheme = plan === undefined ? undefined : chosenScheme(plan, m);
    const estimated = m?.estimatedImpairment ?? scheme?.estimatedImpairment;
    const error = targetErrors.get(target.name);
    if (m === undefined) {
      const row = { ...base, ...(estimated === undefined ? {} : { estimatedImpairment: estimated }), error: error ?? 'no result' };
      return reportTargetSchema.parse(row);
    }
    // The whole finalize job when metrics say it (verify + fine-tune + export), else the fine-tune.
    const jobSeconds = m.seconds ?? m.fineTuneSeconds;
    if (jobSeconds !== undefined) finalizeSeconds += jobSeconds;
    if (backend === undefined && m.backend !== undefined) backend = m.backend;
    const row = {
      ...base,
      achieved: { macs: m.achieved.macs, params: m.achieved.params, flopsCut: m.achieved.flopsCut, paramsCut: m.achieved.paramsCut },
      ...(estimated === undefined ? {} : { estimatedImpairment: estimated }),
      ...(m.measuredImpairment === undefined ? {} : { measuredImpairment: m.measuredImpairment }),
      ...(m.measuredImpairment !== undefined && estimated !== undefined ? { estimateError: m.measuredImpairment - estimated } : {}),
      ...(m.accuracy === undefined
        ? {}
        : {
            accuracy: {
              ...(m.accuracy.beforeFineTune === undefined ? {} : { beforeFineTune: m.accuracy.beforeFineTune }),
              ...(m.accuracy.afterFineTune === undefined ? {} : { afterFineTune: m.accuracy.afterFineTune }),
              ...(m.accuracy.original === undefined ? {} : { original: m.accuracy.original }),
            },
          }),
      ...(m.fineTuneEpochs === undefined ? {} : { fineTuneEpochs: m.fineTuneEpochs }),
      ...(m.fineTuneSeconds === undefined ? {} : { fineTuneSeconds: m.fineTuneSeconds }),
      ...(m.modelKey === undefined ? {} : { modelKey: m.modelKey }),
      ...(modelPackages.has(target.name) ? { modelPackageArn: modelPackages.get(target.name) } : {}),
      ...(m.layers === undefined
        ? {}
        : { layers: m.layers.map((l) => ({ name: l.name, className: l.className, channelsBefore: l.channelsBefore, channelsAfter: l.channelsAfter })) }),
    };
    const parsed = reportTargetSchema.safeParse(row);
    if (parsed.success) return parsed.data;
    // Metrics the report cannot show are reported as such; the target counts as failed.
    const message = `${keys.target(target.name).metrics} has values the report cannot show: ${zodMessage(parsed.error)}`;
    metrics.delete(target.name);
    problem('finalize', message, target.name);
    return reportTargetSchema.parse({ ...base, ...(estimated === undefined ? {} : { estimatedImpairment: estimated }), error: message });
  });

  // Original accuracy: any target's metrics repeat it.
  const originalAccuracy = [...metrics.values()].map((m) => m.accuracy?.original).find((a) => a !== undefined);
  const startedAt = options.startedAt ?? (manifest === undefined ? undefined : new Date(manifest.createdAt)) ?? now;
  const wallSeconds = options.wallSeconds ?? Math.max(0, (now.getTime() - startedAt.getTime()) / 1000);
  const measuredWorkerSeconds = searchSeconds + finalizeSeconds;
  const workerSeconds = options.workerSeconds ?? (measuredWorkerSeconds > 0 ? measuredWorkerSeconds : undefined);

  const succeededTargets = reportTargets.filter((t) => t.error === undefined).length;
  const status: Report['status'] =
    succeededTargets === 0 ? 'failed' : succeededTargets === reportTargets.length && problems.length === 0 && !failed ? 'succeeded' : 'partial';
  if (succeededTargets === 0 && problems.length === 0) problem('report', 'no target produced a result');

  const report = {
    schemaVersion: REPORT_SCHEMA_VERSION,
    generatedAt: now.toISOString(),
    status,
    run: {
      runId,
      // The network's own name reads better than a store prefix such as runs/<id>/model/.
      model: manifest?.model.name ?? spec.model,
      dataset: spec.dataset.name,
      startedAt: startedAt.toISOString(),
      finishedAt: now.toISOString(),
      wallSeconds,
      ...(workerSeconds === undefined ? {} : { workerSeconds }),
      ...(options.overheadSeconds === undefined ? {} : { overheadSeconds: options.overheadSeconds }),
      ...(backend === undefined ? {} : { backend }),
      storeLocation: store.location,
      spec: JSON.parse(JSON.stringify(spec)) as unknown,
    },
    ...(manifest === undefined
      ? {}
      : {
          original: {
            macs: manifest.model.macs,
            params: manifest.model.params,
            ...(originalAccuracy === undefined ? {} : { accuracy: { test: originalAccuracy } }),
          },
        }),
    subnetworks,
    ...(jointFront === undefined
      ? {}
      : { jointFront: jointFront.points.map((p) => ({ flops: p.macs, params: p.params, estimatedImpairment: p.estimatedImpairment })) }),
    targets: reportTargets,
    ...(workerSeconds === undefined
      ? {}
      : {
          cost: {
            workerSeconds,
            ...(options.usdPerGpuHour === undefined
              ? {}
              : { estimatedUsd: (workerSeconds / 3600) * options.usdPerGpuHour, usdPerGpuHour: options.usdPerGpuHour }),
          },
        }),
    ...(problems.length === 0 ? {} : { problems }),
  };
  return parseReport(report, `report of run ${runId}`);
}

export interface WrittenReport {
  readonly reportKey: string;
  readonly htmlKey: string;
  readonly statusKey: string;
  readonly status: Report['status'];
}

/**
 * Builds the report and writes `report.json`, `report.html` (both overwritten: a report is
 * re-rendered) and `status.json` (the run's terminal record, src/schema/messages.ts).
 */
export async function writeReport(store: ObjectStore, runId: string, options: BuildReportOptions = {}): Promise<WrittenReport> {
  const keys = runKeys(runId);
  const report = await buildReport(store, runId, options);
  await putJson(store, keys.report.json, report);
  await store.put(keys.report.html, renderReportHtml(report), { contentType: 'text/html; charset=utf-8' });
  const problems = report.problems ?? [];
  // A recorded failure or rejection is the run's terminal record; a re-rendered report must not
  // turn it into a success.
  const previous = await readDocument(store, keys.status, runStatusRecordSchema);
  if (previous.ok && (previous.value.state === 'failed' || previous.value.state === 'rejected')) {
    return { reportKey: keys.report.json, htmlKey: keys.report.html, statusKey: keys.status, status: report.status };
  }
  await putJson(store, keys.status, parseWith(runStatusRecordSchema, {
    runId,
    // The execution finished either way; a report without any target result is a failed run.
    state: report.status === 'failed' ? 'failed' : 'succeeded',
    at: report.generatedAt,
    message:
      report.status === 'succeeded'
        ? `succeeded: ${report.targets.length} target(s), report at ${keys.report.html}`
        : `${report.status}: ${problems.map((p) => `${p.stage}${p.subject === undefined ? '' : ` ${p.subject}`}: ${p.message}`).join('; ')}`.slice(0, 4000),
    reportStatus: report.status,
    reportKey: keys.report.json,
    htmlKey: keys.report.html,
  }, 'status.json'));
  return { reportKey: keys.report.json, htmlKey: keys.report.html, statusKey: keys.status, status: report.status };
}

// ---------------------------------------------------------------------------------------------
// A failed execution (the RecordFailure state)

/** The error object a Step Functions Catch puts at its ResultPath. */
export interface StepFunctionsError {
  readonly Error: string;
  readonly Cause?: string;
}

/**
 * One line a person can act on, from a Catch's error: a Lambda's Cause is JSON
 * `{errorType, errorMessage}`; a failed Batch job's is its description (JobName, Status,
 * StatusReason, Container.Reason); anything else is shown as it is, shortened.
 */
export function describeFailure(error: StepFunctionsError): string {
  const cause = error.Cause ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(cause);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const c = parsed as Record<string, unknown>;
    if (typeof c.errorMessage === 'string') {
      return `${error.Error}: ${typeof c.errorType === 'string' && c.errorType !== error.Error ? `${c.errorType}: ` : ''}${c.errorMessage}`.slice(0, 4000);
    }
    if (typeof c.JobName === 'string' || typeof c.JobId === 'string') {
      const container = (typeof c.Container === 'object' && c.Container !== null ? c.Container : {}) as Record<string, unknown>;
      const reasons = [c.StatusReason, container.Reason, container.ExitCode === undefined ? undefined : `exit code ${String(container.ExitCode)}`]
        .filter((r) => r !== undefined && r !== '')
        .map(String);
      return `${error.Error}: Batch job ${String(c.JobName ?? c.JobId)} ${String(c.Status ?? 'failed')}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`.slice(0, 4000);
    }
  }
  return (cause === '' ? error.Error : `${error.Error}: ${cause}`).slice(0, 4000);
}

export interface RecordedFailure {
  readonly runId: string;
  readonly statusKey: string;
}

/**
 * Writes `runs/<runId>/status.json` for a failed execution: `{runId, state: 'failed', error,
 * cause, message, at}` (src/schema/messages.ts runStatusRecordSchema, plus the raw error and
 * cause). Overwrites: the newest failure is the one that ended the run.
 */
export async function recordFailure(
  store: ObjectStore,
  runId: string,
  error: StepFunctionsError,
  options: { now?: Date } = {},
): Promise<RecordedFailure> {
  const keys = runKeys(runId);
  await putJson(store, keys.status, parseWith(runStatusRecordSchema, {
    runId,
    state: 'failed',
    at: (options.now ?? new Date()).toISOString(),
    message: describeFailure(error),
    error: error.Error,
    // Causes can be whole Batch job descriptions; the status record stays small.
    ...(error.Cause === undefined ? {} : { cause: error.Cause.slice(0, 32_000) }),
  }, 'status.json'));
  return { runId, statusKey: keys.status };
}
