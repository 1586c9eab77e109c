/**
 * NormLab's fused kernels for the webgpu backend, as WGSL compute shaders run through
 * tfjs-backend-webgpu's program API (`runWebGPUProgram`): GELU, SwiGLU, LayerNorm/RMSNorm, token
 * cross-entropy, AdamW and attention, forward and backward, under the same kernel names and contracts as the
 * wasm ones (../wasm/fused.ts), so ../fused-ops.ts wraps both the same way. Written by hand
 * because tfjs has no such kernels: its composition of each op is a chain of stock kernels, each
 * a pass over memory (LayerNorm forward alone is ~8, cross-entropy builds a log-softmax of the
 * whole (N, V) logits).
 *
 * Attention never materializes the (T, Tk) probabilities: the forward keeps each query's
 * logsumexp (B, H, T) instead, and the backward recomputes the probabilities from it (the
 * recomputation of FlashAttention, Dao et al. 2022, without its tiling: one thread per query
 * or key row, looping over the other side).
 *
 * A tfjs-webgpu program has one output, so a kernel with several outputs runs one program per
 * output (a norm's mean, rstd and y). Row reductions (norm statistics, logsumexp, a norm's dx) run
 * one workgroup per row and reduce in workgroup memory; the rest are element-wise. Inputs are
 * passed as flat views of their buffers (same data, shape [n]), which keeps the programs' uniforms
 * independent of the tensors' ranks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

type Attrs = Record<string, number | boolean>;
type Uniform = { type: 'int32' | 'float32'; data: number[] };

/** Threads per workgroup: element-wise programs, and the row reductions. */
const FLAT_WG = 128;
const ROW_WG = 64;

/** The same buffer seen as 1-D (no copy). */
function flat(t: tf.TensorInfo): tf.TensorInfo {
  return { dataId: t.dataId, shape: [tf.util.sizeFromShape(t.shape)], dtype: t.dtype };
}

/** Workgroups for `n` of something, spread over y and z past the 65535 limit of one dimension. */
function dispatchFor(n: number): [number, number, number] {
  const MAX = 65535;
  if (n <= MAX) return [n, 1, 1];
  const y = Math.ceil(n / MAX);
  if (y <= MAX) return [MAX, y, 1];
  return [MAX, MAX, Math.ceil(n / (MAX * MAX))];
}

/** The WGSL helpers every program gets: erf, a saturating tanh, exp, and workgroup sum / max. */
const COMMON = /* wgsl */ `
  // erf(x) as x P(x^2) / Q(x^2) on [-4, 4], saturated outside: the rational approximation of
  // Eigen and XLA, which the native kernels use too.
  fn nlErf(x0 : f32) -> f32 {
    let x = clamp(x0, -4.0, 4.0);
    let x2 = x * x;
    var p = -2.72614225801306e-10;
    p = p * x2 + 2.77068142495902e-08;
    p = p * x2 + -2.10102402082508e-06;
    p = p * x2 + -5.69250639462346e-05;
    p = p * x2 + -7.34990630326855e-04;
    p = p * x2 + -2.95459980854025e-03;
    p = p * x2 + -1.60960333262415e-02;
    var q = -1.45660718464996e-05;
    q = q * x2 + -2.13374055278905e-04;
    q = q * x2 + -1.68282697438203e-03;
    q = q * x2 + -7.37332916720468e-03;
    q = q * x2 + -1.42647390514189e-02;
    return x * p / q;
  }
  // tanh(u) = 1 - 2 / (exp(2u) + 1): no NaN at large |u|, where some drivers' tanh gives one.
  fn nlTanh(u : f32) -> f32 {
    return 1.0 - 2.0 / (exp(2.0 * clamp(u, -40.0, 40.0)) + 1.0);
  }
  fn nlSigmoid(x : f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(x, -80.0, 80.0)));
  }
`;

const ROW_REDUCE = /* wgsl */ `
  var<workgroup> nlRed : array<f32, ${ROW_WG}>;
  // Sum (max) of v over the workgroup; every thread gets the result. Call in uniform control flow.
  fn nlWgSum(v : f32) -> f32 {
    nlRed[localId.x] = v;
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}u; s > 0u; s = s / 2u) {
      if (localId.x < s) { nlRed[localId.x] = nlRed[localId.x] + nlRed[localId.x + s]; }
      workgroupBarrier();
    }
    let r = nlRed[0];
    workgroupBarrier();
    return r;
  }
  fn nlWgMax(v : f32) -> f32 {
    nlRed[localId.x] = v;
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}u; s > 0u; s = s / 2u) {
      if (localId.x < s) { nlRed[localId.x] = max(nlRed[localId.x], nlRed[localId.x + s]); }
      workgroupBarrier();
    }
    let r = nlRed[0];
    workgroupBarrier();
    return r;
  }
  // The row this workgroup reduces (one workgroup per row, dispatched over x, y, z).
  fn nlRow() -> i32 {
    return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
  }
`;

interface Spec {
  key: string;
  inputs: string[];
  /** Elements of the (flat) output. */
  n: number;
  /** Element-wise (one thread per output element), or one workgroup per row of `rows`. */
  rows?: number;
  /** Element-wise programs whose threads each write several outputs: the thread count. */
  threads?: number;
  uniforms?: string;
  /** WGSL functions the body calls. */
  functions?: string;
  body: string;
}

function program(s: Spec): WebGPUProgram {
  const rowMode = s.rows !== undefined;
  const groups = rowMode ? s.rows! : Math.ceil((s.threads ?? s.n) / FLAT_WG);
  return {
    variableNames: s.inputs,
    outputShape: [s.n],
    shaderKey: `normlab_${s.key}`,
    dispatchLayout: { x: [0] },
    dispatch: dispatchFor(groups),
    workgroupSize: [rowMode ? ROW_WG : FLAT_WG, 1, 1],
    size: true,
    uniforms: s.uniforms,
    getUserCode: () => `${COMMON}${rowMode ? ROW_REDUCE : ''}${s.functions ?? ''}
      fn main(index : i32) {
        ${s.body}
      }`,
  } as WebGPUProgram;
}

/**
 * Run one program on `inputs` (named by s.inputs, in order); the output gets `shape`. Inputs the
 * body never reads are left out: WebGPU drops unused bindings from the pipeline's layout.
 */
function run(be: WebGPUBackend, s: Spec, inputs: tf.TensorInfo[], uniforms: Uniform[], shape: number[]): tf.TensorInfo {
  const code = s.body + (s.functions ?? '');
  const used = s.inputs.map((name) => new RegExp(`\\b${name}\\[`).test(code));
  const spec = { ...s, inputs: s.inputs.filter((_, i) => used[i]) };
  const out = be.runWebGPUProgram(program(spec), inputs.filter((_, i) => used[i]).map(flat), 'float32', uniforms);
  return { ...out, shape };
}

const int = (v: number): Uniform => ({ type: 'int32', data: [v] });
const float = (v: number): Uniform => ({ type: 'float32', data: [v] });

/** The global index of an element-wise program, and the guard every one starts with. */
const EACH = 'if (index >= uniforms.size) { return; }\n        let i = index;';

const GELU_TANH = 'let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);';

/** Uniforms of the attention programs (BH = batch x heads), and their values. */
const ATTN_UNIFORMS = 'T : i32, Tk : i32, causal : i32, scale : f32, BH : i32,';

function attentionUniforms(BH: number, T: number, Tk: number, hs: number, causal: boolean): Uniform[] {
  return [int(T), int(Tk), int(causal ? 1 : 0), float(1 / Math.sqrt(hs)), int(BH)];
}

/** A thread per query row r = (bh, i): its q row, the key block of its head and the keys it sees. */
function attnQueryRow(hs: number): string {
  return `let r = index;
        if (r >= uniforms.BH * uniforms.T) { return; }
        let bh = r / uniforms.T;
        let i = r - bh * uniforms.T;
        let qBase = r * ${hs};
        let kBase = bh * uniforms.Tk * ${hs};
        var jEnd = uniforms.Tk;
        if (uniforms.causal != 0) { jEnd = min(uniforms.Tk, i + (uniforms.Tk - uniforms.T) + 1); }`;
}

/** Dot products of a query's row with a key's (q.k, dout.v), for the programs that bind them. */
function attnDots(hs: number, withDv: boolean): string {
  const dot = (name: string, a: string, b: string) => `
  fn ${name}(ra : i32, rb : i32) -> f32 {
    var s = 0.0;
    for (var d = 0; d < ${hs}; d = d + 1) { s = s + ${a}[ra + d] * ${b}[rb + d]; }
    return s;
  }`;
  return dot('nlDotQK', 'q', 'k') + (withDv ? dot('nlDotDV', 'dout', 'v') : '');
}

/** q_r . k_j * scale */
const DOT_QK = 'nlDotQK(qBase, kBase + j * HS) * uniforms.scale';
/** dout_r . v_j */
const DOT_DV = 'nlDotDV(qBase, kBase + j * HS)';

type Body = (be: WebGPUBackend, inputs: Partial<Record<string, tf.TensorInfo>>, attrs: Attrs) => tf.TensorInfo[];

const kernels: Record<string, Body> = {
  NormLabGelu(be, { x }, { tanh }) {
    const n = tf.util.sizeFromShape(x!.shape);
    const y = tanh ? `${GELU_TANH}\n        result[i] = 0.5 * v * (1.0 + nlTanh(u));` : 'result[i] = 0.5 * v * (1.0 + nlErf(v * 0.7071067811865476));';
    return [run(be, { key: `gelu_${tanh ? 'tanh' : 'erf'}`, inputs: ['x'], n, body: `${EACH}\n        let v = x[i];\n        ${y}` }, [x!], [], x!.shape)];
  },

  /** d/dx of GELU: tanh form 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3c x^2); erf form Phi(x) + x phi(x). */
  NormLabGeluGrad(be, { x, dy }, { tanh }) {
    const n = tf.util.sizeFromShape(x!.shape);
    const d = tanh
      ? `${GELU_TANH}\n        let t = nlTanh(u);\n        let d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);`
      : 'let d = 0.5 * (1.0 + nlErf(v * 0.7071067811865476)) + v * exp(-0.5 * v * v) * 0.3989422804014327;';
    return [
      run(
        be,
        {
          key: `gelu_grad_${tanh ? 'tanh' : 'erf'}`,
          inputs: ['x', 'dy'],
          n,
          body: `${EACH}\n        let v = x[i];\n        ${d}\n        result[i] = dy[i] * d;`,
        },
        [x!, dy!],
        [],
        x!.shape,
      ),
    ];
  },

  NormLabSwiGLU(be, { gate, up }) {
    const n = tf.util.sizeFromShape(gate!.shape);
    return [
      run(
        be,
        { key: 'swiglu', inputs: ['gate', 'up'], n, body: `${EACH}\n        let g = gate[i];\n        result[i] = g * nlSigmoid(g) * up[i];` },
        [gate!, up!],
        [],
        gate!.shape,
      ),
    ];
  },

  /** dg = dy u s (1 + g (1 - s)), du = dy g s, s = sigmoid(g). */
  NormLabSwiGLUGrad(be, { gate, up, dy }) {
    const n = tf.util.sizeFromShape(gate!.shape);
    const pre = `${EACH}\n        let g = gate[i];\n        let s = nlSigmoid(g);`;
    const ins = [gate!, up!, dy!];
    return [
      run(
        be,
        { key: 'swiglu_dg', inputs: ['gate', 'up', 'dy'], n, body: `${pre}\n        result[i] = dy[i] * up[i] * s * (1.0 + g * (1.0 - s));` },
        ins,
        [],
        gate!.shape,
      ),
      run(be, { key: 'swiglu_du', inputs: ['gate', 'up', 'dy'], n, body: `${pre}\n        result[i] = dy[i] * g * s;` }, ins, [], gate!.shape),
    ];
  },

  /** y = (x - mean) rstd gamma + beta over the last axis; RMSNorm: mean 0. Outputs y, mean, rstd. */
  NormLabNorm(be, { x, gamma, beta }, { eps, rms }) {
    const C = x!.shape[x!.shape.length - 1];
    const rows = tf.util.sizeFromShape(x!.shape) / C;
    const dims: Uniform[] = [int(rows), int(C)];
    const rowLoop = (acc: string) => `var acc = 0.0;
        for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) { ${acc} }`;
    const mean = rms
      ? run(be, { key: 'norm_mean0', inputs: ['x'], n: rows, body: `${EACH}\n        result[i] = 0.0;` }, [x!], [], [rows])
      : run(
          be,
          {
            key: 'norm_mean',
            inputs: ['x'],
            n: rows,
            rows,
            uniforms: 'R : i32, C : i32,',
            body: `let r = nlRow();
        let base = min(r, uniforms.R - 1) * uniforms.C;
        ${rowLoop('acc = acc + x[base + c];')}
        let s = nlWgSum(acc);
        if (localId.x == 0u && r < uniforms.R) { result[r] = s / f32(uniforms.C); }`,
          },
          [x!],
          dims,
          [rows],
        );
    const rstd = run(
      be,
      {
        key: 'norm_rstd',
        inputs: ['x', 'mean'],
        n: rows,
        rows,
        uniforms: 'R : i32, C : i32, eps : f32,',
        body: `let r = nlRow();
        let rr = min(r, uniforms.R - 1);
        let base = rr * uniforms.C;
        let mu = mean[rr];
        ${rowLoop('let d = x[base + c] - mu; acc = acc + d * d;')}
        let s = nlWgSum(acc);
        if (localId.x == 0u && r < uniforms.R) { result[r] = 1.0 / sqrt(s / f32(uniforms.C) + uniforms.eps); }`,
      },
      [x!, mean],
      [...dims, float(eps as number)],
      [rows],
    );
    const names = ['x', 'mean', 'rstd', ...(gamma ? ['gamma'] : []), ...(beta ? ['beta'] : [])];
    const affine = `${gamma ? ' * gamma[c]' : ''}${beta ? ' + beta[c]' : ''}`;
    const y = run(
      be,
      {
        key: `norm_y_${gamma ? 'g' : ''}${beta ? 'b' : ''}`,
        inputs: names,
        n: rows * C,
        uniforms: 'C : i32,',
        body: `${EACH}\n        let r = i / uniforms.C;\n        let c = i - r * uniforms.C;\n        result[i] = (x[i] - mean[r]) * rstd[r]${affine};`,
      },
      [x!, mean, rstd, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])],
      [int(C)],
      x!.shape,
    );
    return [y, mean, rstd];
  },

  /**
   * xhat = (x - mean) rstd, g = dy gamma: dx = rstd (g - mean(g) - xhat mean(g xhat)) (no mean(g)
   * for RMSNorm); dgamma = sum over rows of dy xhat, dbeta = sum of dy.
   */
  NormLabNormGrad(be, { x, gamma, mean, rstd, dy }, { rms }) {
    const C = x!.shape[x!.shape.length - 1];
    const rows = tf.util.sizeFromShape(x!.shape) / C;
    const g = gamma ? ' * gamma[c]' : '';
    const ins = [x!, mean!, rstd!, dy!, ...(gamma ? [gamma] : [])];
    const names = ['x', 'mean', 'rstd', 'dy', ...(gamma ? ['gamma'] : [])];
    const dx = run(
      be,
      {
        key: `norm_dx_${rms ? 'rms' : 'ln'}${gamma ? '_g' : ''}`,
        inputs: names,
        n: rows * C,
        rows,
        uniforms: 'R : i32, C : i32,',
        body: `let r = nlRow();
        let rr = min(r, uniforms.R - 1);
        let base = rr * uniforms.C;
        let mu = mean[rr];
        let rs = rstd[rr];
        var sg = 0.0;
        var sgx = 0.0;
        for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) {
          let gi = dy[base + c]${g};
          sg = sg + gi;
          sgx = sgx + gi * (x[base + c] - mu) * rs;
        }
        let sumG = nlWgSum(sg);
        let mg = ${rms ? '0.0' : 'sumG / f32(uniforms.C)'};
        let mgx = nlWgSum(sgx) / f32(uniforms.C);
        if (r < uniforms.R) {
          for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) {
            let xhat = (x[base + c] - mu) * rs;
            result[base + c] = rs * (dy[base + c]${g} - mg - xhat * mgx);
          }
        }`,
      },
      ins,
      [int(rows), int(C)],
      x!.shape,
    );
    const column = (key: string, term: string) =>
      run(
        be,
        {
          key,
          inputs: ['x', 'mean', 'rstd', 'dy'],
          n: C,
          uniforms: 'R : i32, C : i32,',
          body: `${EACH}\n        var acc = 0.0;\n        for (var r = 0; r < uniforms.R; r = r + 1) {\n          let j = r * uniforms.C + i;\n          acc = acc + ${term};\n        }\n        result[i] = acc;`,
        },
        [x!, mean!, rstd!, dy!],
        [int(rows), int(C)],
        [C],
      );
    return [dx, column('norm_dgamma', 'dy[j] * (x[j] - mean[r]) * rstd[r]'), column('norm_dbeta', 'dy[j]')];
  },

  /** Per-row logsumexp and loss = lse - logits[target] (NaN for a target outside [0, V)). */
  NormLabCrossEntropy(be, { logits, targets }) {
    const [N, V] = logits!.shape;
    const lse = run(
      be,
      {
        key: 'xent_lse',
        inputs: ['logits'],
        n: N,
        rows: N,
        uniforms: 'R : i32, V : i32,',
        body: `let r = nlRow();
        let base = min(r, uniforms.R - 1) * uniforms.V;
        var m = -3.4e38;
        for (var j = i32(localId.x); j < uniforms.V; j = j + ${ROW_WG}) { m = max(m, logits[base + j]); }
        let mx = nlWgMax(m);
        var z = 0.0;
        for (var j = i32(localId.x); j < uniforms.V; j = j + ${ROW_WG}) { z = z + exp(logits[base + j] - mx); }
        let s = nlWgSum(z);
        if (localId.x == 0u && r < uniforms.R) { result[r] = mx + log(s); }`,
      },
      [logits!],
      [int(N), int(V)],
      [N],
    );
    const loss = run(
      be,
      {
        key: 'xent_loss',
        inputs: ['logits', 'targets', 'lse'],
        n: N,
        uniforms: 'V : i32,',
        body: `${EACH}\n        let t = targets[i];\n        if (t >= 0 && t < uniforms.V) { result[i] = lse[i] - logits[i * uniforms.V + t]; } else { result[i] = uniforms.NAN; }`,
      },
      [logits!, targets!, lse],
      [int(V)],
      [N],
    );
    return [loss, lse];
  },

  /** dlogits = dloss (softmax(logits) - onehot(target)). */
  NormLabCrossEntropyGrad(be, { logits, targets, lse, dloss }) {
    const [N, V] = logits!.shape;
    return [
      run(
        be,
        {
          key: 'xent_grad',
          inputs: ['logits', 'targets', 'lse', 'dloss'],
          n: N * V,
          uniforms: 'V : i32,',
          body: `${EACH}\n        let r = i / uniforms.V;\n        let j = i - r * uniforms.V;\n        var d = exp(logits[i] - lse[r]);\n        if (j == targets[r]) { d = d - 1.0; }\n        result[i] = dloss[r] * d;`,
        },
        [logits!, targets!, lse!, dloss!],
        [int(V)],
        logits!.shape,
      ),
    ];
  },

  /** q (B, H, T, hs), k and v (B, H, Tk, hs); outputs out (B, H, T, hs) and each query's logsumexp (B, H, T). */
  NormLabAttention(be, { q, k, v }, { causal }) {
    const [B, H, T, hs] = q!.shape;
    const Tk = k!.shape[2];
    const u = attentionUniforms(B * H, T, Tk, hs, causal as boolean);
    const rows = B * H * T;
    const lse = run(
      be,
      {
        key: `attn_lse_${hs}`,
        inputs: ['q', 'k'],
        n: rows,
        uniforms: ATTN_UNIFORMS,
        functions: attnDots(hs, false),
        body: `${attnQueryRow(hs)}
        var m = -3.4e38;
        var l = 0.0;
        for (var j = 0; j < jEnd; j = j + 1) {
          let s = ${DOT_QK.replace(/HS/g, String(hs))};
          if (s > m) { l = l * exp(m - s); m = s; }
          l = l + exp(s - m);
        }
        result[r] = m + log(l);`,
      },
      [q!, k!],
      u,
      [B, H, T],
    );
    const out = run(
      be,
      {
        key: `attn_out_${hs}`,
        inputs: ['q', 'k', 'v', 'lse'],
        n: rows * hs,
        threads: rows,
        uniforms: ATTN_UNIFORMS,
        functions: attnDots(hs, false),
        body: `${attnQueryRow(hs)}
        var acc : array<f32, ${hs}>;
        let lr = lse[r];
        for (var j = 0; j < jEnd; j = j + 1) {
          let p = exp(${DOT_QK.replace(/HS/g, String(hs))} - lr);
          for (var d = 0; d < ${hs}; d = d + 1) { acc[d] = acc[d] + p * v[kBase + j * ${hs} + d]; }
        }
        for (var d = 0; d < ${hs}; d = d + 1) { result[r * ${hs} + d] = acc[d]; }`,
      },
      [q!, k!, v!, lse],
      u,
      q!.shape,
    );
    return [out, lse];
  },

  /**
   * With p = exp(q.k scale - lse), dp_j = dout.v_j and D = sum_j p_j dp_j per query:
   * dq = scale sum_j p_j (dp_j - D) k_j; dk_j = scale sum_i p_ij (dp_ij - D_i) q_i; dv_j = sum_i p_ij dout_i.
   * `probs` is the forward's logsumexp (see NormLabAttention).
   */
  NormLabAttentionGrad(be, { q, k, v, probs: lse, dout }, { causal }) {
    const [B, H, T, hs] = q!.shape;
    const Tk = k!.shape[2];
    const u = attentionUniforms(B * H, T, Tk, hs, causal as boolean);
    const rows = B * H * T;
    const keyRows = B * H * Tk;
    const D = run(
      be,
      {
        key: `attn_D_${hs}`,
        inputs: ['q', 'k', 'v', 'lse', 'dout'],
        n: rows,
        uniforms: ATTN_UNIFORMS,
        functions: attnDots(hs, true),
        body: `${attnQueryRow(hs)}
        let lr = lse[r];
        var acc = 0.0;
        for (var j = 0; j < jEnd; j = j + 1) {
          acc = acc + exp(${DOT_QK.replace(/HS/g, String(hs))} - lr) * ${DOT_DV.replace(/HS/g, String(hs))};
        }
        result[r] = acc;`,
      },
      [q!, k!, v!, lse!, dout!],
      u,
      [B, H, T],
    );
    const dq = run(
      be,
      {
        key: `attn_dq_${hs}`,
        inputs: ['q', 'k', 'v', 'lse', 'dout', 'D'],
        n: rows * hs,
        threads: rows,
        uniforms: ATTN_UNIFORMS,
        functions: attnDots(hs, true),
        body: `${attnQueryRow(hs)}
        let lr = lse[r];
        let Dr = D[r];
        var acc : array<f32, ${hs}>;
        for (var j = 0; j < jEnd; j = j + 1) {
          let ds = exp(${DOT_QK.replace(/HS/g, String(hs))} - lr) * (${DOT_DV.replace(/HS/g, String(hs))} - Dr);
          for (var d = 0; d < ${hs}; d = d + 1) { acc[d] = acc[d] + ds * k[kBase + j * ${hs} + d]; }
        }
        for (var d = 0; d < ${hs}; d = d + 1) { result[r * ${hs} + d] = acc[d] * uniforms.scale; }`,
      },
      [q!, k!, v!, lse!, dout!, D],
      u,
      q!.shape,
    );
    /** A thread per key row c = (bh, j), looping over the queries that see key j. */
    const keyRow = (key: string, term: string, scaled: boolean) =>
      run(
        be,
        {
          key: `${key}_${hs}`,
          inputs: ['q', 'k', 'v', 'lse', 'dout', 'D'],
          n: keyRows * hs,
          threads: keyRows,
          uniforms: ATTN_UNIFORMS,
          body: `let c = index;
        if (c >= uniforms.BH * uniforms.Tk) { return; }
        let bh = c / uniforms.Tk;
        let j = c - bh * uniforms.Tk;
        let kBase = bh * uniforms.Tk * ${hs};
        var iStart = 0;
        if (uniforms.causal != 0) { iStart = max(0, j - (uniforms.Tk - uniforms.T)); }
        var acc : array<f32, ${hs}>;
        for (var i = iStart; i < uniforms.T; i = i + 1) {
          let r = bh * uniforms.T + i;
          let qBase = r * ${hs};
          var s = 0.0;
          for (var d = 0; d < ${hs}; d = d + 1) { s = s + q[qBase + d] * k[kBase + j * ${hs} + d]; }
          let p = exp(s * uniforms.scale - lse[r]);
          ${term}
        }
        for (var d = 0; d < ${hs}; d = d + 1) { result[c * ${hs} + d] = acc[d]${scaled ? ' * uniforms.scale' : ''}; }`,
        },
        [q!, k!, v!, lse!, dout!, D],
        u,
        k!.shape,
      );
    const dk = keyRow(
      'attn_dk',
      `var dp = 0.0;
          for (var d = 0; d < ${hs}; d = d + 1) { dp = dp + dout[qBase + d] * v[kBase + j * ${hs} + d]; }
          let ds = p * (dp - D[r]);
          for (var d = 0; d < ${hs}; d = d + 1) { acc[d] = acc[d] + ds * q[qBase + d]; }`,
      true,
    );
    const dv = keyRow('attn_dv', `for (var d = 0; d < ${hs}; d = d + 1) { acc[d] = acc[d] + p * dout[qBase + d]; }`, false);
    be.disposeData(D.dataId);
    return [dq, dk, dv];
  },

  /** m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2, p' = p - lr (m'/bc1 / (sqrt(v'/bc2) + eps) + wd p). */
  NormLabAdamW(be, { p, g, m, v }, { lr, beta1, beta2, eps, weightDecay, bc1, bc2 }) {
    const n = tf.util.sizeFromShape(p!.shape);
    const uniforms = 'lr : f32, b1 : f32, b2 : f32, eps : f32, wd : f32, ib1 : f32, ib2 : f32,';
    const values = [lr, beta1, beta2, eps, weightDecay, 1 / (bc1 as number), 1 / (bc2 as number)].map((u) => float(u as number));
    const pre = `${EACH}
        let gi = g[i];
        let mi = uniforms.b1 * m[i] + (1.0 - uniforms.b1) * gi;
        let vi = uniforms.b2 * v[i] + (1.0 - uniforms.b2) * gi * gi;`;
    const one = (key: string, out: string) =>
      run(be, { key, inputs: ['p', 'g', 'm', 'v'], n, uniforms, body: `${pre}\n        ${out}` }, [p!, g!, m!, v!], values, p!.shape);
    return [
      one('adamw_p', 'result[i] = p[i] - uniforms.lr * (mi * uniforms.ib1 / (sqrt(vi * uniforms.ib2) + uniforms.eps) + uniforms.wd * p[i]);'),
      one('adamw_m', 'result[i] = mi;'),
      one('adamw_v', 'result[i] = vi;'),
    ];
  },
};

/** The kernel names given a webgpu implementation here. */
export const WEBGPU_FUSED_KERNELS: readonly string[] = Object.keys(kernels);

let registered = false;

/** Register the kernels for `webgpu` (idempotent). */
export function registerWebgpuFusedKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, body] of Object.entries(kernels)) {
    tf.registerKernel({
      kernelName,
      backendName: 'webgpu',
      kernelFunc: (({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
        for (const t of Object.values(inputs))
          if (t && t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`${kernelName}: unsupported dtype ${t.dtype}`);
        return body(backend as WebGPUBackend, inputs as Partial<Record<string, tf.TensorInfo>>, (attrs ?? {}) as Attrs);
      }) as unknown as tf.KernelFunc,
    });
  }
}
