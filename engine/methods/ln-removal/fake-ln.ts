/**
 * FakeLN and the removal schedule of "Transformers Don't Need LayerNorm at Inference Time"
 * (2025; docs/methods.md, "LayerNorm removal"), on GPT-2's LN sites through `ForwardHooks.norm`.
 *
 *   FakeLN(x) = (x - mean_d(x)) / sigma_avg * gamma + beta
 *
 * sigma_avg is one scalar per site: the mean over batch and positions of the per-token
 * sqrt(Var_d(x) + eps), tracked as an EMA (momentum 0.9) while the site's LN is real and frozen
 * when it is removed.
 *
 * ln_1's two paths (Q/K and V) read the same input, so they measure the same sigma. How their
 * sigmas relate is a switch (`ln1Sigma`):
 *  - `shared` (default, the authors' code: one FakeLayerNorm module serves both paths with one
 *    std buffer): one EMA per ln_1, updated while either path is real, frozen when the V path
 *    (the later one) is removed. The Q/K path, once removed, divides by this shared value, which
 *    keeps following the data until the V path goes. One sigma per ln_1 is also what the released
 *    HF form can represent exactly.
 *  - `separate`: each path freezes its own copy at its own removal step (the literal "frozen when
 *    that LN is removed"). The HF export then folds sigma_qk / sigma_v into the V columns of
 *    c_attn (see export.ts).
 *
 * Special tokens (`special: true`, off by default): position 0 (BOS in the authors' data) and EOT
 * tokens have far larger residual norms than the rest, so while the switch is on, each site keeps
 * a second EMA sigma measured on those tokens only, and a removed site divides those tokens by it.
 * Two extra schedule events after ln_f (authors' `disable_eot_std`, `disable_bos_std`) end the
 * special treatment: EOT tokens, then position 0, switch to the site's ordinary sigma_avg. The
 * authors' code gives position 0 and EOT tokens the same special value; here they share one
 * special sigma per site, as there.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import { lnSiteKey } from '../../models/gpt2.js';
import type { ForwardHooks, NormSite } from '../../models/lm.js';
import { stopGradient } from '../../nn/ops.js';
import type { ParamSet } from '../../nn/params.js';

export type RemovalKind = 'ln_2' | 'ln_1_qk' | 'ln_1_v' | 'ln_f' | 'eot' | 'bos';

export interface RemovalEvent {
  /** 0-based optimizer step before which the removal takes effect. */
  step: number;
  kind: RemovalKind;
  /** Block index (-1 for ln_f and the all-site special-token events). */
  layer: number;
}

export interface ScheduleOptions {
  start: number;
  gapLn2: number;
  gapLn1qk: number;
  gapLn1v: number;
  /** Steps after ln_f to the EOT event, and from there to the BOS event (special tokens only). */
  gapSpecial: number;
  special: boolean;
}

/**
 * The paper's removal order: ln_2 of blocks 0..L-1, then ln_1-QK of 0..L-1, then ln_1-V of 0..L-1,
 * then ln_f; one site every `gap` steps of its group from `start`, each group starting one gap of
 * the previous group after that group's last removal (GPT-2 small: start 20, gaps 2/2/3 put ln_f
 * at step 104, as in the paper).
 */
export function removalSchedule(nLayers: number, o: ScheduleOptions): RemovalEvent[] {
  const events: RemovalEvent[] = [];
  let step = o.start;
  const groups: [RemovalKind, number][] = [
    ['ln_2', o.gapLn2],
    ['ln_1_qk', o.gapLn1qk],
    ['ln_1_v', o.gapLn1v],
  ];
  for (const [kind, gap] of groups) {
    for (let i = 0; i < nLayers; i++) {
      events.push({ step, kind, layer: i });
      step += gap;
    }
  }
  events.push({ step, kind: 'ln_f', layer: -1 });
  if (o.special) {
    step += o.gapSpecial;
    events.push({ step, kind: 'eot', layer: -1 });
    step += o.gapSpecial;
    events.push({ step, kind: 'bos', layer: -1 });
  }
  return events;
}

/** Every site of an L-block GPT-2, in removal order. */
export function allSites(nLayers: number): NormSite[] {
  const sites: NormSite[] = [];
  for (const which of ['ln_2', 'ln_1_qk', 'ln_1_v'] as const) for (let i = 0; i < nLayers; i++) sites.push({ layer: i, which });
  sites.push({ layer: -1, which: 'ln_f' });
  return sites;
}

/**
 * FakeLN: (x - mean(x)) / sigma * gamma + beta. `sigma` is a number (one scalar per site) or a
 * tensor broadcastable to x's leading shape with a trailing 1 (per-token special sigmas).
 */
export function fakeLayerNorm(x: tf.Tensor, sigma: number | tf.Tensor, gamma: tf.Tensor | null, beta: tf.Tensor | null): tf.Tensor {
  let y = tf.div(tf.sub(x, tf.mean(x, -1, true)), sigma);
  if (gamma) y = tf.mul(y, gamma);
  if (beta) y = tf.add(y, beta);
  return y;
}

/** Per-token std over the last axis, sqrt(Var_d(x) + eps): (..., d) -> (...). */
export function tokenStd(x: tf.Tensor, eps: number): tf.Tensor {
  const { variance } = tf.moments(x, -1, false);
  return tf.sqrt(tf.add(variance, eps));
}

/**
 * The auxiliary std-uniformity loss at the input of ln_f:
 *   s_bt = sqrt(Var_d(x_bt) + eps),  target = mean of s over tokens that are neither position 0
 *   nor EOT (no gradient),  L_aux = w * mean_bt (s_bt - target)^2.
 * `special` (B, T) marks the excluded tokens (1) or is null (position 0 only is excluded).
 */
export function auxStdLoss(x: tf.Tensor3D, weight: number, eps: number, special: tf.Tensor2D | null): tf.Scalar {
  return tf.tidy(() => {
    const [B, T] = x.shape;
    const s = tokenStd(x, eps) as tf.Tensor2D; // (B, T)
    const mask = special ?? tf.tile(tf.concat([tf.ones([1, 1]), tf.zeros([1, T - 1])], 1), [B, 1]);
    const keep = tf.sub(1, mask);
    const target = stopGradient(tf.div(tf.sum(tf.mul(s, keep)), tf.maximum(tf.sum(keep), 1))); // a constant

    return tf.mul(tf.mean(tf.square(tf.sub(s, target))), weight) as tf.Scalar;
  });
}

export interface FakeLNOptions {
  momentum: number; // EMA momentum, 0.9 in the paper
  eps: number; // the LN's epsilon (1e-5 for GPT-2)
  ln1Sigma: 'shared' | 'separate';
  special: boolean;
}

interface SiteState {
  sigma: number | null; // EMA of the per-batch mean token std (all tokens, or non-special tokens with `special`)
  sigmaSpecial: number | null; // EMA over position 0 / EOT tokens
  removed: boolean;
}

/**
 * The state of every FakeLN site of one model during LN removal, and the `ForwardHooks.norm`
 * that applies it. Usage per training step: `setTokens(x)` (marks special tokens), forward with
 * `hooks(true)`, then `commit()` after the step to fold the batch's std measurements into the
 * EMAs of sites that are still real.
 */
export class FakeLNSet {
  private readonly sites = new Map<string, SiteState>();
  private pending: { key: string; all: tf.Scalar; special: tf.Scalar | null }[] = [];
  private specialMask: tf.Tensor2D | null = null; // (B, T), 1 for position 0 / EOT tokens
  private eotDone = false;
  private bosDone = false;
  /** Input of ln_f in the last forward (kept for the auxiliary loss; disposed by the caller's tidy). */
  lnfInput: tf.Tensor3D | null = null;

  constructor(
    private readonly params: ParamSet,
    readonly nLayers: number,
    readonly opts: FakeLNOptions,
    readonly eotToken: number | null = null,
  ) {
    for (const site of allSites(nLayers)) this.sites.set(lnSiteKey(site), { sigma: null, sigmaSpecial: null, removed: false });
  }

  /** The key whose sigma a site reads (ln_1's paths share one in `shared` mode). */
  private sigmaKey(key: string): string {
    return this.opts.ln1Sigma === 'shared' && key.endsWith('.ln_1_v') ? key.replace('.ln_1_v', '.ln_1_qk') : key;
  }

  private state(key: string): SiteState {
    const s = this.sites.get(key);
    if (!s) fail('internal', `no LN site ${key}`);
    return s;
  }

  isRemoved(site: NormSite): boolean {
    return this.state(lnSiteKey(site)).removed;
  }

  /** The sigma a site divides by (after removal: the frozen value). */
  sigma(site: NormSite): number | null {
    return this.state(this.sigmaKey(lnSiteKey(site))).sigma;
  }

  sigmaSpecial(site: NormSite): number | null {
    return this.state(this.sigmaKey(lnSiteKey(site))).sigmaSpecial;
  }

  /** Is the sigma of this key still tracked (some site reading it is real)? */
  private tracking(sigmaKey: string): boolean {
    for (const [k, s] of this.sites) if (this.sigmaKey(k) === sigmaKey && !s.removed) return true;
    return false;
  }

  /** Apply one schedule event. */
  apply(e: RemovalEvent): void {
    if (e.kind === 'eot') this.eotDone = true;
    else if (e.kind === 'bos') this.bosDone = true;
    else {
      const site: NormSite = e.kind === 'ln_f' ? { layer: -1, which: 'ln_f' } : { layer: e.layer, which: e.kind };
      const st = this.state(lnSiteKey(site));
      if (this.state(this.sigmaKey(lnSiteKey(site))).sigma === null) {
        fail('state', `cannot remove ${lnSiteKey(site)} before its sigma was measured (run at least one step first)`);
      }
      st.removed = true;
    }
  }

  /** Mark the special tokens of the next batch (position 0 always; EOT tokens when known). */
  setTokens(x: Int32Array, batch: number, seq: number): void {
    this.specialMask?.dispose();
    this.specialMask = null;
    if (!this.opts.special) return;
    const m = new Float32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      m[b * seq] = 1;
      if (this.eotToken !== null) for (let t = 0; t < seq; t++) if (x[b * seq + t] === this.eotToken) m[b * seq + t] = 1;
    }
    this.specialMask = tf.tensor2d(m, [batch, seq]);
  }

  /** The (B, T) special-token mask of the current batch, or null when the switch is off. */
  get special(): tf.Tensor2D | null {
    return this.specialMask;
  }

  /**
   * The norm hook. `track`: measure the batch's per-site std (for `commit`); evaluation passes
   * leave the EMAs alone.
   */
  hooks(track: boolean): ForwardHooks {
    return {
      norm: (site, x, real) => {
        const key = lnSiteKey(site);
        if (site.which === 'ln_f') this.lnfInput = x as tf.Tensor3D;
        const sKey = this.sigmaKey(key);
        const shared = this.state(sKey);
        // Measure once per sigma key and step (ln_1's V path repeats the QK path's input).
        if (track && this.tracking(sKey) && !this.pending.some((p) => p.key === sKey)) this.measure(sKey, x);
        const st = this.state(key);
        if (!st.removed) return real();
        const [gamma, beta] = this.affine(site);
        const sigma = shared.sigma!;
        const special = this.specialMask;
        if (!this.opts.special || !special || shared.sigmaSpecial === null) return fakeLayerNorm(x, sigma, gamma, beta);
        // Per-token sigma: special tokens still use their own value until the EOT / BOS events.
        const [B, T] = special.shape;
        const pos0 = tf.tile(tf.concat([tf.ones([1, 1]), tf.zeros([1, T - 1])], 1), [B, 1]);
        const eot = tf.relu(tf.sub(special, pos0)); // EOT tokens that are not at position 0
        const useSpecial = tf.add(this.bosDone ? tf.zerosLike(pos0) : pos0, this.eotDone ? tf.zerosLike(eot) : eot);
        const perToken = tf.add(tf.mul(useSpecial, shared.sigmaSpecial), tf.mul(tf.sub(1, useSpecial), sigma));
        return fakeLayerNorm(x, tf.expandDims(perToken, -1), gamma, beta);
      },
    };
  }

  private affine(site: NormSite): [tf.Tensor | null, tf.Tensor | null] {
    const prefix = site.which === 'ln_f' ? 'transformer.ln_f' : `transformer.h.${site.layer}.${site.which === 'ln_2' ? 'ln_2' : 'ln_1'}`;
    return [this.params.get(`${prefix}.weight`), this.params.vars.get(`${prefix}.bias`) ?? null];
  }

  private measure(key: string, x: tf.Tensor): void {
    const s = tokenStd(x, this.opts.eps); // (B, T); not part of the loss
    const special = this.specialMask;
    if (!this.opts.special || !special) {
      this.pending.push({ key, all: tf.keep(tf.mean(s) as tf.Scalar), special: null });
      return;
    }
    const keep = tf.sub(1, special);
    const ordinary = tf.div(tf.sum(tf.mul(s, keep)), tf.maximum(tf.sum(keep), 1)) as tf.Scalar;
    const spec = tf.div(tf.sum(tf.mul(s, special)), tf.maximum(tf.sum(special), 1)) as tf.Scalar;
    this.pending.push({ key, all: tf.keep(ordinary), special: tf.keep(spec) });
  }

  /**
   * Fold the measurements of the last forward into the EMAs (first measurement initializes).
   * The measurements are read to the host in one transfer.
   */
  async commit(): Promise<void> {
    const m = this.opts.momentum;
    const pending = this.pending;
    this.pending = [];
    const measured = pending.flatMap((p) => (p.special ? [p.all, p.special] : [p.all]));
    if (measured.length === 0) return;
    const stacked = tf.stack(measured);
    tf.dispose(measured);
    const vals = await stacked.data();
    stacked.dispose();
    let i = 0;
    for (const p of pending) {
      const st = this.state(p.key);
      const v = vals[i++];
      st.sigma = st.sigma === null ? v : m * st.sigma + (1 - m) * v;
      if (p.special) {
        const vs = vals[i++];
        st.sigmaSpecial = st.sigmaSpecial === null ? vs : m * st.sigmaSpecial + (1 - m) * vs;
      }
    }
  }

  /** Drop measurements of a forward that is not committed (evaluation). */
  discard(): void {
    for (const p of this.pending) {
      p.all.dispose();
      p.special?.dispose();
    }
    this.pending = [];
  }

  /** The frozen sigma of every site, keyed by `lnSiteKey` (the LN-free model's `normlab_ln_sigmas`). */
  frozenSigmas(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const key of this.sites.keys()) {
      const st = this.state(key);
      const s = this.state(this.sigmaKey(key)).sigma;
      if (!st.removed || s === null) fail('state', `LN site ${key} was not removed: the model is not LN-free yet`);
      out[key] = s;
    }
    return out;
  }

  /** Sigmas, removal flags and phase, for checkpoints and the summary. */
  snapshot(): Record<string, { sigma: number | null; sigma_special: number | null; removed: boolean }> {
    const out: Record<string, { sigma: number | null; sigma_special: number | null; removed: boolean }> = {};
    for (const [k, s] of this.sites) out[k] = { sigma: s.sigma, sigma_special: s.sigmaSpecial, removed: s.removed };
    return out;
  }

  dispose(): void {
    this.discard();
    this.specialMask?.dispose();
    this.specialMask = null;
  }
}
