// A sub-network search's channel importance (src/dir/search-importance.ts). Taylor importance is
// measured through cached features and the frozen tail; it must equal the Taylor importance
// measured the direct way, through the whole original network from the images.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { createDataset } from '../../src/data/dataset.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { channelImportance } from '../../src/model/importance.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { softmaxCrossEntropy, toLogits } from '../../src/train/losses.ts';
import { disposeGradients, weightGradients } from '../../src/train/weight-gradients.ts';
import { divideNetwork } from '../../src/dir/divide.ts';
import type { Division } from '../../src/dir/divide.ts';
import { computeBoundaryFeatures, drawSearchSubsets, featureBatches } from '../../src/dir/features.ts';
import type { BoundaryFeatures } from '../../src/dir/features.ts';
import { TAYLOR_BATCHES, subnetworkImportance } from '../../src/dir/search-importance.ts';
import { buildSubnetworkModel, buildTailModel } from '../../src/dir/subnetwork.ts';

const BATCH = 8;
let model: tf.LayersModel;
let division: Division;
let features: Map<string, BoundaryFeatures>;

before(async () => {
  await initEngine();
  model = buildModel('fmnist-resnet', { seed: 5 });
  division = divideNetwork(model, analyzeChannels(model));
  let state = 777;
  const count = 120;
  const labels = Int32Array.from({ length: count }, (_, i) => (i * 7) % 10);
  const images = Uint8Array.from({ length: count * 28 * 28 }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state >>> 24;
  });
  const dataset = createDataset({ name: 'noise/train', images, labels, height: 28, width: 28, channels: 1, classes: 10 });
  // More search-train rows than TAYLOR_BATCHES batches: the cap is part of what is compared.
  const subsets = drawSearchSubsets(dataset, { searchTrain: BATCH * TAYLOR_BATCHES + 12, searchVal: 16, seed: 4 });
  features = await computeBoundaryFeatures(model, division, dataset, subsets, { batchSize: 16, storage: 'memory', log: () => {} });
});

/** Taylor importance of S_k's groups from gradients taken through the WHOLE network on the images (X_0). */
function directTaylor(subnetId: string): Record<string, Float32Array> {
  const images = features.get(division.subnetworks[0].id)!;
  const subnet = division.subnetworks.find((s) => s.id === subnetId)!;
  const subnetModel = buildSubnetworkModel(model, division, subnetId);
  function* losses(): Generator<() => tf.Scalar> {
    let used = 0;
    for (const batch of featureBatches(images, 'train', { batchSize: BATCH })) {
      try {
        yield () => softmaxCrossEntropy(toLogits(model.apply(batch.input, { training: false }) as tf.Tensor, images.outputKind), batch.labels);
      } finally {
        batch.dispose();
      }
      if (++used === TAYLOR_BATCHES) return;
    }
  }
  const gradients = weightGradients(model, losses());
  try {
    // The sub-network shares the original layers, so the whole network's gradients are keyed by its layer names.
    return channelImportance(subnetModel, analyzeChannels(subnetModel), { groups: subnet.groupIds, criterion: 'taylor', gradients });
  } finally {
    disposeGradients(gradients);
  }
}

for (const position of ['first', 'last'] as const) {
  test(`taylor importance of the ${position} sub-network through features and T_k equals the whole network's`, () => {
    const subnet = position === 'first' ? division.subnetworks[0] : division.subnetworks[division.subnetworks.length - 1];
    const subnetModel = buildSubnetworkModel(model, division, subnet.id);
    const analysis = analyzeChannels(subnetModel);
    const isLast = subnet === division.subnetworks[division.subnetworks.length - 1];
    const tensorsBefore = tf.memory().numTensors;
    const viaFeatures = subnetworkImportance({
      subnetModel,
      tail: isLast ? null : buildTailModel(model, division, subnet.id),
      analysis,
      groups: subnet.groupIds,
      features: features.get(subnet.id)!,
      criterion: 'taylor',
      batchSize: BATCH,
    });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'subnetworkImportance leaks tensors');
    const direct = directTaylor(subnet.id);
    assert.deepEqual(Object.keys(viaFeatures).sort(), [...subnet.groupIds].sort());
    for (const id of subnet.groupIds) {
      const a = viaFeatures[id];
      const b = direct[id];
      assert.equal(a.length, b.length, id);
      for (let c = 0; c < a.length; c++) {
        assert.ok(Number.isFinite(a[c]) && a[c] >= 0, `${id}[${c}] = ${a[c]}`);
        assert.ok(Math.abs(a[c] - b[c]) <= 1e-3 * Math.max(1, Math.abs(b[c])), `${id}[${c}]: via features ${a[c]}, direct ${b[c]}`);
      }
    }
    // Not magnitude under another name: the gradients change the ranking.
    const l1 = channelImportance(subnetModel, analysis, { groups: subnet.groupIds, criterion: 'l1' });
    assert.ok(subnet.groupIds.some((id) => viaFeatures[id].some((v, c) => Math.abs(v - l1[id][c]) > 1e-3)), 'taylor equals l1');
  });
}
