/**
 * Depth diagnostics of "The Curse of Depth in Large Language Models" (Sun et al. 2025), for any
 * causal LM (LLaMA or GPT-2 layout):
 *
 *  - per-layer output variance of the residual stream for l = 0..L, where x_0 is the embedding
 *    output and x_l the output of block l (1-based), on the validation windows, in one of two
 *    definitions (docs/methods.md, "LayerNorm Scaling"; the paper does not spell its own out):
 *      `elements`:  Var(x_l) over every element of x_l (sequences, positions and channels);
 *      `per-token`: the variance of each token's C features, Var_c(x_l[b, t, c]), averaged over
 *                   the tokens (the per-token spread a norm removes).
 *    Both are computed and kept; `variance` is the chosen one; its growth curve is v_l / v_0.
 *  - angular distance d(l, n) = arccos(cos(x_l, x_{l+n})) / pi of the LAST token's representation
 *    (the paper's §2 / ShortGPT-style analysis), averaged over validation sequences, for every
 *    l + n <= L; drawn as an (l, n) heatmap, raw and as the official script draws it (each n's row
 *    clipped to its 1st-99th percentiles, then min-max normalized to [0, 1]).
 *  - Block Influence (ShortGPT, Men et al. 2024, eq. 3): BI(l) = 1 - E_t cos(x_{l-1,t}, x_{l,t}),
 *    block l's input and output residual streams (x_{l-1}: the stream block l reads, x_l: the one it
 *    hands on; the same x_l as the variance), the expectation over EVERY token t (each position of
 *    each of the `sequences` windows, as ShortGPT averages over all tokens of its calibration set),
 *    cos(a, b) = a.b / max(|a| |b|, 1e-8) (torch's cosine_similarity); l = 1..L.
 *  - layer pruning: dP(l) = P(model without block l) - P(model), P = validation cross-entropy
 *    (nats) and perplexity; "without block l" lets x_{l-1} pass unchanged to block l+1 (the other
 *    blocks keep their own index, so LNS keeps its 1/sqrt(l) factors). Each window's CE is kept,
 *    so dP(l) has a paired 95% t-interval over the windows (`pairedInterval`).
 *  - per-layer gradient norm: from the `layer_grad_norms` metric lines an lm-pretrain run logs, or,
 *    for a checkpoint without a training history, the gradient of the validation loss there.
 *
 * Each is written as JSON/CSV data and a PNG plot into an artifacts folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import type { EvalWindows } from '../../data/batches.js';
import { writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import type { CausalLM } from '../../models/lm.js';
import { crossEntropy } from '../../nn/ops.js';
import { barPlot, heatmap, linePlot, writePlot } from '../../plot/index.js';
import { blockOf, lmEvalWindowLosses } from '../../train/lm-step.js';
import { comparison, tInterval, type KeyResult } from '../../stats/stats.js';

/** Angular distance arccos(cos(a, b)) / pi in [0, 1]: 0 for the same direction, 1 for opposite. */
export function angularDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) fail('shape', `angular distance of vectors of lengths ${a.length} and ${b.length}`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na === 0 || nb === 0) return NaN; // a zero vector has no direction
  const cos = Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb)));
  return Math.acos(cos) / Math.PI;
}

export interface ResidualStats {
  /** Var(x_l) over all elements, l = 0..L (index 0: embeddings). */
  variance: number[];
  /** Per-token feature variance Var_c(x_l[b, t, :]), averaged over the tokens, l = 0..L. */
  tokenVariance: number[];
  /** Last-token vectors per layer: lastToken[l] holds `samples` rows of `width` values. */
  lastToken: Float32Array[];
  /** Block Influence BI(l) = 1 - mean over every token of cos(x_{l-1}, x_l), blocks l = 1..L. */
  blockInfluence: number[];
  samples: number;
  width: number;
}

/**
 * One block output's statistics on the backend: [mean, variance, mean per-token variance], the
 * last tokens (B, C) and, given the block's input, [Σ over tokens of cos(input, output), tokens].
 */
interface Measured {
  stats: tf.Tensor;
  last: tf.Tensor;
  cos?: tf.Tensor;
}

/**
 * Sums for the residual statistics of x_0..x_L over windows, fed batch by batch (in any order of
 * layers) by an in-memory forward pass or a streamed one (./streamed-diagnostics.ts).
 */
export class ResidualAccumulator {
  private readonly sumMean: Float64Array; // Σ B_b mean_b over batches b
  private readonly sumSq: Float64Array; // Σ B_b (var_b + mean_b²)
  private readonly sumTokenVar: Float64Array; // Σ B_b (mean per-token variance)_b
  private readonly count: Float64Array; // Σ B_b
  private readonly sumCos: Float64Array; // Σ over tokens of cos(x_{l-1}, x_l)
  private readonly cosTokens: Float64Array; // tokens in sumCos
  private readonly last: Float32Array[] = [];
  private width = 0;

  constructor(
    private readonly layers: number,
    private readonly samples: number,
  ) {
    this.sumMean = new Float64Array(layers + 1);
    this.sumSq = new Float64Array(layers + 1);
    this.sumTokenVar = new Float64Array(layers + 1);
    this.count = new Float64Array(layers + 1);
    this.sumCos = new Float64Array(layers + 1);
    this.cosTokens = new Float64Array(layers + 1);
  }

  /**
   * The statistics of x (B, T, C), kept on the backend until `add` reads them; `input` (the stream
   * the block that produced x read, same shape) adds the Block Influence term.
   */
  static measure(x: tf.Tensor3D, input?: tf.Tensor3D): Measured {
    let measured: Measured | undefined;
    tf.tidy(() => {
      const { mean, variance } = tf.moments(x);
      const tokenVar = tf.mean(tf.moments(x, -1).variance); // (B, T, C) -> (B, T) -> mean over tokens
      const [B, T, C] = x.shape;
      const lastTok = tf.reshape(tf.slice(x, [0, T - 1, 0], [B, 1, C]), [B, C]); // (B, T, C) -> (B, C)
      const out: Measured = { stats: tf.keep(tf.stack([mean, variance, tokenVar])), last: tf.keep(lastTok) };
      if (input) {
        const dot = tf.sum(tf.mul(input, x), -1); // (B, T)
        const norms = tf.mul(tf.norm(input, 'euclidean', -1), tf.norm(x, 'euclidean', -1));
        const cos = tf.div(dot, tf.maximum(norms, 1e-8));
        out.cos = tf.keep(tf.stack([tf.sum(cos), tf.scalar(B * T)]));
      }
      measured = out;
    });
    return measured!;
  }

  /** Add measured x_l (l = 0..L) of windows first..first+B-1; frees the measurement. */
  async add(l: number, m: Measured, first: number): Promise<void> {
    const [stats, rows, cos] = (await Promise.all([m.stats.data(), m.last.data(), m.cos?.data()])) as (Float32Array | undefined)[] as Float32Array[];
    const [B, C] = m.last.shape as [number, number];
    tf.dispose([m.stats, m.last, ...(m.cos ? [m.cos] : [])]);
    if (cos) {
      this.sumCos[l] += cos[0];
      this.cosTokens[l] += cos[1];
    }
    // Every window has the same length, so weighting batches by sequences weights them by tokens.
    const [mean, v, tv] = stats;
    this.sumMean[l] += B * mean;
    this.sumSq[l] += B * (v + mean * mean);
    this.sumTokenVar[l] += B * tv;
    this.count[l] += B;
    this.width = C;
    if (!this.last[l]) this.last[l] = new Float32Array(this.samples * C);
    this.last[l].set(rows, first * C);
  }

  result(): ResidualStats {
    const variance = Array.from({ length: this.layers + 1 }, (_, l) => {
      const mean = this.sumMean[l] / this.count[l];
      return this.sumSq[l] / this.count[l] - mean * mean;
    });
    return {
      variance,
      tokenVariance: Array.from(this.sumTokenVar, (v, l) => v / this.count[l]),
      lastToken: this.last,
      blockInfluence: Array.from({ length: this.layers }, (_, i) => 1 - this.sumCos[i + 1] / this.cosTokens[i + 1]),
      samples: this.samples,
      width: this.width,
    };
  }
}

/**
 * Run the model over the first `sequences` windows and collect, for x_0..x_L, the element
 * variance, the mean per-token feature variance and the last token's vector of each sequence.
 * Each block runs in its own scope (`scopeBlocks`) and the head is not run, so a batch holds the
 * residual streams and one block's intermediates at a time, never every block's (a Gemma 2's
 * soft-capped scores of 24 blocks outgrew the 4 GiB wasm heap). Leaves no tensors behind.
 */
export async function residualStats(model: CausalLM, windows: EvalWindows, sequences: number, batchSize: number): Promise<ResidualStats> {
  const { seq } = windows;
  const S = Math.min(sequences, windows.count);
  if (S < 1) fail('data', 'residual statistics need at least one validation sequence');
  const acc = new ResidualAccumulator(model.nLayers, S);
  for (let i = 0; i < S; i += batchSize) {
    const B = Math.min(batchSize, S - i);
    const kept: { layer: number; m: Measured }[] = [];
    try {
      tf.tidy(() => {
        const idx = tf.tensor2d(windows.x.subarray(i * seq, (i + B) * seq), [B, seq], 'int32');
        let prev: tf.Tensor3D | undefined; // the stream the next block reads (alive until this tidy ends)
        model.hidden(idx, {
          scopeBlocks: true,
          residual: (layer, x) => {
            kept.push({ layer: layer + 1, m: ResidualAccumulator.measure(x, prev) });
            prev = x;
          },
        });
      });
    } catch (err) {
      for (const k of kept) tf.dispose([k.m.stats, k.m.last, ...(k.m.cos ? [k.m.cos] : [])]);
      throw err;
    }
    for (const k of kept) await acc.add(k.layer, k.m, i);
  }
  return acc.result();
}

/** The p-th percentile (0..100) of finite values, linearly interpolated (numpy's default). */
export function percentile(values: readonly number[], p: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const r = (p / 100) * (v.length - 1);
  const lo = Math.floor(r);
  const hi = Math.min(lo + 1, v.length - 1);
  return v[lo] + (r - lo) * (v[hi] - v[lo]);
}

/**
 * The angular-distance matrix as the official heatmap script draws it (lmsdss/LayerNorm-Scaling
 * utils/angular_analysis.py, `normalize_rows_robustly`): each row (one gap n) clipped to its
 * pLow-th..pHigh-th percentiles, then min-max normalized to [0, 1]; a constant row becomes 0.
 * NaN cells (l + n > L) stay NaN and take no part in the percentiles.
 */
export function rowNormalizedAngular(d: number[][], pLow = 1, pHigh = 99): number[][] {
  return d.map((row) => {
    const lo = percentile(row, pLow);
    const hi = percentile(row, pHigh);
    if (!(hi > lo)) return row.map((v) => (Number.isFinite(v) ? 0 : NaN));
    const clipped = row.map((v) => (Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : NaN));
    const fin = clipped.filter(Number.isFinite);
    const min = Math.min(...fin);
    const max = Math.max(...fin);
    return clipped.map((v) => (Number.isFinite(v) ? (max > min ? (v - min) / (max - min) : 0) : NaN));
  });
}

/**
 * d[n-1][l] = mean over samples of angularDistance(x_l, x_{l+n}) for n = 1..maxN, l = 0..L-1;
 * NaN where l + n > L (no such layer).
 */
export function angularDistanceMatrix(stats: ResidualStats, maxN: number): number[][] {
  const L = stats.lastToken.length - 1;
  if (!Number.isInteger(maxN) || maxN < 1 || maxN > L) fail('config', `angular-distance n = ${maxN} is beyond the model's depth: choose 1..${L}`);
  const { samples: S, width: C } = stats;
  const d: number[][] = [];
  for (let n = 1; n <= maxN; n++) {
    const row: number[] = [];
    for (let l = 0; l < L; l++) {
      if (l + n > L) {
        row.push(NaN);
        continue;
      }
      let sum = 0;
      let k = 0;
      for (let s = 0; s < S; s++) {
        const a = stats.lastToken[l].subarray(s * C, (s + 1) * C);
        const b = stats.lastToken[l + n].subarray(s * C, (s + 1) * C);
        const v = angularDistance(a, b);
        if (Number.isFinite(v)) {
          sum += v;
          k++;
        }
      }
      row.push(k ? sum / k : NaN);
    }
    d.push(row);
  }
  return d;
}

export interface PruningResult {
  base_loss: number;
  base_ppl: number;
  /** dP(l) for blocks l = 1..L: loss without block l minus the full model's loss (nats). */
  drop_loss: number[];
  /** The same in perplexity. */
  drop_ppl: number[];
  /** The full model's CE on each pruning window (nats; their mean is base_loss). */
  window_base_loss: number[];
  /** window_loss[l-1][w]: the CE of window w without block l. */
  window_loss: number[][];
  /** 95% paired t-interval of dP(l) over the windows (`pairedInterval`), blocks l = 1..L. */
  drop_loss_lo: number[];
  drop_loss_hi: number[];
}

/** A mean with its two-sided 95% Student-t interval; lo = hi = mean for a single value. */
export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
}

/**
 * The paired 95% interval of a difference measured on the same evaluation windows: d_w = the
 * per-window differences (e.g. pruned CE − full CE), mean ± t_{0.975, n−1} · s / √n
 * (engine/stats `tInterval`). The windows are treated as independent draws of text; a single
 * window gives its value as a point.
 */
export function pairedInterval(diffs: readonly number[]): Interval {
  const n = diffs.length;
  if (n === 0) fail('data', 'an interval needs at least one window');
  if (n === 1) return { mean: diffs[0], lo: diffs[0], hi: diffs[0], n };
  const t = tInterval(diffs);
  return { mean: t.mean, lo: t.ci95[0], hi: t.ci95[1], n };
}

/** The pruning result of per-window losses of the full model and of each one-block-removed model. */
export function pruningFromWindows(windowBase: number[], windowLoss: number[][]): PruningResult {
  const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const base = mean(windowBase);
  const losses = windowLoss.map(mean);
  const intervals = windowLoss.map((w) => pairedInterval(w.map((v, i) => v - windowBase[i])));
  return {
    base_loss: base,
    base_ppl: Math.exp(base),
    drop_loss: losses.map((v) => v - base),
    drop_ppl: losses.map((v) => Math.exp(v) - Math.exp(base)),
    window_base_loss: windowBase,
    window_loss: windowLoss,
    drop_loss_lo: intervals.map((i) => i.lo),
    drop_loss_hi: intervals.map((i) => i.hi),
  };
}

/** Remove each block in turn (skipLayers) and measure the validation loss change, window by window. */
export async function layerPruning(model: CausalLM, windows: EvalWindows, batchSize: number, tick?: () => Promise<void>): Promise<PruningResult> {
  const base = Array.from(await lmEvalWindowLosses(model, windows, batchSize));
  const perBlock: number[][] = [];
  for (let l = 0; l < model.nLayers; l++) {
    perBlock.push(Array.from(await lmEvalWindowLosses(model, windows, batchSize, { skipLayers: new Set([l]) })));
    await tick?.();
  }
  return pruningFromWindows(base, perBlock);
}

/**
 * The mean dP over a set of blocks (0-based) with its paired interval: per window, the mean over
 * those blocks of (pruned − full) CE, then `pairedInterval` over the windows.
 */
export function blocksDropInterval(p: PruningResult, blocks: readonly number[]): Interval {
  if (blocks.length === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0 };
  const diffs = p.window_base_loss.map((b, w) => blocks.reduce((a, l) => a + p.window_loss[l][w] - b, 0) / blocks.length);
  return pairedInterval(diffs);
}

/** 0-based indices of the deeper half of L blocks (those deepHalfMean averages). */
export function deepHalfBlocks(L: number): number[] {
  return Array.from({ length: L - Math.floor(L / 2) }, (_, k) => Math.floor(L / 2) + k);
}

/**
 * A pruning comparison as a key result: the CE increase of the pruned model (lower is better for
 * it), with its paired interval over the evaluation windows and the verdict.
 */
export function pruneKeyResult(label: string, i: Interval): KeyResult {
  return comparison(label, i.mean, [i.lo, i.hi], 'lower', `paired t over ${i.n} evaluation window${i.n === 1 ? '' : 's'} (pruned − full CE)`);
}

/**
 * Gromov et al. ("The Unreasonable Ineffectiveness of the Deeper Layers", eq. 7): for each block
 * size n, l*(n) = argmin_l d(x_l, x_{l+n}), the start of the n consecutive blocks whose input and
 * output residual streams are closest; removing 0-based blocks l*..l*+n-1 is their pruning rule.
 * `d` is `Diagnostics.angular.d` (row n-1, column l; null where l + n > L).
 */
export function bestBlockStarts(d: (number | null)[][]): { n: number; l: number; d: number }[] {
  return d.map((row, i) => {
    let best = -1;
    row.forEach((v, l) => {
      if (v !== null && Number.isFinite(v) && (best < 0 || v < row[best]!)) best = l;
    });
    return { n: i + 1, l: best, d: best < 0 ? NaN : row[best]! };
  });
}

/** Per-block L2 norm of the validation loss's gradient at the current weights (no update). */
export async function checkpointGradNorms(model: CausalLM, windows: EvalWindows, count: number): Promise<number[]> {
  const B = Math.min(count, windows.count);
  const { seq } = windows;
  const x = tf.tensor2d(windows.x.subarray(0, B * seq), [B, seq], 'int32');
  const y = tf.tensor2d(windows.y.subarray(0, B * seq), [B, seq], 'int32');
  const vars = model.params.trainable();
  const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y), vars);
  x.dispose();
  y.dispose();
  value.dispose();
  // Each parameter's squared norm, read to the host in one transfer and summed there per block.
  const blocks = vars.map((v) => blockOf(model.params.nameOf(v)));
  const sq = tf.tidy(() => tf.stack(vars.map((v) => tf.sum(tf.square(grads[v.name])))));
  tf.dispose(Object.values(grads));
  const vals = await sq.data();
  sq.dispose();
  const sums = new Float64Array(model.nLayers);
  blocks.forEach((l, i) => {
    if (l >= 0 && l < model.nLayers) sums[l] += vals[i];
  });
  return Array.from(sums, Math.sqrt);
}

export interface GradHistory {
  steps: number[];
  /** norms[k][l]: block l's gradient norm at steps[k]. */
  norms: number[][];
}

/** The `layer_grad_norms` lines of a run's metrics, one per step (a resumed run's re-run steps keep the last). */
export function gradHistoryFromMetrics(metrics: Record<string, unknown>[], nLayers: number): GradHistory | null {
  const byStep = new Map<number, number[]>();
  for (const m of metrics) {
    const g = m.layer_grad_norms;
    if (typeof m.step === 'number' && Array.isArray(g) && g.length === nLayers && g.every((v) => typeof v === 'number')) byStep.set(m.step, g as number[]);
  }
  if (byStep.size === 0) return null;
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return { steps, norms: steps.map((s) => byStep.get(s)!) };
}

function meanRows(rows: number[][]): number[] {
  const out = new Array<number>(rows[0].length).fill(0);
  for (const r of rows) for (let i = 0; i < r.length; i++) out[i] += r[i] / rows.length;
  return out;
}

export interface GradNormSummary {
  source: 'training' | 'checkpoint';
  /** Mean over all logged steps (training) or the checkpoint's gradient (checkpoint), per block 1..L. */
  per_layer: number[];
  /** Training only: mean over the first and last quarter of the logged steps. */
  early?: number[];
  late?: number[];
  steps?: number[];
  history?: number[][];
}

export function summarizeGradHistory(h: GradHistory): GradNormSummary {
  const q = Math.max(1, Math.floor(h.steps.length / 4));
  return {
    source: 'training',
    per_layer: meanRows(h.norms),
    early: meanRows(h.norms.slice(0, q)),
    late: meanRows(h.norms.slice(-q)),
    steps: h.steps,
    history: h.norms,
  };
}

export interface DiagnosticsOptions {
  /** Validation sequences for the variance and angular-distance statistics. */
  sequences: number;
  /** Validation windows for the layer-pruning losses. */
  pruningWindows: number;
  /** Largest layer gap n of the angular-distance heatmap (default: the depth L). */
  maxN?: number;
  /** Sequences per forward pass. */
  batch: number;
  /** Which per-layer variance `variance` reports (see the header); default `elements`. */
  variance?: VarianceDefinition;
}

export const VARIANCE_DEFINITIONS = ['elements', 'per-token'] as const;
export type VarianceDefinition = (typeof VARIANCE_DEFINITIONS)[number];
export const VARIANCE_HELP =
  'per-layer variance: elements = Var over every element of x_l (sequences, positions, channels); per-token = each token’s variance over its features, averaged over tokens';

export interface Diagnostics {
  layers: number;
  /** The chosen per-layer variance v_l, l = 0..L (`variance_definition`). */
  variance: number[];
  variance_definition: VarianceDefinition;
  /** v_l / v_0. */
  variance_growth: number[];
  /** Both definitions, whichever was chosen. */
  variance_elements: number[];
  variance_per_token: number[];
  /** d: mean angular distance; d_row_normalized: each n's row clipped to its 1-99 percentiles, min-max normalized (the official heatmap). */
  angular: { n: number[]; l: number[]; d: (number | null)[][]; d_row_normalized: (number | null)[][]; samples: number };
  /** Block Influence BI(l) for blocks l = 1..L (ShortGPT; all tokens of the `samples` sequences, see the header). */
  block_influence: number[];
  pruning: PruningResult;
  /** Mean dP (loss, nats) over the deeper half of the blocks, l > L/2. */
  deep_half_prune_drop_mean: number;
  /** The same over the shallower half, l <= L/2. */
  shallow_half_prune_drop_mean: number;
  grad_norms: GradNormSummary | null;
}

/** The deeper half of blocks 1..L: l > floor(L/2) (0-based indices floor(L/2)..L-1). */
export function deepHalfMean(perBlock: number[]): number {
  const h = Math.floor(perBlock.length / 2);
  const deep = perBlock.slice(h);
  return deep.reduce((a, b) => a + b, 0) / deep.length;
}

function shallowHalfMean(perBlock: number[]): number {
  const h = Math.floor(perBlock.length / 2);
  const s = perBlock.slice(0, h);
  return s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
}

/** Compute every diagnostic of `model` on validation windows. */
export async function computeDiagnostics(
  model: CausalLM,
  windows: EvalWindows,
  opts: DiagnosticsOptions,
  grads: GradNormSummary | null,
  tick?: () => Promise<void>,
): Promise<Diagnostics> {
  const L = model.nLayers;
  checkMaxN(opts.maxN, L);
  const stats = await residualStats(model, windows, opts.sequences, opts.batch);
  await tick?.();
  const pruneWindows: EvalWindows = { ...windows, count: Math.min(windows.count, opts.pruningWindows) };
  const pruning = await layerPruning(model, pruneWindows, opts.batch, tick);
  return assembleDiagnostics(L, stats, pruning, opts, grads);
}

function checkMaxN(maxN: number | undefined, L: number): void {
  if ((maxN ?? L) > L) fail('config', `angular-distance n = ${maxN} is beyond the model's depth: choose 1..${L}`);
}

/** The diagnostics from the residual statistics and pruning losses (however they were computed). */
export function assembleDiagnostics(
  L: number,
  stats: ResidualStats,
  pruning: PruningResult,
  opts: Pick<DiagnosticsOptions, 'maxN' | 'variance'>,
  grads: GradNormSummary | null,
): Diagnostics {
  checkMaxN(opts.maxN, L);
  const d = angularDistanceMatrix(stats, opts.maxN ?? L);
  const definition = opts.variance ?? 'elements';
  const variance = definition === 'per-token' ? stats.tokenVariance : stats.variance;
  const orNull = (m: number[][]) => m.map((r) => r.map((v) => (Number.isFinite(v) ? v : null)));
  return {
    layers: L,
    variance,
    variance_definition: definition,
    variance_growth: variance.map((v) => v / variance[0]),
    variance_elements: stats.variance,
    variance_per_token: stats.tokenVariance,
    angular: {
      n: d.map((_, i) => i + 1),
      l: Array.from({ length: L }, (_, l) => l),
      d: orNull(d),
      d_row_normalized: orNull(rowNormalizedAngular(d)),
      samples: stats.samples,
    },
    block_influence: stats.blockInfluence,
    pruning,
    deep_half_prune_drop_mean: deepHalfMean(pruning.drop_loss),
    shallow_half_prune_drop_mean: shallowHalfMean(pruning.drop_loss),
    grad_norms: grads,
  };
}

/** The few numbers a run summary carries (the full data is in diagnostics.json). */
export function diagnosticsSummary(d: Diagnostics): Record<string, unknown> {
  return {
    layer_variance: d.variance,
    variance_growth_last: d.variance_growth[d.variance_growth.length - 1],
    deep_half_prune_drop_mean: d.deep_half_prune_drop_mean,
    shallow_half_prune_drop_mean: d.shallow_half_prune_drop_mean,
    prune_drop_loss: d.pruning.drop_loss,
    ...(d.grad_norms ? { layer_grad_norm_mean: d.grad_norms.per_layer } : {}),
  };
}

/** The variance axis label for each definition. */
export const VARIANCE_AXIS: Record<VarianceDefinition, string> = { elements: 'Var(x_ℓ) over all elements', 'per-token': 'mean per-token Var_c(x_ℓ)' };

const csv = (rows: (string | number | null)[][]): string => rows.map((r) => r.map((v) => (v === null ? '' : String(v))).join(',')).join('\n') + '\n';
const blocks = (L: number) => Array.from({ length: L }, (_, i) => i + 1);

/**
 * Angular-distance heatmap of one model (x: layer l, y: gap n, n = 1 at the bottom); `normalized`
 * draws the official script's per-row normalized values on [0, 1].
 */
export async function angularHeatmapPng(d: Diagnostics, title: string, colorDomain?: [number, number], normalized = false): Promise<Uint8Array> {
  return heatmap({
    title,
    xLabel: 'layer ℓ (0 = embeddings)',
    yLabel: 'subsequent n-th layer',
    x: d.angular.l,
    y: d.angular.n,
    values: (normalized ? d.angular.d_row_normalized : d.angular.d).map((r) => r.map((v) => (v === null ? NaN : v))),
    colorLabel: normalized ? 'angular distance, per-n 1–99% clip + min-max' : 'angular distance',
    colorDomain: normalized ? [0, 1] : colorDomain,
    yUp: true,
    width: 520,
    height: 400,
  });
}

/** Write diagnostics.json, the CSV tables and the four PNG plots into `dir`. */
export async function writeDiagnostics(dir: string, d: Diagnostics, label: string): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const L = d.layers;
  const files: string[] = [];
  const put = async (name: string, data: Uint8Array | string) => {
    const p = path.join(dir, name);
    if (name.endsWith('.png')) await writePlot(p, data);
    else await writeFileAtomic(p, data);
    files.push(name);
  };
  await writeJsonAtomic(path.join(dir, 'diagnostics.json'), d);
  files.push('diagnostics.json');

  await put(
    'layer_variance.csv',
    csv([
      ['layer', `variance_${d.variance_definition}`, 'growth', 'variance_elements', 'variance_per_token'],
      ...d.variance.map((v, l) => [l, v, d.variance_growth[l], d.variance_elements[l], d.variance_per_token[l]]),
    ]),
  );
  await put(
    'layer_variance.png',
    await linePlot({
      title: `Residual-stream output variance by layer (${label})`,
      xLabel: 'layer ℓ (0 = embeddings)',
      yLabel: `${VARIANCE_AXIS[d.variance_definition]} (log scale)`,
      series: [{ name: label, x: d.variance.map((_, l) => l), y: d.variance }],
      logY: true,
      points: true,
    }),
  );

  await put('angular_distance.csv', csv([['n', ...d.angular.l.map((l) => `l${l}`)], ...d.angular.d.map((r, i) => [d.angular.n[i], ...r])]));
  await put('angular_distance.png', await angularHeatmapPng(d, `Angular distance d(ℓ, ℓ+n), last token (${label})`));
  await put(
    'angular_distance_row_normalized.csv',
    csv([['n', ...d.angular.l.map((l) => `l${l}`)], ...d.angular.d_row_normalized.map((r, i) => [d.angular.n[i], ...r])]),
  );
  await put(
    'angular_distance_row_normalized.png',
    await angularHeatmapPng(d, `Angular distance, each n normalized as the official script (${label})`, undefined, true),
  );

  await put(
    'layer_pruning.csv',
    csv([
      ['block', 'drop_loss', 'drop_ppl'],
      ...d.pruning.drop_loss.map((v, i) => [i + 1, v, d.pruning.drop_ppl[i]]),
      ['full_model_loss', d.pruning.base_loss, d.pruning.base_ppl],
    ]),
  );
  await put(
    'layer_pruning_ci.csv',
    csv([['block', 'drop_loss', 'ci95_lo', 'ci95_hi'], ...d.pruning.drop_loss.map((v, i) => [i + 1, v, d.pruning.drop_loss_lo[i], d.pruning.drop_loss_hi[i]])]),
  );
  await put('block_influence.csv', csv([['block', 'block_influence'], ...d.block_influence.map((v, i) => [i + 1, v])]));
  await put(
    'layer_pruning.png',
    await barPlot({
      title: `Validation loss increase when one block is removed (${label})`,
      xLabel: 'removed block ℓ',
      yLabel: 'ΔCE (nats)',
      groups: [{ name: label, values: d.pruning.drop_loss.map((v, i) => ({ label: String(i + 1), value: v })) }],
    }),
  );

  const g = d.grad_norms;
  if (g) {
    if (g.history && g.steps)
      await put('layer_grad_norms.csv', csv([['step', ...blocks(L).map((l) => `block${l}`)], ...g.history.map((r, k) => [g.steps![k], ...r])]));
    else await put('layer_grad_norms.csv', csv([['block', 'grad_norm'], ...g.per_layer.map((v, i) => [i + 1, v])]));
    const series =
      g.source === 'training'
        ? [
            { name: 'first quarter of training', x: blocks(L), y: g.early! },
            { name: 'whole run (mean)', x: blocks(L), y: g.per_layer },
            { name: 'last quarter of training', x: blocks(L), y: g.late! },
          ]
        : [{ name: 'validation-loss gradient at the checkpoint', x: blocks(L), y: g.per_layer }];
    await put(
      'layer_grad_norms.png',
      await linePlot({ title: `Gradient norm per block (${label})`, xLabel: 'block ℓ', yLabel: '‖∇θ_ℓ‖ (log scale)', series, logY: true, points: true }),
    );
  }
  return files;
}
