/**
 * The worker container's entry point (containers/Dockerfile): `search` runs one sub-network's
 * search, `finalize` one target's fine-tune/export/evaluate (DESIGN §3 steps 2 and 4).
 *
 * PLACEHOLDER: only the command line is real. The stages will be wired to the EMO library
 * (src/dir) once it exists; until then every valid command exits 2 with "not implemented yet".
 *
 * Exit codes (the Batch job definitions' retry strategy depends on them, cdk/constructs/batch.ts):
 *   0 done, 2 usage error or not implemented, 75 transient failure (Batch retries), other: failed.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { NAME_PATTERN } from '../src/store/keys.ts';

const name = z.string().regex(NAME_PATTERN, 'expected 1-128 characters of A-Z a-z 0-9 . _ -').refine(
  (value) => !value.includes('..'),
  "must not contain '..'",
);

const Command = z.discriminatedUnion('stage', [
  z.object({ stage: z.literal('search'), runId: name, subnet: name }),
  z.object({ stage: z.literal('finalize'), runId: name, target: name }),
]);
export type WorkerCommand = z.infer<typeof Command>;

const USAGE = `usage: worker search --run-id <runId> --subnet <id>
       worker finalize --run-id <runId> --target <name>
(the store comes from EMO_DIR_STORE, e.g. s3://bucket or a directory)`;

/** Parses argv (without node and script); throws with a message that says what was wrong. */
export function parseWorkerArgs(argv: readonly string[]): WorkerCommand {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'run-id': { type: 'string' },
      subnet: { type: 'string' },
      target: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(`expected one stage (search|finalize), got ${positionals.length}`);
  const parsed = Command.safeParse({
    stage: positionals[0],
    runId: values['run-id'],
    subnet: values.subnet,
    target: values.target,
  });
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'stage'}: ${issue.message}`).join('; '));
  }
  if (parsed.data.stage === 'search' && values.target !== undefined) throw new Error('search takes --subnet, not --target');
  if (parsed.data.stage === 'finalize' && values.subnet !== undefined) throw new Error('finalize takes --target, not --subnet');
  return parsed.data;
}

function main(argv: readonly string[]): number {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  let command: WorkerCommand;
  try {
    command = parseWorkerArgs(argv);
  } catch (error) {
    console.error(`worker: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  console.error(`worker: ${command.stage} is not implemented yet (${JSON.stringify(command)})`);
  return 2;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));
