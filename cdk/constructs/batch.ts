/**
 * The GPU side of the pipeline (DESIGN §3 steps 2 and 4): EC2 compute environments (spot first,
 * on-demand as overflow) on the ECS GPU AMI, one job queue, and the search and finalize job
 * definitions running the worker image built from containers/Dockerfile.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, IgnoreMode, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { acknowledge } from '../nag.ts';
import { Construct } from 'constructs';
import { DATASETS_PREFIX, REGISTRY_PREFIX, RUNS_PREFIX, SCRATCH_PREFIX } from '../../src/store/keys.ts';
import type { DataBucket } from './bucket.ts';

export interface JobSizing {
  /** vCPUs per job. Default 4 (all of a g4dn.xlarge / g5.xlarge). */
  readonly vcpus?: number;
  /** Memory per job in GiB. Default 14 (a 16 GiB instance minus what ECS reserves). */
  readonly memoryGiB?: number;
  /** Per-attempt timeout. Default 24 h for search, 12 h for finalize. */
  readonly timeout?: Duration;
  /** Attempts including spot reclaims and host failures. Default 5. */
  readonly attempts?: number;
}

export interface GpuBatchProps {
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly data: DataBucket;
  /** Docker build context: the project root (the image needs package.json, src/, containers/). */
  readonly projectRoot: string;
  /** Dockerfile, relative to projectRoot. Default `containers/Dockerfile`. */
  readonly dockerfile?: string;
  /** GPU instance types. Default g4dn.xlarge and g5.xlarge (one GPU each). */
  readonly instanceTypes?: readonly string[];
  /** Upper bound of vCPUs per compute environment (a cost guard). Default 64. */
  readonly maxvCpus?: number;
  /** Root volume of the instances; the CUDA worker image alone is several GiB. Default 100. */
  readonly rootVolumeGiB?: number;
  readonly search?: JobSizing;
  readonly finalize?: JobSizing;
  readonly logRetention?: logs.RetentionDays;
}

/** Exit code with which the worker asks for another attempt (EX_TEMPFAIL, e.g. S3 unavailable). */
export const WORKER_RETRY_EXIT_CODE = 75;

/**
 * The build-context excludes, read from the Dockerfile's own ignore file (the BuildKit convention
 * `<Dockerfile>.dockerignore`), so `docker build -f containers/Dockerfile .` and the CDK asset
 * hash and copy the same files.
 */
export function dockerIgnorePatterns(projectRoot: string, dockerfile: string): string[] {
  return readFileSync(join(projectRoot, `${dockerfile}.dockerignore`), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

export class GpuBatch extends Construct {
  readonly image: ecrAssets.DockerImageAsset;
  readonly spotEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  readonly onDemandEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  readonly queue: batch.JobQueue;
  readonly searchJob: batch.EcsJobDefinition;
  readonly finalizeJob: batch.EcsJobDefinition;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GpuBatchProps) {
    super(scope, id);
    const dockerfile = props.dockerfile ?? 'containers/Dockerfile';

    // Synthesising only hashes and copies the build context; Docker is needed at deploy time.
    this.image = new ecrAssets.DockerImageAsset(this, 'WorkerImage', {
      directory: props.projectRoot,
      file: dockerfile,
      platform: ecrAssets.Platform.LINUX_AMD64,
      exclude: dockerIgnorePatterns(props.projectRoot, dockerfile),
      ignoreMode: IgnoreMode.DOCKER,
    });

    const launchTemplate = new ec2.LaunchTemplate(this, 'GpuLaunchTemplate', {
      requireImdsv2: true,
      // Containers on the bridge network are one hop further from the metadata service.
      httpPutResponseHopLimit: 2,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(props.rootVolumeGiB ?? 100, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    const instanceTypes = (props.instanceTypes ?? ['g4dn.xlarge', 'g5.xlarge']).map((name) => new ec2.InstanceType(name));
    const environment = (name: string, spot: boolean): batch.ManagedEc2EcsComputeEnvironment => {
      const computeEnvironment = new batch.ManagedEc2EcsComputeEnvironment(this, name, {
        vpc: props.vpc,
        vpcSubnets: props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        spot,
        // Spot: the price-capacity strategy picks pools least likely to be reclaimed.
        allocationStrategy: spot
          ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
          : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
        instanceTypes,
        useOptimalInstanceClasses: false,
        images: [
          {
            image: ecs.EcsOptimizedImage.amazonLinux2(ecs.AmiHardwareType.GPU),
            imageType: batch.EcsMachineImageType.ECS_AL2_NVIDIA,
          },
        ],
        minvCpus: 0, // Nothing runs, nothing is billed.
        maxvCpus: props.maxvCpus ?? 64,
        launchTemplate,
        updateToLatestImageVersion: true,
        replaceComputeEnvironment: false,
      });
      acknowledge(
        computeEnvironment,
        'AwsSolutions-IAM4',
        'AmazonEC2ContainerServiceforEC2Role is the documented instance role of Batch on ECS; it holds only the ECS agent permissions.',
        ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role'],
      );
      return computeEnvironment;
    };
    this.spotEnvironment = environment('SpotGpu', true);
    this.onDemandEnvironment = environment('OnDemandGpu', false);

    // Spot first; on-demand takes the jobs the spot environment has no room for.
    this.queue = new batch.JobQueue(this, 'Queue', {
      priority: 1,
      computeEnvironments: [
        { computeEnvironment: this.spotEnvironment, order: 1 },
        { computeEnvironment: this.onDemandEnvironment, order: 2 },
      ],
    });

    this.logGroup = new logs.LogGroup(this, 'JobLogs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.searchJob = this.#jobDefinition('SearchJob', 'search', props, {
      vcpus: 4,
      memoryGiB: 14,
      timeout: Duration.hours(24),
      attempts: 5,
      ...props.search,
    });
    this.finalizeJob = this.#jobDefinition('FinalizeJob', 'finalize', props, {
      vcpus: 4,
      memoryGiB: 14,
      timeout: Duration.hours(12),
      attempts: 5,
      ...props.finalize,
    });
  }

  #jobDefinition(id: string, stage: 'search' | 'finalize', props: GpuBatchProps, sizing: Required<JobSizing>): batch.EcsJobDefinition {
    const jobRole = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: `emo-dir ${stage} worker: store access by key prefix`,
    });
    const container = new batch.EcsEc2ContainerDefinition(this, `${id}Container`, {
      jobRole,
      image: ecs.ContainerImage.fromDockerImageAsset(this.image),
      cpu: sizing.vcpus,
      memory: Size.gibibytes(sizing.memoryGiB),
      gpu: 1,
      // The state machine overrides the command with `<stage> --run-id <id> --subnet|--target <x>`.
      command: [stage, '--help'],
      environment: {
        EMO_DIR_STORE: `s3://${props.data.bucket.bucketName}`,
        EMO_DIR_STAGE: stage,
        AWS_REGION: Stack.of(this).region,
      },
      logging: ecs.LogDriver.awsLogs({ streamPrefix: stage, logGroup: this.logGroup }),
      user: '10001',
    });
    // What the worker may touch: read inputs and results, write results and scratch, and delete
    // only scratch (superseded checkpoints). Never registry/ or datasets/ writes.
    props.data.grantPrefixes(jobRole, {
      read: [RUNS_PREFIX, SCRATCH_PREFIX, REGISTRY_PREFIX, DATASETS_PREFIX],
      write: [RUNS_PREFIX, SCRATCH_PREFIX],
      delete: [SCRATCH_PREFIX],
    });
    acknowledge(
      container,
      'AwsSolutions-IAM5',
      'The execution role pulls the worker image: ecr:GetAuthorizationToken supports no resource-level permissions.',
      ['Resource::*'],
    );
    return new batch.EcsJobDefinition(this, id, {
      container,
      timeout: sizing.timeout,
      retryAttempts: sizing.attempts,
      // Evaluated in order; the first match decides. Infrastructure failures are retried (the job
      // resumes from its last checkpoint); the application's own failures are not, because the
      // same input would fail the same way, except when the worker asks for a retry explicitly.
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onExitCode: String(WORKER_RETRY_EXIT_CODE) })),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
      propagateTags: true,
    });
  }
}
