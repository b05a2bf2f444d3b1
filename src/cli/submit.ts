/**
 * `emo-dir submit <spec.json>`: start a run (or, for a sweep spec with `models`, one run per
 * model) on the deployed pipeline. A thin adapter over src/cloud/submit.ts, which documents
 * run ids, model upload and idempotency. With --json, stdout is exactly one JSON object:
 * `{ store, sweepId?, runs: [{ runId, specKey, model, uploaded, executionName, executionArn,
 * alreadyStarted }] }`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { commandContext, parseCloudArgs, runCommand, type CommandDependencies } from '../cloud/command.ts';
import { CLOUD_USAGE, cloudSettings, UsageError } from '../cloud/connect.ts';
import { submitSpec, type SubmitResult } from '../cloud/submit.ts';

const USAGE = `usage: emo-dir submit <spec.json> [--bucket B [--prefix P] | --store LOCATION] --state-machine ARN
                      [--region R] [--endpoint URL] [--max-concurrency N] [--json]
  <spec.json>            a run spec, or a sweep spec (with "models": one run per model)
${CLOUD_USAGE}
  --max-concurrency N    Batch jobs of one Map at once (default: the state machine's 16)
  --json                 print one JSON object with the run ids and execution ARNs
`;

export async function run(argv: string[], deps: CommandDependencies = {}): Promise<number> {
  const context = commandContext(deps);
  return runCommand('submit', USAGE, context, async () => {
    const { values, positionals } = parseCloudArgs(argv, { 'max-concurrency': { type: 'string' } });
    if (values.help) {
      context.out(USAGE);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? 'missing <spec.json>' : `one spec file only, got ${positionals.join(' ')}`);
    }
    const maxConcurrency = parseMaxConcurrency(values['max-concurrency']);
    const settings = cloudSettings(values, context.env, { stateMachine: true });
    const specPath = resolve(positionals[0]);
    const spec = await readSpecFile(specPath);
    const { store, sfn } = context.connect(settings);
    const result = await submitSpec({
      spec,
      specSource: specPath,
      store,
      sfn,
      stateMachineArn: settings.stateMachineArn ?? '',
      baseDir: dirname(specPath),
      now: context.now(),
      ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
    });
    if (values.json) context.out(`${JSON.stringify({ store: store.location, ...result })}\n`);
    else context.out(formatText(result, store.location));
    return 0;
  });
}

function parseMaxConcurrency(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,4}$/.test(value)) throw new UsageError(`--max-concurrency must be a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

async function readSpecFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(code === 'ENOENT' ? `spec file ${path} does not exist` : `cannot read spec file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`spec file ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function formatText(result: SubmitResult, location: string): string {
  const lines: string[] = [];
  if (result.sweepId !== undefined) lines.push(`sweep ${result.sweepId}: ${result.runs.length} run(s), one per model`);
  for (const submitted of result.runs) {
    lines.push(`${submitted.alreadyStarted ? 'already started' : 'started'} run ${submitted.runId}`);
    lines.push(`  spec       ${location}/${submitted.specKey}`);
    if (submitted.uploaded.length > 0) lines.push(`  model      uploaded ${submitted.uploaded.length} file(s) to ${submitted.model}`);
    lines.push(`  execution  ${submitted.executionArn}`);
  }
  const ids = result.runs.map((submitted) => submitted.runId).join(' ');
  lines.push(`follow with: emo-dir status ${ids}`);
  return `${lines.join('\n')}\n`;
}
