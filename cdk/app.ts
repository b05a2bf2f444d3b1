/**
 * The CDK app (`npx cdk synth`, cdk.json). Configuration comes from context (`-c key=value` or
 * cdk.json), never from account lookups, so synth works offline:
 *   emo-dir:functionsDir        directory with plan.ts merge.ts report.ts trigger.ts (default functions)
 *   emo-dir:instanceTypes       comma-separated GPU instance types (default g4dn.xlarge,g5.xlarge)
 *   emo-dir:maxvCpus            vCPU cap per compute environment (default 64)
 *   emo-dir:encryption          S3_MANAGED (default) or KMS
 *   emo-dir:usdPerGpuHour       instance price for the report's cost estimate (default: none)
 *   emo-dir:vpcId, emo-dir:availabilityZones, emo-dir:privateSubnetIds
 *                               use an existing VPC (comma-separated lists)
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EmoDirStack, type ExistingVpc } from './emo-dir-stack.ts';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const app = new App();

const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(`emo-dir:${key}`);
  return value === undefined || value === null || value === '' ? undefined : String(value);
};
const list = (key: string): string[] | undefined =>
  context(key)?.split(',').map((item) => item.trim()).filter((item) => item !== '');

const functionsDir = resolve(projectRoot, context('functionsDir') ?? 'functions');
const functionEntries = {
  plan: join(functionsDir, 'plan.ts'),
  merge: join(functionsDir, 'merge.ts'),
  report: join(functionsDir, 'report.ts'),
  trigger: join(functionsDir, 'trigger.ts'),
};
const missing = Object.values(functionEntries).filter((entry) => !existsSync(entry));
if (missing.length > 0) {
  throw new Error(
    `Lambda handler entries missing: ${missing.join(', ')}. Write them, or synthesise against the ` +
      'test fixtures with `-c emo-dir:functionsDir=test/cdk/fixtures/functions`.',
  );
}

let existingVpc: ExistingVpc | undefined;
const vpcId = context('vpcId');
if (vpcId !== undefined) {
  const availabilityZones = list('availabilityZones') ?? [];
  const privateSubnetIds = list('privateSubnetIds') ?? [];
  if (availabilityZones.length === 0 || availabilityZones.length !== privateSubnetIds.length) {
    throw new Error('emo-dir:vpcId needs emo-dir:availabilityZones and emo-dir:privateSubnetIds (one subnet per zone)');
  }
  existingVpc = { vpcId, availabilityZones, privateSubnetIds };
}

const encryption = context('encryption');
if (encryption !== undefined && encryption !== 'S3_MANAGED' && encryption !== 'KMS') {
  throw new Error(`emo-dir:encryption must be S3_MANAGED or KMS, not ${encryption}`);
}
const maxvCpus = context('maxvCpus') === undefined ? undefined : Number(context('maxvCpus'));
if (maxvCpus !== undefined && !(Number.isInteger(maxvCpus) && maxvCpus > 0)) {
  throw new Error(`emo-dir:maxvCpus must be a positive integer, not ${context('maxvCpus')}`);
}

const usdPerGpuHour = context('usdPerGpuHour') === undefined ? undefined : Number(context('usdPerGpuHour'));
if (usdPerGpuHour !== undefined && !(Number.isFinite(usdPerGpuHour) && usdPerGpuHour > 0)) {
  throw new Error(`emo-dir:usdPerGpuHour must be a positive number, not ${context('usdPerGpuHour')}`);
}

// No `env`: an explicit account/region would make the VPC look up zones, which needs credentials.
new EmoDirStack(app, 'EmoDir', {
  description: 'emo-dir: evolutionary multi-objective CNN channel pruning pipeline',
  projectRoot,
  functionEntries,
  existingVpc,
  instanceTypes: list('instanceTypes'),
  maxvCpus,
  encryption,
  usdPerGpuHour,
});
// cdk-nag 3 runs as a CDK validation plugin: any unacknowledged finding fails the synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
