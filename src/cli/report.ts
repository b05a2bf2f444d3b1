/**
 * `emo-dir report <runId> [-o FILE]`: download a run's self-contained report.html (default
 * `<runId>-report.html` in the working directory). A thin adapter over src/cloud/report.ts.
 * With --json, stdout is one JSON object `{ runId, key, outFile, bytes }`.
 */
import { commandContext, parseCloudArgs, runCommand, type CommandDependencies } from '../cloud/command.ts';
import { CLOUD_USAGE, cloudSettings, UsageError } from '../cloud/connect.ts';
import { downloadReport } from '../cloud/report.ts';

const USAGE = `usage: emo-dir report <runId> [-o FILE] [--bucket B [--prefix P] | --store LOCATION]
                      [--region R] [--endpoint URL] [--json]
  -o, --out FILE         where to write the HTML (default <runId>-report.html)
${CLOUD_USAGE}
                         (the state machine is not needed here)
  --json                 print { runId, key, outFile, bytes }
`;

export async function run(argv: string[], deps: CommandDependencies = {}): Promise<number> {
  const context = commandContext(deps);
  return runCommand('report', USAGE, context, async () => {
    const { values, positionals } = parseCloudArgs(argv, { out: { type: 'string', short: 'o' } });
    if (values.help) {
      context.out(USAGE);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? 'missing <runId>' : `one run id only, got ${positionals.join(' ')}`);
    }
    const runId = positionals[0];
    const settings = cloudSettings(values, context.env, { stateMachine: false });
    const { store } = context.connect(settings);
    const report = await downloadReport({ runId, store, outFile: values.out ?? `${runId}-report.html` });
    if (values.json) context.out(`${JSON.stringify(report)}\n`);
    else context.out(`wrote ${report.outFile} (${report.bytes} bytes) from ${store.location}/${report.key}\n`);
    return 0;
  });
}
