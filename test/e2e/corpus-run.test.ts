// `emo-dir run` (embedded) on models the old channel analysis refused: MobileNetV3-Small (SE
// gates, hard-swish, depthwise) and an Inception-ResNet-style network (a concatenation added to
// a scaled 1x1 projection), saved as a user would bring them, at Fashion-MNIST's 28x28x1.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import type { ImageDataset } from '../../src/data/dataset.ts';
import { initEngine } from '../../src/engine/backend.ts';
import { countTotals } from '../../src/model/cost.ts';
import { analyzeChannels } from '../../src/model/groups.ts';
import { loadModel, saveModel } from '../../src/model/io.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { fit } from '../../src/train/fit.ts';
import type { ZooName } from '../../src/model/zoo.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { parseSingleJson, runCli, tinySpec } from './helpers.ts';

type Json = Record<string, unknown>;

const CASES: readonly { name: ZooName; widthMultiplier: number }[] = [
  { name: 'mobilenetv3-small', widthMultiplier: 0.5 },
  { name: 'inception-resnet', widthMultiplier: 0.25 },
];

let dir: string;
let train: ImageDataset;

before(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-corpus-run-'));
  train = await loadFashionMnist({ split: 'train' });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const { name, widthMultiplier } of CASES) {
  describe(`emo-dir run on ${name}`, () => {
    it('plans, searches, merges, finalizes and exports a smaller model whose MACs match its metrics', async () => {
      const runId = `corpus-${name}`;
      const modelDir = join(dir, name);
      const model = buildModel(name, { inputShape: [28, 28, 1], classes: 10, widthMultiplier, seed: 1 });
      // Users bring trained models: a random one has BN statistics that let deep activations
      // overflow. One short epoch on 2k images gives real statistics and some accuracy.
      await fit(model, train, { epochs: 1, batchSize: 64, indices: Array.from({ length: 2048 }, (_, i) => i * 29), seed: 1 });
      await saveModel(model, modelDir);
      const unpruned = countTotals(analyzeChannels(model));
      model.dispose();
      const specPath = join(dir, `${name}.json`);
      await writeFile(specPath, JSON.stringify(tinySpec(runId, { model: modelDir })));
      const storeDir = join(dir, `${name}-store`);
      // A generous safety net for a loaded machine; the run itself takes about a minute.
      const cli = await runCli(['run', specPath, '--store', storeDir, '--json', '--workers', '2'], { timeoutMs: 1_200_000 });
      assert.equal(cli.code, 0, `emo-dir run failed:\n${cli.stderr}`);
      const result = parseSingleJson(cli.stdout);
      assert.equal(result.status, 'SUCCEEDED');
      const metrics = (result.targets as Record<string, Json | null>)['flops-30'];
      assert.ok(metrics, 'flops-30 has metrics');
      const achieved = metrics.achieved as { macs: number; params: number };
      assert.ok(achieved.macs < unpruned.macs, `pruned ${achieved.macs} MACs, unpruned ${unpruned.macs}`);
      const pruned = await loadModel({ store: new FileStore(storeDir), prefix: runKeys(runId).target('flops-30').modelPrefix });
      try {
        assert.deepEqual(countTotals(analyzeChannels(pruned)), { macs: achieved.macs, params: achieved.params });
      } finally {
        pruned.dispose();
      }
    });
  });
}
