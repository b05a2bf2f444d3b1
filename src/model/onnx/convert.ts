/**
 * An ONNX file converted once into a saved tfjs model under a store prefix: how `emo-dir run` and
 * `emo-dir submit` hand an `.onnx` spec model to the pipeline, which then reads it from the store
 * like any other model (its ONNX origin travels in model.json's metadata for the export).
 * The caller has started the engine.
 */
import { MODEL_JSON, saveModel } from '../io.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { importOnnxFile } from './read.ts';

/** Imports `path` and saves it under `prefix` (unless a model.json is already there: a resumed run). */
export async function convertOnnxToStore(path: string, store: ObjectStore, prefix: string): Promise<{ converted: boolean }> {
  if (await store.exists(`${prefix}${MODEL_JSON}`)) return { converted: false };
  const model = await importOnnxFile(path);
  try {
    await saveModel(model, { store, prefix });
  } finally {
    model.dispose();
  }
  return { converted: true };
}
