/**
 * Batch-norm recalibration ("precise BN", Wu & Johnson 2021): after pruning or a short
 * recovery the BN moving statistics no longer describe the activations the layers see, and
 * the EMA the training loop keeps (momentum 0.9) is dominated by the last few batches. Here
 * every BatchNormalization layer's moving mean and variance are set to the exact statistics
 * of its input over N batches, pooled over all examples (not an EMA, not a mean of batch
 * variances), and nothing else changes.
 *
 * How: one sub-model with the same layers whose outputs are the inputs of every BN layer is
 * run in TRAINING mode, so each BN input is computed from upstream layers that normalise with
 * batch statistics, exactly as during training (this is what precise-BN and PyTorch's
 * `update_bn` do). Per batch and layer the per-channel mean and (biased) variance are read
 * back and combined on the host in float64 with the parallel-variance formula
 *   M = sum n_b m_b / N,   V = sum n_b (v_b + (m_b - M)^2) / N,
 * which equals the variance over all N examples and avoids E[x^2] - E[x]^2 cancellation.
 * The variance stored is the biased (population) one, as tfjs's own BN update stores.
 *
 * The training-mode forward also moves the moving statistics (tfjs updates them inside
 * `call`); all of them are snapshotted first and written back at the end (recalibrated
 * values for the selected layers, the originals for the others).
 */
import { tf } from '../engine/backend.ts';
import { disposeBatch } from './step.ts';
import type { Batch } from './step.ts';

export interface RecalibrateOptions {
  /** Use at most this many batches from the stream (default: all of them). */
  readonly maxBatches?: number;
  /** Names of the BN layers to recalibrate (default: every BatchNormalization layer). */
  readonly layers?: readonly string[];
  /** Dispose each batch after use (default true, see evaluate.ts). */
  readonly disposeBatches?: boolean;
}

export interface RecalibrateResult {
  /** Names of the layers whose statistics were replaced. */
  readonly layers: readonly string[];
  readonly batches: number;
  readonly examples: number;
}

type LayerVariable = tf.LayersModel['weights'][number];
type Layer = tf.LayersModel['layers'][number];

interface BnLayer {
  readonly layer: Layer;
  /** The layer's input tensor in the model being recalibrated. */
  readonly input: tf.SymbolicTensor;
  readonly movingMean: LayerVariable;
  readonly movingVariance: LayerVariable;
  readonly axis: number;
}

function findWeight(layer: Layer, suffix: string): LayerVariable {
  const weight = layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`) || w.originalName === suffix);
  if (!weight) throw new Error(`recalibrateBatchNorm: layer ${layer.name} has no ${suffix} weight`);
  return weight;
}

/** Every BatchNormalization layer of `model` (top level; nested models are refused). */
export function batchNormLayers(model: tf.LayersModel): Layer[] {
  const found: Layer[] = [];
  for (const layer of model.layers) {
    const className = layer.getClassName();
    if (className === 'BatchNormalization') found.push(layer);
    else if (layer instanceof tf.LayersModel) {
      // A nested model's internal tensors are not reachable from the outer graph.
      throw new Error(`recalibrateBatchNorm: nested model layer ${layer.name} (${className}) is not supported; flatten the model`);
    }
  }
  return found;
}

/**
 * The symbolic input of `layer` within `model`'s graph. A layer can belong to several models
 * (the pruning code builds sub-network models from the original layers, which adds inbound
 * nodes), so `layer.input` would be ambiguous: pick the one inbound node that `model` contains
 * (tfjs-layers keys them `<layer>_ib-<index>` in `containerNodes`).
 */
function inputWithin(model: tf.LayersModel, layer: Layer): tf.SymbolicTensor {
  const indices = layer.inboundNodes.map((_, i) => i).filter((i) => model.containerNodes.has(`${layer.name}_ib-${i}`));
  if (indices.length !== 1) {
    throw new Error(
      `recalibrateBatchNorm: layer ${layer.name} is applied ${indices.length} times in model ${model.name}; ` +
        'a BN layer must be used exactly once (shared BN layers have no single input distribution)',
    );
  }
  const inputs = layer.inboundNodes[indices[0]].inputTensors;
  if (inputs.length !== 1) throw new Error(`recalibrateBatchNorm: layer ${layer.name} has ${inputs.length} inputs`);
  return inputs[0];
}

function describe(model: tf.LayersModel, layer: Layer): BnLayer {
  const config = layer.getConfig() as { axis?: number | number[] };
  if (Array.isArray(config.axis) && config.axis.length !== 1) {
    throw new Error(`recalibrateBatchNorm: layer ${layer.name} normalises over axes ${JSON.stringify(config.axis)}; one axis is supported`);
  }
  const axis = Array.isArray(config.axis) ? config.axis[0] : (config.axis ?? -1);
  return {
    layer,
    input: inputWithin(model, layer),
    movingMean: findWeight(layer, 'moving_mean'),
    movingVariance: findWeight(layer, 'moving_variance'),
    axis,
  };
}

function inputOf(batch: tf.Tensor | Batch): tf.Tensor {
  return batch instanceof tf.Tensor ? batch : batch.x;
}

/**
 * The pooled BN input statistics of one recalibration: `add` one batch at a time (the sync and
 * the streaming entry points share it), then `finish` writes them, or `abort` restores.
 */
class PooledStatistics {
  readonly targets: BnLayer[];
  readonly #all: BnLayer[];
  readonly #probe: tf.LayersModel | undefined;
  readonly #snapshot: (readonly [tf.Tensor, tf.Tensor])[];
  readonly #channels: number[];
  readonly #perBatch: { n: number; means: Float32Array; variances: Float32Array }[][];
  #restored = false;
  batches = 0;
  examples = 0;

  constructor(private readonly model: tf.LayersModel, options: RecalibrateOptions) {
    this.#all = batchNormLayers(model).map((layer) => describe(model, layer));
    const selectedNames = options.layers ? new Set(options.layers) : undefined;
    if (selectedNames) {
      const known = new Set(this.#all.map((bn) => bn.layer.name));
      for (const name of selectedNames) {
        if (!known.has(name)) throw new Error(`recalibrateBatchNorm: model ${model.name} has no BatchNormalization layer '${name}'`);
      }
    }
    this.targets = selectedNames ? this.#all.filter((bn) => selectedNames.has(bn.layer.name)) : this.#all;
    this.#perBatch = this.targets.map(() => []);
    this.#channels = this.targets.map((bn) => {
      const shape = bn.input.shape;
      const axis = bn.axis < 0 ? shape.length + bn.axis : bn.axis;
      return shape[axis] as number;
    });
    this.#probe = this.targets.length > 0 ? tf.model({ inputs: model.inputs, outputs: this.targets.map((bn) => bn.input) }) : undefined;
    this.#snapshot = this.targets.length > 0 ? this.#all.map((bn) => [bn.movingMean.read().clone(), bn.movingVariance.read().clone()] as const) : [];
  }

  /**
   * Adds one batch (and disposes it when `dispose`); false once `maxBatches` were seen, checked
   * after the batch so a stream is not asked for one it would not use.
   */
  consume(batch: tf.Tensor | Batch, dispose: boolean, maxBatches: number): boolean {
    try {
      this.add(inputOf(batch));
    } finally {
      if (dispose) disposeInput(batch);
    }
    return this.batches < maxBatches;
  }

  /** Per batch and layer: per-channel mean and (biased) variance, read back to the host. */
  add(x: tf.Tensor): void {
    const probe = this.#probe;
    if (!probe) return;
    const targets = this.targets;
    const stats = tf.tidy(() => {
      const outputs = probe.apply(x, { training: true });
      const list = Array.isArray(outputs) ? (outputs as tf.Tensor[]) : [outputs as tf.Tensor];
      return list.map((input, i) => {
        const axis = targets[i].axis < 0 ? input.rank + targets[i].axis : targets[i].axis;
        const reduce = [...Array(input.rank).keys()].filter((a) => a !== axis);
        const { mean, variance } = tf.moments(input, reduce);
        return { mean, variance, n: input.size / this.#channels[i] };
      });
    });
    for (let i = 0; i < targets.length; i += 1) {
      this.#perBatch[i].push({ n: stats[i].n, means: stats[i].mean.dataSync() as Float32Array, variances: stats[i].variance.dataSync() as Float32Array });
      stats[i].mean.dispose();
      stats[i].variance.dispose();
    }
    this.batches += 1;
    this.examples += x.shape[0] as number;
  }

  /** Undoes the EMA side effects of the training-mode forward (and keeps unselected layers as they were). */
  restore(): void {
    if (this.#restored) return;
    this.#restored = true;
    this.#all.forEach((bn, i) => {
      const saved = this.#snapshot[i];
      if (!saved) return;
      bn.movingMean.write(saved[0]);
      bn.movingVariance.write(saved[1]);
      saved[0].dispose();
      saved[1].dispose();
    });
  }

  /** Writes the pooled statistics into the selected layers. */
  finish(): RecalibrateResult {
    this.restore();
    if (this.targets.length === 0) return { layers: [], batches: 0, examples: 0 };
    if (this.batches === 0) throw new Error(`recalibrateBatchNorm: no batches for model ${this.model.name}`);
    this.targets.forEach((bn, i) => {
      const c = this.#channels[i];
      const mean = new Float64Array(c);
      const variance = new Float64Array(c);
      let total = 0;
      for (const { n, means } of this.#perBatch[i]) {
        total += n;
        for (let j = 0; j < c; j += 1) mean[j] += n * means[j];
      }
      for (let j = 0; j < c; j += 1) mean[j] /= total;
      for (const { n, means, variances } of this.#perBatch[i]) {
        for (let j = 0; j < c; j += 1) {
          const d = means[j] - mean[j];
          variance[j] += n * (variances[j] + d * d);
        }
      }
      for (let j = 0; j < c; j += 1) variance[j] /= total;
      const meanT = tf.tensor1d(Float32Array.from(mean));
      const varianceT = tf.tensor1d(Float32Array.from(variance));
      bn.movingMean.write(meanT);
      bn.movingVariance.write(varianceT);
      meanT.dispose();
      varianceT.dispose();
    });
    return { layers: this.targets.map((bn) => bn.layer.name), batches: this.batches, examples: this.examples };
  }
}

function disposeInput(batch: tf.Tensor | Batch): void {
  if (batch instanceof tf.Tensor) batch.dispose();
  else disposeBatch(batch);
}

function checkMaxBatches(options: RecalibrateOptions): number {
  const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
  if (!(maxBatches >= 1)) throw new Error(`recalibrateBatchNorm: maxBatches=${maxBatches} must be >= 1`);
  return maxBatches;
}

/**
 * Replaces the moving mean/variance of every (or every selected) BN layer of `model` with the
 * pooled statistics of its input over the batches (inputs as tensors or `Batch`es; labels are
 * not used). Returns what was done. Throws if the stream is empty.
 */
export function recalibrateBatchNorm(
  model: tf.LayersModel,
  batches: Iterable<tf.Tensor | Batch>,
  options: RecalibrateOptions = {},
): RecalibrateResult {
  const maxBatches = checkMaxBatches(options);
  const pooled = new PooledStatistics(model, options);
  if (pooled.targets.length === 0) return { layers: [], batches: 0, examples: 0 };
  const disposeBatches = options.disposeBatches ?? true;
  try {
    for (const batch of batches) if (!pooled.consume(batch, disposeBatches, maxBatches)) break;
  } finally {
    pooled.restore();
  }
  return pooled.finish();
}

/**
 * `recalibrateBatchNorm` over batches that arrive asynchronously: BN re-estimation on a stream
 * (e.g. `sourceTensorBatches` of a sharded training split), with the same pooled statistics.
 */
export async function recalibrateBatchNormStream(
  model: tf.LayersModel,
  batches: AsyncIterable<tf.Tensor | Batch> | Iterable<tf.Tensor | Batch>,
  options: RecalibrateOptions = {},
): Promise<RecalibrateResult> {
  const maxBatches = checkMaxBatches(options);
  const pooled = new PooledStatistics(model, options);
  if (pooled.targets.length === 0) return { layers: [], batches: 0, examples: 0 };
  const disposeBatches = options.disposeBatches ?? true;
  try {
    for await (const batch of batches) if (!pooled.consume(batch, disposeBatches, maxBatches)) break;
  } finally {
    pooled.restore();
  }
  return pooled.finish();
}
