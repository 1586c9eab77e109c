/**
 * Direct logit attribution (DLA) vs direct effect (DE) of every attention head (the paper's
 * interpretability check; docs/methods.md, "LayerNorm removal").
 *
 * For head h of block l, its write into the residual stream is o = z_h @ W_O[h] (c_proj rows of
 * the head; the c_proj bias is not part of any head). At each scored token with target t and final
 * residual x (the input of ln_f):
 *   DE  = u_t · ln_f(x) - u_t · ln_f(x - o)        (zero-ablating only the head's direct path)
 *   DLA = u_t · ((o - mean(o)) * s(x) * gamma)      (ln_f linearized with its scale frozen at x)
 * where u_t is the unembedding row of t and s(x) = 1/sqrt(Var(x) + eps) for a real LN, 1/sigma for
 * an LN-free model. With a real LN the two differ (ln_f's scale depends on x); in an LN-free model
 * ln_f is affine, so DLA = DE up to float error. NMAE = mean|DLA - DE| / mean|DE| * 100 over all
 * heads and tokens; its sums are also kept per prompt, for an interval over prompts (nmae-interval.ts).
 *
 * Options: `positions: 'last'` scores only the last position of each prompt (its next token), as
 * the authors' script does; `centerUnembed` replaces u_t by u_t - mean_v(u_v), the centred
 * unembedding TransformerLens uses with fold_ln and center_unembed (it shifts every token's logit
 * at a position by the same amount, so logit differences are unchanged, DLA and DE are not).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT2 } from '../../models/gpt2.js';

export interface DlaOptions {
  /** 'all': every position, scoring its next token; 'last': the last position of each prompt only. */
  positions: 'all' | 'last';
  /** Use the centred unembedding u_t - mean_v(u_v) (TransformerLens' center_unembed). */
  centerUnembed: boolean;
}

export const DEFAULT_DLA_OPTIONS: DlaOptions = { positions: 'all', centerUnembed: false };

export interface HeadDla {
  layer: number;
  head: number;
  /** mean |DLA| and mean |DE| over the scored tokens, and the head's own NMAE (%). */
  dla_abs: number;
  de_abs: number;
  nmae: number;
}

/** Σ|DLA − DE| and Σ|DE| over every head and scored token of each prompt: NMAE = Σ absErr / Σ absDe × 100. */
export interface PromptSums {
  absErr: Float64Array;
  absDe: Float64Array;
}

export interface DlaResult {
  /** NMAE (%) over all heads and tokens. */
  nmae: number;
  heads: HeadDla[];
  perPrompt: PromptSums;
  /** DLA and DE values, (L*H, tokens) row-major, for scatter plots. */
  dla: Float32Array;
  de: Float32Array;
  tokens: number;
}

/**
 * c_proj's rows of each head: the Conv1D weight (C, C) -> (H, hs, C). z is merged as (B, T, H * hs)
 * with head h in columns h*hs..(h+1)*hs, so head h owns c_proj's input rows h*hs..(h+1)*hs.
 */
export function cProjHeadRows(w: tf.Tensor2D, H: number): tf.Tensor3D {
  const [C, out] = w.shape;
  return tf.reshape(w, [H, C / H, out]); // (C, C) -> (H, hs, C)
}

/** Each head's write into the residual stream, z_h @ W_O[h]: z (B, H, T, hs), W_O (H, hs, C) -> (H, B*T, C). */
export function headWrites(z: tf.Tensor4D, wo: tf.Tensor3D): tf.Tensor3D {
  const [B, H, T, hs] = z.shape;
  const zh = tf.reshape(tf.transpose(z, [1, 0, 2, 3]), [H, B * T, hs]); // (B, H, T, hs) -> (H, N, hs)
  return tf.matMul(zh, wo) as tf.Tensor3D; // (H, N, hs) @ (H, hs, C) -> (H, N, C)
}

/** DLA vs DE of every head on prompts x (B, T) with next-token targets y (B, T). */
export async function headDla(model: GPT2, x: Int32Array, y: Int32Array, B: number, T: number, opts: DlaOptions = DEFAULT_DLA_OPTIONS): Promise<DlaResult> {
  const { n_layer: L, n_head: H, n_embd: C, layer_norm_epsilon: eps } = model.config;
  const sigmaF = model.config.normlab_ln_sigmas?.ln_f;
  const gamma = model.params.get('transformer.ln_f.weight');
  const beta = model.params.vars.get('transformer.ln_f.bias') ?? null;
  const unembed = model.config.tie_word_embeddings ? model.params.get('transformer.wte.weight') : model.params.get('lm_head.weight');
  // The scored tokens: every position, or the last of each prompt.
  const rows = opts.positions === 'last' ? Int32Array.from({ length: B }, (_, b) => b * T + T - 1) : Int32Array.from({ length: B * T }, (_, n) => n);
  const N = rows.length;
  const targets = Int32Array.from(rows, (n) => y[n]);

  // The model runs in float32 on the backend; the last stage (ln_f and the target logit, with and
  // without each head) is evaluated on the host in float64 from the same float32 residual stream
  // and head outputs, so DLA and DE differ only by what the definitions differ by, not by the
  // cancellation error of subtracting two float32 logits.
  const dev = tf.tidy(() => {
    const zs: tf.Tensor4D[] = [];
    let final: tf.Tensor3D | null = null;
    model.forward(tf.tensor2d(x, [B, T], 'int32'), {
      headOutputs: (_l, z) => zs.push(z),
      residual: (l, r) => {
        if (l === L - 1) final = r;
      },
    });
    const pick = tf.tensor1d(rows, 'int32');
    const heads = zs.map((z, l) => {
      const w = headWrites(z, cProjHeadRows(model.params.get(`transformer.h.${l}.attn.c_proj.weight`) as tf.Tensor2D, H)); // (H, B*T, C)
      return tf.keep(opts.positions === 'last' ? tf.gather(w, pick, 1) : w); // (H, N, C)
    });
    let u = tf.gather(unembed, tf.tensor1d(targets, 'int32')); // (N, C) target rows
    if (opts.centerUnembed) u = tf.sub(u, tf.mean(unembed, 0)); // u_t - mean_v(u_v)
    return { xL: tf.keep(tf.gather(tf.reshape(final!, [B * T, C]), pick)), u: tf.keep(u), heads };
  });
  const read = async (t: tf.Tensor) => {
    const d = (await t.data()) as Float32Array;
    t.dispose();
    return d;
  };
  const host = { xL: await read(dev.xL), u: await read(dev.u), heads: [] as Float32Array[] };
  for (const t of dev.heads) host.heads.push(await read(t));
  const g = (await gamma.data()) as Float32Array;
  const bt = beta ? ((await beta.data()) as Float32Array) : null;
  const v = new Float64Array(C);
  /** u_n · ln_f(v) in float64 (v filled in beforehand), and the scale ln_f used. */
  const lnfLogit = (n: number): { logit: number; scale: number } => {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += v[c];
    mu /= C;
    let scale: number;
    if (sigmaF !== undefined) scale = 1 / sigmaF;
    else {
      let varr = 0;
      for (let c = 0; c < C; c++) varr += (v[c] - mu) ** 2;
      scale = 1 / Math.sqrt(varr / C + eps);
    }
    let logit = 0;
    for (let c = 0; c < C; c++) logit += ((v[c] - mu) * scale * g[c] + (bt ? bt[c] : 0)) * host.u[n * C + c];
    return { logit, scale };
  };
  const clean = new Float64Array(N);
  const frozen = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) v[c] = host.xL[n * C + c];
    const r = lnfLogit(n);
    clean[n] = r.logit;
    frozen[n] = r.scale;
  }
  const dla = new Float32Array(L * H * N);
  const de = new Float32Array(L * H * N);
  for (let l = 0; l < L; l++) {
    const o = host.heads[l];
    for (let h = 0; h < H; h++) {
      for (let n = 0; n < N; n++) {
        const base = (h * N + n) * C;
        let mo = 0;
        for (let c = 0; c < C; c++) mo += o[base + c];
        mo /= C;
        let attr = 0;
        for (let c = 0; c < C; c++) {
          attr += (o[base + c] - mo) * frozen[n] * g[c] * host.u[n * C + c];
          v[c] = host.xL[n * C + c] - o[base + c];
        }
        const row = (l * H + h) * N + n;
        dla[row] = attr;
        de[row] = clean[n] - lnfLogit(n).logit;
      }
    }
  }
  return { ...summarize(dla, de, L, H, N), perPrompt: promptSums(dla, de, L * H, N, B), dla, de, tokens: N };
}

/** NMAE (%) = mean|a - b| / mean|b| * 100. */
export function nmae(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += Math.abs(a[i] - b[i]);
    den += Math.abs(b[i]);
  }
  return den > 0 ? (num / den) * 100 : 0;
}

function summarize(dla: Float32Array, de: Float32Array, L: number, H: number, N: number): { nmae: number; heads: HeadDla[] } {
  const heads: HeadDla[] = [];
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const r = (l * H + h) * N;
      const a = dla.subarray(r, r + N);
      const b = de.subarray(r, r + N);
      let sa = 0;
      let sb = 0;
      for (let i = 0; i < N; i++) {
        sa += Math.abs(a[i]);
        sb += Math.abs(b[i]);
      }
      heads.push({ layer: l, head: h, dla_abs: sa / N, de_abs: sb / N, nmae: nmae(a, b) });
    }
  }
  return { nmae: nmae(dla, de), heads };
}

/** The per-prompt sums of (L·H, N) DLA and DE rows whose N scored tokens are B prompts' in order (N / B each). */
export function promptSums(dla: ArrayLike<number>, de: ArrayLike<number>, rows: number, N: number, B: number): PromptSums {
  const per = N / B;
  const absErr = new Float64Array(B);
  const absDe = new Float64Array(B);
  for (let r = 0; r < rows; r++)
    for (let n = 0; n < N; n++) {
      const p = Math.floor(n / per);
      absErr[p] += Math.abs(dla[r * N + n] - de[r * N + n]);
      absDe[p] += Math.abs(de[r * N + n]);
    }
  return { absErr, absDe };
}
