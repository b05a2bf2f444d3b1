/**
 * The SageMaker Model Registry trigger (DESIGN §3 "Registry triggers"), on when the deployment
 * names the model package groups to watch (`-c emo-dir:modelPackageGroups=a,b`):
 * - an EventBridge rule on "SageMaker Model Package State Change" of those groups with a
 *   configured approval status (default Approved) invokes the model-package trigger Lambda, which
 *   extracts the package's model.tar.gz into the run's prefix and starts one run per package
 *   version (src/cloud/model-package-run.ts);
 * - the run's RegisterModels step registers each pruned model as a new version of the output
 *   group (created here, kept when the stack is deleted) with PendingManualApproval status.
 * Permissions are per resource: DescribeModelPackage on the watched groups' versions, GetObject
 * on the model artifact buckets (default: SageMaker's default bucket of the account and region),
 * CreateModelPackage on the output group only.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { MODEL_PACKAGE_GROUP_PATTERN, type ModelApprovalStatus } from '../../src/schema/model-registry.ts';
import { RUNS_PREFIX } from '../../src/store/keys.ts';
import { acknowledge } from '../nag.ts';
import type { DataBucket } from './bucket.ts';
import { PipelineHandler } from './functions.ts';
import { deliverFailures } from './registry-trigger.ts';

export interface ModelRegistryProps {
  /** functions/model-package-trigger.ts. */
  readonly entry: string;
  readonly projectRoot: string;
  readonly data: DataBucket;
  readonly stateMachine: sfn.IStateMachine;
  /** The RegisterModels function of the pipeline (gets its SageMaker permission and output group here). */
  readonly registerModels: PipelineHandler;
  /** Model package groups whose versions start runs. */
  readonly modelPackageGroups: readonly string[];
  /** Approval statuses that start a run. Default Approved. */
  readonly approvalStatuses?: readonly ModelApprovalStatus[];
  /** Where pruned models are registered. Default `<stack name>-pruned`. */
  readonly outputModelPackageGroup?: string;
  /** Buckets the packages' model.tar.gz may live in. Default `sagemaker-<region>-<account>`. */
  readonly modelArtifactBuckets?: readonly string[];
  /** Undeliverable events and failed invocations (shared with the S3 registry trigger). */
  readonly deadLetterQueue: sqs.IQueue;
  readonly logRetention?: logs.RetentionDays;
}

export type ModelRegistrySettings = Pick<ModelRegistryProps, 'modelPackageGroups' | 'outputModelPackageGroup'>;

/**
 * Throws unless the settings can work; returns the output group's name. The stack calls it before
 * it builds anything, so a bad `-c` value fails at once.
 */
export function checkModelRegistrySettings(settings: ModelRegistrySettings, stackName: string): string {
  const output = settings.outputModelPackageGroup ?? `${stackName}-pruned`;
  for (const group of [...settings.modelPackageGroups, output]) {
    if (!MODEL_PACKAGE_GROUP_PATTERN.test(group)) throw new Error(`invalid model package group name ${JSON.stringify(group)}: 1-63 letters, digits and hyphens`);
  }
  if (settings.modelPackageGroups.length === 0) throw new Error('the model registry trigger needs at least one model package group to watch');
  if (settings.modelPackageGroups.includes(output)) {
    throw new Error(`the output group ${output} is also watched: every registered pruned model would start another run`);
  }
  return output;
}

/** SageMaker ARNs carry resource names in lower case; IAM compares them as written. */
function lower(name: string): string {
  return name.toLowerCase();
}

export class ModelRegistry extends Construct {
  readonly handler: PipelineHandler;
  readonly rule: events.Rule;
  readonly outputGroup: sagemaker.CfnModelPackageGroup;
  readonly outputGroupName: string;

  constructor(scope: Construct, id: string, props: ModelRegistryProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const groups = [...props.modelPackageGroups];
    const approvalStatuses = [...(props.approvalStatuses ?? ['Approved'])];
    this.outputGroupName = checkModelRegistrySettings(props, stack.stackName);

    this.outputGroup = new sagemaker.CfnModelPackageGroup(this, 'PrunedModels', {
      modelPackageGroupName: this.outputGroupName,
      modelPackageGroupDescription: `emo-dir: pruned models of ${groups.join(', ')}, registered for manual approval`,
    });
    // Deleting the stack must not delete registered models (a group with versions cannot be deleted anyway).
    this.outputGroup.applyRemovalPolicy(RemovalPolicy.RETAIN);

    const modelPackageArns = (group: string): string[] => [
      stack.formatArn({ service: 'sagemaker', resource: 'model-package', resourceName: `${lower(group)}/*` }),
    ];
    const buckets = props.modelArtifactBuckets ?? [`sagemaker-${stack.region}-${stack.account}`];

    this.handler = new PipelineHandler(this, 'Trigger', {
      entry: props.entry,
      projectRoot: props.projectRoot,
      data: props.data,
      description: 'emo-dir ModelPackageTrigger: an approved SageMaker model package version becomes a run',
      // Extracts model.tar.gz into the store, one file in memory at a time.
      memorySize: 3008,
      timeout: Duration.minutes(15),
      // Writes runs/<id>/model/, spec.json, model-package.json, status.json.
      access: { read: [RUNS_PREFIX], write: [RUNS_PREFIX] },
      environment: {
        STATE_MACHINE_ARN: props.stateMachine.stateMachineArn,
        EMO_DIR_MODEL_PACKAGE_GROUPS: groups.join(','),
        EMO_DIR_APPROVAL_STATUSES: approvalStatuses.join(','),
      },
      logRetention: props.logRetention,
    });
    props.stateMachine.grantStartExecution(this.handler.function);
    this.handler.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:DescribeModelPackage'], resources: groups.flatMap(modelPackageArns) }),
    );
    this.handler.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: buckets.map((bucket) => `arn:${stack.partition}:s3:::${bucket}/*`) }),
    );
    acknowledge(
      this.handler.role,
      'AwsSolutions-IAM5',
      'Versions of the watched model package groups (<group>/*) and objects of the model artifact buckets: the trigger reads the package that changed and its model.tar.gz.',
      [
        ...groups.map((group) => `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/${lower(group)}/*`),
        ...buckets.map((bucket) => `Resource::arn:<AWS::Partition>:s3:::${bucket.replace(stack.region, '<AWS::Region>').replace(stack.account, '<AWS::AccountId>')}/*`),
      ],
    );
    deliverFailures(this.handler.function, props.deadLetterQueue);

    this.rule = new events.Rule(this, 'ModelPackageStateChange', {
      description: `Start an emo-dir run when a version of ${groups.join(', ')} becomes ${approvalStatuses.join(' or ')}`,
      eventPattern: {
        source: ['aws.sagemaker'],
        detailType: ['SageMaker Model Package State Change'],
        detail: { ModelPackageGroupName: groups, ModelApprovalStatus: approvalStatuses },
      },
      targets: [
        new targets.LambdaFunction(this.handler.function, {
          retryAttempts: 8,
          maxEventAge: Duration.hours(6),
          deadLetterQueue: props.deadLetterQueue,
        }),
      ],
    });

    const register = props.registerModels;
    register.function.addEnvironment('EMO_DIR_MODEL_PACKAGE_GROUP', this.outputGroupName);
    register.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:CreateModelPackage'],
        resources: [
          stack.formatArn({ service: 'sagemaker', resource: 'model-package-group', resourceName: lower(this.outputGroupName) }),
          ...modelPackageArns(this.outputGroupName),
        ],
      }),
    );
    acknowledge(register.role, 'AwsSolutions-IAM5', 'New versions of the one output model package group (<group>/*): version numbers are assigned by SageMaker.', [
      `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/${lower(this.outputGroupName)}/*`,
    ]);
  }
}
