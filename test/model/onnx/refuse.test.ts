/**
 * What the importer refuses, and how it says so: an unsupported op names the node, its op type
 * and the opset; unsupported forms of supported ops say what is wrong; malformed files and
 * missing external data name the file.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, copyFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../../src/engine/backend.ts';
import { ModelFileError } from '../../../src/model/errors.ts';
import { OnnxImportError } from '../../../src/model/onnx/context.ts';
import { int, ints } from '../../../src/model/onnx/emitter.ts';
import type { AttributeValue } from '../../../src/model/onnx/emitter.ts';
import { importOnnxModel } from '../../../src/model/onnx/import.ts';
import { AttributeType, DataType, decodeModel, encodeModel } from '../../../src/model/onnx/proto.ts';
import { importOnnxFile } from '../../../src/model/onnx/read.ts';
import { floatTensorProto, int64TensorProto } from '../../../src/model/onnx/tensor.ts';
import type { TensorProto } from '../../../src/model/onnx/proto.ts';
import { FIXTURES } from './parity.ts';

before(async () => {
  await initEngine();
});

interface NodeSpec {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly output?: string;
  readonly attrs?: Record<string, AttributeValue>;
}

function attributeOf(name: string, value: AttributeValue): Record<string, unknown> {
  if ('int' in value) return { name, type: AttributeType.INT, i: value.int };
  if ('ints' in value) return { name, type: AttributeType.INTS, ints: [...value.ints] };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value.string) };
}

/** A one-input graph [N, 4, 6, 6] -> nodes -> the last node's output, as encoded bytes. */
function graphBytes(nodes: readonly NodeSpec[], initializers: readonly TensorProto[] = [], opset = 13): Uint8Array {
  const last = nodes[nodes.length - 1];
  return encodeModel({
    ir_version: 7,
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'test',
    graph: {
      name: 'g',
      node: nodes.map((n) => ({
        name: n.name,
        op_type: n.op,
        input: [...n.inputs],
        output: [n.output ?? n.name],
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attributeOf(k, v)) as never,
      })),
      initializer: [...initializers],
      input: [{ name: 'x', type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'N' }, { dim_value: 4 }, { dim_value: 6 }, { dim_value: 6 }] } } } }],
      output: [{ name: last.output ?? last.name, type: { tensor_type: { elem_type: DataType.FLOAT } } }],
    },
  });
}

function importBytes(bytes: Uint8Array): void {
  importOnnxModel(decodeModel(bytes, 'test.onnx'), { file: 'test.onnx' }).dispose();
}

function refusal(bytes: Uint8Array): OnnxImportError {
  try {
    importBytes(bytes);
  } catch (error) {
    if (error instanceof OnnxImportError) return error;
    throw error;
  }
  assert.fail('the import succeeded');
}

const weight = (name: string, dims: number[]): TensorProto => floatTensorProto(name, dims, new Float32Array(dims.reduce((p, d) => p * d, 1)).fill(0.1));

test('an unsupported op is refused naming the node, its op type and the opset', () => {
  const error = refusal(
    graphBytes([
      { op: 'Relu', name: 'stem_relu', inputs: ['x'] },
      { op: 'LpNormalization', name: 'odd_one', inputs: ['stem_relu'] },
    ]),
  );
  assert.equal(error.node, 'odd_one');
  assert.equal(error.op, 'LpNormalization');
  assert.equal(error.opset, 13);
  assert.match(error.message, /^test\.onnx: node 'odd_one' \(op LpNormalization, opset 13\): op type 'LpNormalization' is not supported \(supported: .*Conv.*\)/);
});

test('a node without a name is named by its op and position', () => {
  const error = refusal(graphBytes([{ op: 'Erf', name: '', inputs: ['x'], output: 'y' }], [], 11));
  assert.match(error.message, /node 'Erf_0' \(op Erf, opset 11\)/);
});

test('grouped convolutions other than depthwise are refused', () => {
  const error = refusal(graphBytes([{ op: 'Conv', name: 'grouped', inputs: ['x', 'w'], attrs: { group: int(2), kernel_shape: ints([3, 3]) } }], [weight('w', [4, 2, 3, 3])]));
  assert.equal(error.op, 'Conv');
  assert.match(error.message, /group 2 on 4 input channels .* only group 1 and depthwise/);
});

test('shape ops are folded on constants but refused on computed tensors', () => {
  const error = refusal(graphBytes([{ op: 'Gather', name: 'pick', inputs: ['x', 'idx'], attrs: { axis: int(1) } }], [int64TensorProto('idx', [], [0])]));
  assert.match(error.message, /node 'pick' \(op Gather, opset 13\): Gather is supported only on constants/);
});

test('a Reshape that computes with the batch size is refused', () => {
  const error = refusal(
    graphBytes([
      { op: 'Shape', name: 'shape', inputs: ['x'] },
      { op: 'Gather', name: 'batch', inputs: ['shape', 'zero'] },
      { op: 'Mul', name: 'twice', inputs: ['batch', 'two'] },
      { op: 'Reshape', name: 'reshape', inputs: ['x', 'twice'] },
    ], [int64TensorProto('zero', [], [0]), int64TensorProto('two', [1], [2])]),
  );
  assert.equal(error.node, 'twice');
  assert.match(error.message, /batch size/);
});

test('per-channel constants in arithmetic and reflect padding are refused with the reason', () => {
  const perChannel = refusal(graphBytes([{ op: 'Mul', name: 'scale', inputs: ['x', 'c'] }], [weight('c', [4, 1, 1])]));
  assert.match(perChannel.message, /constant operand of shape \[4, 1, 1\] is not supported/);
  const reflect = refusal(
    graphBytes([{ op: 'Pad', name: 'pad', inputs: ['x', 'pads'], attrs: { mode: { string: 'reflect' } } }], [int64TensorProto('pads', [8], [0, 0, 1, 1, 0, 0, 1, 1])]),
  );
  assert.match(reflect.message, /node 'pad' \(op Pad, opset 13\): mode 'reflect' is not supported/);
});

test('folding evaluates the PyTorch flatten idiom: Shape -> Gather -> Unsqueeze -> Concat -> Reshape (-> Linear)', () => {
  const bytes = graphBytes([
    { op: 'Shape', name: 'shape', inputs: ['x'] },
    { op: 'Gather', name: 'batch', inputs: ['shape', 'zero'] },
    { op: 'Unsqueeze', name: 'batch1', inputs: ['batch', 'axes'] },
    { op: 'Concat', name: 'target', inputs: ['batch1', 'minus1'], attrs: { axis: int(0) } },
    { op: 'Reshape', name: 'flat', inputs: ['x', 'target'] },
    { op: 'MatMul', name: 'linear', inputs: ['flat', 'w'] },
  ], [int64TensorProto('zero', [], [0]), int64TensorProto('axes', [1], [0]), int64TensorProto('minus1', [1], [-1]), weight('w', [144, 3])]);
  const model = importOnnxModel(decodeModel(bytes, 'flat.onnx'), { file: 'flat.onnx' });
  try {
    assert.deepEqual(model.outputs[0].shape, [null, 3]);
    assert.deepEqual(model.layers.map((l) => l.getClassName()), ['InputLayer', 'Flatten', 'Dense']);
  } finally {
    model.dispose();
  }
});

test('a flattened NCHW map as a graph output is refused (its feature order differs in NHWC)', () => {
  const error = refusal(graphBytes([{ op: 'Flatten', name: 'flat', inputs: ['x'], attrs: { axis: int(1) } }]));
  assert.match(error.message, /output flat.*flattened \[C, H, W\] map/);
});

test('a file that is not ONNX, and a missing external data file, are reported with the file name', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'onnx-refuse-'));
  try {
    const junk = join(dir, 'junk.onnx');
    await writeFile(junk, new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]));
    await assert.rejects(importOnnxFile(junk), (error: Error) => error instanceof ModelFileError && error.message.startsWith(`${junk}: is not an ONNX model`));
    await assert.rejects(importOnnxFile(join(dir, 'absent.onnx')), (error: Error) => error instanceof ModelFileError && /absent\.onnx: file not found/.test(error.message));
    // The external-data fixture without its .data file.
    const lonely = join(dir, 'external_data.onnx');
    await copyFile(join(FIXTURES, 'external_data.onnx'), lonely);
    await assert.rejects(importOnnxFile(lonely), (error: Error) => error instanceof ModelFileError && error.message.includes(join(dir, 'external_data.onnx.data')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
