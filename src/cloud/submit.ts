/**
 * Submitting runs to the deployed pipeline (`emo-dir submit`): validate the spec, give the run an
 * id, put the model where the cloud can read it, write `runs/<id>/spec.json` once, start the
 * execution. A sweep spec becomes one such run per model (src/schema/sweep.ts).
 *
 * The spec's `model` may be (src/model/reference.ts is the table of these forms):
 * - `zoo:<name>`: built by the pipeline, nothing to upload;
 * - a local directory holding model.json (a path: absolute, or starting with `.`, `~` or
 *   `file:`; relative paths are relative to `baseDir`, the spec file's directory): its files are
 *   uploaded by content (symlinks followed) to `runs/<id>/model/` and the written spec points there;
 * - a local ONNX file (`./model.onnx`): imported and saved as a tfjs model under
 *   `runs/<id>/model/` (src/model/onnx/convert.ts);
 * - a key prefix in the store (`registry/resnet20/model/`), or an `s3://` URL inside the
 *   store: checked to hold model.json, then used as it is; or a store key ending in `.onnx`,
 *   which every step imports.
 *
 * Submitting again with the same run id and the same spec is harmless (nothing is rewritten and
 * no second execution starts); the same run id with a different spec is refused.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import { runSpecSchema, type RunSpec } from '../schema/spec.ts';
import { expandSweep, isSweepSpec, sweepSpecSchema } from '../schema/sweep.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { classifyModelReference, isOnnxRef } from '../model/reference.ts';
import { engineInfo, initEngine } from '../engine/backend.ts';
import { convertOnnxToStore } from '../model/onnx/convert.ts';
import { checkModelDirectory, localPath, uploadDirectory } from '../store/model-dir.ts';
import { timestampRunId } from './names.ts';
import { startRunExecution, writeRunSpec } from './runs.ts';

export interface SubmitOptions {
  /** The spec as read (parsed JSON, not yet validated). */
  readonly spec: unknown;
  /** Where the spec came from, for error messages (a file path). */
  readonly specSource: string;
  readonly store: ObjectStore;
  readonly stateMachineArn: string;
  readonly sfn: SFNClient;
  /** Directory that relative model paths are resolved against (default: the working directory). */
  readonly baseDir?: string;
  /** Names runs without a `runId` and unnamed sweeps (default: now). */
  readonly now?: Date;
  readonly maxConcurrency?: number;
}

export interface SubmittedRun {
  readonly runId: string;
  readonly specKey: string;
  /** The model reference the written spec holds (a store prefix after an upload). */
  readonly model: string;
  /** Store keys of uploaded model files (empty unless the model was a local directory). */
  readonly uploaded: readonly string[];
  readonly executionName: string;
  readonly executionArn: string;
  /** The spec was already there and the execution already existed: nothing new was started. */
  readonly alreadyStarted: boolean;
}

export interface SubmitResult {
  /** Set when the spec was a sweep. */
  readonly sweepId?: string;
  readonly runs: readonly SubmittedRun[];
}

/** Raised when a sweep fails part-way; `started` lists the runs that did start. */
export class SweepSubmitError extends Error {
  constructor(
    readonly sweepId: string,
    readonly started: readonly SubmittedRun[],
    readonly failedRunId: string,
    cause: unknown,
  ) {
    super(
      `sweep ${sweepId}: run ${failedRunId} failed to start: ${(cause as Error).message}\n` +
        `  started before the failure: ${started.map((run) => run.runId).join(', ') || '(none)'}\n` +
        `  submitting the sweep again with "sweepId": "${sweepId}" starts only the missing runs`,
      { cause },
    );
    this.name = 'SweepSubmitError';
  }
}

/** Submits a run spec or, when it has a `models` list, a sweep. */
export async function submitSpec(options: SubmitOptions): Promise<SubmitResult> {
  if (isSweepSpec(options.spec)) return submitSweep(options);
  return { runs: [await submitRun(options)] };
}

/** Validates and submits one run spec (see the module comment). */
export async function submitRun(options: SubmitOptions): Promise<SubmittedRun> {
  const parsed = parseWith(runSpecSchema, options.spec, options.specSource);
  return submitParsedRun(parsed, options);
}

/** Validates a sweep spec and submits one run per model, in order. */
export async function submitSweep(options: SubmitOptions): Promise<SubmitResult> {
  const sweep = parseWith(sweepSpecSchema, options.spec, options.specSource);
  const { sweepId, runs } = expandSweep(sweep, options.now ?? new Date());
  const started: SubmittedRun[] = [];
  for (const [index, spec] of runs.entries()) {
    try {
      started.push(await submitParsedRun(spec, { ...options, specSource: `${options.specSource} models[${index}]` }));
    } catch (error) {
      throw new SweepSubmitError(sweepId, started, spec.runId ?? `models[${index}]`, error);
    }
  }
  return { sweepId, runs: started };
}

async function submitParsedRun(parsed: RunSpec, options: SubmitOptions): Promise<SubmittedRun> {
  const runId = parsed.runId ?? timestampRunId(parsed.model.replace(/\.onnx$/i, ''), options.now ?? new Date());
  const { model, uploaded } = await resolveModelForStore(parsed.model, runId, options);
  const spec = { ...parsed, runId, model };
  const { specKey } = await writeRunSpec(options.store, spec);
  const execution = await startRunExecution({
    sfn: options.sfn,
    stateMachineArn: options.stateMachineArn,
    runId,
    specKey,
    maxConcurrency: options.maxConcurrency,
  });
  return {
    runId,
    specKey,
    model,
    uploaded,
    executionName: execution.executionName,
    executionArn: execution.executionArn,
    alreadyStarted: execution.alreadyStarted,
  };
}

async function resolveModelForStore(
  ref: string,
  runId: string,
  options: SubmitOptions,
): Promise<{ model: string; uploaded: string[] }> {
  const field = `${options.specSource}: field model`;
  let reference;
  try {
    reference = classifyModelReference(ref);
  } catch (error) {
    throw new Error(`${field}: ${(error as Error).message}`, { cause: error });
  }
  let key: string;
  switch (reference.kind) {
    case 'zoo':
      return { model: ref, uploaded: [] };
    case 'directory': {
      let dir: string;
      try {
        dir = await checkModelDirectory(localPath(ref, options.baseDir ?? process.cwd()));
      } catch (error) {
        throw new Error(`${field}: ${JSON.stringify(ref)} is a local path, but ${(error as Error).message}`, { cause: error });
      }
      const prefix = `${runKeys(runId).prefix}model/`;
      const uploaded = await uploadDirectory(options.store, dir, prefix);
      return { model: prefix, uploaded };
    }
    case 'store-url': {
      const inside = `${options.store.location}/`;
      if (!ref.startsWith(inside)) {
        throw new Error(
          `${field}: ${ref} is outside the run's store ${options.store.location}; copy the model there or give a local directory`,
        );
      }
      key = ref.slice(inside.length);
      break;
    }
    case 'store-prefix':
    case 'onnx-key':
      key = ref;
      break;
    case 'onnx-file': {
      // Converted here once; every step then reads a stored tfjs model (with its ONNX origin).
      const prefix = `${runKeys(runId).prefix}model/`;
      if (engineInfo() === undefined) await initEngine(process.env.EMO_DIR_BACKEND ? {} : { backend: 'cpu' });
      await convertOnnxToStore(localPath(ref, options.baseDir ?? process.cwd()), options.store, prefix);
      return { model: prefix, uploaded: [`${prefix}weights.bin`, `${prefix}model.json`] };
    }
  }
  if (isOnnxRef(key)) {
    if (!(await options.store.exists(key))) throw new Error(`${field}: no ONNX file at ${JSON.stringify(ref)}: ${key} does not exist in ${options.store.location}`);
    return { model: key, uploaded: [] };
  }
  const prefix = key.endsWith('/') ? key : `${key}/`;
  if (!(await options.store.exists(`${prefix}model.json`))) {
    throw new Error(
      `${field}: no model at ${JSON.stringify(ref)}: ${prefix}model.json does not exist in ${options.store.location} ` +
        '(local directories must start with ./ or /)',
    );
  }
  return { model: prefix, uploaded: [] };
}
