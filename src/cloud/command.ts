/**
 * The frame of the cloud CLI commands (src/cli/submit.ts, status.ts, report.ts): injectable
 * output, environment and connections (tests run the commands in-process against a file store
 * and a mocked Step Functions client), and one mapping of errors to exit codes:
 *
 *   0  done
 *   1  failure (invalid spec, unreachable service, run or report not found); message on stderr
 *   2  usage error (unknown flag, missing argument or setting); message and usage on stderr
 */
import { parseArgs, type ParseArgsConfig, type ParseArgsOptionsConfig } from 'node:util';
import { ValidationError } from '../schema/validate.ts';
import { CLOUD_ARG_OPTIONS, connectCloud, UsageError, type CloudConnection, type CloudSettings } from './connect.ts';

export interface CommandDependencies {
  readonly stdout?: (text: string) => void;
  readonly stderr?: (text: string) => void;
  /** Default: process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default: connectCloud (S3/file store + SFNClient). */
  readonly connect?: (settings: CloudSettings) => CloudConnection;
  /** Default: the current time (names runs). */
  readonly now?: () => Date;
}

export interface CommandContext {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly connect: (settings: CloudSettings) => CloudConnection;
  readonly now: () => Date;
}

export function commandContext(deps: CommandDependencies): CommandContext {
  return {
    out: deps.stdout ?? ((text) => process.stdout.write(text)),
    err: deps.stderr ?? ((text) => process.stderr.write(text)),
    env: deps.env ?? process.env,
    connect: deps.connect ?? connectCloud,
    now: deps.now ?? (() => new Date()),
  };
}

/** util.parseArgs with its errors (unknown flag, missing value) as UsageError. */
export function parseCommandArgs<const C extends ParseArgsConfig>(config: C): ReturnType<typeof parseArgs<C>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The flags every cloud command takes: the connection flags (connect.ts), --json and -h/--help. */
export const COMMAND_ARG_OPTIONS = {
  ...CLOUD_ARG_OPTIONS,
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** parseCommandArgs of a cloud command's argv: positionals allowed, strict, COMMAND_ARG_OPTIONS plus `extra`. */
export function parseCloudArgs<const O extends ParseArgsOptionsConfig>(argv: string[], extra: O) {
  return parseCommandArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...COMMAND_ARG_OPTIONS, ...extra },
  });
}

/** Runs a command body and turns its errors into a message and an exit code. */
export async function runCommand(
  name: string,
  usage: string,
  context: CommandContext,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      context.err(`emo-dir ${name}: ${error.message}\n${usage}`);
      return 2;
    }
    // ValidationError messages already list every bad field, one per line.
    const message = error instanceof ValidationError || error instanceof Error ? error.message : String(error);
    context.err(`emo-dir ${name}: ${message}\n`);
    if (context.env.EMO_DIR_DEBUG && error instanceof Error && error.stack) context.err(`${error.stack}\n`);
    return 1;
  }
}
