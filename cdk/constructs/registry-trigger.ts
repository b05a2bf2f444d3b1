/**
 * Starts a run when a prune request is uploaded (`registry/<model>/prune.json`, DESIGN §3): an
 * EventBridge rule on the bucket's Object Created events invokes the trigger Lambda, which
 * writes the run's spec and starts the state machine.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { acknowledge } from '../nag.ts';
import { Construct } from 'constructs';
import { PRUNE_REQUEST_NAME, REGISTRY_PREFIX, RUNS_PREFIX } from '../../src/store/keys.ts';
import type { DataBucket } from './bucket.ts';
import { PipelineHandler } from './functions.ts';

export interface RegistryTriggerProps {
  readonly entry: string;
  readonly projectRoot: string;
  readonly data: DataBucket;
  readonly stateMachine: sfn.IStateMachine;
  readonly logRetention?: logs.RetentionDays;
}

/** The object-key pattern of prune requests, as EventBridge wildcard syntax. */
export const PRUNE_REQUEST_PATTERN = `${REGISTRY_PREFIX}*/${PRUNE_REQUEST_NAME}`;

export class RegistryTrigger extends Construct {
  readonly handler: PipelineHandler;
  readonly rule: events.Rule;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: RegistryTriggerProps) {
    super(scope, id);
    this.handler = new PipelineHandler(this, 'Trigger', {
      entry: props.entry,
      projectRoot: props.projectRoot,
      data: props.data,
      description: 'emo-dir Trigger: a registry prune request becomes a run (spec + execution)',
      memorySize: 512,
      timeout: Duration.seconds(60),
      // Reads the request; writes runs/<id>/spec.json and status.json.
      access: { read: [REGISTRY_PREFIX, RUNS_PREFIX], write: [RUNS_PREFIX] },
      environment: { STATE_MACHINE_ARN: props.stateMachine.stateMachineArn },
      logRetention: props.logRetention,
    });
    props.stateMachine.grantStartExecution(this.handler.function);

    // Events that still fail after EventBridge's retries are kept here, not dropped.
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(this.deadLetterQueue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of the trigger rule.');

    this.rule = new events.Rule(this, 'PruneRequestUploaded', {
      description: `Start an emo-dir run when ${PRUNE_REQUEST_PATTERN} is uploaded`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.data.bucket.bucketName] },
          // `*` also spans '/'; the trigger re-checks the key (keys.parsePruneRequestKey).
          object: { key: events.Match.wildcard(PRUNE_REQUEST_PATTERN) },
        },
      },
      targets: [
        new targets.LambdaFunction(this.handler.function, {
          retryAttempts: 8,
          maxEventAge: Duration.hours(6),
          deadLetterQueue: this.deadLetterQueue,
        }),
      ],
    });
  }
}
