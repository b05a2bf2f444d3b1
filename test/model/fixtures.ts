/**
 * Small models and weight helpers shared by the model and sub-network tests.
 */
import { tf } from '../../src/engine/backend.ts';
import { keptIndices } from '../../src/model/groups.ts';
import type { ChannelAnalysis, GroupMasks } from '../../src/model/groups.ts';
import { layerKind } from '../../src/model/kinds/index.ts';

type ST = tf.SymbolicTensor;

/**
 * Two branches concatenated (4 + 3 channels), BN + depthwise on the concat, a residual pair of
 * 1x1 convs (5 channels), padding, pooling, flatten, dropout, dense logits.
 */
export function concatToy(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'input' });
  const a = tf.layers.conv2d({ name: 'a_conv', filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as ST;
  const aBn = tf.layers.batchNormalization({ name: 'a_bn' }).apply(a) as ST;
  const aRelu = tf.layers.activation({ name: 'a_relu', activation: 'relu' }).apply(aBn) as ST;
  const b = tf.layers.conv2d({ name: 'b_conv', filters: 3, kernelSize: 1 }).apply(input) as ST;
  const bRelu = tf.layers.reLU({ name: 'b_relu' }).apply(b) as ST;
  const cat = tf.layers.concatenate({ name: 'cat' }).apply([aRelu, bRelu]) as ST;
  const catBn = tf.layers.batchNormalization({ name: 'cat_bn' }).apply(cat) as ST;
  const dw = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same' }).apply(catBn) as ST;
  const dwRelu = tf.layers.activation({ name: 'dw_relu', activation: 'relu' }).apply(dw) as ST;
  const pw = tf.layers.conv2d({ name: 'pw_conv', filters: 5, kernelSize: 1 }).apply(dwRelu) as ST;
  const skip = tf.layers.conv2d({ name: 'skip_conv', filters: 5, kernelSize: 1, useBias: false }).apply(catBn) as ST;
  const sum = tf.layers.add({ name: 'sum' }).apply([pw, skip]) as ST;
  const pad = tf.layers.zeroPadding2d({ name: 'pad', padding: 1 }).apply(sum) as ST;
  const pool = tf.layers.maxPooling2d({ name: 'pool', poolSize: 2 }).apply(pad) as ST;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(pool) as ST;
  const drop = tf.layers.dropout({ name: 'drop', rate: 0.5 }).apply(flat) as ST;
  const logits = tf.layers.dense({ name: 'logits', units: 3 }).apply(drop) as ST;
  return tf.model({ inputs: input, outputs: logits, name: 'concat-toy' });
}

/** Deterministic stand-in for a random number generator (LCG). */
export function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Non-trivial BN parameters and statistics, so a wrong channel copy shows in the outputs. */
export function randomizeBatchNorm(model: tf.LayersModel, seed: number): void {
  const random = lcg(seed);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const n = layer.getWeights()[0].shape[0];
    const values = (lo: number, hi: number): tf.Tensor => tf.tensor1d(Array.from({ length: n }, () => lo + (hi - lo) * random()));
    const weights = [values(0.5, 1.5), values(-0.2, 0.2), values(-0.2, 0.2), values(0.5, 1.5)];
    layer.setWeights(weights);
    tf.dispose(weights);
  }
}

/**
 * The standard check that channel coupling is complete and exact: in the UNPRUNED model, zero
 * every weight through which a channel-reducing layer (conv, dense, a separable conv's pointwise
 * rows, a transposed conv) reads a channel the masks drop. The pruned model must then compute
 * what this model computes. Edits `model` in place.
 */
export function zeroDroppedReads(model: tf.LayersModel, analysis: ChannelAnalysis, masks: GroupMasks): void {
  analysis.graph.nodes.forEach((node, i) => {
    const reads = (layerKind(node.className)?.weights?.(node) ?? []).filter((axis) => axis.role === 'kernel-in');
    if (reads.length === 0) return;
    const layout = analysis.layers[i].inputs[0];
    const kept = new Set(keptIndices(layout, masks));
    const width = layout.kind === 'flatten' ? layout.channels * layout.spatial : layout.channels;
    const layer = model.getLayer(node.name);
    const weights = layer.getWeights().map((w) => w.clone());
    for (const axis of reads) {
      const expand = axis.expand ?? 1;
      const factors = new Float32Array(width * expand);
      for (let e = 0; e < factors.length; e++) factors[e] = kept.has(Math.floor(e / expand)) ? 1 : 0;
      const target = weights[axis.weight];
      const shape = target.shape.map((d, a) => (a === axis.axis ? d : 1));
      weights[axis.weight] = tf.tidy(() => target.mul(tf.tensor(factors, shape)));
      target.dispose();
    }
    layer.setWeights(weights);
    tf.dispose(weights);
  });
}

/**
 * Random values for every weight that is not a kernel (biases, BN/LN parameters and statistics,
 * PReLU slopes): zoo models start with zero biases and unit BN, which would hide a wrongly
 * sliced per-channel weight.
 */
export function randomizeAllButKernels(model: tf.LayersModel, seed: number): void {
  const random = lcg(seed);
  for (const layer of model.layers) {
    const weights = layer.weights;
    if (weights.length === 0) continue;
    const values = layer.getWeights().map((current, i) => {
      const name = weights[i].originalName;
      if (/kernel$/.test(name)) return current.clone();
      const [lo, hi] = /(gamma|moving_variance)$/.test(name) ? [0.5, 1.5] : /alpha$/.test(name) ? [0, 0.5] : [-0.2, 0.2];
      return tf.tensor(Float32Array.from({ length: current.size }, () => lo + (hi - lo) * random()), current.shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}
