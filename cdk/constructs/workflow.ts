/**
 * The run's state machine, deployed from statemachine/emo-dir.asl.json (the file the embedded
 * runner executes too) with its placeholders substituted. Because the definition comes from a
 * file, CDK cannot infer the role's permissions; they are written out here, each scoped to the
 * resources the definition actually uses.
 */
import { RemovalPolicy, Stack, type CfnElement } from 'aws-cdk-lib';
import type * as batch from 'aws-cdk-lib/aws-batch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { acknowledge, arnToken } from '../nag.ts';
import { Construct } from 'constructs';
import { DEFINITION_PATH, NO_FALLBACK_QUEUE, SUBSTITUTION_NAMES, type Substitutions } from '../../statemachine/definition.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../../src/schema/messages.ts';

export interface WorkflowProps {
  readonly plan: lambda.IFunction;
  readonly merge: lambda.IFunction;
  readonly report: lambda.IFunction;
  /** Registers the pruned models of a run started from a SageMaker model package. */
  readonly registerModels: lambda.IFunction;
  readonly queue: batch.IJobQueue;
  /** The On-Demand queue of capacity-cancelled jobs; none: no fallback. */
  readonly fallbackQueue?: batch.IJobQueue;
  readonly searchJob: batch.IJobDefinition;
  readonly finalizeJob: batch.IJobDefinition;
  /** The job definitions' names: SubmitJob is allowed on every revision (`<name>:*`). */
  readonly searchJobName: string;
  readonly finalizeJobName: string;
  /** Batch jobs of one Map at once when the execution input names none. Default 16. */
  readonly defaultMaxConcurrency?: number;
  readonly logRetention?: logs.RetentionDays;
}

/** The rule Step Functions manages in the account to learn when `.sync` Batch jobs finish. */
export const BATCH_SYNC_RULE = 'StepFunctionsGetEventsForBatchJobsRule';

export class Workflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly substitutions: Substitutions;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.substitutions = {
      PlanFunctionArn: props.plan.functionArn,
      MergeFunctionArn: props.merge.functionArn,
      ReportFunctionArn: props.report.functionArn,
      RegisterModelsFunctionArn: props.registerModels.functionArn,
      JobQueueArn: props.queue.jobQueueArn,
      FallbackJobQueueArn: props.fallbackQueue?.jobQueueArn ?? NO_FALLBACK_QUEUE,
      SearchJobDefinitionArn: props.searchJob.jobDefinitionArn,
      FinalizeJobDefinitionArn: props.finalizeJob.jobDefinitionArn,
      DefaultMaxConcurrency: String(props.defaultMaxConcurrency ?? DEFAULT_MAX_CONCURRENCY),
    };
    // The definition and this map must agree; statemachine/definition.ts owns the names.
    for (const name of SUBSTITUTION_NAMES) {
      if (this.substitutions[name] === undefined) throw new Error(`no value for \${${name}}`);
    }

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: 'emo-dir state machine: invoke the pipeline Lambdas, run Batch jobs',
    });
    const functions = [props.plan, props.merge, props.report, props.registerModels];
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: functions.flatMap((fn) => [fn.functionArn, `${fn.functionArn}:*`]),
      }),
    );
    // Every revision of the two job definitions: a redeploy registers a new one while executions
    // started before it still submit theirs (batch.ts keeps those revisions active).
    const jobDefinitionRevisions = [props.searchJobName, props.finalizeJobName].map((name) =>
      stack.formatArn({ service: 'batch', resource: 'job-definition', resourceName: `${name}:*` }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['batch:SubmitJob'],
        resources: [props.queue.jobQueueArn, ...(props.fallbackQueue === undefined ? [] : [props.fallbackQueue.jobQueueArn]), ...jobDefinitionRevisions],
      }),
    );
    const jobs = stack.formatArn({ service: 'batch', resource: 'job', resourceName: '*' });
    role.addToPolicy(
      new iam.PolicyStatement({
        // TerminateJob: a stopped or timed-out execution cancels its running jobs.
        // TagResource: SubmitJob with Tags (run id, stage) for cost allocation.
        actions: ['batch:TerminateJob', 'batch:TagResource'],
        resources: [jobs],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [stack.formatArn({ service: 'events', resource: 'rule', resourceName: BATCH_SYNC_RULE })],
      }),
    );

    // Under /aws/vendedlogs/: CloudWatch Logs then needs no resource policy entry per log group
    // (whose 5 KB limit a few stacks in one account exhaust).
    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-runs`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromFile(DEFINITION_PATH),
      definitionSubstitutions: { ...this.substitutions },
      stateMachineType: sfn.StateMachineType.STANDARD,
      role,
      tracingEnabled: true,
      // Execution data stays out of the logs: the state holds only ids and keys, but errors
      // can quote user input.
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });

    const functionArns = functions.flatMap((fn) =>
      fn.node.defaultChild === undefined ? [] : [`Resource::${arnToken(fn.node.defaultChild as CfnElement)}:*`],
    );
    acknowledge(role, 'AwsSolutions-IAM5', 'Invocation of the four pipeline functions, including their versions and aliases (<arn>:*).', functionArns);
    acknowledge(
      role,
      'AwsSolutions-IAM5',
      'Every revision of the search and finalize job definitions (<name>:*): runs in flight submit the revision they started with.',
      [props.searchJobName, props.finalizeJobName].map((name) => `Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition/${name}:*`),
    );
    acknowledge(
      role,
      'AwsSolutions-IAM5',
      'Batch job ARNs exist only after SubmitJob; TerminateJob/TagResource are limited to jobs of this account and region.',
      ['Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*'],
    );
    acknowledge(
      role,
      'AwsSolutions-IAM5',
      'batch:DescribeJobs (.sync polling), X-Ray and CloudWatch Logs delivery actions support no resource-level permissions.',
      ['Resource::*'],
    );

  }
}
