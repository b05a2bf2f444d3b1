/**
 * What the cloud CLI commands (submit, status, report) share: their connection flags, the
 * environment fallbacks, and building the store and Step Functions client from them.
 *
 *   --bucket B [--prefix P]   the pipeline's bucket (env EMO_DIR_BUCKET, EMO_DIR_PREFIX), or
 *   --store LOCATION          any store location (s3://bucket/prefix, file:///dir, a directory)
 *   --state-machine ARN       the deployed state machine (env EMO_DIR_STATE_MACHINE_ARN)
 *   --region R                default: AWS_REGION / the SDK's chain, else the ARN's region
 *   --endpoint URL            LocalStack or another S3/Step Functions endpoint
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import type { ObjectStore } from '../store/object-store.ts';
import { openStore } from '../store/index.ts';
import { parseStateMachineArn } from './names.ts';

/** A command-line mistake: the command prints it with its usage and exits with 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `util.parseArgs` option definitions of the connection flags. */
export const CLOUD_ARG_OPTIONS = {
  bucket: { type: 'string' },
  prefix: { type: 'string' },
  store: { type: 'string' },
  'state-machine': { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
} as const;

export const CLOUD_USAGE = `  --bucket B             the pipeline's S3 bucket (env EMO_DIR_BUCKET)
  --prefix P             key prefix inside the bucket (env EMO_DIR_PREFIX; default none)
  --store LOCATION       instead of --bucket/--prefix: s3://bucket/prefix, file:///dir or a directory
  --state-machine ARN    the deployed state machine (env EMO_DIR_STATE_MACHINE_ARN)
  --region R             AWS region (default: AWS_REGION, else the state machine ARN's region)
  --endpoint URL         custom endpoint for S3 and Step Functions (e.g. LocalStack)`;

export interface CloudArgValues {
  readonly bucket?: string;
  readonly prefix?: string;
  readonly store?: string;
  readonly 'state-machine'?: string;
  readonly region?: string;
  readonly endpoint?: string;
}

export interface CloudSettings {
  readonly storeLocation: string;
  readonly stateMachineArn?: string;
  readonly region?: string;
  readonly endpoint?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** Flags, then environment; UsageError names the flag and variable of anything missing. */
export function cloudSettings(
  values: CloudArgValues,
  env: Env,
  require: { stateMachine: boolean },
): CloudSettings {
  const storeFlag = nonEmpty(values.store);
  const bucket = nonEmpty(values.bucket) ?? (storeFlag === undefined ? nonEmpty(env.EMO_DIR_BUCKET) : undefined);
  if (storeFlag !== undefined && (nonEmpty(values.bucket) !== undefined || nonEmpty(values.prefix) !== undefined)) {
    throw new UsageError('give either --store or --bucket/--prefix, not both');
  }
  let storeLocation: string;
  if (storeFlag !== undefined) {
    storeLocation = storeFlag;
  } else if (bucket !== undefined) {
    if (bucket.includes('/') || bucket.startsWith('s3:')) {
      throw new UsageError(`--bucket takes a bucket name, not ${JSON.stringify(bucket)} (use --prefix for a key prefix)`);
    }
    const prefix = (nonEmpty(values.prefix) ?? nonEmpty(env.EMO_DIR_PREFIX) ?? '').replace(/^\/+|\/+$/g, '');
    storeLocation = prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`;
  } else {
    throw new UsageError('no bucket: give --bucket B (or set EMO_DIR_BUCKET), or --store LOCATION');
  }
  const stateMachineArn = nonEmpty(values['state-machine']) ?? nonEmpty(env.EMO_DIR_STATE_MACHINE_ARN);
  if (require.stateMachine && stateMachineArn === undefined) {
    throw new UsageError('no state machine: give --state-machine ARN (or set EMO_DIR_STATE_MACHINE_ARN)');
  }
  if (stateMachineArn !== undefined) {
    try {
      parseStateMachineArn(stateMachineArn);
    } catch (error) {
      throw new UsageError(`--state-machine: ${(error as Error).message}`);
    }
  }
  const region =
    nonEmpty(values.region) ??
    nonEmpty(env.AWS_REGION) ??
    nonEmpty(env.AWS_DEFAULT_REGION) ??
    (stateMachineArn === undefined ? undefined : parseStateMachineArn(stateMachineArn).region);
  return {
    storeLocation,
    ...(stateMachineArn === undefined ? {} : { stateMachineArn }),
    ...(region === undefined ? {} : { region }),
    ...(nonEmpty(values.endpoint) === undefined ? {} : { endpoint: nonEmpty(values.endpoint) }),
  };
}

export interface CloudConnection {
  readonly store: ObjectStore;
  readonly sfn: SFNClient;
}

/** The store and Step Functions client for the settings (no request is sent here). */
export function connectCloud(settings: CloudSettings): CloudConnection {
  const store = openStore(settings.storeLocation, {
    s3: {
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.endpoint === undefined ? undefined : true,
    },
  });
  const sfn = new SFNClient({
    region: settings.region,
    endpoint: settings.endpoint,
    maxAttempts: 6,
    retryMode: 'standard',
  });
  return { store, sfn };
}
