/**
 * `emo-dir resume <runId>`: continue a local run that was stopped (Ctrl-C, a crash, a closed
 * laptop) or failed. The workflow runs again from the start on the run's stored spec
 * (`runs/<runId>/spec.json`, which names the store's copy of the model), and that is enough,
 * because every step is idempotent by design (DESIGN §3): Plan accepts an identical manifest,
 * a search whose front.json exists returns it and an unfinished one continues from its last
 * checkpoint, Merge and Finalize keep their create-only results. Nothing finished is redone or
 * overwritten.
 */
import { runKeys } from '../store/keys.ts';
import { FileStore } from '../store/file-store.ts';
import { getJson, type ObjectStore } from '../store/object-store.ts';
import { runLocal, type RunLocalOptions, type RunLocalResult } from './run.ts';

export interface ResumeLocalOptions extends Omit<RunLocalOptions, 'spec' | 'specPath' | 'now'> {
  readonly runId: string;
}

/** The stored spec of `runId`; the error says where it looked when there is none. */
export async function readStoredSpec(store: ObjectStore, runId: string): Promise<unknown> {
  const key = runKeys(runId).spec;
  if (!(await store.exists(key))) {
    throw new Error(`no run ${runId} in ${store.location}: ${key} does not exist (start a run with emo-dir run <spec.json>)`);
  }
  return getJson(store, key);
}

export async function resumeLocal(options: ResumeLocalOptions): Promise<RunLocalResult> {
  const store = options.store ?? new FileStore(options.storeDir ?? '.emo-dir');
  const spec = await readStoredSpec(store, options.runId);
  const storedRunId = (spec as { runId?: unknown } | null)?.runId;
  if (storedRunId !== options.runId) {
    throw new Error(`${runKeys(options.runId).spec} (in ${store.location}) names run ${JSON.stringify(storedRunId)}, not ${options.runId}`);
  }
  const { runId: _runId, ...runOptions } = options;
  return runLocal({ ...runOptions, store, spec });
}
