/**
 * The sweep spec (DESIGN §1 "Sweeps"): several models x several targets on one data set. It
 * expands to ONE run spec per model, and each run serves every target: the expensive sub-network
 * searches happen once per model, every target is a cheap merge plus a fine-tune, so the cost
 * grows with the models, not with the targets.
 *
 *   {
 *     "sweepId": "imagenet-nov",                       // optional: default sweep-<UTC stamp>
 *     "models": ["zoo:resnet18", {"model": "registry/r50/model/", "name": "r50"}],
 *     "dataset": {"name": "imagenet:datasets/imagenet"},
 *     "targets": [{"kind": "flopsCut", "value": 0.5}, {"kind": "flopsCut", "value": 0.7}],
 *     "search": {...}, "divide": {...}, "merge": {...}, "finalize": {...}   // shared by every run
 *   }
 *
 * Run `i` gets `runId = <sweepId>-<model name>`; model names come from the reference
 * (`zoo:resnet18` -> `resnet18`, `.../r50/model/` -> `r50`) unless given, and must be unique.
 * Every expanded run spec is checked with runSpecSchema itself, so a sweep is valid exactly
 * when each of its runs is; issues point at the sweep's own fields (`models[1]`, `targets[0]`).
 */
import { z } from 'zod';
import {
  datasetSpecSchema,
  divideSpecSchema,
  finalizeSpecSchema,
  mergeSpecSchema,
  nameSchema,
  runSpecSchema,
  searchSpecSchema,
  targetSchema,
  type RunSpec,
} from './spec.ts';

/** A model of a sweep: a model reference as a run spec's `model` takes it, optionally named. */
export const sweepModelSchema = z.union([
  z.string().min(1),
  z.object({ model: z.string().min(1), name: nameSchema.optional() }).strict(),
]);
export type SweepModel = z.infer<typeof sweepModelSchema>;

/** Length of `compactUtc()`'s output, for the run-id length check of an unnamed sweep. */
const STAMP_LENGTH = 'yyyymmddThhmmss'.length;
const DEFAULT_SWEEP_PREFIX = 'sweep-';

const sweepSpecObject = z
  .object({
    sweepId: nameSchema.optional(),
    models: z.array(sweepModelSchema).min(1).max(256),
    dataset: datasetSpecSchema,
    targets: z.array(targetSchema).min(1),
    divide: divideSpecSchema.default(divideSpecSchema.parse({})),
    search: searchSpecSchema.default(searchSpecSchema.parse({})),
    merge: mergeSpecSchema.default(mergeSpecSchema.parse({})),
    finalize: finalizeSpecSchema.default(finalizeSpecSchema.parse({})),
  })
  .strict();

export const sweepSpecSchema = sweepSpecObject.superRefine((sweep, ctx) => {
  const sweepId = sweep.sweepId ?? `${DEFAULT_SWEEP_PREFIX}${'0'.repeat(STAMP_LENGTH)}`;
  const names = sweep.models.map(sweepModelName);
  const seen = new Set<string>();
  names.forEach((name, index) => {
    if (names.indexOf(name) !== index) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', index],
        message: `model name '${name}' is used twice (give one of them a "name")`,
      });
    }
  });
  // Each run must be a valid run spec; map its issues back onto the sweep's fields, once each.
  sweep.models.forEach((model, index) => {
    const result = runSpecSchema.safeParse(runSpecInput(sweep, sweepId, model));
    if (result.success) return;
    for (const issue of result.error.issues) {
      const [head] = issue.path;
      const path =
        head === 'model' ? ['models', index] : head === 'runId' ? ['models', index] : [...issue.path];
      const message =
        head === 'runId' ? `run id '${sweepId}-${names[index]}' is invalid: ${issue.message}` : issue.message;
      const id = `${path.join('.')}\n${message}`;
      if (seen.has(id)) continue;
      seen.add(id);
      ctx.addIssue({ code: 'custom', path, message });
    }
  });
});

export type SweepSpec = z.output<typeof sweepSpecSchema>;
export type SweepSpecInput = z.input<typeof sweepSpecSchema>;

/** A sweep is told apart from a run spec by its `models` list (a run spec has one `model`). */
export function isSweepSpec(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'models' in value;
}

/** `yyyymmddThhmmss` in UTC: the time part of generated run and sweep ids (sorts by time). */
export function compactUtc(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

/**
 * A key-safe name for a model reference: `zoo:resnet20` -> `resnet20`; a directory or store
 * prefix -> its last segment, or the one before when that is a generic `model`/`tfjs` folder
 * (`registry/resnet20/model/` -> `resnet20`). Characters a name may not hold become '-'.
 */
export function modelNameOf(ref: string): string {
  let path = ref.trim();
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(\/\/)?/.exec(path);
  if (scheme !== null) path = path.slice(scheme[0].length);
  const segments = path.split(/[\\/]+/).filter((segment) => segment !== '' && segment !== '.' && segment !== '..');
  let name = segments.at(-1) ?? '';
  if (segments.length > 1 && /^(model|models|tfjs|tfjs-model|model\.json)$/i.test(name)) name = segments.at(-2) ?? name;
  name = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64)
    .replace(/[^A-Za-z0-9]+$/, '');
  return name === '' ? 'model' : name;
}

/** The name a sweep model's run id carries. */
export function sweepModelName(model: SweepModel): string {
  return typeof model === 'string' ? modelNameOf(model) : (model.name ?? modelNameOf(model.model));
}

function runSpecInput(sweep: z.output<typeof sweepSpecObject>, sweepId: string, model: SweepModel): unknown {
  return {
    runId: `${sweepId}-${sweepModelName(model)}`,
    model: typeof model === 'string' ? model : model.model,
    dataset: sweep.dataset,
    targets: sweep.targets,
    divide: sweep.divide,
    search: sweep.search,
    merge: sweep.merge,
    finalize: sweep.finalize,
  };
}

export interface ExpandedSweep {
  readonly sweepId: string;
  /** One run spec per model, in the sweep's order; each has its `runId` and all targets. */
  readonly runs: RunSpec[];
}

/**
 * One run spec per model. `now` names an unnamed sweep (`sweep-<yyyymmddThhmmss>`). The sweep
 * must already be parsed with sweepSpecSchema (which checked every expanded run).
 */
export function expandSweep(sweep: SweepSpec, now: Date = new Date()): ExpandedSweep {
  const sweepId = sweep.sweepId ?? `${DEFAULT_SWEEP_PREFIX}${compactUtc(now)}`;
  const runs = sweep.models.map((model) => runSpecSchema.parse(runSpecInput(sweep, sweepId, model)));
  return { sweepId, runs };
}
