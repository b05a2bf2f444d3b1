import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/backend.ts';
import { buildGraph, cutPoints, graphNode, GraphError } from '../../src/model/graph.ts';
import { buildModel } from '../../src/model/zoo.ts';

before(async () => {
  await initEngine();
});

function branchy(): tf.LayersModel {
  const input = tf.input({ shape: [6, 6, 2], name: 'x' });
  const a = tf.layers.conv2d({ name: 'a', filters: 3, kernelSize: [3, 1], strides: 2, padding: 'same' }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.conv2d({ name: 'b', filters: 3, kernelSize: 1, strides: 2 }).apply(input) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([b, a]) as tf.SymbolicTensor;
  const pool = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.dense({ name: 'logits', units: 4, useBias: false }).apply(pool) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'branchy' });
}

test('nodes come in topological order with their inputs, consumers and shapes', () => {
  const graph = buildGraph(branchy());
  assert.equal(graph.name, 'branchy');
  assert.deepEqual(graph.inputs, ['x']);
  assert.deepEqual(graph.outputs, ['logits']);
  const names = graph.nodes.map((n) => n.name);
  assert.deepEqual(new Set(names), new Set(['x', 'a', 'b', 'sum', 'gap', 'logits']));
  for (const node of graph.nodes) {
    assert.equal(graph.nodes[node.index], node);
    for (const input of node.inputs) assert.ok(names.indexOf(input) < node.index, `${input} before ${node.name}`);
  }
  const sum = graphNode(graph, 'sum');
  assert.equal(sum.className, 'Add');
  // Call order is kept: Add and Concatenate depend on it.
  assert.deepEqual(sum.inputs, ['b', 'a']);
  assert.deepEqual(sum.outputShape, [null, 3, 3, 3]);
  assert.deepEqual(sum.inputShapes, [[null, 3, 3, 3], [null, 3, 3, 3]]);
  assert.deepEqual([...graphNode(graph, 'x').outputs].sort(), ['a', 'b']);
  assert.deepEqual(graphNode(graph, 'x').inputs, []);
  assert.deepEqual(graphNode(graph, 'logits').outputs, []);
});

test('config essentials are read with their types', () => {
  const graph = buildGraph(branchy());
  const a = graphNode(graph, 'a');
  assert.equal(a.config.filters, 3);
  assert.deepEqual(a.config.kernelSize, [3, 1]);
  assert.deepEqual(a.config.strides, [2, 2]);
  assert.equal(a.config.padding, 'same');
  assert.equal(a.config.useBias, true);
  assert.equal(a.paramCount, 3 * 1 * 2 * 3 + 3);
  const logits = graphNode(graph, 'logits');
  assert.equal(logits.config.units, 4);
  assert.equal(logits.config.useBias, false);
  assert.equal(logits.config.kernelSize, undefined);
  // Plain data: survives a JSON round trip.
  assert.deepEqual(JSON.parse(JSON.stringify(graph)), graph);
  assert.throws(() => graphNode(graph, 'nope'), /no layer named 'nope'/);
});

test('a layer called twice inside the model is rejected, naming it and its class', () => {
  const input = tf.input({ shape: [4, 4, 2], name: 'x' });
  const shared = tf.layers.conv2d({ name: 'twice', filters: 2, kernelSize: 1 });
  const y = shared.apply(shared.apply(input)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y });
  assert.throws(
    () => buildGraph(model),
    (error: unknown) =>
      error instanceof GraphError && /'twice' \(Conv2D\)/.test(error.message) && /shared layer/.test(error.message),
  );
});

test('layers also applied in another model are fine: only this model\'s calls count', () => {
  const model = branchy();
  // Re-apply two of its layers to a new input (as a sub-network builder would).
  const other = tf.input({ shape: [6, 6, 2], name: 'other' });
  const reused = model.getLayer('a').apply(other) as tf.SymbolicTensor;
  tf.model({ inputs: other, outputs: model.getLayer('gap').apply(reused) as tf.SymbolicTensor });
  const graph = buildGraph(model);
  assert.equal(graph.nodes.length, 6);
  assert.deepEqual(graphNode(graph, 'sum').inputs, ['b', 'a']);
});

test('sequential models are read through their functional inner graph', () => {
  const model = tf.sequential({
    name: 'seq',
    layers: [
      tf.layers.conv2d({ name: 'c', inputShape: [5, 5, 1], filters: 2, kernelSize: 3 }),
      tf.layers.flatten({ name: 'f' }),
      tf.layers.dense({ name: 'd', units: 3 }),
    ],
  });
  const graph = buildGraph(model);
  assert.equal(graph.nodes.length, 4);
  assert.equal(graph.nodes[0].className, 'InputLayer');
  assert.deepEqual(graph.nodes.slice(1).map((n) => n.name), ['c', 'f', 'd']);
  assert.deepEqual(graphNode(graph, 'f').outputShape, [null, 18]);
});

test('cut points: tensors every input-to-output path passes through', () => {
  // x -> {a, b} -> sum -> gap -> logits: the branches are bypassed by each other.
  assert.deepEqual(cutPoints(buildGraph(branchy())), ['x', 'sum', 'gap']);
  const resnet = buildGraph(buildModel('resnet20'));
  const cuts = cutPoints(resnet);
  assert.deepEqual(cuts.slice(0, 4), ['input', 'stem_conv', 'stem_bn', 'stem_relu']);
  // Inside a block the skip edge crosses every layer: only the sum and the block output (and the head) are cuts.
  assert.deepEqual(
    cuts.slice(4),
    [...[1, 2, 3].flatMap((s) => [0, 1, 2].flatMap((b) => [`stage${s}_block${b}_add`, `stage${s}_block${b}_out`])), 'pool'],
  );
});
