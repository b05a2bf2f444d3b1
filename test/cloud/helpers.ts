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
