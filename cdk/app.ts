/**
 * The CDK app (`npx cdk synth`, cdk.json). Configuration comes from context (`-c key=value` or
 * cdk.json), never from account lookups, so synth works offline:
 *   emo-dir:functionsDir        directory with plan.ts merge.ts report.ts trigger.ts register-models.ts
 *                               model-package-trigger.ts (default functions)
 *   emo-dir:instanceTypes       comma-separated GPU instance types (default g4dn.xlarge,g5.xlarge)
 *   emo-dir:capacity            spot | on-demand | spot-then-on-demand (default): which EC2 capacity
 *   emo-dir:capacityWaitMinutes minutes a job waits for Spot before its On-Demand retry (10-1440, default 15)
 *   emo-dir:maxConcurrency      GPU jobs of one Map at once (default 16); sizes the compute environments
 *   emo-dir:maxvCpus            vCPU cap per compute environment (default maxConcurrency x 4)
 *   emo-dir:encryption          S3_MANAGED (default) or KMS
 *   emo-dir:usdPerGpuHour       instance price for the report's cost estimate (default: none)
 *   emo-dir:vpcId, emo-dir:availabilityZones, emo-dir:privateSubnetIds
 *                               use an existing VPC (comma-separated lists)
 *   emo-dir:modelPackageGroups  SageMaker model package groups whose versions start runs (default none:
 *                               no model registry trigger)
 *   emo-dir:approvalStatuses    approval statuses that start a run (default Approved)
 *   emo-dir:prunedModelPackageGroup  where pruned models are registered (default <stack>-pruned)
 *   emo-dir:modelArtifactBuckets     buckets of the packages' model.tar.gz (default sagemaker-<region>-<account>)
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Duration, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CAPACITY_MODES, type CapacityMode } from './constructs/batch.ts';
import { EmoDirStack, type ExistingVpc } from './emo-dir-stack.ts';
import { MODEL_APPROVAL_STATUSES, type ModelApprovalStatus } from '../src/schema/model-registry.ts';

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
  registerModels: join(functionsDir, 'register-models.ts'),
  modelPackageTrigger: join(functionsDir, 'model-package-trigger.ts'),
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
const positiveInteger = (key: string, max = Number.MAX_SAFE_INTEGER): number | undefined => {
  const text = context(key);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!(Number.isInteger(value) && value > 0 && value <= max)) throw new Error(`emo-dir:${key} must be a whole number from 1 to ${max}, not ${text}`);
  return value;
};
const maxvCpus = positiveInteger('maxvCpus');
const maxConcurrency = positiveInteger('maxConcurrency', 10_000);
const capacity = context('capacity');
if (capacity !== undefined && !(CAPACITY_MODES as readonly string[]).includes(capacity)) {
  throw new Error(`emo-dir:capacity must be one of ${CAPACITY_MODES.join(', ')}, not ${capacity}`);
}
const capacityWaitMinutes = positiveInteger('capacityWaitMinutes', 1440);
if (capacityWaitMinutes !== undefined && capacityWaitMinutes < 10) {
  throw new Error(`emo-dir:capacityWaitMinutes must be from 10 to 1440 (what Batch allows), not ${capacityWaitMinutes}`);
}
const approvalStatuses = list('approvalStatuses');
for (const status of approvalStatuses ?? []) {
  if (!(MODEL_APPROVAL_STATUSES as readonly string[]).includes(status)) {
    throw new Error(`emo-dir:approvalStatuses: ${status} is not one of ${MODEL_APPROVAL_STATUSES.join(', ')}`);
  }
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
  capacity: capacity as CapacityMode | undefined,
  capacityWait: capacityWaitMinutes === undefined ? undefined : Duration.minutes(capacityWaitMinutes),
  maxConcurrency,
  maxvCpus,
  encryption,
  usdPerGpuHour,
  modelRegistry: {
    modelPackageGroups: list('modelPackageGroups') ?? [],
    approvalStatuses: approvalStatuses as ModelApprovalStatus[] | undefined,
    outputModelPackageGroup: context('prunedModelPackageGroup'),
    modelArtifactBuckets: list('modelArtifactBuckets'),
  },
});
// cdk-nag 3 runs as a CDK validation plugin: any unacknowledged finding fails the synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
