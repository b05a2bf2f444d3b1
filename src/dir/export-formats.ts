/**
 * The Finalize step's extra export formats: `model.onnx` beside each target's tfjs model, when
 * the run's model was an ONNX file (the file then drops into the user's serving stack: NCHW, the
 * input's opset, input/output names and initializer names) or when the spec lists 'onnx' in
 * `finalize.export` (any model; opset 13, tfjs layer names).
 */
import type { tf } from '../engine/backend.ts';
import { encodeOnnx } from '../model/onnx/export.ts';
import { onnxOriginOf, setOnnxOrigin } from '../model/onnx/metadata.ts';
import type { RunSpec } from '../schema/spec.ts';
import type { ObjectStore } from '../store/object-store.ts';

/** Whether targets of this run get a model.onnx: the spec's choice, else "the input was ONNX". */
export function wantsOnnx(spec: RunSpec, original: tf.LayersModel): boolean {
  return spec.finalize.export === undefined ? onnxOriginOf(original) !== undefined : spec.finalize.export.includes('onnx');
}

/**
 * Gives the pruned model the original's ONNX origin (pruning rebuilds models without their
 * metadata), so the saved tfjs model can be exported again later with the same names.
 */
export function carryOnnxOrigin(original: tf.LayersModel, pruned: tf.LayersModel): void {
  const origin = onnxOriginOf(original);
  if (origin !== undefined) setOnnxOrigin(pruned, origin);
}

/** Writes `pruned` as ONNX to `key` when the run wants it; returns the key written, else undefined. */
export async function writeOnnxExport(store: ObjectStore, key: string, spec: RunSpec, original: tf.LayersModel, pruned: tf.LayersModel): Promise<string | undefined> {
  if (!wantsOnnx(spec, original)) return undefined;
  const origin = onnxOriginOf(original);
  const bytes = encodeOnnx(pruned, origin === undefined ? {} : { origin });
  await store.put(key, bytes, { contentType: 'application/octet-stream' });
  return key;
}
