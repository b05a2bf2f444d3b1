import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { createDataset } from '../../src/data/dataset.ts';
import { arrayBatches } from '../../src/data/batches.ts';
import { batches, forEachBatch } from '../../src/data/tensor-batches.ts';

test('tensor batches match the array batches and dispose cleanly', async () => {
  await initEngine({ log: () => {} });
  const images = Uint8Array.from({ length: 9 * 4 * 4 * 3 }, (_, i) => (i * 13) % 256);
  const ds = createDataset({ name: 't', images, labels: Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3, 0]), height: 4, width: 4, channels: 3, classes: 4 });
  const options = { batchSize: 4, seed: 2, augment: { cropPadding: 1, flip: true } };
  const before = tf.memory().numTensors;
  const arrays = [...arrayBatches(ds, options)];
  let k = 0;
  for (const batch of batches(ds, options)) {
    assert.deepEqual(batch.x.shape, [arrays[k].indices.length, 4, 4, 3]);
    assert.equal(batch.x.dtype, 'float32');
    assert.equal(batch.y.dtype, 'int32');
    assert.deepEqual(Array.from(batch.y.dataSync()), Array.from(arrays[k].y));
    assert.deepEqual(Array.from(batch.x.dataSync()), Array.from(arrays[k].x));
    batch.dispose();
    batch.dispose(); // idempotent
    k++;
  }
  assert.equal(k, 3);
  const seen = await forEachBatch(ds, options, (batch) => {
    assert.equal(batch.x.shape[1], 4);
  });
  assert.equal(seen, 3);
  await assert.rejects(
    forEachBatch(ds, options, () => {
      throw new Error('step failed');
    }),
    /step failed/,
  );
  assert.equal(tf.memory().numTensors, before);
});
