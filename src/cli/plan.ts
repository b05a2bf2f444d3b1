/**
 * `emo-dir plan <spec.json> [--store DIR] [--gpu t4] [--json]`: what Plan would decide for the
 * spec and what the run would cost, without running or writing anything (src/local/plan-preview.ts).
 * Exit 0 when the spec can run, 1 when it cannot (one line per spec field that cannot work), 2 for
 * a bad command line. `emo-dir run <spec> --dry-run` prints the same.
 */
import { parseArgs } from 'node:util';
import { FileStore } from '../store/file-store.ts';
import { previewPlan } from '../local/plan-preview.ts';
import { writePlan } from '../local/plan-text.ts';

const USAGE = `usage: emo-dir plan <spec.json> [--store DIR] [--gpu t4|v100|a100|<instance type>] [--json]
  Checks the spec as the Plan step does (model, data set, budget) and prints the sub-networks,
  the searched channels, the evaluations and the estimated worker-hours on this machine's
  backend and on a GPU. Runs nothing, writes nothing.
  --store DIR   file store for a model given as a store key prefix (default .emo-dir)
  --gpu NAME    the GPU of the estimate (default t4: g4dn.xlarge, the stack's first instance type)
  --json        one JSON object on stdout
`;

export interface PlanCommandIo {
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
}

export async function run(argv: string[], io: PlanCommandIo = {}): Promise<number> {
  const out = io.out ?? ((text) => process.stdout.write(text));
  const err = io.err ?? ((text) => process.stderr.write(text));
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        store: { type: 'string', default: '.emo-dir' },
        gpu: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
    if (values.help) {
      out(USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new Error(`expected one <spec.json>, got ${positionals.length}`);
  } catch (error) {
    err(`emo-dir plan: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  try {
    const preview = await previewPlan({
      specPath: positionals[0],
      store: new FileStore(values.store),
      ...(values.gpu === undefined ? {} : { gpu: values.gpu }),
    });
    return writePlan(preview, values.json, out);
  } catch (error) {
    // An unreadable or invalid spec: the message names the file and every bad field.
    err(`emo-dir plan: ${(error as Error).message}\n`);
    if (process.env.EMO_DIR_DEBUG) err(`${(error as Error).stack ?? ''}\n`);
    return 1;
  }
}
