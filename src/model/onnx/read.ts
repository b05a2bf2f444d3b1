/**
 * Reading an ONNX file (from a path or a store key) with its external data files, and importing
 * it: what `resolveModel` does for a `.onnx` reference. External data `location`s are resolved
 * relative to the model file and must stay beside it (no absolute paths, no `..`).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { tf } from '../../engine/backend.ts';
import { NotFoundError, type ObjectStore } from '../../store/object-store.ts';
import { ModelFileError } from '../errors.ts';
import { modelNameOf } from '../../schema/sweep.ts';
import { importOnnxModel } from './import.ts';
import { decodeModel, DATA_LOCATION_EXTERNAL, type ModelProto } from './proto.ts';
import type { ExternalData } from './tensor.ts';


function checkLocation(location: string, modelFile: string): void {
  const safe =
    location !== '' &&
    !location.startsWith('/') &&
    !location.includes('\\') &&
    !location.includes('\0') &&
    location.split('/').every((segment) => segment !== '..' && segment !== '');
  if (!safe) throw new ModelFileError(modelFile, `external data location ${JSON.stringify(location)} is not a relative path beside the model`);
}

/** Locations of every external initializer of `model` (and of tensors inside Constant nodes). */
function externalLocations(model: ModelProto): Set<string> {
  const out = new Set<string>();
  const tensors = [...model.graph.initializer, ...model.graph.node.flatMap((n) => n.attribute.flatMap((a) => (a.t ? [a.t] : [])))];
  for (const tensor of tensors) {
    if (tensor.data_location !== DATA_LOCATION_EXTERNAL) continue;
    const location = tensor.external_data.find((e) => e.key === 'location')?.value;
    if (location !== undefined) out.add(location);
  }
  return out;
}

/** External data preloaded into memory (the import itself is synchronous). */
function preloaded(files: ReadonlyMap<string, Uint8Array>, describe: (location: string) => string): ExternalData {
  return {
    describe,
    read(location) {
      const bytes = files.get(location);
      if (bytes === undefined) throw new Error(`external data file ${describe(location)} was not loaded`);
      return bytes;
    },
  };
}

/**
 * The model name of an ONNX file, as runs name models: the file name without `.onnx`, or the
 * folder's name for a generic `model.onnx` (`examples/fmnist-resnet20-onnx/model.onnx` ->
 * `fmnist-resnet20-onnx`).
 */
export function modelNameForFile(file: string): string {
  return modelNameOf(file.replace(/\.onnx$/i, ''));
}

/** Imports an ONNX file from disk (and the external data files beside it). */
export async function importOnnxFile(path: string, options: { name?: string } = {}): Promise<tf.LayersModel> {
  const file = resolve(path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new ModelFileError(file, code === 'ENOENT' ? 'file not found' : `cannot read: ${(error as Error).message}`, { cause: error });
  }
  const model = decodeModel(bytes, file);
  const files = new Map<string, Uint8Array>();
  for (const location of externalLocations(model)) {
    checkLocation(location, file);
    const dataFile = join(dirname(file), location);
    try {
      files.set(location, await readFile(dataFile));
    } catch (error) {
      throw new ModelFileError(dataFile, `external data of ${file} cannot be read: ${(error as Error).message}`, { cause: error });
    }
  }
  const external = preloaded(files, (location) => join(dirname(file), location));
  return importOnnxModel(model, { file, external, name: options.name ?? modelNameForFile(file) });
}

/** Imports an ONNX file stored under `key` (external data under the same prefix). */
export async function importOnnxFromStore(store: ObjectStore, key: string, options: { name?: string } = {}): Promise<tf.LayersModel> {
  const describe = (k: string): string => `${k} (in ${store.location})`;
  const get = async (k: string): Promise<Uint8Array> => {
    try {
      return await store.get(k);
    } catch (error) {
      if (error instanceof NotFoundError) throw new ModelFileError(describe(k), 'object not found', { cause: error });
      throw new ModelFileError(describe(k), `cannot read: ${(error as Error).message}`, { cause: error });
    }
  };
  const model = decodeModel(await get(key), describe(key));
  const prefix = key.includes('/') ? key.slice(0, key.lastIndexOf('/') + 1) : '';
  const files = new Map<string, Uint8Array>();
  for (const location of externalLocations(model)) {
    checkLocation(location, describe(key));
    files.set(location, await get(`${prefix}${location}`));
  }
  const external = preloaded(files, (location) => describe(`${prefix}${location}`));
  return importOnnxModel(model, { file: describe(key), external, name: options.name ?? modelNameForFile(key) });
}
