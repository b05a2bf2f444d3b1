/**
 * The one bucket of a deployment (DESIGN §3): encrypted, versioned, never public, TLS only, with
 * server access logs, EventBridge notifications (registry uploads start runs) and lifecycle
 * rules that expire the disposable intermediates (checkpoints, cached features).
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { acknowledge, arnToken } from '../nag.ts';
import { Construct, type IConstruct } from 'constructs';
import { SCRATCH_PREFIX } from '../../src/store/keys.ts';

export interface DataBucketProps {
  /** 'S3_MANAGED' (SSE-S3, default) or 'KMS' (a customer managed key with rotation). */
  readonly encryption?: 'S3_MANAGED' | 'KMS';
  /** Days after which search checkpoints and cached features (under `scratch/`) expire. Default 30. */
  readonly scratchExpirationDays?: number;
  /** Days after which overwritten or deleted object versions expire. Default 30. */
  readonly noncurrentVersionExpirationDays?: number;
  /** Default RETAIN: a stack deletion must not delete pruned models and reports. */
  readonly removalPolicy?: RemovalPolicy;
}

/** Which key prefixes (from src/store/keys.ts) a principal may read, write or delete. */
export interface PrefixAccess {
  readonly read?: readonly string[];
  readonly write?: readonly string[];
  readonly delete?: readonly string[];
}

export class DataBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogs: s3.Bucket;
  readonly key?: kms.Key;

  constructor(scope: Construct, id: string, props: DataBucketProps = {}) {
    super(scope, id);
    // Log delivery through a bucket policy, so the log bucket can keep ACLs disabled
    // (BucketOwnerEnforced); set here so the construct does not depend on the app's cdk.json.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    // Server access logs cannot be delivered to a KMS-encrypted bucket, so this one is SSE-S3.
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
      removalPolicy,
    });
    acknowledge(this.accessLogs, 'AwsSolutions-S1', 'This is the access log bucket; logging it into itself would loop.');

    if (props.encryption === 'KMS') {
      this.key = new kms.Key(this, 'Key', {
        enableKeyRotation: true,
        description: 'emo-dir data bucket',
        removalPolicy,
      });
    }

    this.bucket = new s3.Bucket(this, 'Data', {
      encryption: this.key === undefined ? s3.BucketEncryption.S3_MANAGED : s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: this.key !== undefined,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      eventBridgeEnabled: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'data/',
      removalPolicy,
      lifecycleRules: [
        {
          // S3 lifecycle filters are plain prefixes (no wildcards), so per-run checkpoints and
          // features live under one top-level `scratch/` prefix rather than inside `runs/<id>/`.
          id: 'expire-scratch',
          prefix: SCRATCH_PREFIX,
          expiration: Duration.days(props.scratchExpirationDays ?? 30),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays ?? 30),
          expiredObjectDeleteMarker: true,
          // A crashed multipart upload leaves invisible, billed parts behind.
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
    });

    // eventBridgeEnabled is implemented by a CDK-provided custom resource (one per stack).
    const notificationsHandler = Stack.of(this).node.children.find((child) =>
      child.node.id.startsWith('BucketNotificationsHandler'),
    );
    if (notificationsHandler !== undefined) {
      acknowledge(
        notificationsHandler,
        'AwsSolutions-IAM4',
        'CDK\'s own bucket-notifications custom resource; it runs only at deployment and its role is not configurable.',
        ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
      );
    }
  }

  /**
   * Grants object access by key prefix only (never `s3:*`, never the whole bucket's objects).
   * ListBucket is granted on the bucket without a prefix condition: without it S3 answers a HEAD
   * of a missing key with 403 instead of 404, which ObjectStore.exists() cannot tell from a
   * real permission error; key names are the only thing it reveals.
   */
  grantPrefixes(grantee: iam.IGrantable & IConstruct, access: PrefixAccess): void {
    const objects = (prefixes: readonly string[] | undefined): string[] =>
      (prefixes ?? []).map((prefix) => this.bucket.arnForObjects(`${prefix}*`));
    const statements: iam.PolicyStatement[] = [
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
    ];
    const readable = objects(access.read);
    if (readable.length > 0) {
      statements.push(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: readable }));
    }
    const writable = objects(access.write);
    if (writable.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          // AbortMultipartUpload: lib-storage aborts a failed multipart upload of a large body.
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: writable,
        }),
      );
    }
    const deletable = objects(access.delete);
    if (deletable.length > 0) {
      statements.push(new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: deletable }));
    }
    for (const statement of statements) grantee.grantPrincipal.addToPrincipalPolicy(statement);
    const prefixes = [...new Set([...(access.read ?? []), ...(access.write ?? []), ...(access.delete ?? [])])];
    const bucketArn = arnToken(this.bucket.node.defaultChild as s3.CfnBucket);
    acknowledge(
      grantee,
      'AwsSolutions-IAM5',
      'Object access is scoped to key prefixes of the data bucket (src/store/keys.ts); a prefix needs the trailing wildcard.',
      prefixes.map((prefix) => `Resource::${bucketArn}/${prefix}*`),
    );
    if (this.key !== undefined) {
      if (writable.length > 0) this.key.grantEncryptDecrypt(grantee);
      else this.key.grantDecrypt(grantee);
      acknowledge(grantee, 'AwsSolutions-IAM5', 'Encrypting with the bucket key needs GenerateDataKey*/ReEncrypt* on that one key.', [
        'Action::kms:GenerateDataKey*',
        'Action::kms:ReEncrypt*',
      ]);
    }
  }
}
