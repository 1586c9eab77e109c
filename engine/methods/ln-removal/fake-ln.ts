/**
 * FakeLN and the removal schedule of "Transformers Don't Need LayerNorm at Inference Time"
 * (2025; docs/methods.md, "LayerNorm removal"), on GPT-2's LN sites through `ForwardHooks.norm`.
 *
 *   FakeLN(x) = (x - mean_d(x)) / sigma_avg * gamma + beta
 *
 * sigma_avg is one scalar per site: the mean over batch and positions of the per-token
 * sqrt(Var_d(x) + eps), tracked as an EMA while the site's LN is real and frozen when it is
 * removed. The EMA runs once per optimizer step on the mean over all of the step's tokens (every
 * micro-batch's), so gradient accumulation changes nothing; the authors' code updates it once per
 * micro-batch forward instead. With `momentumTokens` the momentum m applies per that many tokens,
 * so a step over n tokens uses m^(n / momentumTokens): the official configs' 0.9^(B/32) per
 * micro-batch of B 1024-token sequences is m = 0.9 per 32768 tokens, the same decay per token.
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
 * Special tokens (`special: true`, off by default), as the authors' code treats them: position 0
 * (BOS) and EOT tokens have far larger residual norms than the rest.
 *  - Every site keeps a second EMA, sigma_bos, measured on position 0 only; a removed site divides
 *    position 0 by it until the `bos` event. Its ordinary sigma_avg is then measured on positions
 *    1.. (the authors' EXP_NON_BOS_AVERAGE_STD).
 *  - ln_1's V path alone keeps a third EMA, sigma_eot, measured on the EOT tokens past position 0;
 *    once removed it divides those tokens by it until the `eot` event.
 *  - The events come after ln_f: EOT at ln_f + `gapEot` (2 in the official configs), BOS at
 *    EOT + `gapBos` (10). Afterwards every token of a site divides by its sigma_avg, so the
 *    LN-free model has one scalar per site.
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
  /** Special tokens only: steps from ln_f to the EOT event (official configs: 2). */
  gapEot: number;
  /** Special tokens only: steps from the EOT event to the BOS event (official configs: 10). */
  gapBos: number;
  special: boolean;
}

/**
 * The paper's removal order: ln_2 of blocks 0..L-1, then ln_1-QK of 0..L-1, then ln_1-V of 0..L-1,
 * then ln_f; one site every `gap` steps of its group from `start`, each group starting one gap of
 * the previous group after that group's last removal (GPT-2 small: start 20, gaps 2/2/3 put ln_f
 * at step 104, as in the paper). With special tokens, EOT at ln_f + gapEot, BOS at EOT + gapBos
 * (the official configs' start_eot = start_lnf + 2, start_bos = start_eot + 10).
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
    step += o.gapEot;
    events.push({ step, kind: 'eot', layer: -1 });
    step += o.gapBos;
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
 * The auxiliary std-uniformity loss at the input of ln_f (the authors' CustomTrainer):
 *   s_bt = sqrt(Var_d(x_bt) + eps),  target = mean of s over tokens that are neither position 0
 *   nor EOT (no gradient),  L_aux = w * mean_bt (s_bt - target)^2.
 * `exclude` (B, T) marks the tokens left out of the target (1): position 0, and EOT tokens when
 * the tokenizer has an EOT id (`FakeLNSet.auxExclude`).
 */
export function auxStdLoss(x: tf.Tensor3D, weight: number, eps: number, exclude: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const s = tokenStd(x, eps) as tf.Tensor2D; // (B, T)
    const keep = tf.sub(1, exclude);
    // With gradient accumulation the target is each micro-batch's own, as the authors' code
    // computes it per forward pass.
    const target = stopGradient(tf.div(tf.sum(tf.mul(s, keep)), tf.maximum(tf.sum(keep), 1)));
    return tf.mul(tf.mean(tf.square(tf.sub(s, target))), weight) as tf.Scalar;
  });
}

/** (B, T) masks of a batch: position 0, EOT tokens past position 0. */
export function tokenMasks(x: Int32Array, batch: number, seq: number, eotToken: number | null): { bos: Float32Array; eot: Float32Array } {
  const bos = new Float32Array(batch * seq);
  const eot = new Float32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    bos[b * seq] = 1;
    if (eotToken !== null) for (let t = 1; t < seq; t++) if (x[b * seq + t] === eotToken) eot[b * seq + t] = 1;
  }
  return { bos, eot };
}

export interface FakeLNOptions {
  momentum: number; // EMA momentum, 0.9 in the paper
  /** Tokens per which `momentum` applies (null: per step, whatever its size). */
  momentumTokens?: number | null;
  eps: number; // the LN's epsilon (1e-5 for GPT-2)
  ln1Sigma: 'shared' | 'separate';
  special: boolean;
}

interface SiteState {
  sigma: number | null; // EMA of the mean token std (all tokens, or positions 1.. with `special`)
  sigmaBos: number | null; // special: EMA over position 0
  sigmaEot: number | null; // special, ln_1 only: EMA over EOT tokens past position 0 (used by the V path)
  removed: boolean;
}

/**
 * One step's std measurements of one sigma key, summed over the step's forwards (its
 * micro-batches with gradient accumulation), so each mean is over the whole batch's tokens.
 * Each group is [sum of token stds, token count]: ordinary tokens, position 0, EOT tokens.
 */
interface Measurement {
  avg: [tf.Scalar, tf.Scalar];
  bos: [tf.Scalar, tf.Scalar] | null;
  eot: [tf.Scalar, tf.Scalar] | null;
  /** All tokens measured this step (for `momentumTokens`). */
  tokens: number;
  /** The input measured last (ln_1's V path sees the Q/K path's input again). */
  lastInput: tf.Tensor;
}

/** What a checkpoint stores of a FakeLNSet (`exportState` / `importState`). */
export interface FakeLNState {
  sites: Record<string, { sigma: number | null; sigma_bos: number | null; sigma_eot: number | null; removed: boolean }>;
  eot_done: boolean;
  bos_done: boolean;
}

/**
 * The state of every FakeLN site of one model during LN removal, and the `ForwardHooks.norm`
 * that applies it. Usage per step: `setTokens(x)` with the step's rows (marks position 0 and EOT
 * tokens; or once per micro-batch with its rows), forward with `hooks(true)` (once, or once per
 * micro-batch of consecutive rows: each forward takes the next rows' masks); after the optimizer
 * step, `commit()` folds the step's std measurements into the EMAs of sites that are still real.
 */
export class FakeLNSet {
  private readonly sites = new Map<string, SiteState>();
  private pending = new Map<string, Measurement>();
  /** The input of block 0's ln_1 in the latest forward (a new one marks the next forward). */
  private lastForwardInput: tf.Tensor | null = null;
  /** The step's token masks on the host, (rows, seq), and where the current forward's rows start. */
  private host: { bos: Float32Array; eot: Float32Array; rows: number; seq: number; next: number } | null = null;
  /** The current forward's masks (its micro-batch rows). */
  private masks: { bos: tf.Tensor2D; eot: tf.Tensor2D; exclude: tf.Tensor2D; eotCount: number } | null = null;
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
    for (const site of allSites(nLayers)) this.sites.set(lnSiteKey(site), { sigma: null, sigmaBos: null, sigmaEot: null, removed: false });
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

  /** The sigma a site divides ordinary tokens by (after removal: the frozen value). */
  sigma(site: NormSite): number | null {
    return this.state(this.sigmaKey(lnSiteKey(site))).sigma;
  }

  /** Special tokens: the sigma of position 0 at this site. */
  sigmaBos(site: NormSite): number | null {
    return this.state(this.sigmaKey(lnSiteKey(site))).sigmaBos;
  }

  /** Special tokens: the sigma of EOT tokens on ln_1's V path (null elsewhere). */
  sigmaEot(site: NormSite): number | null {
    return site.which === 'ln_1_v' ? this.state(this.sigmaKey(lnSiteKey(site))).sigmaEot : null;
  }

  /** Is the sigma of this key still tracked (some site reading it is real)? */
  private tracking(sigmaKey: string): boolean {
    for (const [k, s] of this.sites) if (this.sigmaKey(k) === sigmaKey && !s.removed) return true;
    return false;
  }

  /** Does this sigma key carry an EOT sigma (it is the one ln_1's V path reads)? */
  private hasEot(sigmaKey: string): boolean {
    return this.opts.special && sigmaKey.includes('.ln_1_') && (this.opts.ln1Sigma === 'shared' || sigmaKey.endsWith('.ln_1_v'));
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

  /** Mark position 0 and the EOT tokens of the step's rows (the next forwards read them in order). */
  setTokens(x: Int32Array, batch: number, seq: number): void {
    this.disposeMasks();
    this.host = { ...tokenMasks(x, batch, seq, this.eotToken), rows: batch, seq, next: 0 };
  }

  /** A forward over `rows` rows starts: its masks are the next `rows` rows of the step's. */
  private beginForward(rows: number): void {
    const h = this.host;
    if (!h) fail('internal', 'FakeLNSet.setTokens must run before the forward pass');
    if (h.next + rows > h.rows) h.next = 0; // past the step's rows: the same rows again (a repeated forward)
    const a = h.next * h.seq;
    const b = (h.next + rows) * h.seq;
    h.next += rows;
    const bos = h.bos.subarray(a, b);
    const eot = h.eot.subarray(a, b);
    if (this.masks) tf.dispose([this.masks.bos, this.masks.eot, this.masks.exclude]);
    this.masks = tf.tidy(() => ({
      bos: tf.keep(tf.tensor2d(bos, [rows, h.seq])),
      eot: tf.keep(tf.tensor2d(eot, [rows, h.seq])),
      exclude: tf.keep(
        tf.tensor2d(
          Float32Array.from(bos, (v, i) => Math.max(v, eot[i])),
          [rows, h.seq],
        ),
      ),
      eotCount: eot.reduce((s, v) => s + v, 0),
    }));
  }

  /** (B, T): 1 for the tokens the auxiliary loss's target leaves out (position 0 and EOT tokens). */
  get auxExclude(): tf.Tensor2D {
    if (!this.masks) this.beginForward(this.host?.rows ?? 0);
    return this.masks!.exclude;
  }

  /**
   * The norm hook. `track`: measure the batch's per-site std (for `commit`); evaluation passes
   * leave the EMAs alone.
   */
  hooks(track: boolean): ForwardHooks {
    return {
      norm: (site, x, real) => {
        // Block 0's ln_1 (its Q/K path) is the first norm of every forward.
        if (site.layer === 0 && site.which === 'ln_1_qk' && this.host && this.lastForwardInput !== x) {
          this.lastForwardInput = x;
          this.beginForward(x.shape[0]);
        }
        const key = lnSiteKey(site);
        if (site.which === 'ln_f') this.lnfInput = x as tf.Tensor3D;
        const sKey = this.sigmaKey(key);
        const shared = this.state(sKey);
        if (track && this.tracking(sKey) && this.pending.get(sKey)?.lastInput !== x) this.measure(sKey, x);
        const st = this.state(key);
        if (!st.removed) return real();
        const [gamma, beta] = this.affine(site);
        const sigma = shared.sigma!;
        const useBos = this.opts.special && !this.bosDone && shared.sigmaBos !== null;
        const useEot = this.opts.special && !this.eotDone && site.which === 'ln_1_v' && shared.sigmaEot !== null;
        if (!useBos && !useEot) return fakeLayerNorm(x, sigma, gamma, beta);
        if (!this.masks) fail('internal', 'FakeLNSet.setTokens must run before the forward pass');
        // Per-token sigma (B, T, 1): sigma_avg, position 0 -> sigma_bos, EOT (V path) -> sigma_eot.
        let perToken: tf.Tensor = tf.fill(this.masks.bos.shape, sigma);
        if (useBos) perToken = tf.add(perToken, tf.mul(this.masks.bos, shared.sigmaBos! - sigma));
        if (useEot) perToken = tf.add(perToken, tf.mul(this.masks.eot, shared.sigmaEot! - sigma));
        return fakeLayerNorm(x, tf.expandDims(perToken, -1), gamma, beta);
      },
    };
  }

  private affine(site: NormSite): [tf.Tensor | null, tf.Tensor | null] {
    const prefix = site.which === 'ln_f' ? 'transformer.ln_f' : `transformer.h.${site.layer}.${site.which === 'ln_2' ? 'ln_2' : 'ln_1'}`;
    return [this.params.get(`${prefix}.weight`), this.params.vars.get(`${prefix}.bias`) ?? null];
  }

  /** Add one forward's token stds at a site to the step's sums (kept past the forward's tidy). */
  private measure(key: string, x: tf.Tensor): void {
    const prev = this.pending.get(key);
    const s = tokenStd(x, this.opts.eps) as tf.Tensor2D; // (B, T); not part of the loss
    const add = (p: [tf.Scalar, tf.Scalar] | null | undefined, sum: tf.Tensor, count: tf.Tensor): [tf.Scalar, tf.Scalar] => [
      tf.keep((p ? tf.add(p[0], sum) : sum) as tf.Scalar),
      tf.keep((p ? tf.add(p[1], count) : count) as tf.Scalar),
    ];
    let m: Omit<Measurement, 'tokens' | 'lastInput'>;
    if (!this.opts.special) m = { avg: add(prev?.avg, tf.sum(s), tf.scalar(s.size)), bos: null, eot: null };
    else {
      if (!this.masks) fail('internal', 'FakeLNSet.setTokens must run before the forward pass');
      const group = (p: [tf.Scalar, tf.Scalar] | null | undefined, mask: tf.Tensor) => add(p, tf.sum(tf.mul(s, mask)), tf.sum(mask));
      m = {
        avg: group(prev?.avg, tf.sub(1, this.masks.bos)), // positions 1..
        bos: group(prev?.bos, this.masks.bos),
        eot: this.hasEot(key) ? group(prev?.eot, this.masks.eot) : null,
      };
    }
    if (prev) this.disposeMeasurement(prev);
    this.pending.set(key, { ...m, tokens: (prev?.tokens ?? 0) + s.size, lastInput: x });
  }

  private disposeMeasurement(p: Measurement): void {
    tf.dispose([...p.avg, ...(p.bos ?? []), ...(p.eot ?? [])]);
  }

  /**
   * Fold the step's measurements into the EMAs, once per step over all its forwards' tokens (so a
   * step split into micro-batches gives what the unsplit step gives; a first measurement
   * initializes). A group without tokens this step (no EOT token) leaves its sigma alone.
   */
  async commit(): Promise<void> {
    const entries = [...this.pending];
    this.pending = new Map();
    if (entries.length === 0) return;
    const none = tf.scalar(0);
    const flat = tf.tidy(() =>
      tf.stack(entries.flatMap(([, p]) => [p.avg, p.bos ?? [none, none], p.eot ?? [none, none]].flatMap(([sum, n]) => [tf.div(sum, tf.maximum(n, 1)), n]))),
    );
    const v = await flat.data();
    tf.dispose([flat, none]);
    for (const [, p] of entries) this.disposeMeasurement(p);
    entries.forEach(([key, p], i) => {
      const m = this.opts.momentumTokens ? this.opts.momentum ** (p.tokens / this.opts.momentumTokens) : this.opts.momentum;
      const ema = (old: number | null, j: number) =>
        v[6 * i + 2 * j + 1] === 0 ? old : old === null ? v[6 * i + 2 * j] : m * old + (1 - m) * v[6 * i + 2 * j];
      const st = this.state(key);
      st.sigma = ema(st.sigma, 0);
      if (p.bos) st.sigmaBos = ema(st.sigmaBos, 1);
      if (p.eot) st.sigmaEot = ema(st.sigmaEot, 2);
    });
  }

  /** Drop measurements of a forward that is not committed (evaluation). */
  discard(): void {
    for (const p of this.pending.values()) this.disposeMeasurement(p);
    this.pending.clear();
  }

  /** The frozen sigma of every site, keyed by `lnSiteKey` (the LN-free model's `normlab_ln_sigmas`). */
  frozenSigmas(): Record<string, number> {
    if (this.opts.special && !(this.eotDone && this.bosDone)) fail('state', 'the EOT and BOS events have not run: special tokens still have their own sigma');
    const out: Record<string, number> = {};
    for (const key of this.sites.keys()) {
      const st = this.state(key);
      const s = this.state(this.sigmaKey(key)).sigma;
      if (!st.removed || s === null) fail('state', `LN site ${key} was not removed: the model is not LN-free yet`);
      out[key] = s;
    }
    return out;
  }

  /** Every site's sigmas and removal flag, for checkpoints and the summary. */
  snapshot(): FakeLNState['sites'] {
    const out: FakeLNState['sites'] = {};
    for (const [k, s] of this.sites) out[k] = { sigma: s.sigma, sigma_bos: s.sigmaBos, sigma_eot: s.sigmaEot, removed: s.removed };
    return out;
  }

  /** Everything a resumed run needs: every site's sigmas and removal flag, and the special-token phase. */
  exportState(): FakeLNState {
    return { sites: this.snapshot(), eot_done: this.eotDone, bos_done: this.bosDone };
  }

  /** Continue from `exportState()` of a set with the same sites. */
  importState(state: FakeLNState): void {
    for (const [key, st] of this.sites) {
      const saved = state.sites[key];
      if (!saved) fail('model', `checkpoint has no FakeLN state for site ${key}`);
      st.sigma = saved.sigma;
      st.sigmaBos = saved.sigma_bos ?? null;
      st.sigmaEot = saved.sigma_eot ?? null;
      st.removed = saved.removed;
    }
    this.eotDone = state.eot_done;
    this.bosDone = state.bos_done;
  }

  private disposeMasks(): void {
    if (this.masks) tf.dispose([this.masks.bos, this.masks.eot, this.masks.exclude]);
    this.masks = null;
    this.host = null;
    this.lastForwardInput = null;
  }

  dispose(): void {
    this.discard();
    this.disposeMasks();
  }
}
