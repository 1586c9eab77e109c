/**
 * AdamW (Loshchilov & Hutter 2019): Adam moments with decoupled weight decay,
 *   m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
 *   p -= lr * ( m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p ).
 * Weight decay applies to the parameters `decay(name)` selects (by default matrices only, as
 * nanoGPT does). Plain Adam is AdamW with weightDecay 0. Also RAdam (Liu et al. 2020) and
 * global-norm gradient clipping.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedOps } from '../backend/fused-ops.js';
import type { ParamSet } from './params.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay; default: those with 2 or more dimensions. */
  decay?: (name: string, v: tf.Variable) => boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decay: (name: string, v: tf.Variable) => boolean;
  /** Number of steps taken (t in the bias corrections). */
  t = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(
    protected readonly params: ParamSet,
    opts: AdamWOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.decay = opts.decay ?? ((_, v) => v.rank >= 2);
    for (const [name, p] of params.vars) {
      if (!p.trainable) continue;
      this.m.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false)),
      );
      this.v.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false)),
      );
    }
  }

  /** Apply one update with gradients keyed by parameter name. Disposes nothing it was given. */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    const fused = fusedOps('adamw');
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const p = this.params.get(name);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        if (fused && g.dtype === 'float32') {
          const weightDecay = this.weightDecay > 0 && this.decay(name, p) ? this.weightDecay : 0;
          const [pNew, mNew, vNew] = fused.adamw(p, g, m, v, { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay, bc1, bc2 });
          m.assign(mNew);
          v.assign(vNew);
          p.assign(pNew);
          continue;
        }
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        let update = tf.div(tf.mul(mNew, 1 / bc1), tf.add(tf.sqrt(tf.mul(vNew, 1 / bc2)), this.eps));
        if (this.weightDecay > 0 && this.decay(name, p)) update = tf.add(update, tf.mul(p, this.weightDecay));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      }
    });
  }

  /** Optimizer state for checkpoints: moments by `m.<name>` / `v.<name>`, and the step count. */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [n, m] of this.m) out.set(`m.${n}`, m);
    for (const [n, v] of this.v) out.set(`v.${n}`, v);
    return out;
  }

  loadState(tensors: Map<string, tf.Tensor>, t: number): void {
    for (const [n, m] of this.m) {
      const saved = tensors.get(`m.${n}`);
      if (saved) m.assign(saved);
    }
    for (const [n, v] of this.v) {
      const saved = tensors.get(`v.${n}`);
      if (saved) v.assign(saved);
    }
    this.t = t;
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/**
 * RAdam, "On the Variance of the Adaptive Learning Rate and Beyond" (Liu et al., ICLR 2020,
 * Algorithm 2), as torch.optim.RAdam computes it (its default, coupled weight decay):
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m_hat = m / (1 - b1^t)
 *   rho_inf = 2/(1-b2) - 1,  rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
 *   rho_t > 5:  r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))
 *               p -= lr m_hat r_t sqrt(1 - b2^t) / (sqrt(v) + eps)
 *   else:       p -= lr m_hat   (the variance of the adaptive rate is not yet tractable: SGD with momentum)
 * The weight decay is L2 added to the gradient (not decoupled), on the parameters `decay`
 * selects; torch applies it to every parameter of the group, so pass `decay: () => true` to match.
 * Checkpoint state is AdamW's (m, v, t).
 */
export class RAdam extends AdamW {
  /** The rectification r_t of step t, or null where rho_t <= 5 (the un-adapted momentum step). */
  rectification(t: number): number | null {
    const rhoInf = 2 / (1 - this.beta2) - 1;
    const rhoT = rhoInf - (2 * t * this.beta2 ** t) / (1 - this.beta2 ** t);
    if (!(rhoT > 5)) return null;
    return Math.sqrt(((rhoT - 4) * (rhoT - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rhoT));
  }

  override step(grads: Map<string, tf.Tensor>, lr: number): void {
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    const rect = this.rectification(this.t);
    tf.tidy(() => {
      for (const [name, grad] of grads) {
        const p = this.params.get(name);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const g = this.weightDecay > 0 && this.decay(name, p) ? tf.add(grad, tf.mul(p, this.weightDecay)) : grad;
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        const mHat = tf.mul(mNew, 1 / bc1);
        const update = rect === null ? mHat : tf.div(tf.mul(mHat, rect * Math.sqrt(bc2)), tf.add(tf.sqrt(vNew), this.eps));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      }
    });
  }
}

/**
 * Scale gradients so their global L2 norm is at most maxNorm, as PyTorch's clip_grad_norm_ does:
 * g *= min(1, maxNorm / (norm + 1e-6)). Everything stays on the device (no host read): returns
 * the norm before clipping as a scalar the caller disposes, and the gradients (new ones when
 * clipping, maxNorm > 0; the old ones are then disposed).
 */
export function clipGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): { norm: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const norm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
  if (!(maxNorm > 0)) return { norm, grads };
  const scale = tf.tidy(() => tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6))));
  const out = new Map<string, tf.Tensor>();
  for (const [n, g] of grads) {
    out.set(n, tf.mul(g, scale));
    g.dispose();
  }
  scale.dispose();
  return { norm, grads: out };
}
