/**
 * The checks Plan makes, before any job starts, that a spec's data set can serve its model and
 * budget (DESIGN §3 step 1): the data set is reachable and holds what the spec needs (files or
 * shard index present; class count and image shape match the model; the search subsets and the
 * fine-tune/test limits fit the split sizes). Each problem is one FieldIssue naming the spec
 * field; `formatIssues` makes them one line each.
 */
import { probeDataset, type DatasetProbe, type ProbeOptions } from '../data/probe.ts';
import type { FieldIssue } from '../schema/messages.ts';
import type { RunSpec } from '../schema/spec.ts';

/** What the data must agree with: the model's input (without batch) and output width. */
export interface ModelShape {
  readonly inputShape: readonly number[];
  readonly classes: number;
}

export interface DatasetCheck {
  /** Undefined when the data set could not be probed (an issue says why) or its form fixes nothing. */
  readonly probe?: DatasetProbe;
  readonly issues: FieldIssue[];
}

/**
 * Probes the spec's data set and compares it with the spec and (when it loaded) the model.
 * `files: false` checks only what the data set's form fixes (probe.ts), for a Plan that cannot
 * see the files the workers will read.
 */
export async function checkDataset(spec: RunSpec, model: ModelShape | undefined, options: ProbeOptions = {}): Promise<DatasetCheck> {
  const { dataset } = spec;
  let found: DatasetProbe | undefined;
  try {
    found = await probeDataset(dataset.name, options);
  } catch (error) {
    return { issues: [{ path: 'dataset.name', message: (error as Error).message }] };
  }
  if (found === undefined) return { issues: [] };
  const issues: FieldIssue[] = [];
  const what = `data set ${found.name}`;
  if (model !== undefined) {
    if (found.classes !== model.classes) {
      issues.push({ path: 'dataset.name', message: `${what} has ${found.classes} classes, the model's output has ${model.classes}` });
    }
    if (found.imageShape.join('x') !== model.inputShape.join('x')) {
      issues.push({ path: 'dataset.name', message: `${what} has ${found.imageShape.join('x')} images, the model takes ${model.inputShape.join('x')}` });
    }
  }
  const train = `the ${found.train.images} images of ${found.name}'s training split (${found.train.location})`;
  if (dataset.searchTrain + dataset.searchVal > found.train.images) {
    issues.push({
      path: 'dataset.searchTrain',
      message: `searchTrain ${dataset.searchTrain} + searchVal ${dataset.searchVal} (disjoint subsets) exceed ${train}`,
    });
  }
  if (dataset.fineTuneLimit !== undefined && dataset.fineTuneLimit > found.train.images) {
    issues.push({ path: 'dataset.fineTuneLimit', message: `${dataset.fineTuneLimit} exceeds ${train} (omit it to fine-tune on the whole split)` });
  }
  if (dataset.testLimit !== undefined && dataset.testLimit > found.test.images) {
    issues.push({
      path: 'dataset.testLimit',
      message: `${dataset.testLimit} exceeds the ${found.test.images} images of ${found.name}'s test split (${found.test.location}) (omit it to test on the whole split)`,
    });
  }
  return { probe: found, issues };
}

/** Keeps the first issue of each field: a field that cannot work needs no second reason. */
export function firstIssuePerField(issues: readonly FieldIssue[]): FieldIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => !seen.has(issue.path) && seen.add(issue.path));
}

/** One line per issue: `<source>: field <path>: <message>`. */
export function formatIssues(source: string, issues: readonly FieldIssue[]): string {
  return issues.map((issue) => `${source}: field ${issue.path}: ${issue.message}`).join('\n');
}
