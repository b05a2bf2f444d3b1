/**
 * Saving and loading LayersModels: to/from a local directory and to/from an ObjectStore prefix,
 * in the standard tfjs layers-model format (what `tf.loadLayersModel` reads and
 * tensorflowjs_converter writes):
 *
 *   <dir or prefix>/model.json    topology + weightsManifest [{paths: ['weights.bin'], weights}]
 *   <dir or prefix>/weights.bin   every weight, float32 little-endian, in manifest order
 *
 * Pure @tensorflow/tfjs has no file:// handler in Node (that lives in tfjs-node, an optional
 * dependency here), so this module implements tf.io.IOHandler over a tiny "model files"
 * abstraction with two backends (directory, store). Loading also accepts manifests written by
 * other tools: several groups, several shards per group, quantised entries.
 *
 * Loading is strict. Before any tensor is built:
 * - model.json must exist and be valid JSON with `modelTopology` and a well-formed
 *   `weightsManifest` (weight file paths relative, inside the model's directory/prefix);
 * - every weight file must exist, and each group's files must together hold exactly the bytes
 *   its manifest entries need (so a truncated or padded weights file never loads);
 * - after the topology is built, the manifest must name every weight of the model, nothing
 *   else, with the model's shapes.
 * Each failure is a ModelFileError naming the file (path, or key + store location).
 *
 * Writes put weights.bin first and model.json last, so a model.json that exists names a
 * complete model (directory writes are atomic renames; store puts are atomic by contract).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../engine/backend.ts';
// Registers the project's layer classes so models holding them load.
import './custom-layers.ts';
import { NotFoundError, type ObjectStore } from '../store/object-store.ts';
import { ModelFileError } from './errors.ts';
import { importOnnxFile, importOnnxFromStore } from './onnx/read.ts';
import { isOnnxRef } from './reference.ts';
import { buildModel, isZooName, zooNames, type BuildOptions, type ZooName } from './zoo.ts';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
const ZOO_SCHEME = 'zoo:';

/** A model stored under a key prefix of an ObjectStore, e.g. `runs/x/targets/50/model/`. */
export interface StoreLocation {
  readonly store: ObjectStore;
  /** Key prefix of the model's files; a trailing '/' is optional ('' = the store's root). */
  readonly prefix: string;
}

/** Where a saved model lives: a directory path (or `file://` URL) or a store prefix. */
export type ModelLocation = string | StoreLocation;

/** A model reference: a saved model location, or `zoo:<name>` for a freshly built zoo model. */
export type ModelRef = ModelLocation;

export interface SavedModel {
  /** Where model.json and the weights file were written (paths, or keys with the store location). */
  readonly modelJson: string;
  readonly weights: string;
  readonly weightBytes: number;
}

export interface ResolvedModel {
  readonly model: tf.LayersModel;
  /** 'onnx': an ONNX file (path or store key) imported into a tfjs model (src/model/onnx/). */
  readonly origin: 'zoo' | 'directory' | 'store' | 'onnx';
  /** Human-readable origin for logs and reports: `zoo:resnet56`, a path, or `<store>/<prefix>`. */
  readonly location: string;
}

/** Read/write access to the files of one model; `describe` names a file for error messages. */
interface ModelFiles {
  describe(name: string): string;
  /** The file's bytes; ModelFileError (naming the file) when it is missing. */
  read(name: string): Promise<Uint8Array>;
  write(name: string, bytes: Uint8Array): Promise<void>;
  /** Called before reading model.json: an early, clearer error for a missing directory. */
  checkExists(): Promise<void>;
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function directoryFiles(directory: string): ModelFiles {
  const root = resolve(directory);
  return {
    describe: (name) => join(root, name),
    async checkExists() {
      let info;
      try {
        info = await stat(root);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') throw new ModelFileError(root, 'model directory does not exist');
        throw new ModelFileError(root, `cannot access model directory: ${(error as Error).message}`, { cause: error });
      }
      if (!info.isDirectory()) {
        throw new ModelFileError(root, `is not a directory (a model is a directory holding ${MODEL_JSON})`);
      }
    },
    async read(name) {
      const path = join(root, name);
      try {
        const bytes = await readFile(path);
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') throw new ModelFileError(path, 'file not found');
        throw new ModelFileError(path, `cannot read: ${(error as Error).message}`, { cause: error });
      }
    },
    async write(name, bytes) {
      const path = join(root, name);
      await mkdir(dirname(path), { recursive: true });
      // Write beside the target, then rename: a reader never sees a half-written file.
      const temporary = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(8).toString('hex')}`);
      try {
        await writeFile(temporary, bytes);
        await rename(temporary, path);
      } catch (error) {
        await unlink(temporary).catch(() => undefined);
        throw new ModelFileError(path, `cannot write: ${(error as Error).message}`, { cause: error });
      }
    },
  };
}

/** `prefix` + `name` with exactly one '/' between them ('' prefix = the store root). */
function storeKey(prefix: string, name: string): string {
  if (prefix === '') return name;
  return prefix.endsWith('/') ? `${prefix}${name}` : `${prefix}/${name}`;
}

function storeFiles({ store, prefix }: StoreLocation): ModelFiles {
  const describe = (name: string): string => `${storeKey(prefix, name)} (in ${store.location})`;
  return {
    describe,
    async checkExists() {
      // A store has no directories: a missing prefix shows up as a missing model.json.
    },
    async read(name) {
      try {
        return await store.get(storeKey(prefix, name));
      } catch (error) {
        if (error instanceof NotFoundError) throw new ModelFileError(describe(name), 'object not found', { cause: error });
        throw new ModelFileError(describe(name), `cannot read: ${(error as Error).message}`, { cause: error });
      }
    },
    async write(name, bytes) {
      try {
        await store.put(storeKey(prefix, name), bytes, {
          contentType: name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        });
      } catch (error) {
        throw new ModelFileError(describe(name), `cannot write: ${(error as Error).message}`, { cause: error });
      }
    },
  };
}

function filesFor(location: ModelLocation): ModelFiles {
  if (typeof location === 'string') return directoryFiles(directoryPath(location));
  return storeFiles(location);
}

/** Accepts a directory, a `file://` URL, or a path to the model.json inside the directory. */
function directoryPath(location: string): string {
  const path = location.startsWith('file://') ? fileURLToPath(location) : location;
  return basename(path) === MODEL_JSON ? dirname(path) : path;
}

// ---------------------------------------------------------------------------------------------
// model.json validation

const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
const QUANTIZED_BYTES_PER_ELEMENT: Readonly<Record<string, number>> = { uint8: 1, uint16: 2, float16: 2 };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Bytes one manifest entry occupies in its group's weight data. */
function entryBytes(entry: tf.io.WeightsManifestEntry): number {
  const elements = entry.shape.reduce((product, dim) => product * dim, 1);
  const perElement = entry.quantization
    ? QUANTIZED_BYTES_PER_ELEMENT[entry.quantization.dtype]
    : BYTES_PER_ELEMENT[entry.dtype];
  return elements * perElement;
}

/** A weight file path from a manifest must stay inside the model's directory/prefix. */
function isSafeRelativePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) return false;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path)) return false; // a URL (http:, s3:, file:)
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/** Checks the structure tfjs relies on, naming the model.json and the offending field. */
function parseModelJson(file: string, bytes: Uint8Array): tf.io.ModelJSON {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (error) {
    throw new ModelFileError(file, `is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const fail = (problem: string): never => {
    throw new ModelFileError(file, problem);
  };
  if (!isRecord(parsed)) return fail('is not a JSON object');
  if (!isRecord(parsed.modelTopology)) return fail("field 'modelTopology' is missing or not an object");
  if (parsed.format !== undefined && parsed.format !== 'layers-model') {
    fail(`field 'format' is ${JSON.stringify(parsed.format)}, expected 'layers-model' (graph models are not supported)`);
  }
  const manifest = parsed.weightsManifest;
  if (!Array.isArray(manifest)) return fail("field 'weightsManifest' is missing or not an array");
  manifest.forEach((group: unknown, g) => {
    const at = `weightsManifest[${g}]`;
    if (!isRecord(group)) return fail(`${at} is not an object`);
    if (!Array.isArray(group.paths) || group.paths.length === 0) fail(`${at}.paths must be a non-empty array`);
    (group.paths as unknown[]).forEach((path, p) => {
      if (typeof path !== 'string' || !isSafeRelativePath(path)) {
        fail(`${at}.paths[${p}] = ${JSON.stringify(path)} is not a relative path inside the model's directory`);
      }
    });
    if (!Array.isArray(group.weights)) return fail(`${at}.weights must be an array`);
    (group.weights as unknown[]).forEach((entry, w) => {
      const field = `${at}.weights[${w}]`;
      if (!isRecord(entry)) return fail(`${field} is not an object`);
      if (typeof entry.name !== 'string') fail(`${field}.name must be a string`);
      if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
        fail(`${field} (${String(entry.name)}): shape must be an array of non-negative integers`);
      }
      const quantization = entry.quantization;
      if (quantization !== undefined) {
        if (!isRecord(quantization) || !(String(quantization.dtype) in QUANTIZED_BYTES_PER_ELEMENT)) {
          fail(`${field} (${String(entry.name)}): unsupported quantization ${JSON.stringify(quantization)}`);
        }
      } else if (!(String(entry.dtype) in BYTES_PER_ELEMENT)) {
        fail(`${field} (${String(entry.name)}): unsupported dtype ${JSON.stringify(entry.dtype)}`);
      }
    });
  });
  return parsed as unknown as tf.io.ModelJSON;
}

/**
 * Reads every group's shard files and checks each group's byte count against its entries, so a
 * truncated, padded or swapped weights file is refused before anything is decoded.
 */
async function readWeights(
  files: ModelFiles,
  manifest: tf.io.WeightsManifestConfig,
): Promise<[tf.io.WeightsManifestEntry[], ArrayBuffer]> {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of manifest) {
    const shards = await Promise.all(group.paths.map((path) => files.read(path)));
    const actual = shards.reduce((sum, shard) => sum + shard.byteLength, 0);
    const expected = group.weights.reduce((sum, entry) => sum + entryBytes(entry), 0);
    if (actual !== expected) {
      const names = group.paths.map((path) => files.describe(path)).join(' + ');
      const sizes = group.paths.length > 1 ? ` (${shards.map((s) => s.byteLength).join(' + ')})` : '';
      throw new ModelFileError(
        names,
        `holds ${actual} bytes${sizes}, but the manifest in ${files.describe(MODEL_JSON)} expects ${expected} bytes ` +
          `for its ${group.weights.length} weights (${actual < expected ? 'truncated' : 'too long'} or from another model)`,
      );
    }
    specs.push(...group.weights);
    chunks.push(...shards);
  }
  const total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return [specs, joined.buffer];
}

// ---------------------------------------------------------------------------------------------
// IOHandlers

/**
 * The model.json object for `artifacts` (tfjs-core has this as an internal helper, not exported
 * from tf.io). Optional fields are written only when present, as tfjs does.
 */
function modelJsonFor(artifacts: tf.io.ModelArtifacts, manifest: tf.io.WeightsManifestConfig): tf.io.ModelJSON {
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    weightsManifest: manifest,
  };
  if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature != null) modelJson.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer != null) modelJson.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null) modelJson.initializerSignature = artifacts.initializerSignature;
  return modelJson;
}

function modelFilesHandler(files: ModelFiles): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer || artifacts.modelTopology === undefined) {
        throw new ModelFileError(files.describe(MODEL_JSON), 'only layers models with a JSON topology can be saved');
      }
      const weightSpecs = artifacts.weightSpecs ?? [];
      const weightData = artifacts.weightData === undefined
        ? new ArrayBuffer(0)
        : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const expected = weightSpecs.reduce((sum, entry) => sum + entryBytes(entry), 0);
      if (weightData.byteLength !== expected) {
        // tfjs guarantees this; checking keeps a broken writer from producing an unloadable model.
        throw new ModelFileError(
          files.describe(WEIGHTS_FILE),
          `refusing to save ${weightData.byteLength} bytes of weights for a manifest of ${expected} bytes`,
        );
      }
      const manifest: tf.io.WeightsManifestConfig = [{ paths: [WEIGHTS_FILE], weights: weightSpecs }];
      const modelJson = modelJsonFor(artifacts, manifest);
      await files.write(WEIGHTS_FILE, new Uint8Array(weightData));
      await files.write(MODEL_JSON, new TextEncoder().encode(`${JSON.stringify(modelJson)}\n`));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      await files.checkExists();
      const modelJson = parseModelJson(files.describe(MODEL_JSON), await files.read(MODEL_JSON));
      return tf.io.getModelArtifactsForJSON(modelJson, (manifest) => readWeights(files, manifest));
    },
  };
}

/** An IOHandler for `model.save(...)` / `tf.loadLayersModel(...)` on a local directory. */
export function directoryHandler(directory: string): tf.io.IOHandler {
  return modelFilesHandler(directoryFiles(directoryPath(directory)));
}

/** An IOHandler for `model.save(...)` / `tf.loadLayersModel(...)` under a store key prefix. */
export function storeHandler(location: StoreLocation): tf.io.IOHandler {
  return modelFilesHandler(storeFiles(location));
}

// ---------------------------------------------------------------------------------------------
// save / load / resolve

export async function saveModel(model: tf.LayersModel, target: ModelLocation): Promise<SavedModel> {
  const files = filesFor(target);
  const result = await model.save(modelFilesHandler(files));
  return {
    modelJson: files.describe(MODEL_JSON),
    weights: files.describe(WEIGHTS_FILE),
    weightBytes: result.modelArtifactsInfo.weightDataBytes ?? 0,
  };
}

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

/**
 * Loads a saved model (directory or store prefix). Strict: see the module comment. The model is
 * built from the topology first (random init, then overwritten) so that the manifest can be
 * checked against the real weights with errors naming model.json, the layer and the weight.
 */
export async function loadModel(source: ModelLocation): Promise<tf.LayersModel> {
  const files = filesFor(source);
  const modelJsonFile = files.describe(MODEL_JSON);
  const artifacts = await modelFilesHandler(files).load!();

  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel({
      load: async () => ({
        modelTopology: artifacts.modelTopology,
        trainingConfig: artifacts.trainingConfig,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
      }),
    });
  } catch (error) {
    throw new ModelFileError(modelJsonFile, `modelTopology cannot be built: ${(error as Error).message}`, { cause: error });
  }

  try {
    const specs = (artifacts.weightSpecs ?? []).filter((spec) => spec.group !== 'optimizer');
    const byName = new Map(specs.map((spec) => [spec.name, spec]));
    const problems: string[] = [];
    const modelWeightNames = new Set<string>();
    for (const layer of model.layers) {
      for (const weight of layer.weights) {
        modelWeightNames.add(weight.originalName);
        const spec = byName.get(weight.originalName);
        if (spec === undefined) {
          problems.push(`layer '${layer.name}': weight '${weight.originalName}' ${JSON.stringify(weight.shape)} is not in the manifest`);
        } else if (!shapesEqual(spec.shape, weight.shape as number[])) {
          problems.push(
            `layer '${layer.name}': weight '${weight.originalName}' has shape ${JSON.stringify(spec.shape)} in the manifest, ` +
              `the topology needs ${JSON.stringify(weight.shape)}`,
          );
        }
      }
    }
    for (const spec of specs) {
      if (!modelWeightNames.has(spec.name)) problems.push(`manifest weight '${spec.name}' belongs to no layer of the topology`);
    }
    if (specs.length !== byName.size) problems.push('the manifest lists a weight name twice');
    if (problems.length > 0) {
      const shown = problems.slice(0, 5).join('; ');
      const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
      throw new ModelFileError(modelJsonFile, `weightsManifest does not match the model topology: ${shown}${more}`);
    }
    if (artifacts.weightData !== undefined && specs.length > 0) {
      const decoded = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs ?? []);
      try {
        const modelWeights: tf.NamedTensorMap = {};
        for (const spec of specs) modelWeights[spec.name] = decoded[spec.name];
        model.loadWeights(modelWeights, true);
      } finally {
        tf.dispose(Object.values(decoded));
      }
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** The zoo name of a `zoo:<name>` reference, undefined for any other string. */
export function parseZooRef(ref: string): ZooName | undefined {
  if (!ref.startsWith(ZOO_SCHEME)) return undefined;
  const name = ref.slice(ZOO_SCHEME.length);
  if (!isZooName(name)) throw new Error(`unknown zoo model in '${ref}' (known: ${zooNames.map((n) => ZOO_SCHEME + n).join(', ')})`);
  return name;
}

/**
 * Resolves any model reference the CLI and the pipeline accept: `zoo:<name>` builds a fresh,
 * randomly initialised zoo model (with `zooOptions`); a path or store key ending in `.onnx` is
 * an ONNX file, imported (with its external data files beside it); a directory path or a store
 * prefix loads a saved model.
 */
export async function resolveModel(ref: ModelRef, zooOptions: BuildOptions = {}): Promise<ResolvedModel> {
  if (typeof ref === 'string') {
    const zooName = parseZooRef(ref);
    if (zooName !== undefined) return { model: buildModel(zooName, zooOptions), origin: 'zoo', location: ref };
    const path = ref.startsWith('file://') ? fileURLToPath(ref) : ref;
    if (isOnnxRef(path)) return { model: await importOnnxFile(path), origin: 'onnx', location: resolve(path) };
    return { model: await loadModel(ref), origin: 'directory', location: resolve(directoryPath(ref)) };
  }
  if (isOnnxRef(ref.prefix)) {
    return { model: await importOnnxFromStore(ref.store, ref.prefix), origin: 'onnx', location: `${ref.store.location}/${ref.prefix}` };
  }
  return { model: await loadModel(ref), origin: 'store', location: `${ref.store.location}/${ref.prefix}` };
}
