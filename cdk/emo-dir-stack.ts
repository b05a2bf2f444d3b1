/**
 * The emo-dir stack reads like the list of the system's parts (DESIGN §3 "Infrastructure"):
 * network, data bucket, GPU Batch, pipeline Lambdas, the state machine, the registry trigger and,
 * when model package groups are named, the SageMaker Model Registry trigger.
 * It is environment-agnostic (no account/region lookups), so `cdk synth` works offline.
 */
import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { DataBucket } from './constructs/bucket.ts';
import { GpuBatch, type CapacityMode, type JobSizing } from './constructs/batch.ts';
import { PipelineFunctions } from './constructs/functions.ts';
import { ModelRegistry, checkModelRegistrySettings } from './constructs/model-registry.ts';
import type { ModelApprovalStatus } from '../src/schema/model-registry.ts';
import type { Duration } from 'aws-cdk-lib';
import { RegistryTrigger } from './constructs/registry-trigger.ts';
import { Workflow } from './constructs/workflow.ts';

/** An existing VPC, given by attributes (a lookup would need credentials at synth time). */
export interface ExistingVpc {
  readonly vpcId: string;
  readonly availabilityZones: readonly string[];
  /** Private subnets with egress (Batch instances pull the image and reach S3 from there). */
  readonly privateSubnetIds: readonly string[];
}

export interface EmoDirStackProps extends StackProps {
  /** Root of the project: Docker build context of the worker image and esbuild's project root. */
  readonly projectRoot: string;
  /** TypeScript entries of the Lambda handlers (functions/*.ts). */
  readonly functionEntries: {
    readonly plan: string;
    readonly merge: string;
    readonly report: string;
    readonly trigger: string;
    readonly registerModels: string;
    readonly modelPackageTrigger: string;
  };
  readonly existingVpc?: ExistingVpc;
  readonly instanceTypes?: readonly string[];
  /** Spot, On-Demand, or Spot falling back to On-Demand (default); see constructs/batch.ts. */
  readonly capacity?: CapacityMode;
  /** How long a job waits for Spot capacity before the On-Demand fallback. */
  readonly capacityWait?: Duration;
  /** GPU jobs of one Map at once; sizes the compute environments. Default 16. */
  readonly maxConcurrency?: number;
  readonly maxvCpus?: number;
  readonly encryption?: 'S3_MANAGED' | 'KMS';
  readonly scratchExpirationDays?: number;
  readonly search?: JobSizing;
  readonly finalize?: JobSizing;
  readonly logRetention?: logs.RetentionDays;
  /** Hourly price of one GPU instance, for the report's cost estimate (none when unset). */
  readonly usdPerGpuHour?: number;
  /** SageMaker Model Registry trigger: watched groups (none: no trigger), statuses, output group, artifact buckets. */
  readonly modelRegistry?: {
    readonly modelPackageGroups: readonly string[];
    readonly approvalStatuses?: readonly ModelApprovalStatus[];
    readonly outputModelPackageGroup?: string;
    readonly modelArtifactBuckets?: readonly string[];
  };
}

export class EmoDirStack extends Stack {
  readonly data: DataBucket;
  readonly gpu: GpuBatch;
  readonly functions: PipelineFunctions;
  readonly workflow: Workflow;
  readonly trigger: RegistryTrigger;
  readonly modelRegistry?: ModelRegistry;

  constructor(scope: Construct, id: string, props: EmoDirStackProps) {
    super(scope, id, props);
    const modelRegistry = props.modelRegistry !== undefined && props.modelRegistry.modelPackageGroups.length > 0 ? props.modelRegistry : undefined;
    if (modelRegistry !== undefined) checkModelRegistrySettings(modelRegistry, this.stackName);
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;

    this.data = new DataBucket(this, 'Data', {
      encryption: props.encryption,
      scratchExpirationDays: props.scratchExpirationDays,
    });

    const vpc = props.existingVpc === undefined ? this.#newVpc(logRetention) : ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: props.existingVpc.vpcId,
      availabilityZones: [...props.existingVpc.availabilityZones],
      privateSubnetIds: [...props.existingVpc.privateSubnetIds],
    });

    this.gpu = new GpuBatch(this, 'Gpu', {
      vpc,
      data: this.data,
      projectRoot: props.projectRoot,
      instanceTypes: props.instanceTypes,
      capacity: props.capacity,
      capacityWait: props.capacityWait,
      maxConcurrency: props.maxConcurrency,
      maxvCpus: props.maxvCpus,
      search: props.search,
      finalize: props.finalize,
      logRetention,
    });

    this.functions = new PipelineFunctions(this, 'Functions', {
      entries: props.functionEntries,
      projectRoot: props.projectRoot,
      data: this.data,
      logRetention,
      usdPerGpuHour: props.usdPerGpuHour,
    });

    this.workflow = new Workflow(this, 'Workflow', {
      plan: this.functions.plan.function,
      merge: this.functions.merge.function,
      report: this.functions.report.function,
      registerModels: this.functions.registerModels.function,
      queue: this.gpu.queue,
      fallbackQueue: this.gpu.fallbackQueue,
      searchJob: this.gpu.searchJob,
      finalizeJob: this.gpu.finalizeJob,
      searchJobName: this.gpu.searchJobName,
      finalizeJobName: this.gpu.finalizeJobName,
      defaultMaxConcurrency: props.maxConcurrency,
      logRetention,
    });

    this.trigger = new RegistryTrigger(this, 'Registry', {
      entry: props.functionEntries.trigger,
      projectRoot: props.projectRoot,
      data: this.data,
      stateMachine: this.workflow.stateMachine,
      logRetention,
    });

    if (modelRegistry !== undefined) {
      this.modelRegistry = new ModelRegistry(this, 'ModelRegistry', {
        ...modelRegistry,
        entry: props.functionEntries.modelPackageTrigger,
        projectRoot: props.projectRoot,
        data: this.data,
        stateMachine: this.workflow.stateMachine,
        registerModels: this.functions.registerModels,
        deadLetterQueue: this.trigger.deadLetterQueue,
        logRetention,
      });
      new CfnOutput(this, 'PrunedModelPackageGroup', { value: this.modelRegistry.outputGroupName, description: 'Where pruned models are registered' });
    }

    new CfnOutput(this, 'BucketName', { value: this.data.bucket.bucketName, description: 'Data bucket (registry/, datasets/, runs/, scratch/)' });
    new CfnOutput(this, 'StoreLocation', { value: `s3://${this.data.bucket.bucketName}`, description: 'Store location for emo-dir --store' });
    new CfnOutput(this, 'StateMachineArn', { value: this.workflow.stateMachine.stateMachineArn });
    new CfnOutput(this, 'JobQueueArn', { value: this.gpu.queue.jobQueueArn });
    if (this.gpu.fallbackQueue !== undefined) {
      new CfnOutput(this, 'OnDemandJobQueueArn', { value: this.gpu.fallbackQueue.jobQueueArn, description: 'Jobs cancelled for lack of Spot capacity run here' });
    }
    new CfnOutput(this, 'SearchJobDefinitionArn', { value: this.gpu.searchJob.jobDefinitionArn });
    new CfnOutput(this, 'FinalizeJobDefinitionArn', { value: this.gpu.finalizeJob.jobDefinitionArn });
    new CfnOutput(this, 'WorkerImageUri', { value: this.gpu.image.imageUri });
    new CfnOutput(this, 'TriggerDeadLetterQueueUrl', {
      value: this.trigger.deadLetterQueue.queueUrl,
      description: 'Trigger events that started no run (undeliverable, or failed after Lambda retries)',
    });
  }

  #newVpc(logRetention: logs.RetentionDays): ec2.Vpc {
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      // One NAT gateway: the instances only pull images and call AWS APIs; S3 goes through the
      // gateway endpoint below and costs nothing.
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    const flowLogs = new logs.LogGroup(this, 'VpcFlowLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    return vpc;
  }
}
