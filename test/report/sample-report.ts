/**
 * A realistic report for the report tests: a ResNet-20-sized model cut into 3 sub-networks with
 * 15-point fronts, a joint front traced from them, 2 FLOPs targets and 20 layers per target.
 * Built from a seeded generator (no Math.random), so every test sees the same report.
 *
 * The model name and one layer name carry `<script>` on purpose: the renderer must escape them.
 */
import type { Report, ReportFrontPoint } from '../../src/schema/report.ts';

export const HOSTILE_MODEL = 'resnet20 <script>alert("model")</script>';
export const HOSTILE_LAYER = 'stage2/<script>alert(1)</script>&conv';

/** mulberry32: tiny, seeded, good enough for test data. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SampleSubnet {
  readonly id: string;
  readonly macs: number;
  readonly params: number;
  readonly front: ReportFrontPoint[];
}

const round = (value: number, digits = 6): number => Number(value.toFixed(digits));

export function sampleReport(options: { seed?: number } = {}): Report {
  const random = generator(options.seed ?? 7);
  const fixedMacs = 600_000;
  const fixedParams = 650;
  const shapes = [
    { id: 'S1', macs: 13_600_000, params: 14_000, severity: 0.35 },
    { id: 'S2', macs: 13_300_000, params: 51_000, severity: 0.22 },
    { id: 'S3', macs: 13_100_000, params: 205_000, severity: 0.5 },
  ];
  const subnets: SampleSubnet[] = shapes.map((shape, k) => {
    const front: ReportFrontPoint[] = [];
    for (let i = 0; i < 15; i++) {
      // Ratios from 1 (unpruned) down to ~0.12, impairment convex and growing as FLOPs shrink.
      const ratio = i === 0 ? 1 : round(1 - (i / 14) * 0.88 + (random() - 0.5) * 0.02, 4);
      const impairment = i === 0 ? 0 : round(shape.severity * (1 - ratio) ** 1.7 + random() * 0.004, 5);
      front.push({
        id: `s${k + 1}-p${String(i).padStart(2, '0')}`,
        flopsRatio: ratio,
        flops: Math.round(shape.macs * ratio),
        params: Math.round(shape.params * (0.2 + 0.8 * ratio)),
        impairment,
        accuracy: round(0.9175 - impairment * 0.12, 4),
      });
    }
    return { id: shape.id, macs: shape.macs, params: shape.params, front };
  });
  const originalMacs = fixedMacs + shapes.reduce((sum, s) => sum + s.macs, 0);
  const originalParams = fixedParams + shapes.reduce((sum, s) => sum + s.params, 0);

  // Joint front: for a sweep of trade-offs lambda, every sub-network picks its point minimising
  // impairment + lambda * FLOPs; the distinct schemes form a (convex-hull) joint front.
  const schemes = new Map<string, { choice: ReportFrontPoint[]; flops: number; params: number; impairment: number }>();
  for (let step = 0; step <= 400; step++) {
    const lambda = step === 0 ? 0 : 1e-10 * 1.03 ** step;
    const choice = subnets.map((subnet) =>
      subnet.front.reduce((best, p) => (p.impairment + lambda * p.flops < best.impairment + lambda * best.flops ? p : best)),
    );
    const key = choice.map((p) => p.id).join('|');
    if (schemes.has(key)) continue;
    schemes.set(key, {
      choice,
      flops: fixedMacs + choice.reduce((sum, p) => sum + p.flops, 0),
      params: fixedParams + choice.reduce((sum, p) => sum + p.params, 0),
      impairment: round(choice.reduce((sum, p) => sum + p.impairment, 0), 5),
    });
  }
  const joint = [...schemes.values()].sort((a, b) => a.flops - b.flops);

  const targetCuts = [0.5, 0.7];
  const layerTemplate = [
    ['conv1', 16],
    ['stage1/block1/conv1', 16],
    ['stage1/block1/conv2', 16],
    ['stage1/block2/conv1', 16],
    ['stage1/block2/conv2', 16],
    ['stage1/block3/conv1', 16],
    ['stage1/block3/conv2', 16],
    ['stage2/block1/conv1', 32],
    ['stage2/block1/conv2', 32],
    ['stage2/block1/shortcut', 32],
    [HOSTILE_LAYER, 32],
    ['stage2/block2/conv2', 32],
    ['stage2/block3/conv1', 32],
    ['stage2/block3/conv2', 32],
    ['stage3/block1/conv1', 64],
    ['stage3/block1/conv2', 64],
    ['stage3/block1/shortcut', 64],
    ['stage3/block2/conv1', 64],
    ['stage3/block3/conv1', 64],
    ['dense', 10],
  ] as const;
  const originalAccuracy = 0.9175;

  const chosen: Record<string, string>[] = subnets.map(() => ({}));
  const targets = targetCuts.map((cutValue, t) => {
    const name = `flops-${Math.round(cutValue * 100)}`;
    const budget = originalMacs * (1 - cutValue);
    const scheme = joint.filter((s) => s.flops <= budget).sort((a, b) => a.impairment - b.impairment)[0];
    scheme.choice.forEach((point, k) => {
      chosen[k][name] = point.id;
    });
    const measured = round(scheme.impairment * 1.18 + 0.003, 5);
    const layers = layerTemplate.map(([layerName, channels], i) => {
      // Residual-stream and output layers keep their width (pruneResidual off, classes fixed).
      const fixed = layerName.includes('conv2') || layerName.includes('shortcut') || layerName === 'dense';
      const keep = fixed ? 1 : Math.max(0.1, 1 - cutValue * (0.6 + 0.5 * random()) - (i % 3) * 0.02);
      return { name: layerName, className: layerName === 'dense' ? 'Dense' : 'Conv2D', channelsBefore: channels, channelsAfter: Math.max(1, Math.round(channels * keep)) };
    });
    return {
      name,
      kind: 'flopsCut' as const,
      value: cutValue,
      achieved: {
        macs: scheme.flops,
        params: scheme.params,
        flopsCut: round(1 - scheme.flops / originalMacs, 5),
        paramsCut: round(1 - scheme.params / originalParams, 5),
      },
      estimatedImpairment: scheme.impairment,
      measuredImpairment: measured,
      estimateError: round(measured - scheme.impairment, 5),
      accuracy: {
        beforeFineTune: round(originalAccuracy - 0.04 - 0.1 * t, 4),
        afterFineTune: round(originalAccuracy - 0.004 - 0.011 * t, 4),
        original: originalAccuracy,
      },
      fineTuneEpochs: 2,
      fineTuneSeconds: 312.4 + 40 * t,
      layers,
      modelKey: `runs/resnet20-20261128T020000Z/targets/${name}/model/`,
    };
  });

  const searchSeconds = [842.5, 791.25, 903.0];
  const fineTuneSeconds = targets.reduce((sum, target) => sum + target.fineTuneSeconds, 0);
  const workerSeconds = round(searchSeconds.reduce((a, b) => a + b, 0) + fineTuneSeconds, 2);
  const wallSeconds = round(workerSeconds * 1.14, 2);

  return {
    schemaVersion: 1,
    generatedAt: '2026-11-28T03:02:11.512Z',
    status: 'succeeded',
    run: {
      runId: 'resnet20-20261128T020000Z',
      model: HOSTILE_MODEL,
      dataset: 'cifar10:datasets/cifar10',
      startedAt: '2026-11-28T02:00:00.000Z',
      finishedAt: '2026-11-28T03:02:11.000Z',
      wallSeconds,
      workerSeconds,
      backend: 'wasm',
      storeLocation: 'file:///work/main/.emo-dir/store',
      spec: {
        model: HOSTILE_MODEL,
        dataset: { name: 'cifar10:datasets/cifar10', searchTrain: 2048, searchVal: 1024 },
        targets: targetCuts.map((value) => ({ kind: 'flopsCut', value })),
        search: { population: 16, generations: 8, seed: 1 },
      },
    },
    original: { macs: originalMacs, params: originalParams, accuracy: { searchVal: 0.9131, test: originalAccuracy }, loss: { searchVal: 0.2874, test: 0.2712 } },
    subnetworks: subnets.map((subnet, k) => ({
      id: subnet.id,
      layers: 14 + k * 2,
      groupIds: Array.from({ length: 3 + k }, (_, g) => `${subnet.id}/g${g}`),
      macs: subnet.macs,
      params: subnet.params,
      front: subnet.front,
      evaluations: 128,
      generations: 8,
      searchSeconds: searchSeconds[k],
      hypervolume: round(0.6 + 0.05 * k, 4),
      chosen: chosen[k],
    })),
    jointFront: joint.map((s) => ({ flops: s.flops, params: s.params, estimatedImpairment: s.impairment })),
    targets,
    cost: { workerSeconds },
  };
}
