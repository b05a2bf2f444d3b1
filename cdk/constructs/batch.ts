/**
 * The GPU side of the pipeline (DESIGN §3 steps 2 and 4): EC2 compute environments on the ECS
 * AL2023 NVIDIA AMI, their job queues, and the search and finalize job definitions running the
 * worker image built from containers/Dockerfile.
 *
 * Capacity (`capacity`): Batch sends a job to a queue's next compute environment only when the
 * first cannot fit it, never because EC2 has no Spot capacity or the Spot vCPU quota is 0: such a
 * job would wait in RUNNABLE until the state machine's 7-day task timeout. So each queue has one
 * kind of capacity and `jobStateTimeLimitActions` that cancel a job blocked at its head:
 * - `spot-then-on-demand` (default): the primary queue is Spot only and cancels a job that waited
 *   `capacityWait` for capacity; the state machine then submits it again to the On-Demand queue
 *   (statemachine/emo-dir.asl.json, `*CapacityCheck`), where it resumes from its checkpoints.
 * - `spot` or `on-demand`: one queue of that kind, no fallback.
 * The last queue a job can reach cancels after 24 h without capacity (the longest Batch allows),
 * so a run fails with the reason instead of waiting a week; every queue cancels at once-and-for-all
 * misconfigurations (no instance type fits the job, maxvCpus too small) after 10 minutes.
 * Batch cancels only the job at the head of a queue, so with no Spot capacity at all the jobs of
 * a Map fall over one `capacityWait` after another: a user without Spot quota should deploy
 * `on-demand`.
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
import { DEFAULT_MAX_CONCURRENCY } from '../../src/schema/messages.ts';
import type { DataBucket } from './bucket.ts';

/** Which EC2 capacity the GPU jobs run on (`-c emo-dir:capacity=...`, see the module comment). */
export const CAPACITY_MODES = ['spot', 'on-demand', 'spot-then-on-demand'] as const;
export type CapacityMode = (typeof CAPACITY_MODES)[number];
export const DEFAULT_CAPACITY: CapacityMode = 'spot-then-on-demand';

/** Default time a job waits for Spot capacity before it falls back to On-Demand. */
export const DEFAULT_CAPACITY_WAIT = Duration.minutes(15);
/** What Batch allows for a time-limit action: 10 minutes to 24 hours. */
export const MIN_CAPACITY_WAIT = Duration.minutes(10);
export const MAX_CAPACITY_WAIT = Duration.hours(24);

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
  /** Spot, On-Demand, or Spot with an On-Demand fallback (default). */
  readonly capacity?: CapacityMode;
  /** How long a job waits for Spot capacity before the On-Demand fallback (spot-then-on-demand). Default 15 min. */
  readonly capacityWait?: Duration;
  /**
   * GPU jobs of one Map at once (the state machine's default maxConcurrency). Each compute
   * environment gets room for exactly that many: maxvCpus = maxConcurrency x vCPUs per job.
   * Default 16.
   */
  readonly maxConcurrency?: number;
  /** Overrides the vCPU cap derived from maxConcurrency. */
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
  readonly capacity: CapacityMode;
  readonly spotEnvironment?: batch.ManagedEc2EcsComputeEnvironment;
  readonly onDemandEnvironment?: batch.ManagedEc2EcsComputeEnvironment;
  /** Where every job is submitted first. */
  readonly queue: batch.JobQueue;
  /** The On-Demand queue a capacity-cancelled job is submitted to again (spot-then-on-demand only). */
  readonly fallbackQueue?: batch.JobQueue;
  readonly searchJob: batch.EcsJobDefinition;
  readonly finalizeJob: batch.EcsJobDefinition;
  /** Job definition names; a redeploy registers a new revision of each (`<name>:<revision>`). */
  readonly searchJobName: string;
  readonly finalizeJobName: string;
  readonly maxvCpus: number;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GpuBatchProps) {
    super(scope, id);
    const dockerfile = props.dockerfile ?? 'containers/Dockerfile';
    this.capacity = props.capacity ?? DEFAULT_CAPACITY;
    if (!CAPACITY_MODES.includes(this.capacity)) {
      throw new Error(`capacity must be one of ${CAPACITY_MODES.join(', ')}, not ${String(this.capacity)}`);
    }
    const capacityWait = props.capacityWait ?? DEFAULT_CAPACITY_WAIT;
    if (capacityWait.toSeconds() < MIN_CAPACITY_WAIT.toSeconds() || capacityWait.toSeconds() > MAX_CAPACITY_WAIT.toSeconds()) {
      throw new Error(`capacityWait must be from 10 minutes to 24 hours (what Batch allows), not ${capacityWait.toHumanString()}`);
    }
    const search: Required<JobSizing> = { vcpus: 4, memoryGiB: 14, timeout: Duration.hours(24), attempts: 5, ...props.search };
    const finalize: Required<JobSizing> = { vcpus: 4, memoryGiB: 14, timeout: Duration.hours(12), attempts: 5, ...props.finalize };
    const maxConcurrency = props.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) throw new Error(`maxConcurrency must be a positive integer, not ${maxConcurrency}`);
    // Room for maxConcurrency jobs of the larger kind at once, and no more (a cost guard).
    this.maxvCpus = props.maxvCpus ?? maxConcurrency * Math.max(search.vcpus, finalize.vcpus);

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
        // Amazon Linux 2 reached end of life; AL2023's NVIDIA AMI serves every GPU family Batch
        // offers here (g4dn T4, g5 A10G, g6 L4, p5 H100; not p3/g3).
        images: [
          {
            image: ecs.EcsOptimizedImage.amazonLinux2023(ecs.AmiHardwareType.GPU),
            imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA,
          },
        ],
        minvCpus: 0, // Nothing runs, nothing is billed.
        maxvCpus: this.maxvCpus,
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
    if (this.capacity !== 'on-demand') this.spotEnvironment = environment('SpotGpu', true);
    if (this.capacity !== 'spot') this.onDemandEnvironment = environment('OnDemandGpu', false);

    const queue = (name: string, computeEnvironment: batch.ManagedEc2EcsComputeEnvironment, capacityWaitOfQueue: Duration): batch.JobQueue =>
      new batch.JobQueue(this, name, {
        priority: 1,
        computeEnvironments: [{ computeEnvironment, order: 1 }],
        jobStateTimeLimitActions: [
          { action: batch.JobStateTimeLimitActionsAction.CANCEL, state: batch.JobStateTimeLimitActionsState.RUNNABLE, maxTime: capacityWaitOfQueue, reason: batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY },
          // Waiting cannot fix these: fail the run with the reason instead.
          { action: batch.JobStateTimeLimitActionsAction.CANCEL, state: batch.JobStateTimeLimitActionsState.RUNNABLE, maxTime: MIN_CAPACITY_WAIT, reason: batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE },
          { action: batch.JobStateTimeLimitActionsAction.CANCEL, state: batch.JobStateTimeLimitActionsState.RUNNABLE, maxTime: MIN_CAPACITY_WAIT, reason: batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT },
        ],
      });
    if (this.spotEnvironment !== undefined && this.onDemandEnvironment !== undefined) {
      this.queue = queue('Queue', this.spotEnvironment, capacityWait);
      this.fallbackQueue = queue('OnDemandQueue', this.onDemandEnvironment, MAX_CAPACITY_WAIT);
    } else {
      this.queue = queue('Queue', (this.spotEnvironment ?? this.onDemandEnvironment) as batch.ManagedEc2EcsComputeEnvironment, MAX_CAPACITY_WAIT);
    }

    this.logGroup = new logs.LogGroup(this, 'JobLogs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const stackName = Stack.of(this).stackName;
    this.searchJobName = `${stackName}-search`;
    this.finalizeJobName = `${stackName}-finalize`;
    this.searchJob = this.#jobDefinition('SearchJob', 'search', this.searchJobName, props, search);
    this.finalizeJob = this.#jobDefinition('FinalizeJob', 'finalize', this.finalizeJobName, props, finalize);
  }

  #jobDefinition(id: string, stage: 'search' | 'finalize', name: string, props: GpuBatchProps, sizing: Required<JobSizing>): batch.EcsJobDefinition {
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
    const jobDefinition = new batch.EcsJobDefinition(this, id, {
      jobDefinitionName: name,
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
    // A redeploy registers a new revision; executions in flight still submit the revision they
    // started with, so it must stay ACTIVE (CloudFormation deregisters it by default).
    (jobDefinition.node.defaultChild as batch.CfnJobDefinition).resourceRetentionPolicy = { skipDeregisterOnUpdate: true };
    return jobDefinition;
  }
}
