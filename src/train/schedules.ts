/**
 * Learning-rate schedules. A schedule is a plain function of the global step (0-based, one
 * step = one optimiser update), so the training loop, EMO recovery (a few hundred steps) and
 * fine-tuning (epochs) share one representation. Specs are written in epochs where that is
 * what people think in, and resolved to steps by `resolveSchedule` once the number of steps
 * per epoch is known.
 */

/** Learning rate for global step `step` (0-based). */
export type LrSchedule = (step: number) => number;

export interface ConstantScheduleSpec {
  readonly kind: 'constant';
  readonly lr: number;
  /** Linear warm-up from `warmupStartFactor * lr` over this many epochs (fractions allowed). */
  readonly warmupEpochs?: number;
  readonly warmupStartFactor?: number;
}

export interface CosineScheduleSpec {
  readonly kind: 'cosine';
  /** Peak learning rate (reached after warm-up). */
  readonly lr: number;
  /** Final learning rate at the last step. Default 0. */
  readonly minLr?: number;
  readonly warmupEpochs?: number;
  /** Warm-up starts at `warmupStartFactor * lr`. Default 0.1. */
  readonly warmupStartFactor?: number;
}

export interface StepScheduleSpec {
  readonly kind: 'step';
  readonly lr: number;
  /** Epochs (fractions allowed) at which the rate is multiplied by `gamma`, ascending. */
  readonly milestones: readonly number[];
  /** Default 0.1. */
  readonly gamma?: number;
  readonly warmupEpochs?: number;
  readonly warmupStartFactor?: number;
}

export type ScheduleSpec = ConstantScheduleSpec | CosineScheduleSpec | StepScheduleSpec;

function check(value: number, what: string): void {
  if (!Number.isFinite(value) || value < 0) throw new Error(`schedule: ${what}=${value} must be a finite number >= 0`);
}

/** Constant rate. */
export function constantLr(lr: number): LrSchedule {
  check(lr, 'lr');
  return () => lr;
}

/**
 * Linear warm-up over `warmupSteps` from `startFactor * lr` to `lr`, then `after(step - warmupSteps)`.
 * Warm-up matters for large batches and for BN networks trained from scratch at a high rate:
 * the first updates, taken with random BN statistics, are otherwise the ones that diverge.
 */
export function withWarmup(after: LrSchedule, lr: number, warmupSteps: number, startFactor = 0.1): LrSchedule {
  check(warmupSteps, 'warmupSteps');
  if (warmupSteps === 0) return after;
  return (step) => {
    if (step < warmupSteps) return lr * (startFactor + ((1 - startFactor) * step) / warmupSteps);
    return after(step - warmupSteps);
  };
}

/**
 * Cosine decay from `lr` to `minLr` over `totalSteps` (after an optional linear warm-up that is
 * part of `totalSteps`). The last step (totalSteps - 1) gets exactly `minLr`; steps beyond
 * stay at `minLr`.
 */
export function cosineLr(options: {
  readonly lr: number;
  readonly totalSteps: number;
  readonly minLr?: number;
  readonly warmupSteps?: number;
  readonly warmupStartFactor?: number;
}): LrSchedule {
  const { lr, totalSteps } = options;
  const minLr = options.minLr ?? 0;
  const warmupSteps = Math.min(options.warmupSteps ?? 0, Math.max(0, totalSteps - 1));
  check(lr, 'lr');
  check(minLr, 'minLr');
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new Error(`schedule: totalSteps=${totalSteps} must be an integer >= 1`);
  const decaySteps = totalSteps - warmupSteps;
  const cosine: LrSchedule = (step) => {
    if (decaySteps <= 1) return minLr;
    const progress = Math.min(1, step / (decaySteps - 1));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
  return withWarmup(cosine, lr, warmupSteps, options.warmupStartFactor ?? 0.1);
}

/** Piecewise constant: `lr * gamma^k` where k = number of milestones (in steps) <= step. */
export function stepLr(options: { readonly lr: number; readonly milestones: readonly number[]; readonly gamma?: number }): LrSchedule {
  const gamma = options.gamma ?? 0.1;
  check(options.lr, 'lr');
  check(gamma, 'gamma');
  for (let i = 1; i < options.milestones.length; i += 1) {
    if (options.milestones[i] < options.milestones[i - 1]) throw new Error('schedule: step milestones must be ascending');
  }
  const milestones = [...options.milestones];
  return (step) => {
    let passed = 0;
    while (passed < milestones.length && step >= milestones[passed]) passed += 1;
    return options.lr * gamma ** passed;
  };
}

/** Turns an epoch-based spec into a per-step schedule. */
export function resolveSchedule(spec: ScheduleSpec, stepsPerEpoch: number, epochs: number): LrSchedule {
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error(`schedule: stepsPerEpoch=${stepsPerEpoch} must be an integer >= 1`);
  const totalSteps = Math.max(1, Math.round(stepsPerEpoch * epochs));
  const warmupSteps = Math.round((spec.warmupEpochs ?? 0) * stepsPerEpoch);
  switch (spec.kind) {
    case 'constant':
      return withWarmup(constantLr(spec.lr), spec.lr, warmupSteps, spec.warmupStartFactor ?? 0.1);
    case 'cosine':
      return cosineLr({ lr: spec.lr, totalSteps, minLr: spec.minLr, warmupSteps, warmupStartFactor: spec.warmupStartFactor });
    case 'step': {
      // Milestones count from the start of training (warm-up included), as in the specs.
      const inner = stepLr({ lr: spec.lr, milestones: spec.milestones.map((e) => Math.round(e * stepsPerEpoch) - warmupSteps), gamma: spec.gamma });
      return withWarmup(inner, spec.lr, warmupSteps, spec.warmupStartFactor ?? 0.1);
    }
    default: {
      const unknown: never = spec;
      throw new Error(`schedule: unknown kind in ${JSON.stringify(unknown)}`);
    }
  }
}
