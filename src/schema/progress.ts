/**
 * Progress events: the JSON lines a worker prints on stdout while it works (the local runner's
 * progress bars read them, src/local/progress.ts) and the lines of a search's log
 * (`runs/<runId>/subnets/<k>/log.jsonl`, written by src/dir/search-task.ts, read by the report
 * for search times and hypervolume). One schema per event; loose, so a newer writer's extra
 * field does not make an older reader drop the line.
 */
import { z } from 'zod';

const subjectFields = { subnet: z.string().optional(), target: z.string().optional() };
const nonNegative = z.number().refine((value) => Number.isFinite(value) && value >= 0, 'must be a finite number >= 0');

/** A finished NSGA-II generation. */
export const generationEventSchema = z.looseObject({
  event: z.literal('generation'),
  ...subjectFields,
  generation: z.number().int().min(0),
  generations: z.number().int().min(1).optional(),
  evaluations: z.number().int().min(0).optional(),
  hypervolume: z.number().optional(),
  /** Search time so far, over resumed sessions. */
  elapsedMs: nonNegative.optional(),
});
export type GenerationProgressEvent = z.infer<typeof generationEventSchema>;

/** A worker entering a phase (`features`, `search`, `fine-tune`, ...). */
export const phaseEventSchema = z.looseObject({
  event: z.literal('phase'),
  ...subjectFields,
  phase: z.string().min(1),
  message: z.string().optional(),
});

/** The end of a search session, with its statistics (search-stats.json holds the same). */
export const searchDoneEventSchema = z.looseObject({
  event: z.literal('done'),
  ...subjectFields,
  searchElapsedMs: nonNegative.optional(),
  sessionSeconds: nonNegative.optional(),
});

/** A resumed search: the checkpoint it continued from. */
export const searchResumedEventSchema = z.looseObject({ event: z.literal('resumed'), ...subjectFields, key: z.string().min(1) });
/** A checkpoint the resume could not use, and why. */
export const checkpointSkippedEventSchema = z.looseObject({ event: z.literal('checkpoint-skipped'), ...subjectFields, key: z.string().min(1), reason: z.string() });

/** What a worker prints on stdout as progress. */
export const workerEventSchema = z.discriminatedUnion('event', [generationEventSchema, phaseEventSchema]);
export type WorkerProgressEvent = z.infer<typeof workerEventSchema>;

/** One line of a search's log.jsonl. */
export const searchLogEntrySchema = z.discriminatedUnion('event', [
  generationEventSchema,
  searchDoneEventSchema,
  searchResumedEventSchema,
  checkpointSkippedEventSchema,
]);
export type SearchLogEntry = z.infer<typeof searchLogEntrySchema>;
