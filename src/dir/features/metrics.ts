/** CE and top-1 of network outputs, the impairment's unit of account. */
import type { OutputKind } from '../../train/losses.ts';
import type { Metrics } from './types.ts';

/**
 * Mean CE and top-1 accuracy of network outputs [count, classes] against labels, in float64 on
 * the host (deterministic, independent of the backend's reduction order).
 */
export function outputMetrics(outputs: Float32Array, labels: Int32Array, classes: number, kind: OutputKind = 'logits'): Metrics {
  const count = labels.length;
  if (outputs.length !== count * classes) {
    throw new Error(`outputMetrics: ${outputs.length} outputs for ${count} labels x ${classes} classes`);
  }
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < count; i++) {
    const row = outputs.subarray(i * classes, (i + 1) * classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
    if (best === labels[i]) correct++;
    if (kind === 'probabilities') {
      loss -= Math.log(Math.min(1, Math.max(row[labels[i]], 1e-7)));
    } else {
      let max = -Infinity;
      for (let c = 0; c < classes; c++) max = Math.max(max, row[c]);
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(row[c] - max);
      loss -= row[labels[i]] - max - Math.log(sum);
    }
  }
  return { loss: count > 0 ? loss / count : NaN, accuracy: count > 0 ? correct / count : NaN, count };
}
