/**
 * The Plan step (DESIGN §3 step 1): validate the run's spec, load the model, analyse its channel
 * groups, divide it into sub-networks and write `runs/<id>/manifest.json`, the one document every
 * later step starts from. Returns only keys and ids (they travel through the state machine).
 *
 * A spec that cannot succeed fails here, before any GPU job is billed (`planSpec`): a model that
 * does not load or divide, a data set that is missing or does not fit the model or the spec
 * (plan-checks.ts), a budget over the limits (spec.ts `budgetIssues`). The PlanError has one line
 * per spec field; the state machine's RecordFailure writes it to `runs/<id>/status.json`.
 *
 * Idempotent: the manifest is written create-only. A retried Plan (Lambda retry, a re-driven
 * execution) that computes the same manifest succeeds without writing; a manifest that differs
 * (the spec or the model changed under the same run id) is refused, because the searches of the
 * earlier manifest may already have written fronts that no longer match.
 */
import { isDeepStrictEqual } from 'node:util';
import { engineInfo, initEngine, type BackendName } from '../engine/backend.ts';
import { countTotals } from '../model/cost.ts';
import { analyzeChannels } from '../model/groups.ts';
import { resolveModel, type ResolvedModel } from '../model/io.ts';
import { classifyModelReference, isOnnxRef } from '../model/reference.ts';
import type { DatasetProbe } from '../data/probe.ts';
import type { FieldIssue } from '../schema/messages.ts';
import { budgetIssues, runSpecSchema, targetName, type RunSpec } from '../schema/spec.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { checkModelDirectory, listModelFiles, localPath } from '../store/model-dir.ts';
import { AlreadyExistsError, NotFoundError, getJson, putJson, type ObjectStore } from '../store/object-store.ts';
import { divideNetwork } from './divide.ts';
import { MANIFEST_VERSION, manifestSchema, type Manifest, type StepLog } from './manifest.ts';
import { checkDataset, firstIssuePerField, formatIssues } from './plan-checks.ts';

export { readManifest, type StepLog } from './manifest.ts';

export interface PlanOptions {
  /** Default: `runs/<runId>/spec.json`. */
  readonly specKey?: string;
  readonly log?: StepLog;
  /** The manifest's createdAt (tests). Default: now. */
  readonly now?: Date;
  /**
   * Whether the data set's files can be looked at from here. Default: when the store is a
   * directory (the embedded mode, where the workers share this filesystem).
   */
  readonly dataFiles?: boolean;
  /**
   * Backend when the process has none yet. Default: EMO_DIR_BACKEND when set, else `cpu`: the
   * plan only builds and walks the graph (no arithmetic worth a faster backend), and the cpu
   * backend needs no .wasm file next to a bundled Lambda.
   */
  readonly backend?: BackendName;
}

export interface PlanResult {
  readonly runId: string;
  readonly manifestKey: string;
  /** Sub-network ids, the items of the Search Map. */
  readonly subnetworks: string[];
  /** Target names (the Finalize Map iterates over the Merge's feasible subset of these). */
  readonly targets: string[];
}

export class PlanError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanError';
  }
}

/** Reads and validates the spec; errors name the key and every bad field's path. */
export async function readRunSpec(store: ObjectStore, specKey: string): Promise<RunSpec> {
  let raw: unknown;
  try {
    raw = await getJson(store, specKey);
  } catch (error) {
    if (error instanceof NotFoundError) throw new PlanError(`no run spec: ${specKey} does not exist in ${store.location}`, { cause: error });
    throw error;
  }
  return parseWith(runSpecSchema, raw, `run spec ${specKey} (in ${store.location})`);
}

/**
 * The spec's model, in one of the forms of src/model/reference.ts: `zoo:<name>`; a local
 * directory or `.onnx` file (local runs; relative to the working directory); an s3:// URL inside
 * the store; an `.onnx` key; else a key prefix in the run's store (what `emo-dir submit` and the
 * registry trigger write).
 */
export async function loadSpecModel(store: ObjectStore, ref: string, baseDir = process.cwd()): Promise<ResolvedModel> {
  const reference = classifyModelReference(ref);
  switch (reference.kind) {
    case 'zoo':
      return resolveModel(ref);
    case 'directory': {
      const dir = await checkModelDirectory(localPath(ref, baseDir));
      // What a copy into the store would meet (a symlink cycle, a broken link) fails here too.
      await listModelFiles(dir);
      return resolveModel(dir);
    }
    case 'store-url': {
      const inside = `${store.location}/`;
      if (!ref.startsWith(inside)) throw new PlanError(`${ref} is outside the run's store ${store.location}`);
      return loadStorePrefix(store, ref, ref.slice(inside.length));
    }
    case 'store-prefix':
      return loadStorePrefix(store, ref, reference.prefix);
    case 'onnx-file':
      return resolveModel(localPath(ref, baseDir));
    case 'onnx-key':
      return loadStorePrefix(store, ref, reference.key);
  }
}

async function loadStorePrefix(store: ObjectStore, ref: string, key: string): Promise<ResolvedModel> {
  if (isOnnxRef(key)) {
    // An ONNX file in the store (e.g. registry/<model>/model.onnx), imported by every step alike.
    if (!(await store.exists(key))) throw new PlanError(`model '${ref}' not found: ${key} does not exist in ${store.location}`);
    return resolveModel({ store, prefix: key });
  }
  const prefix = key.endsWith('/') ? key : `${key}/`;
  if (!(await store.exists(`${prefix}model.json`))) {
    throw new PlanError(`model '${ref}' not found: ${prefix}model.json does not exist in ${store.location}`);
  }
  return resolveModel({ store, prefix });
}

/**
 * Starts the engine when the process has none: `backend`, else EMO_DIR_BACKEND (a local run's
 * choice), else `cpu` (PlanOptions.backend says why).
 */
export async function initPlanEngine(backend?: BackendName): Promise<void> {
  if (engineInfo() !== undefined) return;
  await initEngine(backend === undefined && process.env.EMO_DIR_BACKEND ? {} : { backend: backend ?? 'cpu' });
}

/** Everything in a manifest but its creation time: what "the same manifest" means on a retry. */
function withoutTime(manifest: Manifest): Omit<Manifest, 'createdAt'> {
  const { createdAt: _createdAt, ...rest } = manifest;
  return rest;
}

export interface SpecPlanOptions {
  readonly runId: string;
  readonly specKey: string;
  /** Loads the spec's model (its failure becomes an issue of the field `model`). */
  readonly loadModel: () => Promise<ResolvedModel>;
  readonly now?: Date;
  /** Whether the data set's files can be looked at from here (checkDataset's `files`). Default true. */
  readonly dataFiles?: boolean;
  /** The run's store, where a data set location inside it is read from. */
  readonly store?: ObjectStore;
}

/** What Plan decides for a spec, and every reason the spec cannot succeed. */
export interface SpecPlan {
  /** The manifest Plan writes when there are no issues; undefined when the model did not load or divide. */
  readonly manifest?: Manifest;
  readonly dataset?: DatasetProbe;
  /** One per spec field that cannot work (model, data set, budget), in that order. */
  readonly issues: FieldIssue[];
}

/**
 * Every check Plan makes before any compute, and the manifest (no writes; the engine must be
 * initialised): the model loads, is supported and divides; the data set is reachable and fits
 * the model and the spec's subsets and limits (plan-checks.ts); the budget is sane (spec.ts).
 */
export async function planSpec(spec: RunSpec, options: SpecPlanOptions): Promise<SpecPlan> {
  const issues: FieldIssue[] = [];
  let manifest: Manifest | undefined;
  let resolved: ResolvedModel | undefined;
  try {
    resolved = await options.loadModel();
  } catch (error) {
    issues.push({ path: 'model', message: (error as Error).message });
  }
  if (resolved !== undefined) {
    try {
      manifest = describeModel(spec, resolved, options);
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      issues.push({ path: 'model', message: error.message });
    } finally {
      resolved.model.dispose();
    }
  }
  const data = await checkDataset(spec, manifest?.model, { files: options.dataFiles ?? true, ...(options.store ? { store: options.store } : {}) });
  issues.push(...data.issues, ...budgetIssues(spec));
  return {
    ...(manifest === undefined ? {} : { manifest }),
    ...(data.probe === undefined ? {} : { dataset: data.probe }),
    issues: firstIssuePerField(issues),
  };
}

/** The manifest of a loaded model: analysis, division, totals. PlanError (naming the model) when it cannot be pruned. */
function describeModel(spec: RunSpec, resolved: ResolvedModel, options: SpecPlanOptions): Manifest {
  const model = resolved.model;
  let division;
  let totals;
  try {
    const analysis = analyzeChannels(model, { pruneResidual: spec.divide.pruneResidual });
    division = divideNetwork(model, analysis, {
      pruneResidual: spec.divide.pruneResidual,
      ...(spec.divide.subnetworks === undefined ? {} : { subnetworks: spec.divide.subnetworks }),
    });
    totals = countTotals(analysis);
  } catch (error) {
    // Analysis and division errors name the layer; the prefix names the run's model.
    throw new PlanError(`model '${spec.model}' (${resolved.location}): ${(error as Error).message}`, { cause: error });
  }
  const inputShape = model.inputs[0].shape.slice(1);
  const outputShape = model.outputs[0].shape;
  const classes = outputShape[outputShape.length - 1];
  if (inputShape.some((d) => typeof d !== 'number') || typeof classes !== 'number') {
    throw new PlanError(
      `model '${spec.model}': input shape [${model.inputs[0].shape.join(', ')}] or output shape [${outputShape.join(', ')}] has an unknown dimension`,
    );
  }
  const manifest = {
    version: MANIFEST_VERSION,
    runId: options.runId,
    specKey: options.specKey,
    model: {
      ref: spec.model,
      name: model.name,
      macs: totals.macs,
      params: totals.params,
      inputShape: inputShape as number[],
      classes,
    },
    division,
    subnetworks: division.subnetworks.map((s) => s.id),
    targets: spec.targets.map((target) => ({ name: targetName(target), kind: target.kind, value: target.value })),
    createdAt: (options.now ?? new Date()).toISOString(),
  };
  // Validate what we are about to write: a manifest that its readers would refuse must fail here.
  return parseWith(manifestSchema, JSON.parse(JSON.stringify(manifest)) as unknown, `manifest of run ${options.runId}`);
}

/**
 * Builds the manifest of `runId` from its spec and model (no writes); a PlanError with one line
 * per spec field that cannot work otherwise.
 */
export async function buildManifest(store: ObjectStore, runId: string, options: PlanOptions = {}): Promise<Manifest> {
  const keys = runKeys(runId);
  const specKey = options.specKey ?? keys.spec;
  const spec = await readRunSpec(store, specKey);
  if (spec.runId !== undefined && spec.runId !== runId) {
    throw new PlanError(`run spec ${specKey}: field runId is '${spec.runId}', but this is run '${runId}'`);
  }
  await initPlanEngine(options.backend);
  const planned = await planSpec(spec, {
    runId,
    specKey,
    loadModel: () => loadSpecModel(store, spec.model),
    ...(options.now === undefined ? {} : { now: options.now }),
    // A store on this machine's disk is the embedded mode: the workers read the data set from this
    // same filesystem. Elsewhere (a Lambda) the files are in the worker image or its mounts.
    dataFiles: options.dataFiles ?? store.location.startsWith('file:'),
    store,
  });
  if (planned.issues.length > 0 || planned.manifest === undefined) {
    throw new PlanError(formatIssues(`run spec ${specKey}`, planned.issues));
  }
  return planned.manifest;
}

/** The Plan step: writes `runs/<runId>/manifest.json` once and returns the keys and ids. */
export async function planRun(store: ObjectStore, runId: string, options: PlanOptions = {}): Promise<PlanResult> {
  const log = options.log ?? (() => undefined);
  const keys = runKeys(runId);
  const manifest = await buildManifest(store, runId, options);
  if (manifest.division.subnetworks.length === 1 && manifest.division.candidates.length === 0) {
    log('no interior cut point (a tensor every path passes through): the whole network is one sub-network, searched as one', {
      model: manifest.model.name,
    });
  }
  try {
    await putJson(store, keys.manifest, manifest, { ifNoneMatch: true });
    log('manifest written', { manifestKey: keys.manifest, subnetworks: manifest.subnetworks, targets: manifest.targets.length });
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
    const existing = parseWith(manifestSchema, await getJson(store, keys.manifest), `existing ${keys.manifest} (in ${store.location})`);
    if (!isDeepStrictEqual(withoutTime(existing), withoutTime(manifest))) {
      const differing = (Object.keys(withoutTime(manifest)) as (keyof Omit<Manifest, 'createdAt'>)[]).filter(
        (field) => !isDeepStrictEqual(existing[field], manifest[field]),
      );
      throw new PlanError(
        `${keys.manifest} (in ${store.location}) already exists with different content (fields: ${differing.join(', ')}); ` +
          'the spec or the model changed under the same run id: start a new run instead',
      );
    }
    log('manifest already written with the same content (retry)', { manifestKey: keys.manifest });
  }
  return {
    runId,
    manifestKey: keys.manifest,
    subnetworks: [...manifest.subnetworks],
    targets: manifest.targets.map((t) => t.name),
  };
}
