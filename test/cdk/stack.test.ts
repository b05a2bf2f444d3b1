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
import { App, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DataBucket } from '../../cdk/constructs/bucket.ts';
import { EmoDirStack } from '../../cdk/emo-dir-stack.ts';
import { placeholdersIn, readDefinitionText, SUBSTITUTION_NAMES } from '../../statemachine/definition.ts';

const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const fixture = (name: string): string => join(projectRoot, 'test/cdk/fixtures/functions', `${name}.ts`);
const outdir = mkdtempSync(join(tmpdir(), 'emo-dir-cdk-'));
after(() => rmSync(outdir, { recursive: true, force: true }));

const app = new App({ outdir });
const stack = new EmoDirStack(app, 'EmoDir', {
  projectRoot,
  functionEntries: { plan: fixture('plan'), merge: fixture('merge'), report: fixture('report'), trigger: fixture('trigger') },
});
const template = Template.fromStack(stack);
const assembly = app.synth();

type Json = Record<string, unknown>;
const resources = (type: string): [string, Json][] =>
  Object.entries(template.findResources(type)).map(([id, resource]) => [id, resource.Properties as Json]);
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

    it('has a spot and an on-demand EC2 environment on the ECS GPU AMI with the GPU instance types', () => {
      assert.equal(environments.length, 2);
      const types = environments.map(([, props]) => (props.ComputeResources as Json).Type).sort();
      assert.deepEqual(types, ['EC2', 'SPOT']);
      const parameters = template.toJSON().Parameters as Record<string, { Default?: string }>;
      for (const [, props] of environments) {
        const compute = props.ComputeResources as Json;
        assert.deepEqual(compute.InstanceTypes, ['g4dn.xlarge', 'g5.xlarge']);
        assert.equal(compute.MinvCpus, 0);
        assert.equal(compute.MaxvCpus, 64);
        const [ec2Configuration] = compute.Ec2Configuration as Json[];
        assert.equal(ec2Configuration.ImageType, 'ECS_AL2_NVIDIA');
        const amiParameter = (ec2Configuration.ImageIdOverride as { Ref: string }).Ref;
        assert.equal(parameters[amiParameter].Default, '/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id');
        assert.ok(compute.LaunchTemplate !== undefined, 'expected: compute.LaunchTemplate !== undefined');
      }
      const spot = environments.find(([, props]) => (props.ComputeResources as Json).Type === 'SPOT');
      assert.equal((spot?.[1].ComputeResources as Json).AllocationStrategy, 'SPOT_PRICE_CAPACITY_OPTIMIZED');
    });

    it('launches instances with IMDSv2 and an encrypted root volume', () => {
      template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({
          MetadataOptions: Match.objectLike({ HttpTokens: 'required' }),
          BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true, VolumeType: 'gp3' }) })],
        }),
      });
    });

    it('queues on spot first and on-demand second', () => {
      const [[, queue]] = resources('AWS::Batch::JobQueue');
      const order = (queue.ComputeEnvironmentOrder as { Order: number; ComputeEnvironment: unknown }[])
        .sort((a, b) => a.Order - b.Order)
        .map((entry) => JSON.stringify(entry.ComputeEnvironment));
      assert.deepEqual(order, [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.gpu.spotEnvironment), 'ComputeEnvironmentArn'] }),
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.gpu.onDemandEnvironment), 'ComputeEnvironmentArn'] }),
      ]);
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
      const ours = [stack.functions.plan, stack.functions.merge, stack.functions.report, stack.trigger.handler].map(
        (handler) => logicalId(handler.function),
      );
      const functions = resources('AWS::Lambda::Function').filter(([id]) => ours.includes(id));
      assert.equal(functions.length, 4);
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
      // Four handlers, the Batch jobs, the state machine and the VPC flow logs.
      assert.equal(groups.length, 7, `log groups: ${groups.map(([id]) => id).join(', ')}`);
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
      assert.deepEqual(substitutions.JobQueueArn, { 'Fn::GetAtt': [logicalId(stack.gpu.queue), 'JobQueueArn'] });
      assert.deepEqual(substitutions.SearchJobDefinitionArn, { Ref: logicalId(stack.gpu.searchJob) });
      assert.deepEqual(substitutions.FinalizeJobDefinitionArn, { Ref: logicalId(stack.gpu.finalizeJob) });
    });

    it('logs all events and traces with X-Ray', () => {
      assert.deepEqual(stateMachine.TracingConfiguration, { Enabled: true });
      assert.equal((stateMachine.LoggingConfiguration as Json).Level, 'ALL');
      assert.ok(stateMachineId !== undefined, 'expected: stateMachineId !== undefined');
    });
  });

  it('starts runs on registry/<model>/prune.json uploads of this bucket only', () => {
    const rules = resources('AWS::Events::Rule');
    assert.equal(rules.length, 1);
    const [[, rule]] = rules;
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
    assert.ok((target.DeadLetterConfig as Json).Arn !== undefined, 'expected: (target.DeadLetterConfig as Json).Arn !== undefined');
    assert.equal((target.RetryPolicy as Json).MaximumRetryAttempts, 8);
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
      assert.deepEqual(resourceStrings(submit as Statement).sort(), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.gpu.queue), 'JobQueueArn'] }),
        JSON.stringify({ Ref: logicalId(stack.gpu.finalizeJob) }),
        JSON.stringify({ Ref: logicalId(stack.gpu.searchJob) }),
      ].sort());
      const rule = workflow.find((statement) => asArray(statement.Action).includes('events:PutTargets'));
      assert.deepEqual(asArray((rule as Statement).Action).sort(), ['events:DescribeRule', 'events:PutRule', 'events:PutTargets']);
      assert.match(JSON.stringify((rule as Statement).Resource), /rule\/StepFunctionsGetEventsForBatchJobsRule/);
      const invoke = workflow.find((statement) => asArray(statement.Action).includes('lambda:InvokeFunction'));
      assert.equal(asArray((invoke as Statement).Resource).length, 6, 'three functions and their qualifiers');
      for (const statement of workflow) {
        if (asArray(statement.Resource).includes('*')) {
          for (const action of asArray(statement.Action)) {
            assert.match(action, /^(batch:DescribeJobs|xray:|logs:)/, `${action} on *`);
          }
        }
      }
    });

    it('lets only the trigger start executions', () => {
      const starters = statements.filter(([, statement]) => asArray(statement.Action).includes('states:StartExecution'));
      assert.equal(starters.length, 1);
      assert.deepEqual(starters[0][1].Resource, { Ref: logicalId(stack.workflow.stateMachine) });
    });
  });

  it('exports the names a deployment needs', () => {
    const outputs = Object.keys(template.toJSON().Outputs as Json);
    for (const name of ['BucketName', 'StoreLocation', 'StateMachineArn', 'JobQueueArn', 'SearchJobDefinitionArn', 'FinalizeJobDefinitionArn', 'WorkerImageUri']) {
      assert.ok(outputs.includes(name), `missing output ${name}`);
    }
  });

  describe('cdk-nag AwsSolutions', () => {
    it('finds nothing unacknowledged in the stack', () => {
      const report = new AwsSolutionsChecks(app).validateScope(stack);
      const findings = report.violations.map(
        (violation) => `${violation.severity} ${violation.ruleName}: ${violation.violatingResources.map((r) => r.constructPath).join(', ')}`,
      );
      assert.deepEqual(findings, []);
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
