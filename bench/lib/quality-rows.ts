/**
 * Reading bench:quality's JSON-lines output back (bench/quality-summary.ts): the schema of a
 * per-seed row, and the collection of per-seed rows from several output files (e.g. one process
 * per seed, run in parallel). Aggregate and paired rows in the files are dropped: they are
 * recomputed over all files together.
 */
import { z } from 'zod';
import { COMPUTE_VARIANTS, METHODS } from './quality-options.ts';

const measured = z.number().nullable();

/** One per-seed row as bench/quality.ts writes it: one method x compute variant x target x seed. */
export const qualityRowSchema = z.object({
  model: z.string().min(1),
  method: z.enum(METHODS),
  compute: z.enum(COMPUTE_VARIANTS),
  targetFlopsCut: z.number().min(0).max(1),
  seed: z.number().int().min(0),
  flopsCut: measured,
  paramsCut: measured,
  /** Test top-1 after the full fine-tune budget. */
  accuracy: measured,
  /** Test top-1 straight after pruning (EMO methods: recovered; mask baselines: BN re-estimated). */
  accuracyBeforeFineTune: measured,
  accuracyAfter1Epoch: measured,
  /** Wall seconds of the method's search (features, search, merge; masks for rule baselines). */
  searchSeconds: z.number(),
  /** Process CPU seconds of that search (summed worker wall seconds when searches ran as processes). */
  searchCpuSeconds: z.number(),
  evaluations: z.number().int().min(0),
  /** Images the final network was trained on before the fine-tune (recovery), and in the fine-tune. */
  recoveryImages: z.number().min(0),
  fineTuneImages: z.number().min(0),
  fineTuneCpuSeconds: z.number(),
});
export type QualityRow = z.infer<typeof qualityRowSchema>;

/** The rows bench/quality.ts adds at the end (`seed: "mean"` / `"paired"`), recomputed here. */
const isSummaryRow = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && 'seed' in value && (value.seed === 'mean' || value.seed === 'paired');

export interface QualityOutput {
  /** Where the text came from, for error messages. */
  readonly file: string;
  readonly text: string;
  /**
   * Its rows replace the same cells (model, method, compute, target, seed) read from the plain
   * outputs: a re-measurement of one method after a change to it, while the others' rows stand.
   */
  readonly override?: boolean;
}

/**
 * The per-seed rows of every output, validated. A bad line is an error naming the file, the
 * line and (for a schema error) the field; a (model, method, compute, target, seed) measured in
 * two outputs is an error too (averaging it twice would count one seed as two), unless the later
 * one is an `override` output and the earlier one is not: its row then takes the earlier row's
 * place. `replaced` receives each replacement.
 */
export function collectSeedRows(outputs: readonly QualityOutput[], replaced: (message: string) => void = () => undefined): QualityRow[] {
  const rows: QualityRow[] = [];
  const firstSeen = new Map<string, { where: string; index: number; override: boolean }>();
  // Plain outputs first, whatever the order given: an override replaces, it is never replaced.
  const ordered = [...outputs.filter((o) => o.override !== true), ...outputs.filter((o) => o.override === true)];
  for (const { file, text, override = false } of ordered) {
    text.split('\n').forEach((line, index) => {
      if (line.trim() === '') return;
      const where = `${file}:${index + 1}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new Error(`${where}: not JSON (${(error as Error).message})`, { cause: error });
      }
      if (isSummaryRow(value)) return;
      const parsed = qualityRowSchema.safeParse(value);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(row)'}: ${issue.message}`).join('; ');
        throw new Error(`${where}: not a bench:quality row (${issues})`);
      }
      const row = parsed.data;
      const key = `${row.model} ${row.method} ${row.compute} target ${row.targetFlopsCut} seed ${row.seed}`;
      const earlier = firstSeen.get(key);
      if (earlier !== undefined && (!override || earlier.override)) throw new Error(`${where}: ${key} was already read at ${earlier.where}`);
      if (earlier !== undefined) {
        rows[earlier.index] = row;
        firstSeen.set(key, { where, index: earlier.index, override });
        replaced(`${key}: ${earlier.where} replaced by ${where}`);
        return;
      }
      firstSeen.set(key, { where, index: rows.length, override });
      rows.push(row);
    });
  }
  return rows;
}
