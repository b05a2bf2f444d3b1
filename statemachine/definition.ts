/**
 * The one place that knows how `emo-dir.asl.json` is parameterised. The CDK workflow construct
 * (cdk/constructs/workflow.ts) substitutes real ARNs at deploy time; the embedded runner
 * (aws-local-stepfunctions, DESIGN §4) substitutes stand-ins and overrides the Task states by name.
 * Both use SUBSTITUTION_NAMES, and test/statemachine/asl.test.ts checks that the file uses
 * exactly these placeholders.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEFINITION_PATH = fileURLToPath(new URL('./emo-dir.asl.json', import.meta.url));

export const SUBSTITUTION_NAMES = [
  'PlanFunctionArn',
  'MergeFunctionArn',
  'ReportFunctionArn',
  'RegisterModelsFunctionArn',
  'JobQueueArn',
  'FallbackJobQueueArn',
  'SearchJobDefinitionArn',
  'FinalizeJobDefinitionArn',
  'DefaultMaxConcurrency',
] as const;

/** The `FallbackJobQueueArn` of a deployment without an On-Demand fallback queue (the ASL never falls back then). */
export const NO_FALLBACK_QUEUE = 'none';

export type SubstitutionName = (typeof SUBSTITUTION_NAMES)[number];
export type Substitutions = Readonly<Record<SubstitutionName, string>>;

/**
 * What the queue writes into a job's status reason when jobStateTimeLimitActions cancels it for
 * lack of capacity (AWS Batch user guide, "Jobs stuck in RUNNABLE due to capacity"):
 * `Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY`.
 * The ASL's capacity checks match the failed task's Cause against it.
 */
export const CAPACITY_CANCEL_REASON = 'Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY';

/** Names of the Task states, for `taskResourceLocalHandlers` overrides of the embedded runner. */
export const TASK_STATES = {
  plan: 'Plan',
  searchJob: 'SearchJob',
  searchJobOnDemand: 'SearchJobOnDemand',
  merge: 'Merge',
  finalizeJob: 'FinalizeJob',
  finalizeJobOnDemand: 'FinalizeJobOnDemand',
  registerModels: 'RegisterModels',
  report: 'Report',
  recordFailure: 'RecordFailure',
} as const;

const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** Every `${Name}` placeholder in a definition text, sorted and without duplicates. */
export function placeholdersIn(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((match) => match[1]))].sort();
}

export function readDefinitionText(): string {
  return readFileSync(DEFINITION_PATH, 'utf8');
}

/**
 * The definition with every placeholder replaced, parsed. Throws when a placeholder has no value,
 * so a new placeholder cannot silently reach Step Functions as a literal `${...}`.
 */
export function loadDefinition(substitutions: Substitutions): Record<string, unknown> {
  const text = readDefinitionText().replace(PLACEHOLDER, (whole, name: string) => {
    const value = (substitutions as Readonly<Record<string, string>>)[name];
    if (value === undefined) throw new Error(`${DEFINITION_PATH}: no substitution for ${whole}`);
    // Placeholders sit inside JSON strings: escape the value as JSON string content.
    return JSON.stringify(value).slice(1, -1);
  });
  return JSON.parse(text) as Record<string, unknown>;
}
