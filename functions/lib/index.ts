/** Shared utilities of the Lambda handlers (functions/*.ts). */
export * from './env.ts';
export * from './handler.ts';
