/**
 * `emo-dir inspect <model> [--json] [--prune-residual] [--store DIR]`: layers, channel groups,
 * MACs and params of a model. A thin adapter: io.ts loads, model/ analyses and counts.
 *
 * <model> is any form a spec's `model` may take (src/model/reference.ts: `zoo:<name>`, a
 * directory holding model.json, a key prefix in the file store rooted at --store, default
 * `.emo-dir`). With --json, stdout is exactly one JSON object (DESIGN.md §7); logs go to stderr.
 */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { initEngine } from '../engine/backend.ts';
import { analyzeChannels, prunableChannels } from '../model/groups.ts';
import type { ChannelAnalysis } from '../model/groups.ts';
import { countCost } from '../model/cost.ts';
import type { CostReport } from '../model/cost.ts';
import { resolveModel } from '../model/io.ts';
import { classifyModelReference } from '../model/reference.ts';
import { loadSpecModel } from '../dir/plan.ts';
import { checkModelDirectory } from '../store/model-dir.ts';
import type { ResolvedModel } from '../model/io.ts';
import { FileStore } from '../store/file-store.ts';

const USAGE = `usage: emo-dir inspect <model> [--json] [--prune-residual] [--store DIR]
  <model>           zoo:<name> | a model directory | an ONNX file (.onnx) | a model key prefix
                    or .onnx key in the store
  --json            print one JSON object (layers, groups, macs, params, prunableChannels)
  --prune-residual  count residual (Add-tied) groups as prunable
  --store DIR       file store root for store keys (default .emo-dir)
`;

export interface InspectReport {
  readonly model: string;
  readonly inputShape: readonly (number | null)[];
  readonly layers: readonly {
    name: string;
    className: string;
    outputShape: readonly (number | null)[];
    macs: number;
    params: number;
  }[];
  readonly groups: readonly {
    id: string;
    channels: number;
    residual: boolean;
    prunable: boolean;
    producers: string[];
    consumers: string[];
  }[];
  readonly macs: number;
  readonly params: number;
  readonly prunableChannels: number;
}

/** The `--json` object of `inspect`, from an analysis and its cost (exported for reuse and tests). */
export function inspectReport(location: string, analysis: ChannelAnalysis, cost: CostReport): InspectReport {
  const input = analysis.graph.nodes.find((n) => n.name === analysis.graph.inputs[0]);
  return {
    model: location,
    inputShape: input ? input.outputShape : [],
    layers: cost.layers.map((l) => ({
      name: l.name,
      className: l.className,
      outputShape: l.outputShape,
      macs: l.macs,
      params: l.params,
    })),
    groups: analysis.groups.map((g) => ({
      id: g.id,
      channels: g.channels,
      residual: g.residual,
      prunable: g.prunable,
      producers: g.producers.map((m) => m.layer),
      consumers: g.consumers.map((m) => m.layer),
    })),
    macs: cost.macs,
    params: cost.params,
    prunableChannels: prunableChannels(analysis),
  };
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(3)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(3)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}

function formatText(report: InspectReport): string {
  const shape = (s: readonly (number | null)[]): string => `[${s.map((d) => (d === null ? '?' : d)).join(',')}]`;
  const layerRows = [
    ['layer', 'class', 'output', 'MACs', 'params'],
    ...report.layers.map((l) => [l.name, l.className, shape(l.outputShape), formatCount(l.macs), formatCount(l.params)]),
  ];
  const groupRows = [
    ['group', 'channels', 'residual', 'prunable', 'producers', 'consumers'],
    ...report.groups.map((g) => [
      g.id,
      String(g.channels),
      g.residual ? 'yes' : '',
      g.prunable ? 'yes' : '',
      String(g.producers.length),
      String(g.consumers.length),
    ]),
  ];
  return [
    `model ${report.model}  input ${shape(report.inputShape)}`,
    '',
    table(layerRows),
    '',
    table(groupRows),
    '',
    `MACs ${formatCount(report.macs)} (${report.macs})  params ${formatCount(report.params)} (${report.params})  ` +
      `prunable channels ${report.prunableChannels} in ${report.groups.filter((g) => g.prunable).length} groups`,
    '',
  ].join('\n');
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * A model reference in the forms of src/model/reference.ts, read as Plan reads a spec's model
 * (store prefixes from the file store at `storeRoot`). One convenience on top: a bare relative
 * path (`examples/fmnist-resnet/model`, `model.onnx`), which the table reads as a store key, is
 * the directory or ONNX file when one exists there.
 */
async function loadRef(ref: string, storeRoot: string): Promise<ResolvedModel> {
  const kind = classifyModelReference(ref).kind;
  if (kind === 'store-prefix' && (await isDirectory(ref))) return resolveModel(await checkModelDirectory(ref));
  if (kind === 'onnx-key' && (await isFile(ref))) return resolveModel(ref);
  return loadSpecModel(new FileStore(storeRoot), ref);
}

/** Where the command writes; injectable so tests can run it in-process and read its output. */
export interface CommandIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIO: CommandIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

export async function run(argv: string[], io: CommandIO = processIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        'prune-residual': { type: 'boolean', default: false },
        store: { type: 'string', default: '.emo-dir' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    io.stderr(`emo-dir inspect: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    io.stderr(`emo-dir inspect: expected one <model>, got ${positionals.length}\n${USAGE}`);
    return 2;
  }
  const ref = positionals[0];
  await initEngine();
  let resolved: ResolvedModel;
  try {
    resolved = await loadRef(ref, values.store);
  } catch (error) {
    io.stderr(`emo-dir inspect: cannot load model '${ref}': ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const analysis = analyzeChannels(resolved.model, { pruneResidual: values['prune-residual'] });
    const report = inspectReport(resolved.location, analysis, countCost(analysis));
    io.stdout(values.json ? `${JSON.stringify(report)}\n` : formatText(report));
    return 0;
  } catch (error) {
    io.stderr(`emo-dir inspect: ${resolved.location}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    resolved.model.dispose();
  }
}
