/**
 * Aggregates bench:quality JSON rows from several runs (e.g. one process per seed, run in
 * parallel) into mean +- SE per cell and paired differences EMO-DIR minus each baseline: the
 * tables bench:quality prints, Markdown for bench/README.md, or the aggregate JSON rows.
 *
 *   node --import tsx bench/quality-summary.ts run-s1.jsonl run-s2.jsonl ... [--override rerun.jsonl ...]
 *     [--markdown | --json]
 *
 * Only per-seed rows are read (aggregate and paired rows in the files are recomputed); a seed
 * measured twice for one cell is an error (it would be counted as two seeds), except that the
 * rows of an `--override` file replace the same cells of the plain files (one method re-measured
 * after a change to it; each replacement is logged on stderr). A run that was stopped part-way
 * contributes the rows it wrote.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { qualityMarkdown } from './lib/quality-markdown.ts';
import { qualityTables } from './lib/quality-report.ts';
import { collectSeedRows } from './lib/quality-rows.ts';
import { aggregateRows, pairedRows } from './lib/quality-stats.ts';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      markdown: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      override: { type: 'string', multiple: true, default: [] },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0) throw new Error('give one or more files written by bench:quality --json');
  if (values.markdown && values.json) throw new Error('give --markdown or --json, not both');
  const read = (override: boolean) => (file: string) => readFile(file, 'utf8').then((text) => ({ file, text, override }));
  const outputs = await Promise.all([...positionals.map(read(false)), ...values.override.map(read(true))]);
  const rows = collectSeedRows(outputs, (message) => process.stderr.write(`override: ${message}\n`));
  const aggregates = aggregateRows(rows);
  const paired = pairedRows(rows, 'emo-dir');
  if (values.json) for (const row of [...aggregates, ...paired]) process.stdout.write(`${JSON.stringify(row)}\n`);
  else process.stdout.write(values.markdown ? qualityMarkdown(rows, aggregates, paired) : qualityTables(rows, aggregates, paired));
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/quality-summary: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
