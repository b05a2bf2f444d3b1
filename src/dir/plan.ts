/**
 * The Plan step (DESIGN §3 step 1): validate the run's spec, load the model, analyse its channel
 * groups, divide it into sub-networks and write `runs/<id>/manifest.json`, the one document every
 * later step starts from. Returns only keys and ids (they travel through the state machine).
 *
 * Idempotent: the manifest is written create-only. A retried Plan (Lambda retry, a re-driven
 * execution) that computes the same manifest succeeds without writing; a manifest that differs
 * (the spec or the model changed under the same run id) is refused, because the searches of the
 * earlier manifest may already have written fronts that no longer match.
 */
import { isAbsolute } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { engineInfo, initEngine, type BackendName } from '../engine/backend.ts';
import { countTotals } from '../model/cost.ts';
import { analyzeChannels } from '../model/groups.ts';
import { resolveModel, type ResolvedModel } from '../model/io.ts';
import { runSpecSchema, targetName, type RunSpec } from '../schema/spec.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { AlreadyExistsError, NotFoundError, getJson, putJson, type ObjectStore } from '../store/object-store.ts';
import { divideNetwork } from './divide.ts';
import { MANIFEST_VERSION, manifestSchema, type Manifest, type StepLog } from './manifest.ts';

export { readManifest, type StepLog } from './manifest.ts';

export interface PlanOptions {
  /** Default: `runs/<runId>/spec.json`. */
  readonly specKey?: string;
  readonly log?: StepLog;
  /** The manifest's createdAt (tests). Default: now. */
  readonly now?: Date;
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
 * The spec's model: `zoo:<name>`; an absolute or `./` path, or a `file:` URL (local runs); else
 * a key prefix in the run's store (what `emo-dir submit` and the registry trigger write).
 */
export async function loadSpecModel(store: ObjectStore, ref: string): Promise<ResolvedModel> {
  if (ref.startsWith('zoo:') || isAbsolute(ref) || ref.startsWith('.') || ref.startsWith('file:')) return resolveModel(ref);
  const prefix = ref.endsWith('/') ? ref : `${ref}/`;
  if (!(await store.exists(`${prefix}model.json`))) {
    throw new PlanError(`model '${ref}' not found: ${prefix}model.json does not exist in ${store.location}`);
  }
  return resolveModel({ store, prefix });
}

/** Everything in a manifest but its creation time: what "the same manifest" means on a retry. */
function withoutTime(manifest: Manifest): Omit<Manifest, 'createdAt'> {
  const { createdAt: _createdAt, ...rest } = manifest;
  return rest;
}

/** Builds the manifest of `runId` from its spec and model (no writes). */
export async function buildManifest(store: ObjectStore, runId: string, options: PlanOptions = {}): Promise<Manifest> {
  const keys = runKeys(runId);
  const specKey = options.specKey ?? keys.spec;
  const spec = await readRunSpec(store, specKey);
  if (spec.runId !== undefined && spec.runId !== runId) {
    throw new PlanError(`run spec ${specKey}: field runId is '${spec.runId}', but this is run '${runId}'`);
  }
  // An explicit EMO_DIR_BACKEND (a local run's choice) wins over the cpu default.
  if (engineInfo() === undefined) {
    await initEngine(options.backend === undefined && process.env.EMO_DIR_BACKEND ? {} : { backend: options.backend ?? 'cpu' });
  }

  let resolved: ResolvedModel;
  try {
    resolved = await loadSpecModel(store, spec.model);
  } catch (error) {
    throw new PlanError(`run spec ${specKey}: field model: ${(error as Error).message}`, { cause: error });
  }
  const model = resolved.model;
  try {
    // Analysis and division errors name the layer; the prefix names the run's model.
    let division;
    let totals;
    try {
      const analysis = analyzeChannels(model, { pruneResidual: spec.divide.pruneResidual });
      division = divideNetwork(model, analysis, {
        pruneResidual: spec.divide.pruneResidual,
        ...(spec.divide.subnetworks === undefined ? {} : { subnetworks: spec.divide.subnetworks }),
      });
      totals = countTotals(analysis);
      if (division.subnetworks.length === 1 && division.candidates.length === 0) {
        options.log?.('no interior cut point (a tensor every path passes through): the whole network is one sub-network, searched as one', {
          model: model.name,
        });
      }
    } catch (error) {
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
      runId,
      specKey,
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
    return parseWith(manifestSchema, JSON.parse(JSON.stringify(manifest)) as unknown, `manifest of run ${runId}`);
  } finally {
    model.dispose();
  }
}

/** The Plan step: writes `runs/<runId>/manifest.json` once and returns the keys and ids. */
export async function planRun(store: ObjectStore, runId: string, options: PlanOptions = {}): Promise<PlanResult> {
  const log = options.log ?? (() => undefined);
  const keys = runKeys(runId);
  const manifest = await buildManifest(store, runId, options);
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
