/**
 * A run's progress (`emo-dir status`), from the two places that know it:
 * - Step Functions: the execution's status, times and error (DescribeExecution of the execution
 *   name derived from the run id, names.executionNameFor);
 * - the store: `status.json` (a rejected upload or a recorded failure), per sub-network the newest
 *   checkpoint (its generation) and the last line of `log.jsonl`, which fronts, targets and
 *   reports exist.
 *
 * Sub-networks are discovered from the keys under `runs/<id>/subnets/` and, when present, the
 * manifest's `subnetworks` list; their checkpoints are listed one prefix each, so the cached
 * boundary features beside them (possibly thousands of shards) are never listed.
 */
import { DescribeExecutionCommand, ExecutionDoesNotExist, type SFNClient } from '@aws-sdk/client-sfn';
import { latestCheckpoint, runKeys, subnetSegment } from '../store/keys.ts';
import { NotFoundError, getText, type ObjectStore } from '../store/object-store.ts';
import { runStatusRecordSchema, type RunStatusRecord } from '../schema/messages.ts';
import { executionArnFor, executionNameFor } from './names.ts';

export interface ExecutionState {
  readonly name: string;
  readonly arn: string;
  /** RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED | PENDING_REDRIVE, or NOT_FOUND. */
  readonly status: string;
  readonly startDate?: string;
  readonly stopDate?: string;
  readonly error?: string;
  readonly cause?: string;
}

export interface SubnetProgress {
  readonly id: string;
  /** Generation of the newest checkpoint (undefined: none yet). */
  readonly generation?: number;
  readonly checkpointKey?: string;
  /** The sub-network's front.json exists: its search is done. */
  readonly front: boolean;
  /** The last line of log.jsonl, parsed when it is JSON. */
  readonly lastLog?: unknown;
}

export interface RunStatus {
  readonly runId: string;
  readonly store: string;
  /** Undefined when no state machine was given to ask. */
  readonly execution?: ExecutionState;
  /** `status.json` (src/schema/messages.ts runStatusRecordSchema; undefined when absent). */
  readonly record?: RunStatusRecord;
  /** Why status.json exists but cannot be read. */
  readonly recordError?: string;
  readonly specKey?: string;
  readonly manifest: boolean;
  readonly subnets: readonly SubnetProgress[];
  /** Target names with metrics.json (finalized). */
  readonly targetsDone: readonly string[];
  readonly reportKey?: string;
  readonly htmlKey?: string;
}

export interface RunStatusOptions {
  readonly runId: string;
  readonly store: ObjectStore;
  readonly sfn?: SFNClient;
  readonly stateMachineArn?: string;
}

export class RunNotFoundError extends Error {
  constructor(readonly runId: string, where: string) {
    super(`no run ${runId}: ${where}`);
    this.name = 'RunNotFoundError';
  }
}

export async function runStatus(options: RunStatusOptions): Promise<RunStatus> {
  const { runId, store } = options;
  const keys = runKeys(runId);
  const [execution, runKeysListed, record] = await Promise.all([
    options.sfn !== undefined && options.stateMachineArn !== undefined
      ? describeRun(options.sfn, options.stateMachineArn, runId)
      : Promise.resolve(undefined),
    store.list(keys.prefix),
    readJsonIfPresent(store, keys.status),
  ]);
  const statusRead = record === undefined ? undefined : runStatusRecordSchema.safeParse(record);
  const listed = new Set(runKeysListed);
  if (listed.size === 0 && (execution === undefined || execution.status === 'NOT_FOUND')) {
    throw new RunNotFoundError(
      runId,
      `nothing under ${keys.prefix} in ${store.location}` +
        (execution === undefined ? '' : ` and no execution ${execution.name} of ${options.stateMachineArn}`),
    );
  }

  const manifest = listed.has(keys.manifest) ? await readJsonIfPresent(store, keys.manifest) : undefined;
  const subnetIds = new Set<string>(manifestSubnets(manifest));
  for (const key of runKeysListed) {
    if (!key.startsWith(keys.subnetsPrefix)) continue;
    const id = key.slice(keys.subnetsPrefix.length).split('/')[0];
    if (id !== '') subnetIds.add(id);
  }
  const subnets = await Promise.all(
    [...subnetIds].sort().map(async (id): Promise<SubnetProgress> => {
      const subnet = keys.subnet(id);
      const checkpoint = latestCheckpoint(await store.list(subnet.checkpoints));
      const lastLog = listed.has(subnet.log) ? lastJsonLine(await getText(store, subnet.log)) : undefined;
      return {
        id,
        ...(checkpoint === undefined ? {} : { generation: checkpoint.generation, checkpointKey: checkpoint.key }),
        front: listed.has(subnet.front),
        ...(lastLog === undefined ? {} : { lastLog }),
      };
    }),
  );
  const targetsDone = runKeysListed
    .filter((key) => key.startsWith(keys.targetsPrefix) && key.endsWith('/metrics.json'))
    .map((key) => key.slice(keys.targetsPrefix.length, -'/metrics.json'.length))
    .filter((name) => !name.includes('/'));

  return {
    runId,
    store: store.location,
    ...(execution === undefined ? {} : { execution }),
    ...(statusRead === undefined ? {} : statusRead.success ? { record: statusRead.data } : { recordError: `${keys.status} is not a run status record: ${statusRead.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')}` }),
    ...(listed.has(keys.spec) ? { specKey: keys.spec } : {}),
    manifest: listed.has(keys.manifest),
    subnets,
    targetsDone,
    ...(listed.has(keys.report.json) ? { reportKey: keys.report.json } : {}),
    ...(listed.has(keys.report.html) ? { htmlKey: keys.report.html } : {}),
  };
}

async function describeRun(sfn: SFNClient, stateMachineArn: string, runId: string): Promise<ExecutionState> {
  const name = executionNameFor(runId);
  const arn = executionArnFor(stateMachineArn, name);
  try {
    const response = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
    return {
      name,
      arn,
      status: response.status ?? 'UNKNOWN',
      ...(response.startDate ? { startDate: response.startDate.toISOString() } : {}),
      ...(response.stopDate ? { stopDate: response.stopDate.toISOString() } : {}),
      ...(response.error ? { error: response.error } : {}),
      ...(response.cause ? { cause: response.cause } : {}),
    };
  } catch (error) {
    if (error instanceof ExecutionDoesNotExist || (error as { name?: unknown }).name === 'ExecutionDoesNotExist') {
      return { name, arn, status: 'NOT_FOUND' };
    }
    throw new Error(`cannot describe execution ${arn}: ${(error as Error).message}`, { cause: error });
  }
}

async function readJsonIfPresent(store: ObjectStore, key: string): Promise<unknown> {
  let text: string;
  try {
    text = await getText(store, key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unparsed: text.slice(0, 2000), error: `${key} is not valid JSON` };
  }
}

/** Sub-network ids of a manifest's `subnetworks` list (strings, numbers or objects with `id`). */
function manifestSubnets(manifest: unknown): string[] {
  if (typeof manifest !== 'object' || manifest === null) return [];
  const list = (manifest as { subnetworks?: unknown }).subnetworks;
  if (!Array.isArray(list)) return [];
  const ids: string[] = [];
  for (const entry of list) {
    const id = typeof entry === 'object' && entry !== null ? (entry as { id?: unknown }).id : entry;
    try {
      if (typeof id === 'number' || typeof id === 'string') ids.push(subnetSegment(id));
    } catch {
      // An id that is not a key segment has no keys to read: skip it.
    }
  }
  return ids;
}

/** The last non-empty line, parsed as JSON when it is JSON (a line being written may not be). */
export function lastJsonLine(text: string): unknown {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  try {
    return JSON.parse(last) as unknown;
  } catch {
    return last;
  }
}
