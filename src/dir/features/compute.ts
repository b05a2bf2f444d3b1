/**
 * Computing boundary features (DESIGN §2): the ORIGINAL network, in inference mode, over the
 * search-train and search-validation subsets, capturing the tensors at the requested
 * sub-networks' cuts. Asked for one k it runs only the prefix up to X_k on search-train; the
 * search-validation pass always runs the whole network (the baseline needs its output; the
 * subset is small).
 *
 * BOUNDED MEMORY. Images are read per batch from an ImageSource (the next batch's read is in
 * flight while the current one is computed), and every captured batch goes straight into its
 * FeatureRows storage (spool files by default), so the process holds a few batches whatever the
 * subset sizes. X_k's variance takes a second, sequential pass over the stored rows: the same
 * float64 additions in the same order as a pass over one big array, hence the same bits.
 *
 * Same batches, same bits: the images are normalised by the functions `arrayBatches` uses and
 * batched in subset order, so float32 features are bit-identical to an in-memory computation.
 */
import { tf } from '../../engine/backend.ts';
import { IDENTITY_TRANSFORM, pixelMap, transformImage } from '../../data/batches.ts';
import type { Normalization } from '../../data/batches.ts';
import type { ImageDataset } from '../../data/dataset.ts';
import { inMemorySource } from '../../data/image-source.ts';
import type { ImageSource } from '../../data/image-source.ts';
import { outputKind } from '../../train/losses.ts';
import { findSubnetwork } from '../divide.ts';
import type { Division, SubnetworkSpec } from '../divide.ts';
import { buildBoundaryModel } from '../subnetwork.ts';
import { outputMetrics } from './metrics.ts';
import { createRowsWriter } from './rows.ts';
import type { FeatureDtype, FeatureRows, FeatureRowsWriter } from './rows.ts';
import { FeatureSpool } from './spool.ts';
import type { FeatureStorage } from './spool.ts';
import { product } from './types.ts';
import type { BoundaryFeatures, FeatureSplit } from './types.ts';
import type { SearchSubsets } from './subsets.ts';

export interface ComputeFeaturesOptions {
  /** Sub-networks to compute (ids or 1-based indices); default all. */
  readonly subnets?: readonly (string | number)[];
  /** Images per forward pass. Default 64. */
  readonly batchSize?: number;
  /** The network's input normalisation (as in training). Default 'unit'. */
  readonly normalize?: Normalization;
  /** How X_{k-1}/X_k rows are stored. Default 'float32' (exact). */
  readonly dtype?: FeatureDtype;
  /** Where rows are kept. Default: spool files in the OS temp directory. */
  readonly storage?: FeatureStorage;
  readonly log?: (message: string) => void;
}

function defaultLog(message: string): void {
  process.stderr.write(`${message}\n`);
}

function isImageSource(data: ImageSource | ImageDataset): data is ImageSource {
  return typeof (data as Partial<ImageSource>).readImages === 'function';
}

interface SubsetCapture {
  readonly rows: ReadonlyMap<string, FeatureRows>;
  /** The network output of every row when requested (the baseline). */
  readonly networkOutput?: Float32Array;
}

/**
 * Runs the original network over `indices` of `source` and stores, per requested tensor name,
 * its value for every row (the network input under the input layer's name).
 */
async function captureSubset(
  model: tf.LayersModel,
  division: Division,
  source: ImageSource,
  indices: Int32Array,
  tensors: readonly string[],
  spool: FeatureSpool,
  options: { batchSize: number; normalize: Normalization; dtype: FeatureDtype; split: string; networkOutput: boolean },
): Promise<SubsetCapture> {
  const inputName = model.inputs[0].sourceLayer.name;
  const outputName = model.outputs[0].sourceLayer.name;
  const computed = [...new Set([...tensors.filter((t) => t !== inputName), ...(options.networkOutput ? [outputName] : [])])];
  const boundary = computed.length > 0 ? buildBoundaryModel(model, division, computed) : undefined;
  const rowLengthOf = (tensor: tf.SymbolicTensor): number => product(tensor.shape.slice(1) as number[]);
  const lengths = new Map<string, number>();
  lengths.set(inputName, rowLengthOf(model.inputs[0]));
  boundary?.outputs.forEach((t, i) => lengths.set(computed[i], rowLengthOf(t)));
  const writers = new Map<string, FeatureRowsWriter>();
  for (const name of tensors) {
    writers.set(name, createRowsWriter(spool, { count: indices.length, rowLength: lengths.get(name)!, dtype: options.dtype, name: `${options.split}-${name}` }));
  }
  const classes = options.networkOutput ? lengths.get(outputName)! : 0;
  const networkOutput = options.networkOutput ? new Float32Array(indices.length * classes) : undefined;
  const { height, width, channels } = source;
  const perImage = height * width * channels;
  const map = pixelMap(options.normalize, channels);
  const batchOf = (start: number): Int32Array => indices.subarray(start, Math.min(indices.length, start + options.batchSize));
  let pending = indices.length > 0 ? source.readImages(batchOf(0)) : undefined;
  try {
    for (let start = 0; start < indices.length; start += options.batchSize) {
      const batch = batchOf(start);
      const pixels = await pending!;
      // The next read runs while this batch is computed.
      pending = start + options.batchSize < indices.length ? source.readImages(batchOf(start + options.batchSize)) : undefined;
      const n = batch.length;
      if (pixels.length !== n * perImage) {
        throw new Error(`${source.name}: readImages returned ${pixels.length} bytes for ${n} images of ${height}x${width}x${channels}`);
      }
      const x = new Float32Array(n * perImage);
      for (let i = 0; i < n; i++) transformImage(pixels, i * perImage, height, width, channels, IDENTITY_TRANSFORM, map, x, i * perImage);
      const values = new Map<string, Float32Array>([[inputName, x]]);
      if (boundary) {
        const outputs = tf.tidy(() => {
          const result = boundary.apply(tf.tensor4d(x, [n, height, width, channels], 'float32'), { training: false });
          return Array.isArray(result) ? (result as tf.Tensor[]) : [result as tf.Tensor];
        });
        try {
          outputs.forEach((tensor, i) => values.set(computed[i], tensor.dataSync() as Float32Array));
        } finally {
          tf.dispose(outputs);
        }
      }
      for (const [name, writer] of writers) writer.append(values.get(name)!);
      networkOutput?.set(values.get(outputName)!, start * classes);
    }
  } finally {
    // After an error above, the read in flight is abandoned (its rejection is not unhandled).
    pending?.catch(() => undefined);
    // Releases this model's use of the shared layers (never the original weights).
    boundary?.dispose();
  }
  const rows = new Map([...writers].map(([name, writer]) => [name, writer.finish()] as const));
  return { rows, ...(networkOutput ? { networkOutput } : {}) };
}

/** Rows read per step of a sequential pass over stored features (bounded memory). */
const PASS_ROWS_BYTES = 16 * 1024 * 1024;

/**
 * Population variance of all values of `rows` in float64, two sequential passes in row order
 * (exactly the additions a loop over one contiguous array would do).
 */
export function rowsVariance(rows: FeatureRows): number {
  const total = rows.count * rows.rowLength;
  if (total === 0) return 0;
  const step = Math.max(1, Math.floor(PASS_ROWS_BYTES / Math.max(1, rows.rowLength * 4)));
  const pass = (visit: (values: Float32Array) => void): void => {
    for (let start = 0; start < rows.count; start += step) {
      const count = Math.min(step, rows.count - start);
      visit(rows.gather(Int32Array.from({ length: count }, (_, i) => start + i)));
    }
  };
  let sum = 0;
  pass((values) => {
    for (let i = 0; i < values.length; i++) sum += values[i];
  });
  const mean = sum / total;
  let squares = 0;
  pass((values) => {
    for (let i = 0; i < values.length; i++) {
      const d = values[i] - mean;
      squares += d * d;
    }
  });
  return squares / total;
}

function labelsOf(source: ImageSource, indices: Int32Array): Int32Array {
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) labels[i] = source.labels[indices[i]];
  return labels;
}

/**
 * Boundary features of the requested sub-networks, computed in one pass per subset. Rows of a
 * tensor shared by two sub-networks (X_k is S_k's output and S_{k+1}'s input) are stored once
 * and shared. Each returned BoundaryFeatures holds the storage until its release().
 */
export async function computeBoundaryFeatures(
  model: tf.LayersModel,
  division: Division,
  data: ImageSource | ImageDataset,
  subsets: SearchSubsets,
  options: ComputeFeaturesOptions = {},
): Promise<Map<string, BoundaryFeatures>> {
  const source = isImageSource(data) ? data : inMemorySource(data);
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`computeBoundaryFeatures: batchSize must be a positive integer, got ${batchSize}`);
  const normalize = options.normalize ?? 'unit';
  const dtype = options.dtype ?? 'float32';
  const log = options.log ?? defaultLog;
  const specs: SubnetworkSpec[] = (options.subnets ?? division.subnetworks.map((s) => s.id)).map((s) => findSubnetwork(division, s));
  if (subsets.dataset !== source.name) {
    throw new Error(`computeBoundaryFeatures: the subsets were drawn from '${subsets.dataset}', not from '${source.name}'`);
  }
  const needed = [...new Set(specs.flatMap((s) => [s.inputTensor, s.outputTensor]))];
  const started = Date.now();
  const spool = FeatureSpool.open(options.storage);
  try {
    const capture = { batchSize, normalize, dtype };
    const train = await captureSubset(model, division, source, subsets.train, needed, spool, { ...capture, split: 'train', networkOutput: false });
    const val = await captureSubset(model, division, source, subsets.val, needed, spool, { ...capture, split: 'val', networkOutput: true });
    const classes = model.outputs[0].shape[model.outputs[0].shape.length - 1] as number;
    const kind = outputKind(model);
    const trainLabels = labelsOf(source, subsets.train);
    const valLabels = labelsOf(source, subsets.val);
    const baseline = outputMetrics(val.networkOutput!, valLabels, classes, kind);
    const variances = new Map<string, number>();
    const varianceOf = (rows: FeatureRows, key: string): number => {
      if (!variances.has(key)) variances.set(key, rowsVariance(rows));
      return variances.get(key)!;
    };
    const result = new Map<string, BoundaryFeatures>();
    for (const spec of specs) {
      const split = (captured: SubsetCapture, name: 'train' | 'val', indices: Int32Array, labels: Int32Array): FeatureSplit => {
        const output = captured.rows.get(spec.outputTensor)!;
        return {
          count: indices.length,
          indices,
          input: captured.rows.get(spec.inputTensor)!,
          output,
          labels,
          outputVariance: varianceOf(output, `${name}:${spec.outputTensor}`),
        };
      };
      result.set(spec.id, {
        subnet: spec.id,
        index: spec.index,
        model: division.model,
        inputTensor: spec.inputTensor,
        outputTensor: spec.outputTensor,
        inputShape: spec.inputShape,
        outputShape: spec.outputShape,
        classes,
        outputKind: kind,
        normalize,
        dataset: source.name,
        seed: subsets.seed,
        dtype,
        train: split(train, 'train', subsets.train, trainLabels),
        val: split(val, 'val', subsets.val, valLabels),
        baseline,
        release: spool.holder(),
      });
    }
    const storedBytes = [...train.rows.values(), ...val.rows.values()].reduce((sum, rows) => sum + rows.count * rows.rowBytes, 0);
    log(
      `boundary features of ${division.model} [${specs.map((s) => s.id).join(', ')}]: ${subsets.train.length} search-train + ` +
        `${subsets.val.length} search-val images in ${((Date.now() - started) / 1000).toFixed(1)} s; ${dtype} rows, ` +
        `${(storedBytes / 2 ** 20).toFixed(1)} MiB in ${spool.storage === 'memory' ? 'memory' : `spool files under ${spool.storage.spoolDir}`}; ` +
        `baseline CE ${baseline.loss.toFixed(4)} acc ${(baseline.accuracy * 100).toFixed(2)}%`,
    );
    return result;
  } finally {
    spool.release(); // the creator's hold; the returned features hold their own
  }
}
