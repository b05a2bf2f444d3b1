/**
 * Starts a run when a prune request is uploaded (`registry/<model>/prune.json`, DESIGN §3): an
 * EventBridge rule on the bucket's Object Created events invokes the trigger Lambda, which
 * writes the run's spec and starts the state machine.
 *
 * No trigger is lost: EventBridge retries delivering an event and sends what it cannot deliver to
 * the rule's dead-letter queue, but it invokes the Lambda asynchronously, so an event the
 * function fails on (the store or Step Functions unreachable) is retried by Lambda and then,
 * without an on-failure destination, discarded. `deliverFailures` gives the function one: the
 * same queue, which so holds every registry event that did not start its run.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
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

/** Lambda's own retries of a failed asynchronous invocation (0-2), before the on-failure destination. */
export const ASYNC_RETRY_ATTEMPTS = 2;
/** How long Lambda keeps an event it could not process yet (throttled), before the destination. */
export const ASYNC_MAX_EVENT_AGE = Duration.hours(6);

/**
 * Invocations that still fail after Lambda's retries go to `queue` (the SQS message holds the
 * event as `requestPayload` and the error as `responsePayload`), instead of being dropped.
 */
export function deliverFailures(fn: lambda.IFunction, queue: sqs.IQueue): void {
  fn.configureAsyncInvoke({
    onFailure: new destinations.SqsDestination(queue),
    retryAttempts: ASYNC_RETRY_ATTEMPTS,
    maxEventAge: ASYNC_MAX_EVENT_AGE,
  });
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

    // Events EventBridge could not deliver, and invocations that failed after Lambda's retries,
    // are kept here for 14 days, not dropped.
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(this.deadLetterQueue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of the trigger rules and the triggers\' on-failure destination.');
    deliverFailures(this.handler.function, this.deadLetterQueue);

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
