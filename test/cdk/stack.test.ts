/**
 * The CDK stack, synthesised once for the whole file (bundling four Lambdas and staging the
 * worker's build context is the slow part). Lambda entries point at a fixture handler, so the
 * test does not depend on functions/*.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { App, Duration, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { GpuBatch, type CapacityMode, type GpuBatchProps } from '../../cdk/constructs/batch.ts';
import { DataBucket } from '../../cdk/constructs/bucket.ts';
import type { ModelRegistry } from '../../cdk/constructs/model-registry.ts';
import { EmoDirStack } from '../../cdk/emo-dir-stack.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../../src/schema/messages.ts';
import { NO_FALLBACK_QUEUE, placeholdersIn, readDefinitionText, SUBSTITUTION_NAMES } from '../../statemachine/definition.ts';

const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const fixture = (name: string): string => join(projectRoot, 'test/cdk/fixtures/functions', `${name}.ts`);
const outdir = mkdtempSync(join(tmpdir(), 'emo-dir-cdk-'));
after(() => rmSync(outdir, { recursive: true, force: true }));

const functionEntries = {
  plan: fixture('plan'),
  merge: fixture('merge'),
  report: fixture('report'),
  trigger: fixture('trigger'),
  registerModels: fixture('register-models'),
  modelPackageTrigger: fixture('model-package-trigger'),
};
const app = new App({ outdir });
// The default capacity (Spot with an On-Demand fallback) and the SageMaker model registry trigger on.
const stack = new EmoDirStack(app, 'EmoDir', {
  projectRoot,
  functionEntries,
  modelRegistry: { modelPackageGroups: ['resnets', 'Detectors'], outputModelPackageGroup: 'pruned-models' },
});
const template = Template.fromStack(stack);
const assembly = app.synth();
// On-Demand only, 5 jobs at once, no model registry trigger.
const onDemandApp = new App({ outdir: mkdtempSync(join(tmpdir(), 'emo-dir-cdk-od-')) });
const onDemandStack = new EmoDirStack(onDemandApp, 'EmoDirOnDemand', { projectRoot, functionEntries, capacity: 'on-demand', maxConcurrency: 5 });
const onDemandTemplate = Template.fromStack(onDemandStack);
after(() => rmSync(onDemandApp.outdir, { recursive: true, force: true }));

type Json = Record<string, unknown>;
const resources = (type: string, of: Template = template): [string, Json][] =>
  Object.entries(of.findResources(type)).map(([id, resource]) => [id, resource.Properties as Json]);
const logicalId = (construct: { node: { defaultChild?: unknown } }): string =>
  stack.resolve((construct.node.defaultChild as { logicalId: string }).logicalId) as string;

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}
const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
/** Every statement of every IAM policy (inline role policies and AWS::IAM::Policy), by policy id. */
function allStatements(): [string, Statement][] {
  const found: [string, Statement][] = [];
  for (const [id, props] of resources('AWS::IAM::Policy')) {
    for (const statement of (props.PolicyDocument as { Statement: Statement[] }).Statement) found.push([id, statement]);
  }
  for (const [id, props] of resources('AWS::IAM::Role')) {
    for (const policy of (props.Policies as { PolicyDocument: { Statement: Statement[] } }[] | undefined) ?? []) {
      for (const statement of policy.PolicyDocument.Statement) found.push([id, statement]);
    }
  }
  return found;
}
/** The statements of the default policy of a role, found by the role's logical id. */
function statementsOfRole(roleId: string): Statement[] {
  return resources('AWS::IAM::Policy')
    .filter(([, props]) => (props.Roles as unknown[]).some((role) => JSON.stringify(role) === JSON.stringify({ Ref: roleId })))
    .flatMap(([, props]) => (props.PolicyDocument as { Statement: Statement[] }).Statement);
}
const resourceStrings = (statement: Statement): string[] => asArray(statement.Resource).map((r) => JSON.stringify(r));

describe('EmoDirStack', () => {
  it('is environment-agnostic, so synth needs no credentials or lookups', () => {
    assert.ok(Token.isUnresolved(stack.account) && Token.isUnresolved(stack.region), 'expected: Token.isUnresolved(stack.account) && Token.isUnresolved(stack.region)');
    assert.equal(existsSync(join(projectRoot, 'cdk.context.json')), false, 'no context lookups were cached');
  });

  describe('data bucket', () => {
    const dataId = logicalId(stack.data.bucket);
    const data = template.toJSON().Resources[dataId].Properties as Json;

    it('is encrypted, versioned, private, logged and sends events to EventBridge', () => {
      assert.deepEqual(data.BucketEncryption, {
        ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: false, ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
      assert.deepEqual(data.VersioningConfiguration, { Status: 'Enabled' });
      assert.deepEqual(data.PublicAccessBlockConfiguration, {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      assert.deepEqual((data.LoggingConfiguration as Json).DestinationBucketName, { Ref: logicalId(stack.data.accessLogs) });
      template.hasResourceProperties('Custom::S3BucketNotifications', {
        BucketName: { Ref: dataId },
        NotificationConfiguration: { EventBridgeConfiguration: {} },
      });
      assert.equal(template.toJSON().Resources[dataId].DeletionPolicy, 'Retain');
    });

    it('expires scratch (checkpoints, features) and old versions, never results', () => {
      const rules = (data.LifecycleConfiguration as { Rules: Json[] }).Rules;
      const scratch = rules.find((rule) => rule.Id === 'expire-scratch');
      assert.deepEqual(scratch, {
        Id: 'expire-scratch',
        Prefix: 'scratch/',
        ExpirationInDays: 30,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
        Status: 'Enabled',
      });
      const versions = rules.find((rule) => rule.Id === 'expire-noncurrent-versions');
      assert.deepEqual(versions?.NoncurrentVersionExpiration, { NoncurrentDays: 30 });
      assert.deepEqual(versions?.AbortIncompleteMultipartUpload, { DaysAfterInitiation: 7 });
      for (const rule of rules) {
        assert.ok(rule.Prefix === undefined || rule.Prefix === 'scratch/', `rule ${String(rule.Id)} reaches beyond scratch/`);
        if (rule.Prefix === undefined) assert.equal(rule.ExpirationInDays, undefined, 'current objects outside scratch/ must not expire');
      }
    });

    it('refuses plain HTTP on both buckets', () => {
      for (const bucket of [stack.data.bucket, stack.data.accessLogs]) {
        template.hasResourceProperties('AWS::S3::BucketPolicy', {
          Bucket: { Ref: logicalId(bucket) },
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({
                Effect: 'Deny',
                Action: 's3:*',
                Principal: { AWS: '*' },
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              }),
            ]),
          },
        });
      }
    });
  });

  describe('GPU Batch', () => {
    const environments = resources('AWS::Batch::ComputeEnvironment');
    const queues = resources('AWS::Batch::JobQueue');
    const environmentArn = (environment: unknown): string =>
      JSON.stringify({ 'Fn::GetAtt': [logicalId(environment as { node: { defaultChild?: unknown } }), 'ComputeEnvironmentArn'] });
    const queueOf = (queue: unknown): Json => {
      const found = queues.find(([id]) => id === logicalId(queue as { node: { defaultChild?: unknown } }));
      assert.ok(found !== undefined);
      return found[1];
    };
    const timeLimits = (queue: Json): Record<string, number> =>
      Object.fromEntries(
        (queue.JobStateTimeLimitActions as { Action: string; State: string; Reason: string; MaxTimeSeconds: number }[]).map((action) => {
          assert.deepEqual([action.Action, action.State], ['CANCEL', 'RUNNABLE']);
          return [action.Reason, action.MaxTimeSeconds];
        }),
      );

    it('has a Spot and an On-Demand EC2 environment on the ECS AL2023 NVIDIA AMI with the GPU instance types', () => {
      assert.equal(environments.length, 2);
      const types = environments.map(([, props]) => (props.ComputeResources as Json).Type).sort();
      assert.deepEqual(types, ['EC2', 'SPOT']);
      const parameters = template.toJSON().Parameters as Record<string, { Default?: string }>;
      for (const [, props] of environments) {
        const compute = props.ComputeResources as Json;
        assert.deepEqual(compute.InstanceTypes, ['g4dn.xlarge', 'g5.xlarge']);
        assert.equal(compute.MinvCpus, 0);
        // maxConcurrency 16 jobs of 4 vCPUs.
        assert.equal(compute.MaxvCpus, 64);
        const [ec2Configuration] = compute.Ec2Configuration as Json[];
        assert.equal(ec2Configuration.ImageType, 'ECS_AL2023_NVIDIA');
        const amiParameter = (ec2Configuration.ImageIdOverride as { Ref: string }).Ref;
        assert.equal(parameters[amiParameter].Default, '/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id');
        assert.ok(compute.LaunchTemplate !== undefined, 'expected: compute.LaunchTemplate !== undefined');
      }
      assert.doesNotMatch(JSON.stringify(template.toJSON()), /amazon-linux-2\/|ECS_AL2_NVIDIA/, 'no Amazon Linux 2 left');
      const spot = environments.find(([, props]) => (props.ComputeResources as Json).Type === 'SPOT');
      assert.equal((spot?.[1].ComputeResources as Json).AllocationStrategy, 'SPOT_PRICE_CAPACITY_OPTIMIZED');
    });

    it('queues on Spot only, cancelling a job blocked for capacity so the state machine retries it On-Demand', () => {
      assert.equal(queues.length, 2);
      const primary = queueOf(stack.gpu.queue);
      assert.deepEqual(
        (primary.ComputeEnvironmentOrder as { ComputeEnvironment: unknown }[]).map((entry) => JSON.stringify(entry.ComputeEnvironment)),
        [environmentArn(stack.gpu.spotEnvironment)],
      );
      assert.deepEqual(timeLimits(primary), {
        'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY': 15 * 60,
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE': 600,
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT': 600,
      });
      const fallback = queueOf(stack.gpu.fallbackQueue);
      assert.deepEqual(
        (fallback.ComputeEnvironmentOrder as { ComputeEnvironment: unknown }[]).map((entry) => JSON.stringify(entry.ComputeEnvironment)),
        [environmentArn(stack.gpu.onDemandEnvironment)],
      );
      // The last resort waits as long as Batch allows (a day), then the run fails with the reason.
      assert.equal(timeLimits(fallback)['CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY'], 24 * 3600);
    });

    it('with capacity=on-demand: one On-Demand environment and queue, sized for maxConcurrency, no fallback', () => {
      const [[, only], ...others] = resources('AWS::Batch::ComputeEnvironment', onDemandTemplate);
      assert.equal(others.length, 0);
      assert.equal((only.ComputeResources as Json).Type, 'EC2');
      assert.equal((only.ComputeResources as Json).MaxvCpus, 20, '5 jobs x 4 vCPUs');
      const onDemandQueues = resources('AWS::Batch::JobQueue', onDemandTemplate);
      assert.equal(onDemandQueues.length, 1);
      assert.equal(timeLimits(onDemandQueues[0][1])['CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY'], 24 * 3600);
      const [[, machine]] = resources('AWS::StepFunctions::StateMachine', onDemandTemplate);
      const substitutions = machine.DefinitionSubstitutions as Json;
      assert.equal(substitutions.FallbackJobQueueArn, NO_FALLBACK_QUEUE);
      assert.equal(substitutions.DefaultMaxConcurrency, '5');
    });

    it('refuses capacity settings Batch would refuse', () => {
      const probe = new Stack(new App(), 'Probe');
      const vpc = new ec2.Vpc(probe, 'Vpc', { maxAzs: 1, natGateways: 0, subnetConfiguration: [{ name: 'p', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
      const data = new DataBucket(probe, 'Data');
      const gpu = (id: string, props: Partial<GpuBatchProps>) =>
        new GpuBatch(probe, id, { vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }, data, projectRoot, ...props });
      assert.throws(() => gpu('A', { capacityWait: Duration.minutes(5) }), /capacityWait must be from 10 minutes to 24 hours/);
      assert.throws(() => gpu('B', { capacity: 'spot-only' as CapacityMode }), /capacity must be one of spot, on-demand, spot-then-on-demand/);
      assert.throws(() => gpu('C', { maxConcurrency: 2.5 }), /maxConcurrency must be a positive integer/);
      const spotOnly = gpu('D', { capacity: 'spot', maxConcurrency: 3 });
      assert.equal(spotOnly.onDemandEnvironment, undefined);
      assert.equal(spotOnly.fallbackQueue, undefined);
      assert.equal(spotOnly.maxvCpus, 12);
    });

    it('defines search and finalize jobs with one GPU, the worker image and a retry strategy for infrastructure failures', () => {
      const jobs = resources('AWS::Batch::JobDefinition');
      assert.equal(jobs.length, 2);
      for (const [id, props] of jobs) {
        const container = props.ContainerProperties as Json;
        const requirements = Object.fromEntries(
          (container.ResourceRequirements as { Type: string; Value: string }[]).map((r) => [r.Type, r.Value]),
        );
        assert.deepEqual(requirements, { GPU: '1', VCPU: '4', MEMORY: '14336' }, id);
        assert.match(JSON.stringify(container.Image), /container-assets/, `${id}: image is not the Docker asset`);
        assert.ok(container.JobRoleArn !== undefined, `${id}: no job role`);
        assert.equal(container.User, '10001');
        const retry = props.RetryStrategy as { Attempts: number; EvaluateOnExit: Json[] };
        assert.equal(retry.Attempts, 5);
        assert.deepEqual(retry.EvaluateOnExit, [
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
          { Action: 'RETRY', OnExitCode: '75' },
          { Action: 'EXIT', OnReason: '*' },
        ]);
        assert.ok(Number((props.Timeout as Json).AttemptDurationSeconds) >= 3600, 'expected: Number((props.Timeout as Json).AttemptDurationSeconds) >= 3600');
        assert.equal(props.PropagateTags, true);
        // Named, so IAM can allow every revision; a redeploy keeps the old revision for runs in flight.
        assert.match(String(props.JobDefinitionName), /^EmoDir-(search|finalize)$/);
        assert.deepEqual(props.ResourceRetentionPolicy, { SkipDeregisterOnUpdate: true });
      }
    });

    it('stages a worker build context without node_modules, tests or build output', () => {
      const manifest = JSON.parse(readFileSync(join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8')) as {
        dockerImages?: Record<string, { source: { directory: string; dockerFile: string } }>;
      };
      const images = Object.values(manifest.dockerImages ?? {});
      assert.equal(images.length, 1);
      assert.equal(images[0].source.dockerFile, 'containers/Dockerfile');
      const context = join(assembly.directory, images[0].source.directory);
      const entries = readdirSync(context).sort();
      assert.deepEqual(entries, ['containers', 'package-lock.json', 'package.json', 'src', 'tsconfig.json']);
      assert.deepEqual(readdirSync(join(context, 'containers')).sort(), ['Dockerfile', 'worker.ts']);
    });
  });

  describe('Lambda functions', () => {
    it('run nodejs22.x with tracing, JSON logs in their own log group and the store location', () => {
      const ours = [
        stack.functions.plan,
        stack.functions.merge,
        stack.functions.report,
        stack.functions.registerModels,
        stack.trigger.handler,
        stack.modelRegistry?.handler,
      ].map((handler) => logicalId((handler as NonNullable<typeof handler>).function));
      const functions = resources('AWS::Lambda::Function').filter(([id]) => ours.includes(id));
      assert.equal(functions.length, 6);
      for (const [id, props] of functions) {
        assert.equal(props.Runtime, 'nodejs22.x', id);
        assert.deepEqual(props.TracingConfig, { Mode: 'Active' }, id);
        assert.ok((props.LoggingConfig as Json).LogGroup !== undefined, id);
        assert.deepEqual(
          ((props.Environment as Json).Variables as Json).EMO_DIR_STORE,
          { 'Fn::Join': ['', ['s3://', { Ref: logicalId(stack.data.bucket) }]] },
          id,
        );
      }
      // No CDK-internal function may be on a deprecated runtime either.
      for (const [id, props] of resources('AWS::Lambda::Function')) {
        if (String(props.Runtime).startsWith('nodejs')) assert.match(String(props.Runtime), /^nodejs(22|24)\.x$/, id);
      }
    });

    it('keeps every log group for a bounded time', () => {
      const groups = resources('AWS::Logs::LogGroup');
      // Six handlers, the Batch jobs, the state machine and the VPC flow logs.
      assert.equal(groups.length, 9, `log groups: ${groups.map(([id]) => id).join(', ')}`);
      for (const [id, props] of groups) assert.ok(Number(props.RetentionInDays) > 0, `${id} keeps logs forever`);
    });
  });

  describe('state machine', () => {
    const [[stateMachineId, stateMachine]] = resources('AWS::StepFunctions::StateMachine');

    it('deploys statemachine/emo-dir.asl.json with every placeholder substituted by a resource of the stack', () => {
      assert.ok(stateMachine.DefinitionS3Location !== undefined, 'definition is not the file asset');
      const substitutions = stateMachine.DefinitionSubstitutions as Record<string, unknown>;
      assert.deepEqual(Object.keys(substitutions).sort(), [...SUBSTITUTION_NAMES].sort());
      assert.deepEqual(placeholdersIn(readDefinitionText()), Object.keys(substitutions).sort());
      const functionArn = (handler: { function: { node: { defaultChild?: unknown } } }): unknown => ({
        'Fn::GetAtt': [logicalId(handler.function), 'Arn'],
      });
      assert.deepEqual(substitutions.PlanFunctionArn, functionArn(stack.functions.plan));
      assert.deepEqual(substitutions.MergeFunctionArn, functionArn(stack.functions.merge));
      assert.deepEqual(substitutions.ReportFunctionArn, functionArn(stack.functions.report));
      assert.deepEqual(substitutions.RegisterModelsFunctionArn, functionArn(stack.functions.registerModels));
      assert.deepEqual(substitutions.JobQueueArn, { 'Fn::GetAtt': [logicalId(stack.gpu.queue), 'JobQueueArn'] });
      assert.deepEqual(substitutions.FallbackJobQueueArn, { 'Fn::GetAtt': [logicalId(stack.gpu.fallbackQueue as batch.JobQueue), 'JobQueueArn'] });
      assert.deepEqual(substitutions.SearchJobDefinitionArn, { Ref: logicalId(stack.gpu.searchJob) });
      assert.deepEqual(substitutions.FinalizeJobDefinitionArn, { Ref: logicalId(stack.gpu.finalizeJob) });
      assert.equal(substitutions.DefaultMaxConcurrency, String(DEFAULT_MAX_CONCURRENCY));
    });

    it('logs all events to a log group under /aws/vendedlogs/states/ and traces with X-Ray', () => {
      assert.deepEqual(stateMachine.TracingConfiguration, { Enabled: true });
      const logging = stateMachine.LoggingConfiguration as { Level: string; Destinations: { CloudWatchLogsLogGroup: { LogGroupArn: unknown } }[] };
      assert.equal(logging.Level, 'ALL');
      const [groupId] = (logging.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'];
      const group = template.toJSON().Resources[groupId].Properties as Json;
      assert.equal(group.LogGroupName, '/aws/vendedlogs/states/EmoDir-runs');
      assert.ok(stateMachineId !== undefined, 'expected: stateMachineId !== undefined');
    });
  });

  const rules = resources('AWS::Events::Rule');
  const ruleOf = (rule: { node: { defaultChild?: unknown } }): Json => {
    const found = rules.find(([id]) => id === logicalId(rule));
    assert.ok(found !== undefined);
    return found[1];
  };
  const deadLetterArn = { 'Fn::GetAtt': [logicalId(stack.trigger.deadLetterQueue), 'Arn'] };

  it('starts runs on registry/<model>/prune.json uploads of this bucket only', () => {
    assert.equal(rules.length, 2);
    const rule = ruleOf(stack.trigger.rule);
    assert.deepEqual(rule.EventPattern, {
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: {
        bucket: { name: [{ Ref: logicalId(stack.data.bucket) }] },
        object: { key: [{ wildcard: 'registry/*/prune.json' }] },
      },
    });
    const [target] = rule.Targets as Json[];
    assert.deepEqual(target.Arn, { 'Fn::GetAtt': [logicalId(stack.trigger.handler.function), 'Arn'] });
    assert.deepEqual((target.DeadLetterConfig as Json).Arn, deadLetterArn);
    assert.equal((target.RetryPolicy as Json).MaximumRetryAttempts, 8);
  });

  it('keeps events the trigger functions fail on: an SQS on-failure destination with explicit retries and event age', () => {
    const configs = resources('AWS::Lambda::EventInvokeConfig');
    for (const handler of [stack.trigger.handler, stack.modelRegistry?.handler]) {
      const functionId = logicalId((handler as NonNullable<typeof handler>).function);
      const config = configs.find(([, props]) => JSON.stringify(props.FunctionName) === JSON.stringify({ Ref: functionId }));
      assert.ok(config !== undefined, `${functionId} has no EventInvokeConfig`);
      assert.deepEqual(config[1].DestinationConfig, { OnFailure: { Destination: deadLetterArn } });
      assert.equal(config[1].MaximumRetryAttempts, 2);
      assert.equal(config[1].MaximumEventAgeInSeconds, 6 * 3600);
      assert.equal(config[1].Qualifier, '$LATEST');
      const sends = statementsOfRole(logicalId((handler as NonNullable<typeof handler>).role)).find((statement) =>
        asArray(statement.Action).includes('sqs:SendMessage'),
      );
      assert.deepEqual(sends?.Resource, deadLetterArn, `${functionId} may not send to its destination`);
    }
  });

  describe('SageMaker Model Registry trigger', () => {
    const registry = stack.modelRegistry as ModelRegistry;
    const partitionArn = (resource: string): string => JSON.stringify({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sagemaker:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${resource}`]],
    });

    it('invokes its function on state changes of the watched groups to Approved', () => {
      const rule = ruleOf(registry.rule);
      assert.deepEqual(rule.EventPattern, {
        source: ['aws.sagemaker'],
        'detail-type': ['SageMaker Model Package State Change'],
        detail: { ModelPackageGroupName: ['resnets', 'Detectors'], ModelApprovalStatus: ['Approved'] },
      });
      const [target] = rule.Targets as Json[];
      assert.deepEqual(target.Arn, { 'Fn::GetAtt': [logicalId(registry.handler.function), 'Arn'] });
      assert.deepEqual((target.DeadLetterConfig as Json).Arn, deadLetterArn);
      const variables = (resources('AWS::Lambda::Function').find(([id]) => id === logicalId(registry.handler.function))?.[1].Environment as Json)
        .Variables as Json;
      assert.equal(variables.EMO_DIR_MODEL_PACKAGE_GROUPS, 'resnets,Detectors');
      assert.equal(variables.EMO_DIR_APPROVAL_STATUSES, 'Approved');
      assert.deepEqual(variables.STATE_MACHINE_ARN, { Ref: logicalId(stack.workflow.stateMachine) });
    });

    it('reads only the watched groups\' packages and the artifact bucket, and starts only this state machine', () => {
      const statements = statementsOfRole(logicalId(registry.handler.role));
      const describe = statements.find((statement) => asArray(statement.Action).includes('sagemaker:DescribeModelPackage'));
      // SageMaker ARNs carry names in lower case.
      assert.deepEqual(resourceStrings(describe as Statement).sort(), [partitionArn('model-package/detectors/*'), partitionArn('model-package/resnets/*')].sort());
      const artifacts = statements.find((statement) => asArray(statement.Action).includes('s3:GetObject') && JSON.stringify(statement.Resource).includes('sagemaker-'));
      assert.deepEqual(resourceStrings(artifacts as Statement), [
        JSON.stringify({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::sagemaker-', { Ref: 'AWS::Region' }, '-', { Ref: 'AWS::AccountId' }, '/*']] }),
      ]);
      const start = statements.find((statement) => asArray(statement.Action).includes('states:StartExecution'));
      assert.deepEqual(start?.Resource, { Ref: logicalId(stack.workflow.stateMachine) });
      for (const statement of statements) {
        assert.ok(!asArray(statement.Action).some((action) => action.startsWith('sagemaker:') && action !== 'sagemaker:DescribeModelPackage'), JSON.stringify(statement));
      }
    });

    it('registers pruned models only into its own output group, which outlives the stack', () => {
      const register = statementsOfRole(logicalId(stack.functions.registerModels.role));
      const sagemakerStatements = register.filter((statement) => asArray(statement.Action).some((action) => action.startsWith('sagemaker:')));
      assert.equal(sagemakerStatements.length, 1);
      assert.deepEqual(asArray(sagemakerStatements[0].Action), ['sagemaker:CreateModelPackage']);
      assert.deepEqual(resourceStrings(sagemakerStatements[0]).sort(), [partitionArn('model-package-group/pruned-models'), partitionArn('model-package/pruned-models/*')].sort());
      const groups = template.findResources('AWS::SageMaker::ModelPackageGroup');
      assert.deepEqual(Object.values(groups).map((group) => [(group.Properties as Json).ModelPackageGroupName, group.DeletionPolicy]), [['pruned-models', 'Retain']]);
      const variables = (resources('AWS::Lambda::Function').find(([id]) => id === logicalId(stack.functions.registerModels.function))?.[1].Environment as Json)
        .Variables as Json;
      assert.equal(variables.EMO_DIR_MODEL_PACKAGE_GROUP, 'pruned-models');
    });

    it('is absent, with no SageMaker permission anywhere, when no group is watched', () => {
      assert.equal(Object.keys(onDemandTemplate.findResources('AWS::SageMaker::ModelPackageGroup')).length, 0);
      assert.equal(resources('AWS::Events::Rule', onDemandTemplate).length, 1);
      assert.doesNotMatch(JSON.stringify(onDemandTemplate.findResources('AWS::IAM::Policy')), /sagemaker:/);
    });

    it('refuses to watch its own output group (every registration would start a run)', () => {
      const loopApp = new App();
      assert.throws(
        () => new EmoDirStack(loopApp, 'Loop', { projectRoot, functionEntries, modelRegistry: { modelPackageGroups: ['a'], outputModelPackageGroup: 'a' } }),
        /the output group a is also watched/,
      );
    });
  });

  describe('IAM', () => {
    const statements = allStatements();

    it('never grants s3:* or any action on every resource for S3', () => {
      for (const [id, statement] of statements) {
        if (statement.Effect !== 'Allow') continue;
        const actions = asArray(statement.Action);
        assert.ok(!actions.includes('*') && !actions.includes('s3:*'), `${id}: ${actions.join(',')}`);
        if (actions.some((action) => action.startsWith('s3:'))) {
          assert.ok(!asArray(statement.Resource).includes('*'), `${id}: S3 actions on *`);
        }
      }
    });

    it('scopes object access to key prefixes, and writes to results and scratch only', () => {
      const dataArn = JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.data.bucket), 'Arn'] });
      for (const [id, statement] of statements) {
        const actions = asArray(statement.Action);
        if (!actions.some((action) => ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'].includes(action))) continue;
        for (const resource of resourceStrings(statement)) {
          if (!resource.includes(dataArn)) continue; // CDK's own asset/notification policies
          assert.match(resource, /"\/(runs|scratch|registry|datasets)\/\*"/, `${id}: ${resource}`);
          if (actions.includes('s3:PutObject')) assert.match(resource, /"\/(runs|scratch)\/\*"/, `${id} writes ${resource}`);
          if (actions.includes('s3:DeleteObject')) assert.match(resource, /"\/scratch\/\*"/, `${id} deletes ${resource}`);
        }
      }
    });

    it('lets the state machine submit jobs only to its queue and job definitions, and manage the .sync rule', () => {
      const roleId = logicalId(stack.workflow.stateMachine.role as unknown as { node: { defaultChild?: unknown } });
      const workflow = statementsOfRole(roleId);
      const submit = workflow.find((statement) => asArray(statement.Action).includes('batch:SubmitJob'));
      const revisions = (name: string): string => JSON.stringify({
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':batch:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:job-definition/${name}:*`]],
      });
      // Every revision of the two job definitions: runs in flight during a redeploy submit their own.
      assert.deepEqual(resourceStrings(submit as Statement).sort(), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.gpu.queue), 'JobQueueArn'] }),
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.gpu.fallbackQueue as batch.JobQueue), 'JobQueueArn'] }),
        revisions('EmoDir-search'),
        revisions('EmoDir-finalize'),
      ].sort());
      const rule = workflow.find((statement) => asArray(statement.Action).includes('events:PutTargets'));
      assert.deepEqual(asArray((rule as Statement).Action).sort(), ['events:DescribeRule', 'events:PutRule', 'events:PutTargets']);
      assert.match(JSON.stringify((rule as Statement).Resource), /rule\/StepFunctionsGetEventsForBatchJobsRule/);
      const invoke = workflow.find((statement) => asArray(statement.Action).includes('lambda:InvokeFunction'));
      assert.equal(asArray((invoke as Statement).Resource).length, 8, 'four functions and their qualifiers');
      for (const statement of workflow) {
        if (asArray(statement.Resource).includes('*')) {
          for (const action of asArray(statement.Action)) {
            assert.match(action, /^(batch:DescribeJobs|xray:|logs:)/, `${action} on *`);
          }
        }
      }
    });

    it('lets only the two triggers start executions', () => {
      const starters = statements.filter(([, statement]) => asArray(statement.Action).includes('states:StartExecution'));
      assert.equal(starters.length, 2);
      for (const [, statement] of starters) assert.deepEqual(statement.Resource, { Ref: logicalId(stack.workflow.stateMachine) });
    });
  });

  it('exports the names a deployment needs', () => {
    const outputs = Object.keys(template.toJSON().Outputs as Json);
    for (const name of [
      'BucketName', 'StoreLocation', 'StateMachineArn', 'JobQueueArn', 'OnDemandJobQueueArn', 'SearchJobDefinitionArn',
      'FinalizeJobDefinitionArn', 'WorkerImageUri', 'TriggerDeadLetterQueueUrl', 'PrunedModelPackageGroup',
    ]) {
      assert.ok(outputs.includes(name), `missing output ${name}`);
    }
  });

  describe('cdk-nag AwsSolutions', () => {
    it('finds nothing unacknowledged in either stack', () => {
      for (const [checked, scope] of [[app, stack], [onDemandApp, onDemandStack]] as const) {
        const report = new AwsSolutionsChecks(checked).validateScope(scope);
        const findings = report.violations.map(
          (violation) => `${violation.severity} ${violation.ruleName}: ${violation.violatingResources.map((r) => r.constructPath).join(', ')}`,
        );
        assert.deepEqual(findings, [], scope.stackName);
      }
    });

    it('stays clean with a customer managed KMS key (rotated; grants on that key only)', () => {
      const kmsApp = new App();
      const kmsStack = new Stack(kmsApp, 'Kms');
      const data = new DataBucket(kmsStack, 'Data', { encryption: 'KMS' });
      const role = new iam.Role(kmsStack, 'Worker', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      data.grantPrefixes(role, { read: ['runs/', 'registry/'], write: ['runs/'] });
      const kmsTemplate = Template.fromStack(kmsStack);
      const keyId = kmsStack.resolve((data.key?.node.defaultChild as unknown as { logicalId: string }).logicalId) as string;
      kmsTemplate.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      kmsTemplate.hasResourceProperties('AWS::S3::Bucket', {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              BucketKeyEnabled: true,
              ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] } },
            },
          ],
        },
      });
      const kmsStatements = Object.values(kmsTemplate.findResources('AWS::IAM::Policy')).flatMap(
        (policy) => (policy.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
      );
      const kmsGrant = kmsStatements.find((statement) => asArray(statement.Action).some((action) => action.startsWith('kms:')));
      assert.deepEqual((kmsGrant as Statement).Resource, { 'Fn::GetAtt': [keyId, 'Arn'] });
      const report = new AwsSolutionsChecks(kmsApp).validateScope(kmsStack);
      assert.deepEqual(report.violations.map((violation) => violation.ruleName), []);
    });

    it('does report a violation (the check is live)', () => {
      const probeApp = new App();
      const probe = new Stack(probeApp, 'Probe');
      new s3.Bucket(probe, 'Careless', { encryption: s3.BucketEncryption.UNENCRYPTED });
      const report = new AwsSolutionsChecks(probeApp).validateScope(probe);
      const rules = report.violations.map((violation) => violation.ruleName);
      assert.ok(rules.includes('AwsSolutions-S10'), rules.join(', '));
      assert.ok(rules.includes('AwsSolutions-S1'), rules.join(', '));
    });
  });
});
