/**
 * The pipeline's Lambda handlers (DESIGN §3 steps 1, 3, 5): Plan, Merge, Report, and
 * RegisterModels (runs from a SageMaker model package register their pruned models back). Each is a
 * NodejsFunction bundled by the local esbuild (no Docker at synth), with its own role, its own
 * log group with retention, X-Ray tracing, and S3 access by key prefix only.
 */
import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { acknowledge } from '../nag.ts';
import { Construct } from 'constructs';
import { DATASETS_PREFIX, REGISTRY_PREFIX, RUNS_PREFIX, SCRATCH_PREFIX } from '../../src/store/keys.ts';
import type { DataBucket, PrefixAccess } from './bucket.ts';

/** Node 22 LTS, as in the worker image; nodejs20.x is deprecated and fails synth validation. */
export const HANDLER_RUNTIME = lambda.Runtime.NODEJS_22_X;

export interface HandlerProps {
  /** The handler's TypeScript entry (exports `handler`). */
  readonly entry: string;
  readonly projectRoot: string;
  readonly data: DataBucket;
  readonly access: PrefixAccess;
  readonly description: string;
  readonly timeout?: Duration;
  readonly memorySize?: number;
  readonly environment?: Record<string, string>;
  readonly logRetention?: logs.RetentionDays;
}

/** One pipeline handler; shared by this construct and the registry trigger. */
export class PipelineHandler extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: HandlerProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An explicit role instead of the default one: the default attaches the
    // AWSLambdaBasicExecutionRole managed policy, which may write to any log group.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.logGroup.grantWrite(this.role);
    props.data.grantPrefixes(this.role, props.access);

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      runtime: HANDLER_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      description: props.description,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      timeout: props.timeout ?? Duration.minutes(5),
      memorySize: props.memorySize ?? 1024,
      projectRoot: props.projectRoot,
      depsLockFilePath: join(props.projectRoot, 'package-lock.json'),
      environment: {
        EMO_DIR_STORE: `s3://${props.data.bucket.bucketName}`,
        POWERTOOLS_SERVICE_NAME: 'emo-dir',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        platform: 'node',
        mainFields: ['module', 'main'],
        // ESM bundles have no `require`; some dependencies still call it.
        banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        minify: true,
        sourceMap: true,
        // Bundle the SDK from the lockfile: S3Store relies on a recent client (IfNoneMatch), not
        // on whichever SDK version the Lambda runtime happens to ship.
        bundleAwsSDK: true,
      },
    });
    acknowledge(this.role, 'AwsSolutions-IAM5', 'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.', [
      'Resource::*',
    ]);
    acknowledge(
      this.function,
      'AwsSolutions-L1',
      'Node.js 22 LTS on purpose: the worker image and the library target the same Node major (DESIGN §3).',
    );
  }
}

export interface PipelineFunctionsProps {
  readonly entries: { readonly plan: string; readonly merge: string; readonly report: string; readonly registerModels: string };
  readonly projectRoot: string;
  readonly data: DataBucket;
  readonly logRetention?: logs.RetentionDays;
  /** Hourly price of one GPU instance: the Report function's cost estimate (none when unset). */
  readonly usdPerGpuHour?: number;
}

export class PipelineFunctions extends Construct {
  readonly plan: PipelineHandler;
  readonly merge: PipelineHandler;
  readonly report: PipelineHandler;
  /** Its SageMaker permissions come from the ModelRegistry construct, when the integration is on. */
  readonly registerModels: PipelineHandler;

  constructor(scope: Construct, id: string, props: PipelineFunctionsProps) {
    super(scope, id);
    const common = { projectRoot: props.projectRoot, data: props.data, logRetention: props.logRetention };
    this.plan = new PipelineHandler(this, 'Plan', {
      ...common,
      entry: props.entries.plan,
      description: 'emo-dir Plan: validate the spec, analyse and divide the model, write the manifest',
      // Loads and analyses the model: more memory (and with it CPU) and the full 15 minutes.
      memorySize: 3008,
      timeout: Duration.minutes(15),
      access: { read: [REGISTRY_PREFIX, DATASETS_PREFIX, RUNS_PREFIX], write: [RUNS_PREFIX, SCRATCH_PREFIX] },
    });
    this.merge = new PipelineHandler(this, 'Merge', {
      ...common,
      entry: props.entries.merge,
      description: 'emo-dir Merge: GPIR over the sub-network fronts, one plan per target',
      memorySize: 3008,
      timeout: Duration.minutes(15),
      access: { read: [RUNS_PREFIX, REGISTRY_PREFIX], write: [RUNS_PREFIX] },
    });
    this.report = new PipelineHandler(this, 'Report', {
      ...common,
      entry: props.entries.report,
      description: 'emo-dir Report: report.json, report.html and the run status (also on failure)',
      memorySize: 1024,
      timeout: Duration.minutes(5),
      access: { read: [RUNS_PREFIX], write: [RUNS_PREFIX] },
      ...(props.usdPerGpuHour === undefined ? {} : { environment: { EMO_DIR_USD_PER_GPU_HOUR: String(props.usdPerGpuHour) } }),
    });
    this.registerModels = new PipelineHandler(this, 'RegisterModels', {
      ...common,
      entry: props.entries.registerModels,
      description: 'emo-dir RegisterModels: pruned models of a model-package run become new SageMaker model package versions',
      // Packs each target's model into model.tar.gz in memory.
      memorySize: 3008,
      timeout: Duration.minutes(15),
      // Reads the run's models and metrics; writes the archives, metrics reports and the record.
      access: { read: [RUNS_PREFIX], write: [RUNS_PREFIX] },
    });
  }
}
