/**
 * The Merge step (DESIGN §2 "Merge", §3 step 3): read every sub-network's front.json, run GPIR
 * (src/dir/gpir.ts) over them, and write the joint front and one plan per target:
 *
 *   runs/<id>/merge/joint-front.json     the global-ranking trace, no pruning -> maximal compression
 *   runs/<id>/merge/plans/<target>.json  the `verifyTop` best schemes within the target's budget
 *
 * A plan carries, per scheme and sub-network, the chosen point's id *and genome* (copied from the
 * front), so the Finalize job needs only its plan (and the manifest) to assemble the network.
 * A target no scheme can reach gets a plan with `error` and no schemes instead of failing the
 * merge: the other targets still finalize, and the report says why that one has no model.
 *
 * Costs. A front's points carry absolute MACs/params in the same scope as the front's
 * `original`: either the sub-network's whole piece (`division.subnetworks[k].macs`) or only its
 * prunable part (`prunableMacs`). Both are accepted, per front, because the whole network's cost
 * is then always `fixed + sum of picks` with
 *
 *   fixed = division.totalMacs - sum_k front_k.original.macs
 *
 * (= 0 for whole pieces, since pieces partition the layers and the input layer costs nothing;
 * = division.fixedMacs for prunable parts). A front whose `original` matches neither scope is
 * rejected with its key: summing it would silently mis-state every cut.
 */
import { decodeGenome, encodeGenome, fullGenome } from '../emo/genome.ts';
import { runSpecSchema } from '../schema/spec.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import { NotFoundError, getJson, type ObjectStore } from '../store/object-store.ts';
import type { SubnetworkSpec } from './divide.ts';
import {
  InfeasibleTargetError,
  jointFrontByRanking,
  parseGpirInput,
  solveTarget,
  type GpirInput,
  type JointScheme,
} from './gpir.ts';
import {
  MANIFEST_VERSION,
  frontFileSchema,
  jointFrontFileSchema,
  planSchema,
  readManifest,
  writeJsonOnce,
  type FrontFile,
  type JointFrontFile,
  type Manifest,
  type Plan,
  type PlanPick,
  type PlanScheme,
  type StepLog,
} from './manifest.ts';

export interface MergeOptions {
  /** Default: `runs/<runId>/manifest.json`. */
  readonly manifestKey?: string;
  readonly log?: StepLog;
  /** createdAt of the written documents (tests). Default: now. */
  readonly now?: Date;
}

export interface MergeResult {
  readonly runId: string;
  readonly jointFrontKey: string;
  readonly plansPrefix: string;
  /** Targets with at least one scheme: the items of the Finalize Map. */
  readonly targets: string[];
  /** Targets whose plan records why no scheme reaches them. */
  readonly infeasibleTargets: string[];
}

export class MergeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MergeError';
  }
}

/** One sub-network's front as the merge uses it: validated, with its unpruned point known. */
export interface LoadedFront {
  readonly subnet: SubnetworkSpec;
  readonly key: string;
  readonly file: FrontFile;
  /** The front's points plus, if the search left it out, a synthetic unpruned point. */
  readonly points: readonly PlanPick[];
  readonly unprunedId: string;
  readonly scope: 'piece' | 'prunable';
}

/** Integer counts compared with a little slack for a writer that summed floats. */
function sameCount(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Reads and validates `subnets/<k>/front.json`; errors name the key, the point and the field. */
export async function loadFront(store: ObjectStore, runId: string, subnet: SubnetworkSpec): Promise<LoadedFront> {
  const key = runKeys(runId).subnet(subnet.id).front;
  let raw: unknown;
  try {
    raw = await getJson(store, key);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new MergeError(`sub-network ${subnet.id} has no front: ${key} does not exist in ${store.location} (did its search finish?)`, {
        cause: error,
      });
    }
    throw error;
  }
  const source = `${key} (in ${store.location})`;
  const file = parseWith(frontFileSchema, raw, source);
  if (file.runId !== runId) throw new MergeError(`${source}: field runId is '${file.runId}', expected '${runId}'`);
  if (file.subnet !== subnet.id) throw new MergeError(`${source}: field subnet is '${file.subnet}', expected '${subnet.id}'`);

  let scope: LoadedFront['scope'];
  if (sameCount(file.original.macs, subnet.macs) && sameCount(file.original.params, subnet.params)) scope = 'piece';
  else if (sameCount(file.original.macs, subnet.prunableMacs) && sameCount(file.original.params, subnet.prunableParams)) scope = 'prunable';
  else {
    throw new MergeError(
      `${source}: field original is {macs: ${file.original.macs}, params: ${file.original.params}}, but the manifest's ` +
        `sub-network ${subnet.id} has {macs: ${subnet.macs}, params: ${subnet.params}} (prunable part ` +
        `{macs: ${subnet.prunableMacs}, params: ${subnet.prunableParams}}): the front is of another model or division`,
    );
  }

  let unprunedId: string | undefined;
  const points: PlanPick[] = file.points.map((point, index) => {
    let genome;
    try {
      genome = decodeGenome(point.genome, subnet.genomeLength);
    } catch (error) {
      throw new MergeError(`${source}: points[${index}].genome (point '${point.id}'): ${(error as Error).message}`, { cause: error });
    }
    if (unprunedId === undefined && genome.every((bit) => bit === 1)) unprunedId = point.id;
    return { subnet: subnet.id, pointId: point.id, genome: point.genome, macs: point.macs, params: point.params, impairment: point.impairment };
  });
  if (unprunedId === undefined) {
    // The search always evaluates the all-ones genome, but it may be dominated (a pruned point
    // with a slightly negative impairment). GPIR needs it as the start of every walk and as the
    // network's original cost; its impairment is 0 by definition (the original network's loss).
    let id = 'unpruned';
    for (let n = 1; points.some((p) => p.pointId === id); n++) id = `unpruned-${n}`;
    points.push({
      subnet: subnet.id,
      pointId: id,
      genome: encodeGenome(fullGenome(subnet.genomeLength)),
      macs: file.original.macs,
      params: file.original.params,
      impairment: 0,
      synthetic: true,
    });
    unprunedId = id;
  }
  return { subnet, key, file, points, unprunedId, scope };
}

/** The GPIR input of the loaded fronts (see the module comment for `fixed`). */
export function gpirInputOf(manifest: Manifest, fronts: readonly LoadedFront[]): GpirInput {
  let fixedMacs = manifest.division.totalMacs;
  let fixedParams = manifest.division.totalParams;
  for (const front of fronts) {
    fixedMacs -= front.file.original.macs;
    fixedParams -= front.file.original.params;
  }
  // Float slack from a writer's sums must not become a negative (invalid) fixed cost.
  const clamp = (v: number): number => (v < 0 && v > -1e-6 * Math.max(1, manifest.division.totalMacs) ? 0 : v);
  return parseGpirInput({
    fronts: fronts.map((front) => ({
      subnet: front.subnet.id,
      unprunedId: front.unprunedId,
      points: front.points.map((p) => ({ id: p.pointId, flops: p.macs, params: p.params, impairment: p.impairment })),
    })),
    fixed: { flops: clamp(fixedMacs), params: clamp(fixedParams) },
  });
}

function planScheme(scheme: JointScheme, rank: number, fronts: readonly LoadedFront[]): PlanScheme {
  const picks = scheme.choice.map((pointId, k) => {
    const pick = fronts[k].points.find((p) => p.pointId === pointId);
    if (pick === undefined) throw new MergeError(`internal: GPIR chose point '${pointId}', which is not on the front of ${fronts[k].subnet.id}`);
    return pick;
  });
  return {
    rank,
    picks,
    estimatedImpairment: scheme.impairment,
    macs: scheme.flops,
    params: scheme.params,
    flopsCut: scheme.flopsCut,
    paramsCut: scheme.paramsCut,
  };
}

/** The Merge step: joint front + one plan per target; returns keys and the feasible targets. */
export async function mergeRun(store: ObjectStore, runId: string, options: MergeOptions = {}): Promise<MergeResult> {
  const log = options.log ?? (() => undefined);
  const keys = runKeys(runId);
  const createdAt = (options.now ?? new Date()).toISOString();
  const manifest = await readManifest(store, runId, options.manifestKey ?? keys.manifest);
  const spec = parseWith(runSpecSchema, await getJson(store, manifest.specKey), `run spec ${manifest.specKey} (in ${store.location})`);
  const rankBy = spec.search.objective;

  // Every missing front is named at once, not one per retry.
  const settled = await Promise.allSettled(manifest.division.subnetworks.map((subnet) => loadFront(store, runId, subnet)));
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [(s.reason as Error).message] : []));
  if (failures.length > 0) throw new MergeError(`cannot merge run ${runId}:\n  - ${failures.join('\n  - ')}`);
  const fronts = settled.map((s) => (s as PromiseFulfilledResult<LoadedFront>).value);
  const input = gpirInputOf(manifest, fronts);
  log('fronts loaded', {
    fronts: fronts.map((f) => ({ subnet: f.subnet.id, points: f.points.length, scope: f.scope })),
    fixed: input.fixed,
  });

  const original = { macs: input.fixed.flops, params: input.fixed.params };
  for (const front of fronts) {
    const unpruned = front.points.find((p) => p.pointId === front.unprunedId) as PlanPick;
    original.macs += unpruned.macs;
    original.params += unpruned.params;
  }

  const plans: Plan[] = manifest.targets.map((target) => {
    const base = { version: MANIFEST_VERSION, runId, target, original, createdAt } as const;
    try {
      const result = solveTarget(input, { kind: target.kind, value: target.value }, {
        verifyTop: spec.merge.verifyTop,
        resolution: spec.merge.resolution,
        rankBy,
        tolerance: spec.merge.targetTolerance,
      });
      if (result.schemes.length === 0) {
        return { ...base, budget: result.budget, schemes: [], error: `no scheme within the budget of ${result.budget.value} ${result.budget.kind} was found` };
      }
      return {
        ...base,
        budget: result.budget,
        schemes: result.schemes.map((scheme, i) => planScheme(scheme, i + 1, fronts)),
        ranking: planScheme(result.ranking, 1, fronts),
        ...(result.band ? { band: result.band } : {}),
      };
    } catch (error) {
      if (!(error instanceof InfeasibleTargetError)) throw error;
      return {
        ...base,
        budget: { kind: error.kind, value: error.budget },
        schemes: [],
        error: `target ${target.name} is infeasible: ${error.message}`,
        minimum: error.minimum,
      };
    }
  });

  const jointFront: JointFrontFile = {
    version: MANIFEST_VERSION,
    runId,
    rankBy,
    original,
    fixed: { macs: input.fixed.flops, params: input.fixed.params },
    subnetworks: fronts.map((f) => f.subnet.id),
    points: jointFrontByRanking(input, rankBy).map((scheme) => ({
      choice: [...scheme.choice],
      macs: scheme.flops,
      params: scheme.params,
      estimatedImpairment: scheme.impairment,
      flopsCut: scheme.flopsCut,
      paramsCut: scheme.paramsCut,
    })),
    createdAt,
  };

  // Plans first, joint front last: a joint front that exists means the merge finished.
  for (const plan of plans) {
    const key = keys.merge.plan(plan.target.name);
    const checked = parseWith(planSchema, plan, `plan ${key}`);
    const outcome = await writeJsonOnce(store, key, checked);
    log('plan written', {
      key,
      outcome,
      schemes: plan.schemes.length,
      ...(plan.error === undefined ? { estimatedImpairment: plan.schemes[0].estimatedImpairment, flopsCut: plan.schemes[0].flopsCut } : { error: plan.error }),
      ...(plan.band?.met === false ? { band: `no scheme within merge.targetTolerance of the target; verifying the best under the budget` } : {}),
    });
  }
  await writeJsonOnce(store, keys.merge.jointFront, parseWith(jointFrontFileSchema, jointFront, `joint front ${keys.merge.jointFront}`));
  log('joint front written', { key: keys.merge.jointFront, points: jointFront.points.length });

  return {
    runId,
    jointFrontKey: keys.merge.jointFront,
    plansPrefix: keys.merge.plansPrefix,
    targets: plans.filter((p) => p.error === undefined).map((p) => p.target.name),
    infeasibleTargets: plans.filter((p) => p.error !== undefined).map((p) => p.target.name),
  };
}
