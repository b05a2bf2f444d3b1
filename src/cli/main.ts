/**
 * The `emo-dir` command: a table of sub-commands, each a module exporting `run(argv)`.
 * Sub-commands are loaded lazily so `emo-dir inspect` does not pay for AWS SDK imports.
 */
type CommandModule = { run(argv: string[]): Promise<number> };

const commands: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  inspect: {
    summary: 'inspect <model> [--json]   layers, channel groups, MACs and params of a model',
    load: () => import('./inspect.ts'),
  },
  plan: {
    summary: 'plan <spec.json> [--store DIR] [--gpu t4|v100|a100] [--json]   check a spec and print its plan and estimated worker-hours (runs nothing)',
    load: () => import('./plan.ts'),
  },
  run: {
    summary:
      'run <spec.json> [--store DIR|s3://B/P] [--endpoint URL] [--jobs local|docker] [--workers N] [--json] [--quiet] [--dry-run]   run the whole workflow on this machine',
    load: () => import('./run.ts'),
  },
  resume: {
    summary: 'resume <runId> [--store DIR|s3://B/P] [--endpoint URL] [--jobs local|docker] [--workers N] [--json]   continue a stopped or failed local run',
    load: async () => {
      const [{ resumeCommand }, { loadHandlers }] = await Promise.all([import('../local/command.ts'), import('./run.ts')]);
      return { run: (argv: string[]) => resumeCommand(argv, { loadHandlers }) };
    },
  },
  submit: {
    summary:
      'submit <spec.json> [--bucket B [--prefix P] | --store LOC] --state-machine ARN [--region R] [--json]   start a run (one per model of a sweep)',
    load: () => import('./submit.ts'),
  },
  status: {
    summary: 'status <runId>... [--bucket B | --store LOC] [--state-machine ARN] [--json]   execution state and per-sub-network progress',
    load: () => import('./status.ts'),
  },
  report: {
    summary: "report <runId> [-o FILE] [--bucket B | --store LOC]   download the run's report.html",
    load: () => import('./report.ts'),
  },
};

function usage(): string {
  const lines = Object.values(commands).map((c) => `  emo-dir ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`emo-dir: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`emo-dir: ${message}\n`);
    if (process.env.EMO_DIR_DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    process.exitCode = 1;
  },
);
