/**
 * `emo-dir status <runId>...`: where a run is: its execution (when a state machine is given),
 * its status.json, per sub-network the newest checkpoint's generation and last log line, the
 * finished targets and the report. A thin adapter over src/cloud/status.ts. With --json, stdout
 * holds one JSON object per run id, one per line (a run that is not found is
 * `{ runId, error }`). Exit code 1 when any run is not found.
 */
import { commandContext, parseCloudArgs, runCommand, type CommandDependencies } from '../cloud/command.ts';
import { CLOUD_USAGE, cloudSettings, UsageError } from '../cloud/connect.ts';
import { InvalidNameError } from '../store/keys.ts';
import { RunNotFoundError, runStatus, type RunStatus } from '../cloud/status.ts';

const USAGE = `usage: emo-dir status <runId>... [--bucket B [--prefix P] | --store LOCATION] [--state-machine ARN]
                      [--region R] [--endpoint URL] [--json]
${CLOUD_USAGE}
                         (without a state machine, only the store is read)
  --json                 one JSON object per run, one per line
`;

export async function run(argv: string[], deps: CommandDependencies = {}): Promise<number> {
  const context = commandContext(deps);
  return runCommand('status', USAGE, context, async () => {
    const { values, positionals } = parseCloudArgs(argv, {});
    if (values.help) {
      context.out(USAGE);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError('missing <runId>');
    const settings = cloudSettings(values, context.env, { stateMachine: false });
    const { store, sfn } = context.connect(settings);
    let missing = 0;
    for (const runId of positionals) {
      try {
        const status = await runStatus({
          runId,
          store,
          ...(settings.stateMachineArn === undefined ? {} : { sfn, stateMachineArn: settings.stateMachineArn }),
        });
        context.out(values.json ? `${JSON.stringify(status)}\n` : formatText(status));
      } catch (error) {
        // A run id that cannot name a run (InvalidNameError) is as absent as an unknown one.
        if (!(error instanceof RunNotFoundError || error instanceof InvalidNameError)) throw error;
        missing++;
        if (values.json) context.out(`${JSON.stringify({ runId, error: error.message })}\n`);
        context.err(`emo-dir status: ${error.message}\n`);
      }
    }
    return missing === 0 ? 0 : 1;
  });
}

function short(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function formatText(status: RunStatus): string {
  const lines = [`run ${status.runId}  (${status.store})`];
  const execution = status.execution;
  if (execution !== undefined) {
    const times = [execution.startDate && `started ${execution.startDate}`, execution.stopDate && `stopped ${execution.stopDate}`]
      .filter(Boolean)
      .join(', ');
    lines.push(`  execution   ${execution.status}${times ? `  ${times}` : ''}`);
    lines.push(`              ${execution.arn}`);
    if (execution.error !== undefined) lines.push(`  error       ${execution.error}: ${short(execution.cause ?? '', 400)}`);
  }
  if (status.recordError !== undefined) lines.push(`  ${status.recordError}`);
  if (status.record !== undefined) {
    const record = status.record;
    lines.push(`  status.json ${record.state}: ${short(record.message, 400)}`);
    if (Array.isArray(record.issues)) {
      for (const issue of record.issues as { path?: string; message?: string }[]) {
        lines.push(`                - ${issue.path || '(root)'}: ${issue.message ?? ''}`);
      }
    }
  }
  lines.push(`  spec        ${status.specKey ?? '(none)'}${status.manifest ? '  manifest ✓' : ''}`);
  if (status.subnets.length > 0) {
    lines.push('  sub-networks');
    for (const subnet of status.subnets) {
      const generation = subnet.generation === undefined ? 'no checkpoint' : `generation ${subnet.generation}`;
      const log = subnet.lastLog === undefined ? '' : `  last: ${short(subnet.lastLog)}`;
      lines.push(`    ${subnet.id}  ${subnet.front ? 'done (front.json)' : generation}${log}`);
    }
  }
  if (status.targetsDone.length > 0) lines.push(`  targets     done: ${status.targetsDone.join(', ')}`);
  if (status.htmlKey !== undefined) lines.push(`  report      ${status.htmlKey}  (emo-dir report ${status.runId})`);
  return `${lines.join('\n')}\n`;
}
