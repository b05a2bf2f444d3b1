/**
 * Optimisers for the custom training loop (fit, EMO recovery, fine-tune).
 *
 * Why not `tf.train.*`: we need (a) weight decay applied to conv/dense kernels only, in either
 * the coupled (L2) or decoupled (AdamW / "SGDW") form, (b) a learning rate that changes every
 * step without rebuilding the optimiser, and (c) optimiser state we can drop or reset per
 * recovery run. Each optimiser updates tf.Variables in place with `assign`, inside one
 * `tf.tidy` per step, so the only tensors that outlive a step are the variables and the
 * optimiser's own slots (momentum / Adam moments), which `dispose()` frees.
 *
 * Weight decay, the two forms (`weightDecayMode`):
 * - `'l2'` (coupled, the classic CNN recipe, what PyTorch `SGD(weight_decay=...)` does):
 *   the gradient becomes g + wd * w before momentum/Adam scaling, i.e. an L2 penalty
 *   (wd/2)*||w||^2 added to the loss. With SGD this is the usual ResNet setting (wd ~ 5e-4).
 * - `'decoupled'` (Loshchilov & Hutter, AdamW): w <- w - lr * wd * w, separate from the
 *   gradient step, so Adam's per-coordinate scaling does not weaken the decay. Here, as in
 *   PyTorch's AdamW, the decay is multiplied by the (scheduled) learning rate, so wd for AdamW
 *   is ~1e-2..5e-2, not 5e-4.
 * Only variables selected by `decayFilter` are decayed. The default selects tensors of rank
 * >= 2 (conv and dense kernels) and leaves rank-1 tensors (biases, BN gamma/beta) alone:
 * decaying BN scales or biases only fights the normalisation and costs accuracy.
 */
import { tf } from '../engine/backend.ts';

export type WeightDecayMode = 'l2' | 'decoupled';

/** One variable and its gradient, as handed to `Optimizer.apply`. */
export interface VariableGradient {
  readonly variable: tf.Variable;
  readonly gradient: tf.Tensor;
}

export interface Optimizer {
  /** Short description for logs, e.g. `sgd(momentum=0.9,nesterov,wd=5e-4 l2)`. */
  readonly description: string;
  /** Number of `apply` calls so far (Adam's bias correction uses it). */
  readonly iterations: number;
  /**
   * Applies one update with learning rate `lr` to every variable in `updates`, in place.
   * Gradients are not disposed (the caller owns them). Variables never seen before get
   * fresh (zero) optimiser slots.
   */
  apply(updates: readonly VariableGradient[], lr: number): void;
  /** Frees every optimiser slot; the optimiser can be used again and starts afresh. */
  dispose(): void;
}

/** Which variables get weight decay: by default tensors of rank >= 2 (kernels), not BN/bias. */
export type DecayFilter = (variable: tf.Variable) => boolean;

export const decayKernelsOnly: DecayFilter = (variable) => variable.rank >= 2;

export interface SgdOptions {
  /** Momentum coefficient mu (0 = plain SGD). Default 0.9. */
  readonly momentum?: number;
  /** Nesterov momentum (PyTorch form: d = g + mu * v). Default false. */
  readonly nesterov?: boolean;
  /** Weight decay coefficient. Default 0. */
  readonly weightDecay?: number;
  /** Default `'l2'` for SGD (the usual CNN recipe). */
  readonly weightDecayMode?: WeightDecayMode;
  readonly decayFilter?: DecayFilter;
}

export interface AdamOptions {
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  /** Weight decay coefficient. Default 0. */
  readonly weightDecay?: number;
  /** Default `'decoupled'` for Adam (i.e. AdamW). */
  readonly weightDecayMode?: WeightDecayMode;
  readonly decayFilter?: DecayFilter;
}

/** Slots are keyed by variable name: tfjs variable names are unique per engine. */
class SlotStore {
  private readonly slots = new Map<string, tf.Variable[]>();

  constructor(
    private readonly count: number,
    private readonly label: string,
  ) {}

  get(variable: tf.Variable): tf.Variable[] {
    let slots = this.slots.get(variable.name);
    if (!slots) {
      slots = [];
      for (let i = 0; i < this.count; i += 1) {
        // Slots are plain (non-trainable) variables so they survive tidy and are never
        // picked up by variableGrads' default variable list.
        slots.push(tf.variable(tf.zerosLike(variable), false, `${variable.name}/${this.label}${i}`));
      }
      this.slots.set(variable.name, slots);
    }
    return slots;
  }

  dispose(): void {
    for (const slots of this.slots.values()) for (const slot of slots) slot.dispose();
    this.slots.clear();
  }
}

function checkRate(name: string, value: number, min: number, max: number): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`optimizer: ${name}=${value} must be in [${min}, ${max}]`);
  }
}

export class SgdOptimizer implements Optimizer {
  readonly description: string;
  private readonly momentum: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;
  private readonly weightDecayMode: WeightDecayMode;
  private readonly decayFilter: DecayFilter;
  private readonly velocity = new SlotStore(1, 'velocity');
  private steps = 0;

  constructor(options: SgdOptions = {}) {
    this.momentum = options.momentum ?? 0.9;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    this.weightDecayMode = options.weightDecayMode ?? 'l2';
    this.decayFilter = options.decayFilter ?? decayKernelsOnly;
    checkRate('momentum', this.momentum, 0, 0.999999);
    checkRate('weightDecay', this.weightDecay, 0, 1);
    if (this.nesterov && this.momentum === 0) throw new Error('optimizer: nesterov needs momentum > 0');
    this.description =
      `sgd(momentum=${this.momentum}${this.nesterov ? ',nesterov' : ''}` +
      `${this.weightDecay > 0 ? `,wd=${this.weightDecay} ${this.weightDecayMode}` : ''})`;
  }

  get iterations(): number {
    return this.steps;
  }

  apply(updates: readonly VariableGradient[], lr: number): void {
    checkRate('lr', lr, 0, Number.MAX_VALUE);
    const mu = this.momentum;
    tf.tidy(() => {
      const lrT = tf.scalar(lr);
      const muT = tf.scalar(mu);
      const wdT = tf.scalar(this.weightDecay);
      const lrWdT = tf.scalar(1 - lr * this.weightDecay);
      for (const { variable, gradient } of updates) {
        const decay = this.weightDecay > 0 && this.decayFilter(variable);
        let g = gradient;
        if (decay && this.weightDecayMode === 'l2') g = tf.add(g, tf.mul(wdT, variable));
        // Decoupled: shrink the weight before the gradient step (w <- (1 - lr*wd) w - lr*d).
        const base = decay && this.weightDecayMode === 'decoupled' ? tf.mul(lrWdT, variable) : variable;
        let direction: tf.Tensor;
        if (mu > 0) {
          const [v] = this.velocity.get(variable);
          // PyTorch convention: v <- mu v + g (no dampening); the first step is then v = g.
          const vNew = tf.add(tf.mul(muT, v), g);
          v.assign(vNew);
          direction = this.nesterov ? tf.add(g, tf.mul(muT, vNew)) : vNew;
        } else {
          direction = g;
        }
        variable.assign(tf.sub(base, tf.mul(lrT, direction)));
      }
    });
    this.steps += 1;
  }

  dispose(): void {
    this.velocity.dispose();
    this.steps = 0;
  }
}

export class AdamOptimizer implements Optimizer {
  readonly description: string;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;
  private readonly weightDecayMode: WeightDecayMode;
  private readonly decayFilter: DecayFilter;
  private readonly moments = new SlotStore(2, 'moment');
  private steps = 0;

  constructor(options: AdamOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.weightDecayMode = options.weightDecayMode ?? 'decoupled';
    this.decayFilter = options.decayFilter ?? decayKernelsOnly;
    checkRate('beta1', this.beta1, 0, 0.999999);
    checkRate('beta2', this.beta2, 0, 0.99999999);
    checkRate('epsilon', this.epsilon, 0, 1);
    checkRate('weightDecay', this.weightDecay, 0, 1);
    const name = this.weightDecay > 0 && this.weightDecayMode === 'decoupled' ? 'adamw' : 'adam';
    this.description =
      `${name}(beta1=${this.beta1},beta2=${this.beta2}` +
      `${this.weightDecay > 0 ? `,wd=${this.weightDecay} ${this.weightDecayMode}` : ''})`;
  }

  get iterations(): number {
    return this.steps;
  }

  apply(updates: readonly VariableGradient[], lr: number): void {
    checkRate('lr', lr, 0, Number.MAX_VALUE);
    const t = this.steps + 1;
    // Bias corrections folded into the step size (Kingma & Ba, end of section 2), so the
    // per-variable work is: two moment updates, one sqrt, one divide, one assign.
    const stepSize = (lr * Math.sqrt(1 - this.beta2 ** t)) / (1 - this.beta1 ** t);
    // Scaling epsilon keeps the update identical to the textbook m_hat / (sqrt(v_hat) + eps).
    const epsHat = this.epsilon * Math.sqrt(1 - this.beta2 ** t);
    tf.tidy(() => {
      const b1 = tf.scalar(this.beta1);
      const b1c = tf.scalar(1 - this.beta1);
      const b2 = tf.scalar(this.beta2);
      const b2c = tf.scalar(1 - this.beta2);
      const stepT = tf.scalar(stepSize);
      const epsT = tf.scalar(epsHat);
      const wdT = tf.scalar(this.weightDecay);
      const shrinkT = tf.scalar(1 - lr * this.weightDecay);
      for (const { variable, gradient } of updates) {
        const decay = this.weightDecay > 0 && this.decayFilter(variable);
        const g = decay && this.weightDecayMode === 'l2' ? tf.add(gradient, tf.mul(wdT, variable)) : gradient;
        const [m, v] = this.moments.get(variable);
        const mNew = tf.add(tf.mul(b1, m), tf.mul(b1c, g));
        const vNew = tf.add(tf.mul(b2, v), tf.mul(b2c, tf.square(g)));
        m.assign(mNew);
        v.assign(vNew);
        const base = decay && this.weightDecayMode === 'decoupled' ? tf.mul(shrinkT, variable) : variable;
        variable.assign(tf.sub(base, tf.div(tf.mul(stepT, mNew), tf.add(tf.sqrt(vNew), epsT))));
      }
    });
    this.steps = t;
  }

  dispose(): void {
    this.moments.dispose();
    this.steps = 0;
  }
}

/** Serializable optimiser choice (specs and CLI use this; code may also pass an instance). */
export type OptimizerSpec =
  | ({ readonly kind: 'sgd' } & SgdOptions)
  | ({ readonly kind: 'adam' } & AdamOptions)
  | ({ readonly kind: 'adamw' } & Omit<AdamOptions, 'weightDecayMode'>);

export function createOptimizer(spec: OptimizerSpec): Optimizer {
  switch (spec.kind) {
    case 'sgd':
      return new SgdOptimizer(spec);
    case 'adam':
      // Plain 'adam' follows torch.optim.Adam: weight decay, if any, is an L2 term in the gradient.
      return new AdamOptimizer({ ...spec, weightDecayMode: spec.weightDecayMode ?? 'l2' });
    case 'adamw':
      return new AdamOptimizer({ ...spec, weightDecayMode: 'decoupled', weightDecay: spec.weightDecay ?? 0.05 });
    default: {
      const unknown: never = spec;
      throw new Error(`optimizer: unknown kind in ${JSON.stringify(unknown)}`);
    }
  }
}
