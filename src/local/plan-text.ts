/**
 * The plan preview as people read it (a few lines and one table) and as tools read it (`--json`:
 * one object on stdout). Every problem is one line naming the spec field, as Plan reports it.
 */
import { formatIssues } from '../dir/plan-checks.ts';
import type { SecondsBy } from '../dir/estimate.ts';
import { targetName } from '../schema/spec.ts';
import { formatCompact, formatDuration } from '../report/format.ts';
import type { PlanPreview } from './plan-preview.ts';

const HOUR = 3600;

/** `0.067 h (4 min 01 s)`: worker-hours, with the duration they read as. */
function hours(seconds: number): string {
  const value = seconds / HOUR;
  const text = value >= 10 ? value.toFixed(0) : value >= 0.01 ? value.toPrecision(2) : value.toExponential(1);
  return `${text} h (${formatDuration(seconds)})`;
}

/** Columns padded to their widest cell; numbers (and their headers) right-aligned. */
function table(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  return all
    .map((row) => row.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd())
    .join('\n');
}

function roleOf(preview: PlanPreview, id: string): string {
  return id === preview.gpu.id ? `${id} (GPU)` : `${id} (this machine's workers)`;
}

export function formatPlanText(preview: PlanPreview): string {
  const { spec, plan, estimate } = preview;
  const lines: string[] = [`plan of ${preview.specPath} (run ${preview.runId}; nothing was run or written)`];
  const model = plan.manifest?.model;
  lines.push(
    model === undefined
      ? `model     ${spec.model}`
      : `model     ${spec.model}: ${model.name}, ${formatCompact(model.macs)} MACs, ${formatCompact(model.params)} params, input ${model.inputShape.join('x')}, ${model.classes} classes`,
  );
  const data = plan.dataset;
  lines.push(
    data === undefined
      ? `data set  ${spec.dataset.name}`
      : `data set  ${data.name}: ${data.train.images} training / ${data.test.images} test images, ${data.classes} classes, ${data.imageShape.join('x')} (${data.train.location})`,
  );
  lines.push(`targets   ${spec.targets.map(targetName).join(', ')}`);
  const s = spec.search;
  lines.push(
    `search    population ${s.population} x (${s.generations} generations + 1)${s.maxEvaluations === undefined ? '' : `, at most ${s.maxEvaluations}`} ` +
      `evaluations per sub-network; ${s.recoverySteps} recovery steps of ${s.recoveryBatchSize} images; ` +
      `search subsets ${spec.dataset.searchTrain} + ${spec.dataset.searchVal} images`,
  );
  if (estimate !== undefined) {
    const ids = estimate.throughputs.map((t) => t.id);
    lines.push(
      '',
      table(
        ['sub-network', 'layers', 'groups', 'searched channels', 'MACs', 'evaluations', ...ids.map((id) => `worker-h ${id}`)],
        [
          ...estimate.subnetworks.map((sub) => [
            sub.id,
            String(sub.layers),
            String(sub.groups),
            String(sub.searchedChannels),
            formatCompact(sub.macs),
            String(sub.evaluations),
            ...ids.map((id) => (sub.seconds[id] / HOUR).toPrecision(2)),
          ]),
          ['all', '', '', String(estimate.subnetworks.reduce((sum, sub) => sum + sub.searchedChannels, 0)), '', String(estimate.evaluations), ...ids.map((id) => (estimate.searchSeconds[id] / HOUR).toPrecision(2))],
        ],
        [false, true, true, true, true, true, ...ids.map(() => true)],
      ),
      '',
      'estimate (an upper bound on the work: every evaluation the budget allows, each at the unpruned cost; src/dir/estimate.ts):',
    );
    const row = (label: string, by: SecondsBy | undefined): string[] =>
      by === undefined ? [] : estimate.throughputs.map((t) => `  ${label} ${roleOf(preview, t.id)}: ${hours(by[t.id])}`);
    lines.push(
      ...row('search, worker-hours,', estimate.searchSeconds),
      ...row('search, wall with one worker per sub-network,', estimate.searchWallSeconds),
      ...row(`finalize, worker-hours per target (x${estimate.targets}),`, estimate.finalizeSecondsPerTarget),
      ...row('total worker-hours,', estimate.totalSeconds),
    );
    if (estimate.finalizeSecondsPerTarget === undefined) lines.push('  finalize: not estimated (the data set split sizes are unknown)');
    lines.push(...estimate.throughputs.map((t) => `  ${t.id}: ${t.description}`));
  }
  if (preview.backend.throughput === undefined) {
    lines.push(`  (no documented throughput for the ${preview.backend.name} backend of this machine's workers: GPU estimate only)`);
  }
  lines.push('');
  if (plan.issues.length === 0) {
    lines.push('checks passed: the model loads and divides, the data set fits the model and the spec, the budget is within limits');
  } else {
    lines.push(`this spec cannot run (${plan.issues.length} problem${plan.issues.length === 1 ? '' : 's'}):`, formatIssues(preview.specPath, plan.issues));
  }
  return `${lines.join('\n')}\n`;
}

/** The `--json` object: the checks, the plan and the estimate (seconds by throughput id). */
export function planJson(preview: PlanPreview): Record<string, unknown> {
  const { plan, estimate } = preview;
  return {
    spec: preview.specPath,
    runId: preview.runId,
    ok: plan.issues.length === 0,
    issues: plan.issues.map((issue) => ({ field: issue.path, message: issue.message })),
    model: plan.manifest?.model ?? null,
    dataset: plan.dataset ?? null,
    targets: plan.manifest?.targets ?? null,
    backend: preview.backend.name,
    gpu: preview.gpu.id,
    estimate:
      estimate === undefined
        ? null
        : {
            throughputs: estimate.throughputs.map((t) => ({ id: t.id, description: t.description })),
            subnetworks: estimate.subnetworks,
            evaluations: estimate.evaluations,
            searchWorkerSeconds: estimate.searchSeconds,
            searchWallSeconds: estimate.searchWallSeconds,
            targets: estimate.targets,
            finalizeWorkerSecondsPerTarget: estimate.finalizeSecondsPerTarget ?? null,
            totalWorkerSeconds: estimate.totalSeconds ?? null,
          },
  };
}

/** Prints the preview (text, or one JSON line) and returns the exit code: 0 when the spec can run. */
export function writePlan(preview: PlanPreview, json: boolean, out: (text: string) => void): number {
  out(json ? `${JSON.stringify(planJson(preview))}\n` : formatPlanText(preview));
  return preview.plan.issues.length === 0 ? 0 : 1;
}
