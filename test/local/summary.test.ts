import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRunSummary, readRunSummary } from '../../src/local/summary.ts';
import { finalizeMetricsSchema } from '../../src/schema/metrics.ts';
import { putJson } from '../../src/store/object-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { sampleMetrics, tempStore } from '../cloud/helpers.ts';

describe('the end-of-run summary', () => {
  it('has a row per target of the spec, one that produced nothing and one with bad metrics included', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const keys = runKeys('r1');
      await putJson(store, keys.spec, {
        runId: 'r1',
        model: 'zoo:resnet20',
        dataset: { name: 'fashion-mnist' },
        targets: [{ kind: 'flopsCut', value: 0.5 }, { kind: 'flopsCut', value: 0.9 }, { kind: 'paramsBudget', value: 1000, name: 'tiny' }],
      });
      await putJson(store, keys.target('flops-50').metrics, sampleMetrics('r1', 'flops-50'));
      await putJson(store, keys.target('tiny').metrics, { ...sampleMetrics('r1', 'tiny'), accuracy: { beforeFineTune: 2 } });
      const summary = await readRunSummary(store, 'r1', keys.report.html);
      assert.deepEqual(summary.targets.map((target) => target.name), ['flops-50', 'flops-90', 'tiny']);
      const model = `${store.root}/runs/r1/targets/flops-50/model`;
      assert.equal(
        formatRunSummary(summary),
        [
          'target    FLOPs cut  params cut  accuracy  pruned  fine-tuned  model',
          `flops-50      49.8%       30.0%     91.0%   70.0%       89.0%  ${model}`,
          'flops-90  no result (see the report)',
          'tiny      unreadable metrics.json (accuracy.beforeFineTune: must be in [0, 1])',
          `report: ${store.root}/runs/r1/report.html`,
          '',
        ].join('\n'),
      );
      assert.ok(finalizeMetricsSchema.safeParse(sampleMetrics('r1', 'x')).success, 'the sample is a complete metrics.json');
    } finally {
      await cleanup();
    }
  });
});
