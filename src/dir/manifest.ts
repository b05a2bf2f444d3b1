/**
 * The run's documents that the pipeline's steps hand to each other through the store
 * (DESIGN §3), as zod schemas in one place so that writer and readers cannot drift apart:
 *
 *   runs/<id>/manifest.json               Plan      -> Search, Merge, Finalize, Report
 *   runs/<id>/subnets/<k>/front.json      Search    -> Merge, Report
 *   runs/<id>/merge/joint-front.json      Merge     -> Report
 *   runs/<id>/merge/plans/<target>.json   Merge     -> Finalize, Report
 *
 * Every reader parses with `parseWith(schema, value, key)`, so a malformed document fails with
 * the key and the path of each bad field instead of a NaN three steps later.
 *
 * Units: `macs` are multiply-accumulates of one image (what `emo-dir inspect` prints), `flops`
 * in a front point is the ratio pruned/original of the sub-network (the search's objective 1),
 * impairments are CE-loss differences in nats.
 */
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { runKeys } from '../store/keys.ts';
import { writeOnce } from '../store/write-once.ts';
import { NotFoundError, getJson, type ObjectStore } from '../store/object-store.ts';
import { parseWith } from '../schema/validate.ts';
import { divisionSchema } from './divide.ts';
import { nameSchema, targetKindSchema } from '../schema/spec.ts';
import { storeKeySchema } from '../schema/messages.ts';
import { RESULT_FORMAT_VERSION } from '../schema/version.ts';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.number().int().min(0);
const isoTime = z.iso.datetime({ offset: true });
const targetKind = targetKindSchema;

// ---------------------------------------------------------------------------------------------
// manifest.json

/** Bumped when a field changes meaning; readers refuse versions they do not know. */
export const MANIFEST_VERSION = RESULT_FORMAT_VERSION;

export const manifestTargetSchema = z.strictObject({
  /** spec.ts `targetName`: the key segment of the target's plan, model and metrics. */
  name: nameSchema,
  kind: targetKind,
  value: finite.refine((v) => v > 0, 'must be > 0'),
});

export const manifestSchema = z
  .strictObject({
    version: z.literal(MANIFEST_VERSION),
    runId: nameSchema,
    /** Where the validated spec lives (`runs/<id>/spec.json`). */
    specKey: storeKeySchema,
    model: z.strictObject({
      /** As the spec names it: `zoo:<name>`, a store prefix, or a directory. */
      ref: z.string().min(1),
      /** The model's own (graph) name. */
      name: z.string().min(1),
      /** Whole network, unpruned. */
      macs: count,
      params: count,
      /** Input shape without the batch dimension (`[28, 28, 1]`). */
      inputShape: z.array(z.number().int().min(1)).min(1),
      /** Width of the output (classes of the classifier). */
      classes: z.number().int().min(1),
    }),
    division: divisionSchema,
    /** Sub-network ids (`k1`, `k2`, ...), the key segments the Search Map iterates over. */
    subnetworks: z.array(nameSchema).min(1),
    targets: z.array(manifestTargetSchema).min(1),
    createdAt: isoTime,
  })
  .superRefine((manifest, ctx) => {
    // The id list is what travels through the state machine; it must be the division's, in order.
    const ids = manifest.division.subnetworks.map((s) => s.id);
    if (ids.join(',') !== manifest.subnetworks.join(',')) {
      ctx.addIssue({
        code: 'custom',
        path: ['subnetworks'],
        message: `must be the division's sub-network ids [${ids.join(', ')}], got [${manifest.subnetworks.join(', ')}]`,
      });
    }
    const names = new Set<string>();
    manifest.targets.forEach((target, index) => {
      if (names.has(target.name)) {
        ctx.addIssue({ code: 'custom', path: ['targets', index, 'name'], message: `duplicate target name '${target.name}'` });
      }
      names.add(target.name);
    });
    if (manifest.model.macs !== manifest.division.totalMacs) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'macs'],
        message: `${manifest.model.macs} differs from division.totalMacs ${manifest.division.totalMacs}`,
      });
    }
  });

export type Manifest = z.output<typeof manifestSchema>;

/** A structured log line (a Powertools logger's `info` fits: `(m, d) => logger.info(m, d ?? {})`). */
export type StepLog = (message: string, details?: Record<string, unknown>) => void;

export class ManifestError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ManifestError';
  }
}

/** Reads and validates a run's manifest; errors name the key. */
export async function readManifest(store: ObjectStore, runId: string, manifestKey = runKeys(runId).manifest): Promise<Manifest> {
  let raw: unknown;
  try {
    raw = await getJson(store, manifestKey);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new ManifestError(`run ${runId} has no manifest: ${manifestKey} does not exist in ${store.location} (did Plan run?)`, { cause: error });
    }
    throw error;
  }
  const manifest = parseWith(manifestSchema, raw, `${manifestKey} (in ${store.location})`);
  if (manifest.runId !== runId) throw new ManifestError(`${manifestKey}: field runId is '${manifest.runId}', expected '${runId}'`);
  return manifest;
}

export type ManifestTarget = z.output<typeof manifestTargetSchema>;

// ---------------------------------------------------------------------------------------------
// subnets/<k>/front.json: its one schema is src/schema/front.ts (written by src/dir/search-task.ts)

export { frontFilePointSchema, frontFileSchema, type FrontFile, type FrontFilePoint } from '../schema/front.ts';

// ---------------------------------------------------------------------------------------------
// merge/plans/<target>.json and merge/joint-front.json (written by src/dir/merge-run.ts)

/** The point one scheme takes from one sub-network's front, with what finalize needs to rebuild it. */
export const planPickSchema = z.strictObject({
  subnet: nameSchema,
  pointId: z.string().min(1),
  genome: z.string(),
  /** Absolute MACs/params of the pruned sub-network (scope as in its front.json). */
  macs: finite,
  params: finite,
  impairment: finite,
  /** True when the merge added the unpruned point because the front lacked it. */
  synthetic: z.boolean().optional(),
});

export const planSchemeSchema = z.strictObject({
  /** 1 = the best estimate; finalize verifies every scheme and keeps the best measured one. */
  rank: z.number().int().min(1),
  picks: z.array(planPickSchema).min(1),
  /** Sum of the picks' impairments (the GPIR estimate). */
  estimatedImpairment: finite,
  /** Whole-network MACs and params of the scheme. */
  macs: finite,
  params: finite,
  flopsCut: finite,
  paramsCut: finite,
});

export const planSchema = z
  .strictObject({
    version: z.literal(MANIFEST_VERSION),
    runId: nameSchema,
    target: manifestTargetSchema,
    /** The whole-network limit the target means (`kind` is the cost it bounds). */
    budget: z.strictObject({ kind: z.enum(['flops', 'params']), value: finite }).optional(),
    original: z.strictObject({ macs: finite, params: finite }),
    /** Best first; empty exactly when `error` says why the target cannot be reached. */
    schemes: z.array(planSchemeSchema),
    /**
     * The global-ranking trace's scheme for this budget, for comparison with the knapsack's. When
     * the trace saved the other cost (spec.search.objective differs from the target's kind) it
     * may not reach the budget; it is then the trace's cheapest scheme.
     */
    ranking: planSchemeSchema.optional(),
    /**
     * The cost band next to the budget that `schemes` were drawn from (spec merge.targetTolerance);
     * `met: false` = no scheme lay in it, so `schemes` are the best anywhere under the budget.
     */
    band: z.strictObject({ lower: finite, upper: finite, met: z.boolean() }).optional(),
    error: z.string().min(1).optional(),
    /** The cheapest achievable cost when the target is infeasible. */
    minimum: finite.optional(),
    createdAt: isoTime,
  })
  .refine((plan) => (plan.schemes.length === 0) === (plan.error !== undefined), {
    message: 'a plan has schemes or an error, not both and not neither',
    path: ['error'],
  });

export type Plan = z.output<typeof planSchema>;
export type PlanScheme = z.output<typeof planSchemeSchema>;
export type PlanPick = z.output<typeof planPickSchema>;

export const jointFrontFileSchema = z.strictObject({
  version: z.literal(MANIFEST_VERSION),
  runId: nameSchema,
  /** The cost the ranking saved. */
  rankBy: z.enum(['flops', 'params']),
  original: z.strictObject({ macs: finite, params: finite }),
  /** Whole-network cost that no sub-network search changes (GPIR's `fixed`). */
  fixed: z.strictObject({ macs: finite, params: finite }),
  subnetworks: z.array(nameSchema).min(1),
  /** From no pruning to maximal compression; `choice[i]` is the point id of `subnetworks[i]`. */
  points: z.array(
    z.strictObject({
      choice: z.array(z.string().min(1)),
      macs: finite,
      params: finite,
      estimatedImpairment: finite,
      flopsCut: finite,
      paramsCut: finite,
    }),
  ),
  createdAt: isoTime,
});

export type JointFrontFile = z.output<typeof jointFrontFileSchema>;

// ---------------------------------------------------------------------------------------------
// Writing results once

/** A result document already in the store differs from the one a retry computed. */
export class ResultConflictError extends Error {
  constructor(readonly key: string, readonly location: string, readonly fields: readonly string[]) {
    super(
      `${key} (in ${location}) already exists with different content (fields: ${fields.join(', ') || '(root)'}); ` +
        'results are written once: start a new run to recompute them',
    );
    this.name = 'ResultConflictError';
  }
}

/**
 * Writes `value` to `key` create-only (DESIGN §3: a retry never destroys an earlier result). A
 * retry that finds the same document there, `createdAt` aside, succeeds with 'existing'; a
 * different one is a ResultConflictError naming the key and the differing top-level fields.
 */
export async function writeJsonOnce(
  store: ObjectStore,
  key: string,
  value: Record<string, unknown>,
): Promise<'created' | 'existing'> {
  // Compared as JSON, which is what was written (undefined fields vanish, -0 becomes 0).
  const fresh = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  return writeOnce(store, key, `${JSON.stringify(value, null, 2)}\n`, {
    contentType: 'application/json',
    same: (existing) => differingFields(existing, fresh)?.length === 0,
    conflict: (existing) => new ResultConflictError(key, store.location, differingFields(existing, fresh) ?? []),
  });
}

/** Top-level fields that differ, `createdAt` aside; undefined when the stored bytes are not a JSON object. */
function differingFields(existingBytes: Uint8Array, fresh: Record<string, unknown>): string[] | undefined {
  let existing: unknown;
  try {
    existing = JSON.parse(new TextDecoder().decode(existingBytes));
  } catch {
    return undefined;
  }
  if (typeof existing !== 'object' || existing === null || Array.isArray(existing)) return undefined;
  const old = existing as Record<string, unknown>;
  return [...new Set([...Object.keys(fresh), ...Object.keys(old)])].filter(
    (field) => field !== 'createdAt' && !isDeepStrictEqual(fresh[field], old[field]),
  );
}
