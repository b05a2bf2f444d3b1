/**
 * The Search stage as the worker runs it (DESIGN §3 step 2): everything it needs comes from the
 * store (manifest, spec, model) and the spec's data set, so a Batch job needs only the run id and
 * the sub-network id. A retried job resumes from its newest valid checkpoint (search-task.ts).
 */
import { analyzeChannels } from '../model/groups.ts';
import { openDatasetSource } from '../data/load.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { readManifest, type StepLog } from './manifest.ts';
import { loadSpecModel, readRunSpec } from './plan.ts';
import { searchSubnetwork, SearchTaskError, type SearchSubnetworkResult } from './search-task.ts';

export interface SearchStepOptions {
  readonly log?: StepLog;
}

export async function runSearchStep(
  store: ObjectStore,
  runId: string,
  subnet: string,
  options: SearchStepOptions = {},
): Promise<SearchSubnetworkResult> {
  const log: StepLog = options.log ?? (() => undefined);
  const manifest = await readManifest(store, runId);
  if (!manifest.subnetworks.includes(subnet)) {
    throw new SearchTaskError(`run ${runId} has no sub-network '${subnet}' (its manifest lists ${manifest.subnetworks.join(', ')})`);
  }
  const spec = await readRunSpec(store, manifest.specKey);
  const { model } = await loadSpecModel(store, spec.model);
  try {
    if (model.name !== manifest.division.model) {
      throw new SearchTaskError(`run ${runId}: the spec's model '${spec.model}' is '${model.name}', the manifest divided '${manifest.division.model}'`);
    }
    // The training split is needed only when the boundary features are not cached yet. A shard
    // set (ImageNet) is opened for random access: the worker reads its search subsets' images and
    // never the split; the small sets load into memory (Fashion-MNIST from a binary cache).
    const dataset = await openDatasetSource(spec.dataset.name, { split: 'train', store, log: (message: string) => log(message) });
    const analysis = analyzeChannels(model, { pruneResidual: manifest.division.pruneResidual });
    return await searchSubnetwork({
      store,
      runId,
      subnet,
      spec,
      model,
      division: manifest.division,
      dataset,
      analysis,
      log: (message: string) => log(message),
    });
  } finally {
    model.dispose();
  }
}
