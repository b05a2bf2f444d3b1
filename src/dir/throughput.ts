/**
 * How fast a backend trains and infers, as documented numbers the run estimate (estimate.ts)
 * divides work by. Each row says where its numbers come from; none is a promise.
 *
 * Model: the seconds one image costs through a piece of a network with `macs` multiply-accumulates
 * (of a whole network with `networkMacs`) are
 *
 *   perImageSeconds * macs / networkMacs  +  macs / macsPerSecond
 *
 * The first term is the work that does not scale with MACs (batch norm, activations, kernel
 * dispatch), which dominates small networks on a CPU; it is fitted from two measured models.
 * For GPUs only a large model (ResNet-50) is published, so the term is 0 there and small models
 * are estimated optimistically (a GPU runs a 6 M-MAC network far below its ResNet-50 rate).
 */

/** One measured or published rate: images per second of a model with `macs` per image. */
interface Rate {
  readonly macs: number;
  readonly imagesPerSecond: number;
}

export interface Throughput {
  readonly id: string;
  /** One line: what and where (`wasm, 1 thread, measured on the 2-core dev box`). */
  readonly description: string;
  /** Training: forward MACs per second (forward + backward + update), and the per-image overhead. */
  readonly trainMacsPerSecond: number;
  readonly trainPerImageSeconds: number;
  readonly inferMacsPerSecond: number;
  readonly inferPerImageSeconds: number;
}

/** Rate and per-image overhead through two models of different size (a line through 1/rate vs MACs). */
function fitTwo(small: Rate, large: Rate): { macsPerSecond: number; perImageSeconds: number } {
  const slope = (1 / large.imagesPerSecond - 1 / small.imagesPerSecond) / (large.macs - small.macs);
  const macsPerSecond = 1 / slope;
  // What the small model's MACs do not explain: a whole network's per-image overhead.
  const perImageSeconds = Math.max(0, 1 / small.imagesPerSecond - small.macs / macsPerSecond);
  return { macsPerSecond, perImageSeconds };
}

function measured(id: string, description: string, train: readonly [Rate, Rate], infer: readonly [Rate, Rate]): Throughput {
  const t = fitTwo(...train);
  const i = fitTwo(...infer);
  return {
    id,
    description,
    trainMacsPerSecond: t.macsPerSecond,
    trainPerImageSeconds: t.perImageSeconds,
    inferMacsPerSecond: i.macsPerSecond,
    inferPerImageSeconds: i.perImageSeconds,
  };
}

function published(id: string, description: string, train: Rate, infer: Rate): Throughput {
  return {
    id,
    description,
    trainMacsPerSecond: train.macs * train.imagesPerSecond,
    trainPerImageSeconds: 0,
    inferMacsPerSecond: infer.macs * infer.imagesPerSecond,
    inferPerImageSeconds: 0,
  };
}

/** MACs per image of the models the numbers were measured on (`emo-dir inspect zoo:<name> --json`). */
const RESNET20_MACS = 40_813_184;
const FMNIST_RESNET_MACS = 5_672_832;
const RESNET50_MACS = 4_089_184_256;

/**
 * This project's engine, per CPU-second of one worker process (a worker is one single-threaded
 * process, so a worker-second is a CPU-second), measured with
 *   node --import tsx bench/engine.ts --models resnet20,fmnist-resnet --iters 5 --no-torch
 * (train: SGD step at batch 64; infer: predict at batch 128) on the 2-core x86-64 dev box.
 */
export const BACKEND_THROUGHPUT = {
  wasm: measured(
    'wasm',
    'wasm backend, 1 thread per worker (bench:engine on the 2-core dev box)',
    [
      { macs: FMNIST_RESNET_MACS, imagesPerSecond: 580.7 },
      { macs: RESNET20_MACS, imagesPerSecond: 179.7 },
    ],
    [
      { macs: FMNIST_RESNET_MACS, imagesPerSecond: 1661.1 },
      { macs: RESNET20_MACS, imagesPerSecond: 667.0 },
    ],
  ),
} as const satisfies Record<string, Throughput>;

/**
 * GPUs, from NVIDIA's published ResNet-50 v1.5 numbers for PyTorch (NVIDIA/DeepLearningExamples,
 * PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training performance results" and
 * "Inference performance results", 1 GPU): V100 16GB FP32 training 367 img/s, inference 1261 img/s
 * (batch 256); T4 FP32 inference 428 img/s (batch 64); A100 80GB TF32 training 938 img/s. The
 * README gives no T4 training nor A100 inference figure: those are derived with V100's
 * training/inference ratio (367 / 1261). PyTorch with cuDNN is the ceiling a tfjs-node-gpu worker
 * can reach, not what it was measured at (no GPU was available here): read GPU estimates as lower
 * bounds on time.
 */
const V100_TRAIN_PER_INFER = 367 / 1261;
export const GPU_THROUGHPUT = {
  t4: published(
    't4',
    'NVIDIA T4 (g4dn), ResNet-50 FP32 rates published for PyTorch',
    { macs: RESNET50_MACS, imagesPerSecond: 428 * V100_TRAIN_PER_INFER },
    { macs: RESNET50_MACS, imagesPerSecond: 428 },
  ),
  v100: published(
    'v100',
    'NVIDIA V100 (p3), ResNet-50 FP32 rates published for PyTorch',
    { macs: RESNET50_MACS, imagesPerSecond: 367 },
    { macs: RESNET50_MACS, imagesPerSecond: 1261 },
  ),
  a100: published(
    'a100',
    'NVIDIA A100 (p4d), ResNet-50 TF32 rates published for PyTorch',
    { macs: RESNET50_MACS, imagesPerSecond: 938 },
    { macs: RESNET50_MACS, imagesPerSecond: 938 / V100_TRAIN_PER_INFER },
  ),
} as const satisfies Record<string, Throughput>;

export type GpuName = keyof typeof GPU_THROUGHPUT;

/**
 * The GPU of `name`: a GPU id (`t4`) or an EC2 instance type whose family has one (`g4dn.xlarge`).
 * The default is T4: g4dn.xlarge is the first of the stack's default instance types (cdk/app.ts).
 */
export function gpuThroughput(name = 't4'): Throughput {
  const lower = name.toLowerCase();
  const byFamily: Readonly<Record<string, GpuName>> = { g4dn: 't4', p3: 'v100', p4d: 'a100', p4de: 'a100' };
  const id = lower in GPU_THROUGHPUT ? (lower as GpuName) : byFamily[lower.split('.')[0]];
  if (id === undefined) {
    throw new Error(
      `no documented throughput for GPU ${JSON.stringify(name)}: use ${Object.keys(GPU_THROUGHPUT).join(', ')} ` +
        `or an instance type of ${Object.keys(byFamily).join(', ')} (src/dir/throughput.ts lists the sources)`,
    );
  }
  return GPU_THROUGHPUT[id];
}

/** Seconds for `images` images through a piece of `macs` MACs of a network of `networkMacs` MACs. */
export function secondsFor(
  throughput: Throughput,
  mode: 'train' | 'infer',
  images: number,
  macs: number,
  networkMacs: number,
): number {
  const [macsPerSecond, perImage] =
    mode === 'train'
      ? [throughput.trainMacsPerSecond, throughput.trainPerImageSeconds]
      : [throughput.inferMacsPerSecond, throughput.inferPerImageSeconds];
  return images * (perImage * (macs / networkMacs) + macs / macsPerSecond);
}
