/**
 * Adapters between emo-dir and AWS for the CLI and the Lambda handlers: submitting runs (and
 * sweeps) to the deployed state machine, registry uploads, run status and report download. The
 * algorithm never imports this; it only calls the store and Step Functions.
 */
export * from './names.ts';
export * from './runs.ts';
export * from './submit.ts';
export * from './registry.ts';
export * from './status.ts';
export * from './report.ts';
export * from './connect.ts';
