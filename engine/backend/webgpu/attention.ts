/**
 * Attention as WGSL kernels, softmax(q k^T scale + causal mask) v with scale = 1/sqrt(hs), that
 * never materialize the (T, Tk) probabilities: the forward keeps each query's logsumexp (B, H, T)
 * instead, and the backward recomputes the probabilities from it (the recomputation of
 * FlashAttention, Dao et al. 2022, without its tiling: one thread per query or key row, looping
 * over the other side). The logsumexp is what these kernels pass as `probs`, where the wasm ones
 * pass the probabilities themselves.
 *
 * Two entries share the programs, as the native kernels share theirs: NormLabAttention on q, k, v
 * laid out heads-major (B, H, T, hs), and NormLabPackedAttention reading q, k, v straight from
 * GPT-2's packed projection qkv (B, T, 3C) and writing out (B, T, C), with no split or head
 * transposes. The programs address rows through a layout (strides and offsets, as uniforms), so
 * one compiled shader per head size serves both.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { float, int, run, type KernelBody, type Uniform } from './program.js';

/** Element strides of a row (b, h, t): its first element is b * b + h * h + t * t (+ an offset). */
interface RowStrides {
  b: number;
  h: number;
  t: number;
}

/** Where attention finds its rows: q, k (v shares k's strides) and out (dout shares them). */
interface AttnLayout {
  B: number;
  H: number;
  T: number;
  Tk: number;
  hs: number;
  causal: boolean;
  q: RowStrides;
  k: RowStrides;
  o: RowStrides;
  /** Element offsets of q's, k's and v's rows in their buffers (their column block when packed). */
  qOff: number;
  kOff: number;
  vOff: number;
}

/** q, out (B, H, T, hs) and k, v (B, H, Tk, hs), each its own tensor. */
function headsMajor(B: number, H: number, T: number, Tk: number, hs: number, causal: boolean): AttnLayout {
  const q = { b: H * T * hs, h: T * hs, t: hs };
  return { B, H, T, Tk, hs, causal, q, k: { b: H * Tk * hs, h: Tk * hs, t: hs }, o: q, qOff: 0, kOff: 0, vOff: 0 };
}

/** q, k, v side by side in one (B, T, 3C) buffer, C = H hs, and out (B, T, C). */
function packed(B: number, H: number, T: number, C: number, causal: boolean): AttnLayout {
  const qkv = { b: T * 3 * C, h: C / H, t: 3 * C };
  return { B, H, T, Tk: T, hs: C / H, causal, q: qkv, k: qkv, o: { b: T * C, h: C / H, t: C }, qOff: 0, kOff: C, vOff: 2 * C };
}

const UNIFORMS = `T : i32, Tk : i32, causal : i32, scale : f32, BH : i32, H : i32,
  qB : i32, qH : i32, qT : i32, qOff : i32, kB : i32, kH : i32, kT : i32, kOff : i32, vOff : i32, oB : i32, oH : i32, oT : i32,`;

function uniformsOf(l: AttnLayout): Uniform[] {
  const { q, k, o } = l;
  return [
    int(l.T),
    int(l.Tk),
    int(l.causal ? 1 : 0),
    float(1 / Math.sqrt(l.hs)),
    int(l.B * l.H),
    int(l.H),
    ...[q.b, q.h, q.t, l.qOff, k.b, k.h, k.t, l.kOff, l.vOff, o.b, o.h, o.t].map(int),
  ];
}

/** WGSL: the first element of row t of head bh = (b, h) in q, k, v and out (dout). */
const ROW_AT = /* wgsl */ `
  fn nlRowAt(bh : i32, t : i32, sB : i32, sH : i32, sT : i32) -> i32 {
    let b = bh / uniforms.H;
    return b * sB + (bh - b * uniforms.H) * sH + t * sT;
  }
  fn nlQAt(bh : i32, i : i32) -> i32 { return nlRowAt(bh, i, uniforms.qB, uniforms.qH, uniforms.qT) + uniforms.qOff; }
  fn nlKAt(bh : i32, j : i32) -> i32 { return nlRowAt(bh, j, uniforms.kB, uniforms.kH, uniforms.kT) + uniforms.kOff; }
  fn nlVAt(bh : i32, j : i32) -> i32 { return nlRowAt(bh, j, uniforms.kB, uniforms.kH, uniforms.kT) + uniforms.vOff; }
  fn nlOAt(bh : i32, i : i32) -> i32 { return nlRowAt(bh, i, uniforms.oB, uniforms.oH, uniforms.oT); }`;

/** WGSL: dot products of two rows, q.k and dout.v (only those a program binds: WebGPU drops unused bindings). */
function dots(hs: number, withDv: boolean): string {
  const dot = (name: string, a: string, b: string) => `
  fn ${name}(ra : i32, rb : i32) -> f32 {
    var s = 0.0;
    for (var d = 0; d < ${hs}; d = d + 1) { s = s + ${a}[ra + d] * ${b}[rb + d]; }
    return s;
  }`;
  return ROW_AT + dot('nlDotQK', 'q', 'k') + (withDv ? dot('nlDotDV', 'dout', 'v') : '');
}

/**
 * WGSL: query row r = (bh, i) (returns past the last): its q and out rows, the first k and v rows
 * of its head, and the keys it sees, j < jEnd.
 */
const QUERY_ROW = `if (r >= uniforms.BH * uniforms.T) { return; }
    let bh = r / uniforms.T;
    let i = r - bh * uniforms.T;
    let qBase = nlQAt(bh, i);
    let oBase = nlOAt(bh, i);
    let kHead = nlKAt(bh, 0);
    let vHead = nlVAt(bh, 0);
    var jEnd = uniforms.Tk;
    if (uniforms.causal != 0) { jEnd = min(uniforms.Tk, i + (uniforms.Tk - uniforms.T) + 1); }`;

/**
 * WGSL: key row c = (bh, j) (returns past the last): its k and v rows, the first q and out rows of
 * its head, and the queries that see it, i >= iStart.
 */
const KEY_ROW = `if (c >= uniforms.BH * uniforms.Tk) { return; }
    let bh = c / uniforms.Tk;
    let j = c - bh * uniforms.Tk;
    let kBase = nlKAt(bh, j);
    let vBase = nlVAt(bh, j);
    let qHead = nlQAt(bh, 0);
    let oHead = nlOAt(bh, 0);
    var iStart = 0;
    if (uniforms.causal != 0) { iStart = max(0, j - (uniforms.Tk - uniforms.T)); }`;

/** WGSL: the loop over the keys j a query row sees, with their k and v rows (a stride from the head's first). */
const EACH_KEY = `for (var j = 0; j < jEnd; j = j + 1) {
      let kBase = kHead + j * uniforms.kT;
      let vBase = vHead + j * uniforms.kT;`;

/** WGSL: the loop over the queries i that see a key row, with their q and out rows and logsumexp. */
const EACH_QUERY = `for (var i = iStart; i < uniforms.T; i = i + 1) {
      let r = bh * uniforms.T + i;
      let qBase = qHead + i * uniforms.qT;
      let oBase = oHead + i * uniforms.oT;
      let lr = lse[r];`;

/** The probability p_ij = exp(q_i.k_j scale - lse_i), inside either loop. */
const P = 'exp(nlDotQK(qBase, kBase) * uniforms.scale - lr)';

/**
 * WGSL: the backward's per-row gradients, each written whole into `result` at the row's own
 * layout (so dq, dk and dv may be the column blocks of one packed gradient). With
 * dp_ij = dout_i.v_j and D_i = sum_j p_ij dp_ij: dq_i = scale sum_j p_ij (dp_ij - D_i) k_j;
 * dk_j = scale sum_i p_ij (dp_ij - D_i) q_i; dv_j = sum_i p_ij dout_i. A key row computes dk, dv
 * or both (nlDkv, one p per pair for the two).
 */
function gradRows(hs: number): Record<'dq' | 'dk' | 'dv' | 'dkv', string> {
  const each = (stmt: string) => `for (var d = 0; d < ${hs}; d = d + 1) { ${stmt} }`;
  const keyRow = (name: string, dk: boolean, dv: boolean) => {
    const dkTerm = `let ds = p * (nlDotDV(oBase, vBase) - D[r]);\n      ${each('dk[d] = dk[d] + ds * q[qBase + d];')}`;
    return `
  fn ${name}(c : i32) {
    ${KEY_ROW}
    ${dk ? `var dk : array<f32, ${hs}>;` : ''}
    ${dv ? `var dv : array<f32, ${hs}>;` : ''}
    ${EACH_QUERY}
      let p = ${P};
      ${dk ? dkTerm : ''}
      ${dv ? each('dv[d] = dv[d] + p * dout[oBase + d];') : ''}
    }
    ${dk ? each('result[kBase + d] = dk[d] * uniforms.scale;') : ''}
    ${dv ? each('result[vBase + d] = dv[d];') : ''}
  }`;
  };
  return {
    dq: `
  fn nlDq(r : i32) {
    ${QUERY_ROW}
    let lr = lse[r];
    var dq : array<f32, ${hs}>;
    ${EACH_KEY}
      let ds = ${P} * (nlDotDV(oBase, vBase) - D[r]);
      ${each('dq[d] = dq[d] + ds * k[kBase + d];')}
    }
    ${each('result[qBase + d] = dq[d] * uniforms.scale;')}
  }`,
    dk: keyRow('nlDk', true, false),
    dv: keyRow('nlDv', false, true),
    dkv: keyRow('nlDkv', true, true),
  };
}

const INPUTS = ['q', 'k', 'v', 'lse', 'dout', 'D'];

/** The forward: out (shaped `outShape`) and each query's logsumexp (B, H, T). */
function forward(be: WebGPUBackend, l: AttnLayout, q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo, outShape: number[]): tf.TensorInfo[] {
  const u = uniformsOf(l);
  const rows = l.B * l.H * l.T;
  const lse = run(
    be,
    {
      key: `attn_lse_${l.hs}`,
      inputs: INPUTS,
      n: rows,
      uniforms: UNIFORMS,
      functions: dots(l.hs, false),
      body: `let r = index;
    ${QUERY_ROW}
    var m = -3.4e38;
    var s = 0.0;
    ${EACH_KEY}
      let z = nlDotQK(qBase, kBase) * uniforms.scale;
      if (z > m) { s = s * exp(m - z); m = z; }
      s = s + exp(z - m);
    }
    result[r] = m + log(s);`,
    },
    [q, k],
    u,
    [l.B, l.H, l.T],
  );
  const out = run(
    be,
    {
      key: `attn_out_${l.hs}`,
      inputs: INPUTS,
      n: tf.util.sizeFromShape(outShape),
      threads: rows,
      uniforms: UNIFORMS,
      functions: dots(l.hs, false),
      body: `let r = index;
    ${QUERY_ROW}
    let lr = lse[r];
    var acc : array<f32, ${l.hs}>;
    ${EACH_KEY}
      let p = ${P};
      for (var d = 0; d < ${l.hs}; d = d + 1) { acc[d] = acc[d] + p * v[vBase + d]; }
    }
    for (var d = 0; d < ${l.hs}; d = d + 1) { result[oBase + d] = acc[d]; }`,
    },
    [q, k, v, lse],
    u,
    outShape,
  );
  return [out, lse];
}

/** D_i = sum_j p_ij dout_i.v_j (B, H, T), which every gradient row needs. */
function rowTerms(be: WebGPUBackend, l: AttnLayout, ins: tf.TensorInfo[]): tf.TensorInfo {
  return run(
    be,
    {
      key: `attn_D_${l.hs}`,
      inputs: INPUTS,
      n: l.B * l.H * l.T,
      uniforms: UNIFORMS,
      functions: dots(l.hs, true),
      body: `let r = index;
    ${QUERY_ROW}
    let lr = lse[r];
    var acc = 0.0;
    ${EACH_KEY}
      acc = acc + ${P} * nlDotDV(oBase, vBase);
    }
    result[r] = acc;`,
    },
    ins,
    uniformsOf(l),
    [l.B, l.H, l.T],
  );
}

export const attentionKernels: Record<string, KernelBody> = {
  /** q (B, H, T, hs), k and v (B, H, Tk, hs); outputs out (B, H, T, hs) and each query's logsumexp (B, H, T). */
  NormLabAttention(be, { q, k, v }, { causal }) {
    const [B, H, T, hs] = q!.shape;
    return forward(be, headsMajor(B, H, T, k!.shape[2], hs, causal as boolean), q!, k!, v!, q!.shape);
  },

  /** Outputs dq, dk, dv; `probs` is the forward's logsumexp. */
  NormLabAttentionGrad(be, { q, k, v, probs: lse, dout }, { causal }) {
    const [B, H, T, hs] = q!.shape;
    const l = headsMajor(B, H, T, k!.shape[2], hs, causal as boolean);
    const ins = [q!, k!, v!, lse!, dout!];
    const D = rowTerms(be, l, ins);
    const rows = gradRows(hs);
    const grad = (name: 'dq' | 'dk' | 'dv', call: string, like: tf.TensorInfo) =>
      run(
        be,
        {
          key: `attn_${name}_${hs}`,
          inputs: INPUTS,
          n: tf.util.sizeFromShape(like.shape),
          threads: tf.util.sizeFromShape(like.shape) / hs,
          uniforms: UNIFORMS,
          functions: dots(hs, name !== 'dv') + rows[name], // dv's rows take no dout.v
          body: `${call}(index);`,
        },
        [...ins, D],
        uniformsOf(l),
        like.shape,
      );
    const out = [grad('dq', 'nlDq', q!), grad('dk', 'nlDk', k!), grad('dv', 'nlDv', v!)];
    be.disposeData(D.dataId);
    return out;
  },

  /** qkv (B, T, 3C), C = heads hs; outputs out (B, T, C) and each query's logsumexp (B, heads, T). */
  NormLabPackedAttention(be, { qkv }, { heads, causal }) {
    const [B, T, C3] = qkv!.shape;
    return forward(be, packed(B, heads as number, T, C3 / 3, causal as boolean), qkv!, qkv!, qkv!, [B, T, C3 / 3]);
  },

  /** Outputs dqkv (B, T, 3C) in one program: a thread per row of its q block, and per row of its k and v blocks together. */
  NormLabPackedAttentionGrad(be, { qkv, probs: lse, dout }, { heads, causal }) {
    const [B, T, C3] = qkv!.shape;
    const l = packed(B, heads as number, T, C3 / 3, causal as boolean);
    const ins = [qkv!, qkv!, qkv!, lse!, dout!];
    const D = rowTerms(be, l, ins);
    const rows = gradRows(l.hs);
    const dqkv = run(
      be,
      {
        key: `attn_dqkv_${l.hs}`,
        inputs: INPUTS,
        n: tf.util.sizeFromShape(qkv!.shape),
        threads: 2 * B * l.H * T,
        uniforms: UNIFORMS,
        functions: dots(l.hs, true) + rows.dq + rows.dkv,
        body: `let n = uniforms.BH * uniforms.T;
    if (index < n) { nlDq(index); } else { nlDkv(index - n); }`,
      },
      [...ins, D],
      uniformsOf(l),
      qkv!.shape,
    );
    be.disposeData(D.dataId);
    return [dqkv];
  },
};
