/**
 * The object layout of DESIGN §3 as functions, so that no module spells a key by hand:
 *
 *   registry/<model>/...                      uploads; registry/<model>/prune.json starts a run
 *   datasets/<name>/...
 *   runs/<runId>/spec.json | manifest.json | status.json
 *   runs/<runId>/model/                       the run's copy of its model (local directory, SageMaker archive)
 *   runs/<runId>/model-package.json | model-packages.json   SageMaker package it came from | registered back
 *   runs/<runId>/logs/<job>.log               worker output of a local run's job
 *   runs/<runId>/subnets/<k>/front.json | log.jsonl
 *   scratch/<runId>/subnets/<k>/features/     cached boundary features
 *   scratch/<runId>/subnets/<k>/checkpoints/gen-<g>.json
 *   runs/<runId>/merge/joint-front.json | merge/plans/<target>.json
 *   runs/<runId>/targets/<target>/model/ | targets/<target>/model.onnx | targets/<target>/metrics.json
 *   runs/<runId>/targets/<target>/model.tar.gz | model-metrics.json   (SageMaker registration)
 *   runs/<runId>/report.json | report.html
 *
 * One change from the layout of DESIGN §3: checkpoints and cached features, which are only
 * needed while a run is in progress, live under `scratch/<runId>/` instead of
 * `runs/<runId>/subnets/<k>/`. S3 lifecycle rules filter by plain prefix (no wildcards), so
 * `runs/<id>/subnets/<k>/checkpoints/` cannot be expired by one rule; `scratch/` can (cdk/constructs/
 * bucket.ts), and a local store can be cleaned with one `rm -r scratch`. Everything under
 * `runs/` is a result and is kept.
 *
 * Numbers inside keys are zero-padded so that the store's lexicographic listing is numeric
 * order (the last checkpoint is the last key listed; sub-network 10 sorts after 9).
 * Prefixes end with '/', so `subnet(1).prefix` never matches sub-network 10.
 */

/** A run id, model, dataset or target name: safe as one key segment and as a Batch/CLI argument. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Widths of zero-padded numbers; a value wider than this still works but sorts out of order. */
export const SUBNET_ID_WIDTH = 3;
export const GENERATION_WIDTH = 6;

export class InvalidNameError extends Error {
  constructor(readonly kind: string, readonly value: string, reason: string) {
    super(`invalid ${kind} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'InvalidNameError';
  }
}

/** Returns `value` when it is a valid name of `kind` (for the message), else throws InvalidNameError. */
export function assertValidName(kind: string, value: string): string {
  if (typeof value !== 'string') throw new InvalidNameError(kind, String(value), 'not a string');
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidNameError(
      kind,
      value,
      'must be 1-128 characters of A-Z a-z 0-9 . _ - and start with a letter or digit',
    );
  }
  // '..' is not a path segment here (the pattern forbids '/'), but such names are confusing in
  // keys and shell commands and are reserved.
  if (value.includes('..')) throw new InvalidNameError(kind, value, "must not contain '..'");
  return value;
}

function assertNonNegativeInteger(kind: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidNameError(kind, String(value), 'must be a non-negative integer');
  }
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/**
 * The key segment of a sub-network: numbers are zero-padded (`7` -> `007`), strings must be
 * valid names and are used as they are.
 */
export function subnetSegment(subnet: number | string): string {
  if (typeof subnet === 'number') {
    assertNonNegativeInteger('sub-network id', subnet);
    return pad(subnet, SUBNET_ID_WIDTH);
  }
  return assertValidName('sub-network id', subnet);
}

export const REGISTRY_PREFIX = 'registry/';
export const DATASETS_PREFIX = 'datasets/';
export const RUNS_PREFIX = 'runs/';
/** Disposable intermediates (checkpoints, cached features); expired by a bucket lifecycle rule. */
export const SCRATCH_PREFIX = 'scratch/';
/** The upload that starts a run (the EventBridge rule in cdk/ matches `registry/<model>/prune.json`). */
export const PRUNE_REQUEST_NAME = 'prune.json';

/** `registry/` or, with a model, `registry/<model>/`. */
export function registryPrefix(model?: string): string {
  return model === undefined ? REGISTRY_PREFIX : `${REGISTRY_PREFIX}${assertValidName('model name', model)}/`;
}

/** `registry/<model>/prune.json`. */
export function pruneRequestKey(model: string): string {
  return `${registryPrefix(model)}${PRUNE_REQUEST_NAME}`;
}

/** The model name of a `registry/<model>/prune.json` key, or undefined for any other key. */
export function parsePruneRequestKey(key: string): string | undefined {
  const match = /^registry\/([^/]+)\/prune\.json$/.exec(key);
  if (match === null) return undefined;
  return NAME_PATTERN.test(match[1]) && !match[1].includes('..') ? match[1] : undefined;
}

/** `datasets/` or, with a name, `datasets/<name>/`. */
export function datasetPrefix(name?: string): string {
  return name === undefined ? DATASETS_PREFIX : `${DATASETS_PREFIX}${assertValidName('dataset name', name)}/`;
}

export interface SubnetKeys {
  readonly id: string;
  readonly prefix: string;
  /** Prefix of the cached boundary features (under scratch/, expires). */
  readonly features: string;
  /** Prefix of the search checkpoints (under scratch/, expires). */
  readonly checkpoints: string;
  checkpoint(generation: number): string;
  readonly front: string;
  readonly log: string;
  /** The last search session's statistics (evaluations, times); rewritten by every session. */
  readonly stats: string;
}

export interface TargetKeys {
  readonly name: string;
  readonly prefix: string;
  /** Prefix of the exported pruned model. */
  readonly modelPrefix: string;
  /** The pruned model as ONNX (written when the input was ONNX or the spec asks for it). */
  readonly onnxModel: string;
  readonly metrics: string;
  /** The exported model as one gzipped tar (what a SageMaker model package points at). */
  readonly modelArchive: string;
  /** The metrics report a registered model package's ModelQuality statistics point at. */
  readonly registryMetrics: string;
}

export interface RunKeys {
  readonly runId: string;
  readonly prefix: string;
  /** `scratch/<runId>/`: everything of the run that may expire. */
  readonly scratchPrefix: string;
  readonly spec: string;
  readonly manifest: string;
  readonly status: string;
  /** `runs/<runId>/model/`: the run's own copy of its model, when it was not already in the store. */
  readonly modelPrefix: string;
  /** The SageMaker model package the run was started from. */
  readonly modelPackage: string;
  /** The model package versions the run registered. */
  readonly modelPackages: string;
  /** The worker output of one Batch job of a local run (`label` like `search k1`). */
  jobLog(label: string): string;
  readonly subnetsPrefix: string;
  subnet(subnet: number | string): SubnetKeys;
  readonly merge: {
    readonly prefix: string;
    readonly jointFront: string;
    readonly plansPrefix: string;
    plan(target: string): string;
  };
  readonly targetsPrefix: string;
  target(target: string): TargetKeys;
  readonly report: { readonly json: string; readonly html: string };
}

export function runKeys(runId: string): RunKeys {
  const prefix = `${RUNS_PREFIX}${assertValidName('run id', runId)}/`;
  const scratchPrefix = `${SCRATCH_PREFIX}${runId}/`;
  const subnetsPrefix = `${prefix}subnets/`;
  const mergePrefix = `${prefix}merge/`;
  const targetsPrefix = `${prefix}targets/`;
  return {
    runId,
    prefix,
    scratchPrefix,
    spec: `${prefix}spec.json`,
    manifest: `${prefix}manifest.json`,
    status: `${prefix}status.json`,
    modelPrefix: `${prefix}model/`,
    modelPackage: `${prefix}model-package.json`,
    modelPackages: `${prefix}model-packages.json`,
    jobLog: (label) => `${prefix}logs/${assertValidName('job label', label.trim().replace(/\s+/g, '-'))}.log`,
    subnetsPrefix,
    subnet(subnet) {
      const id = subnetSegment(subnet);
      const subnetPrefix = `${subnetsPrefix}${id}/`;
      const subnetScratch = `${scratchPrefix}subnets/${id}/`;
      const checkpoints = `${subnetScratch}checkpoints/`;
      return {
        id,
        prefix: subnetPrefix,
        features: `${subnetScratch}features/`,
        checkpoints,
        checkpoint(generation) {
          assertNonNegativeInteger('generation', generation);
          return `${checkpoints}gen-${pad(generation, GENERATION_WIDTH)}.json`;
        },
        front: `${subnetPrefix}front.json`,
        log: `${subnetPrefix}log.jsonl`,
        stats: `${subnetPrefix}search-stats.json`,
      };
    },
    merge: {
      prefix: mergePrefix,
      jointFront: `${mergePrefix}joint-front.json`,
      plansPrefix: `${mergePrefix}plans/`,
      plan: (target) => `${mergePrefix}plans/${assertValidName('target name', target)}.json`,
    },
    targetsPrefix,
    target(target) {
      const targetPrefix = `${targetsPrefix}${assertValidName('target name', target)}/`;
      return {
        name: target,
        prefix: targetPrefix,
        modelPrefix: `${targetPrefix}model/`,
        onnxModel: `${targetPrefix}model.onnx`,
        metrics: `${targetPrefix}metrics.json`,
        modelArchive: `${targetPrefix}model.tar.gz`,
        registryMetrics: `${targetPrefix}model-metrics.json`,
      };
    },
    report: { json: `${prefix}report.json`, html: `${prefix}report.html` },
  };
}

/** The generation of a `.../checkpoints/gen-<g>.json` key, or undefined for any other key. */
export function parseCheckpointGeneration(key: string): number | undefined {
  const match = /\/checkpoints\/gen-(\d+)\.json$/.exec(key);
  return match === null ? undefined : Number(match[1]);
}

/**
 * The newest checkpoint among listed keys (a resumed search starts there). Compares numbers, not
 * strings, so it stays right even past GENERATION_WIDTH digits.
 */
export function latestCheckpoint(keys: readonly string[]): { key: string; generation: number } | undefined {
  let latest: { key: string; generation: number } | undefined;
  for (const key of keys) {
    const generation = parseCheckpointGeneration(key);
    if (generation !== undefined && (latest === undefined || generation > latest.generation)) {
      latest = { key, generation };
    }
  }
  return latest;
}
