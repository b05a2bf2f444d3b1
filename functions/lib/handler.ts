/**
 * The shape of every emo-dir Lambda handler (STYLE.md, Powertools): parse the event with zod,
 * call one library function, return keys. `defineHandler` does the parsing and the logging
 * around that one call:
 *
 *   export const handler = defineHandler(planEventSchema, async (event, { logger }) =>
 *     planRun({ ...event, store: storeFromEnv() }), { name: 'plan' });
 *
 * - A malformed event fails with a ValidationError naming the handler and each bad field.
 * - Logs are Powertools structured JSON lines, service `emo-dir`, with the Lambda context and a
 *   correlation id: the event's `runId` (or `executionName`) when it has one; a handler that
 *   learns its run id later (the trigger) sets it with `logger.setCorrelationId(runId)`.
 * - Errors are logged once, with the correlation id, and rethrown, so Step Functions' Retry/Catch
 *   and EventBridge's retry policy see the failure.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { z } from 'zod';
import { parseWith, ValidationError } from '../../src/schema/validate.ts';

export const SERVICE_NAME = 'emo-dir';

/** The Lambda context as Powertools takes it (the `aws-lambda` types are not a dependency). */
export type LambdaContext = Parameters<Logger['addContext']>[0];

export interface HandlerTools {
  readonly logger: Logger;
  readonly context?: LambdaContext;
}

export interface HandlerOptions<E> {
  /** The handler's name, for logs and messages (`invalid trigger event: ...`). */
  readonly name?: string;
  /** A logger to use instead of a new one (tests capture or silence it). */
  readonly logger?: Logger;
  /** The correlation id of an event; default: its `runId`, else its `executionName`. */
  readonly correlationId?: (event: E) => string | undefined;
}

export type LambdaHandler<R> = (event: unknown, context?: LambdaContext) => Promise<R>;

/** The event's `runId` or `executionName`, when it is an object holding a string one. */
export function defaultCorrelationId(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const { runId, executionName } = event as { runId?: unknown; executionName?: unknown };
  if (typeof runId === 'string' && runId !== '') return runId;
  if (typeof executionName === 'string' && executionName !== '') return executionName;
  return undefined;
}

export function createLogger(): Logger {
  return new Logger({ serviceName: SERVICE_NAME });
}

export function defineHandler<S extends z.ZodType, R>(
  eventSchema: S,
  fn: (event: z.output<S>, tools: HandlerTools) => Promise<R>,
  options: HandlerOptions<z.output<S>> = {},
): LambdaHandler<R> {
  // One logger per container: the Lambda context and temporary keys are reset per invocation.
  const logger = options.logger ?? createLogger();
  const name = options.name ?? 'handler';
  return async (event: unknown, context?: LambdaContext): Promise<R> => {
    logger.resetKeys();
    logger.appendKeys({ handler: name });
    if (context !== undefined) logger.addContext(context);
    const early = defaultCorrelationId(event);
    if (early !== undefined) logger.setCorrelationId(early);
    let parsed: z.output<S>;
    try {
      parsed = parseWith(eventSchema, event, `${name} event`);
    } catch (error) {
      logger.error('event rejected', {
        error: (error as Error).message,
        ...(error instanceof ValidationError ? { issues: error.issues } : {}),
      });
      throw error;
    }
    const correlationId = (options.correlationId ?? defaultCorrelationId)(parsed);
    if (correlationId !== undefined) logger.setCorrelationId(correlationId);
    try {
      return await fn(parsed, { logger, ...(context === undefined ? {} : { context }) });
    } catch (error) {
      logger.error('handler failed', error as Error);
      throw error;
    }
  };
}
