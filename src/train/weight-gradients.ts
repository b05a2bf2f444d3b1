/**
 * The loss gradient of every weight of a model, averaged over batches, per layer in
 * `layer.getWeights()` order: what first-order Taylor importance (model/importance.ts) reads.
 * Weights the loss does not train (BN moving statistics, frozen layers) get zeros. BN layers run
 * in inference mode, so measuring the gradients moves no statistic.
 */
import { tf } from '../engine/backend.ts';
import type { WeightGradients } from '../model/importance.ts';

export function weightGradients(model: tf.LayersModel, batchLosses: Iterable<() => tf.Scalar>): WeightGradients {
  const weights = model.trainableWeights.map((weight) => weight.read());
  const variables = weights.filter((v): v is tf.Variable => v instanceof tf.Variable);
  const sums = new Map<string, tf.Tensor>();
  let batches = 0;
  for (const loss of batchLosses) {
    const { value, grads } = tf.variableGrads(loss, variables);
    value.dispose();
    for (const [name, gradient] of Object.entries(grads)) {
      const previous = sums.get(name);
      sums.set(name, previous ? tf.tidy(() => tf.add(previous, gradient)) : gradient.clone());
      previous?.dispose();
      gradient.dispose();
    }
    batches++;
  }
  if (batches === 0) throw new Error(`weightGradients(${model.name}): no batches`);
  const result = new Map<string, tf.Tensor[]>();
  for (const layer of model.layers) {
    const values = layer.weights.map((weight) => {
      const variable = weight.read();
      const sum = variable instanceof tf.Variable ? sums.get(variable.name) : undefined;
      return sum ? tf.tidy(() => tf.div(sum, batches)) : tf.zerosLike(variable);
    });
    if (values.length > 0) result.set(layer.name, values);
  }
  for (const sum of sums.values()) sum.dispose();
  return result;
}

/** Frees what `weightGradients` returned. */
export function disposeGradients(gradients: WeightGradients): void {
  for (const list of gradients.values()) tf.dispose([...list]);
}
