/**
 * The last lines of `emo-dir run` without `--json`: one row per target of the spec (FLOPs and
 * params cut, test accuracy before and after the fine-tune, where the pruned model is) and the
 * report's path. Read from the store with the documents' own schemas (metrics.json:
 * src/schema/metrics.ts), formatted by a pure function.
 */
import { join } from 'node:path';
import { finalizeMetricsSchema, type FinalizeMetrics } from '../schema/metrics.ts';
import { runSpecSchema, targetName } from '../schema/spec.ts';
import { parseWith, ValidationError } from '../schema/validate.ts';
import { FileStore } from '../store/file-store.ts';
import { runKeys } from '../store/keys.ts';
import { getJson, NotFoundError, type ObjectStore } from '../store/object-store.ts';
import { formatPercent } from '../report/format.ts';

/** Where a person finds a store object: a file path in a file store, its URL (s3://...) elsewhere. */
export function storeObjectPath(store: ObjectStore, key: string): string {
  return store instanceof FileStore ? join(store.root, ...key.split('/')) : `${store.location}/${key}`;
}

export interface TargetSummary {
  readonly name: string;
  readonly metrics?: FinalizeMetrics;
  /** Where the pruned model is (a directory or URL). */
  readonly model?: string;
  /** Why there is no result. */
  readonly problem?: string;
}

export interface RunSummary {
  readonly runId: string;
  readonly targets: readonly TargetSummary[];
  /** The unpruned model's test accuracy (every metrics.json repeats it). */
  readonly originalAccuracy?: number;
  readonly report?: string;
}

/** Reads the run's spec (for every target, also those that produced nothing) and each target's metrics.json. */
export async function readRunSummary(store: ObjectStore, runId: string, reportKey?: string): Promise<RunSummary> {
  const keys = runKeys(runId);
  const spec = parseWith(runSpecSchema, await getJson(store, keys.spec), `${keys.spec} (in ${store.location})`);
  const targets: TargetSummary[] = [];
  for (const target of spec.targets.map(targetName)) {
    const key = keys.target(target).metrics;
    try {
      const metrics = parseWith(finalizeMetricsSchema, await getJson(store, key), storeObjectPath(store, key));
      targets.push({ name: target, metrics, model: storeObjectPath(store, metrics.modelKey) });
    } catch (error) {
      if (error instanceof NotFoundError) targets.push({ name: target, problem: 'no result (see the report)' });
      else if (error instanceof ValidationError) {
        const [first] = error.issues;
        targets.push({ name: target, problem: `unreadable metrics.json (${first.path || '(root)'}: ${first.message})` });
      }
      else throw error;
    }
  }
  const originalAccuracy = targets.map((target) => target.metrics?.accuracy.original).find((accuracy) => accuracy !== undefined);
  return {
    runId,
    targets,
    ...(originalAccuracy === undefined ? {} : { originalAccuracy }),
    ...(reportKey === undefined ? {} : { report: storeObjectPath(store, reportKey) }),
  };
}

/**
 * ```
 * target    FLOPs cut  params cut  accuracy  pruned  fine-tuned  model
 * flops-50      50.2%       38.1%     90.9%   80.1%       89.4%  .emo-dir/runs/<id>/targets/flops-50/model
 * report: .emo-dir/runs/<id>/report.html
 * ```
 * `accuracy` is the unpruned model's, `pruned` the pruned model's before its fine-tune, all on the test set.
 */
export function formatRunSummary(summary: RunSummary): string {
  const header = ['target', 'FLOPs cut', 'params cut', 'accuracy', 'pruned', 'fine-tuned', 'model'];
  const percent = (value: number | undefined): string => (value === undefined ? '-' : formatPercent(value, 1));
  const rows = summary.targets.map((target) => {
    const m = target.metrics;
    if (m === undefined) return [target.name, target.problem ?? 'no result'];
    return [
      target.name,
      percent(m.achieved.flopsCut),
      percent(m.achieved.paramsCut),
      percent(m.accuracy.original ?? summary.originalAccuracy),
      percent(m.accuracy.beforeFineTune),
      percent(m.accuracy.afterFineTune),
      target.model ?? '-',
    ];
  });
  const complete = rows.filter((row) => row.length === header.length);
  const widths = header.map((title, column) => Math.max(title.length, ...complete.map((row) => row[column].length)));
  // Text columns left, numbers right; the model path last and unpadded.
  const cell = (text: string, column: number): string =>
    column === header.length - 1 ? text : column === 0 ? text.padEnd(widths[column]) : text.padStart(widths[column]);
  const lines = [header.map(cell).join('  ').trimEnd()];
  for (const row of rows) lines.push(row.length === header.length ? row.map(cell).join('  ') : `${cell(row[0], 0)}  ${row[1]}`);
  if (summary.report !== undefined) lines.push(`report: ${summary.report}`);
  return `${lines.join('\n')}\n`;
}
