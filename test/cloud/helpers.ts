/**
 * Shared fixtures of the cloud adapter tests: a file store in a temp dir stands in for S3, and
 * aws-sdk-client-mock stands in for Step Functions (no test touches the network).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFNClient } from '@aws-sdk/client-sfn';
import { FileStore } from '../../src/store/file-store.ts';
import type { RunSpecInput } from '../../src/schema/spec.ts';

export const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:EmoDir';

export async function tempDir(prefix = 'emo-dir-cloud-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function tempStore(): Promise<{ store: FileStore; dir: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('emo-dir-store-');
  return { store: new FileStore(join(dir, 'store')), dir, cleanup };
}

/** A client whose requests aws-sdk-client-mock intercepts (the region only satisfies the SDK). */
export function sfnClient(): SFNClient {
  return new SFNClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
}

export function minimalSpec(overrides: Partial<RunSpecInput> = {}): RunSpecInput {
  return {
    model: 'zoo:resnet20',
    dataset: { name: 'fashion-mnist' },
    targets: [{ kind: 'flopsCut', value: 0.5 }],
    ...overrides,
  };
}

/** A tiny stand-in for a saved model: model.json + weights.bin (only their presence matters here). */
export const MODEL_FILES: Record<string, string> = {
  'model.json': '{"modelTopology":{},"weightsManifest":[{"paths":["weights.bin"],"weights":[]}]}',
  'weights.bin': 'WEIGHTS',
};

/**
 * A complete `metrics.json` as Finalize writes it (src/schema/metrics.ts), for readers' tests:
 * a 50% FLOPs cut of a 40M-MAC model, 91% -> 70% -> 89% test accuracy.
 */
export function sampleMetrics(runId: string, target: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const choice = { k1: 'k1-p03', k2: 'k2-p01' };
  return {
    version: 1,
    runId,
    target,
    targetSpec: { name: target, kind: 'flopsCut', value: 0.5 },
    schemeRank: 1,
    scheme: { rank: 1, choice, estimatedImpairment: 0.021 },
    verified: [{ rank: 1, choice, estimatedImpairment: 0.021, measuredImpairment: 0.025, accuracy: 0.88, loss: 0.31, macs: 20_100_000, params: 140_000 }],
    achieved: { macs: 20_100_000, params: 140_000, flopsCut: 0.4975, paramsCut: 0.3 },
    original: { macs: 40_000_000, params: 200_000 },
    estimatedImpairment: 0.021,
    measuredImpairment: 0.025,
    estimateError: 0.004,
    accuracy: { original: 0.91, beforeFineTune: 0.7, afterFineTune: 0.89 },
    loss: { original: 0.26, beforeFineTune: 0.9, afterFineTune: 0.31 },
    searchVal: { baselineLoss: 0.27, baselineAccuracy: 0.905, loss: 0.295, accuracy: 0.88, count: 512 },
    testCount: 2000,
    fineTuneEpochs: 1,
    fineTuneSteps: 79,
    fineTuneSeconds: 40,
    fineTuneCheckpoints: [],
    seconds: 55,
    backend: 'wasm',
    modelKey: `runs/${runId}/targets/${target}/model/`,
    layers: [{ name: 'stem_conv', className: 'Conv2D', channelsBefore: 16, channelsAfter: 12 }],
    createdAt: '2026-11-28T02:00:00.000Z',
    ...overrides,
  };
}
