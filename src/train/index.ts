/**
 * Training: optimisers, learning-rate schedules, losses, the generic train step, the
 * supervised loop, evaluation and batch-norm recalibration. One import for consumers
 * (EMO recovery, finalize/fine-tune, the example trainer).
 */
export * from './optimizers.ts';
export * from './schedules.ts';
export * from './losses.ts';
export * from './step.ts';
export * from './evaluate.ts';
export * from './fit.ts';
export * from './bn-recalibrate.ts';
