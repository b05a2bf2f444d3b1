/**
 * `emo-dir plan <spec>` and `emo-dir run <spec> --dry-run`: what Plan would decide for a spec
 * file, and what the run would cost, without running or writing anything. The same checks as the
 * Plan step (src/dir/plan.ts `planSpec`), on the spec's own files: its model directory read in
 * place (not copied), its data set probed on this machine, and the worker-hour estimate
 * (src/dir/estimate.ts) on the backend this machine's workers would use and on a GPU.
 */
import { chooseBackend, parseBackendName, type BackendName } from '../engine/backend.ts';
import { estimateRun, type RunEstimate } from '../dir/estimate.ts';
import { initPlanEngine, loadSpecModel, planSpec, type SpecPlan } from '../dir/plan.ts';
import { BACKEND_THROUGHPUT, gpuThroughput, type Throughput } from '../dir/throughput.ts';
import { runSpecSchema, type RunSpec } from '../schema/spec.ts';
import { isSweepSpec } from '../schema/sweep.ts';
import { parseWith } from '../schema/validate.ts';
import { runKeys } from '../store/keys.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { readSpecFile, runIdOf, specBaseDir } from './run.ts';

export interface PlanPreviewOptions {
  readonly specPath: string;
  /** Where a model given as a store key prefix is read from. */
  readonly store: ObjectStore;
  /** The GPU the estimate is also given for (throughput.ts `gpuThroughput`). Default t4. */
  readonly gpu?: string;
  readonly now?: Date;
}

export interface PlanPreview {
  readonly specPath: string;
  readonly spec: RunSpec;
  readonly runId: string;
  readonly plan: SpecPlan;
  /** The backend this machine's workers would use, and its documented throughput (none for `tensorflow`). */
  readonly backend: { readonly name: BackendName; readonly throughput?: Throughput };
  readonly gpu: Throughput;
  /** Undefined when the model did not load or divide. */
  readonly estimate?: RunEstimate;
}

/** The backend a worker started here would choose (backend.ts order), without starting it. */
async function workerBackend(): Promise<BackendName> {
  return (await chooseBackend(parseBackendName(process.env.EMO_DIR_BACKEND, 'EMO_DIR_BACKEND'))).backend;
}

/** Plans the spec file (no writes); throws only for a spec that is not valid JSON or not a run spec. */
export async function previewPlan(options: PlanPreviewOptions): Promise<PlanPreview> {
  const raw = await readSpecFile(options.specPath);
  if (isSweepSpec(raw)) throw new Error(`${options.specPath}: a sweep spec (with "models") is planned per model: plan each model's spec`);
  const spec = parseWith(runSpecSchema, raw, options.specPath);
  const baseDir = specBaseDir(options.specPath);
  const runId = runIdOf(spec, baseDir, options.now ?? new Date());
  const gpu = gpuThroughput(options.gpu);
  await initPlanEngine();
  const plan = await planSpec(spec, {
    runId,
    specKey: runKeys(runId).spec,
    loadModel: () => loadSpecModel(options.store, spec.model, baseDir),
    dataFiles: true,
    store: options.store,
  });
  const backendName = await workerBackend();
  const local: Throughput | undefined = (BACKEND_THROUGHPUT as Partial<Record<BackendName, Throughput>>)[backendName];
  const throughputs = local === undefined ? [gpu] : [local, gpu];
  const estimate =
    plan.manifest === undefined
      ? undefined
      : estimateRun(
          spec,
          plan.manifest.division,
          throughputs,
          plan.dataset === undefined ? undefined : { train: plan.dataset.train.images, test: plan.dataset.test.images },
        );
  return {
    specPath: options.specPath,
    spec,
    runId,
    plan,
    backend: { name: backendName, ...(local === undefined ? {} : { throughput: local }) },
    gpu,
    ...(estimate === undefined ? {} : { estimate }),
  };
}
