import type { z } from 'zod';

/** A boundary value that failed validation; `issues` keep zod's paths for programmatic use. */
export class ValidationError extends Error {
  constructor(
    readonly source: string,
    readonly issues: readonly { path: string; message: string }[],
  ) {
    super(
      `invalid ${source}:\n${issues.map((issue) => `  - ${issue.path || '(root)'}: ${issue.message}`).join('\n')}`,
    );
    this.name = 'ValidationError';
  }
}

/** `a.b[2].c` from zod's path array, the way a user would point at the field in their JSON. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/**
 * Parses `value` with `schema`, or throws a ValidationError that names `source` (a file, a store
 * key, a message type) and the path of every bad field.
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, source: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ValidationError(
    source,
    result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })),
  );
}

/**
 * The JSON text a writer stores for a document: `value` checked against the document's schema
 * first (a ValidationError naming `source` and the bad fields, instead of a bad file), then
 * written as it is (pretty, newline-terminated), so the bytes do not depend on the schema.
 */
export function serializeWith<S extends z.ZodType>(schema: S, value: unknown, source: string): string {
  parseWith(schema, value, source);
  return `${JSON.stringify(value, null, 2)}\n`;
}
