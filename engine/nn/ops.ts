/**
 * The hot path of every model: linear, attention, norms, activations and the LM loss.
 * Models call only these for their heavy work, so a faster kernel (see engine/backend/) speeds
 * up every method at once. On wasm with NormLab's native kernels and on webgpu, attention, the
 * norms, gelu, swiglu, rope and crossEntropy each run as one fused kernel
 * (../backend/fused-ops.ts); elsewhere they are composed from tfjs ops as written below. Weights
 * of linear layers are stored (in, out), so the forward matmul is `x @ W` with no transpose;
 * importers of (out, in) checkpoints transpose once on load.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedOps } from '../backend/fused-ops.js';

/** y = x @ W + b for x (..., in), W (in, out), b (out) -> (..., out). */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const [inDim, outDim] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const x2 = tf.reshape(x, [-1, inDim]); // (..., in) -> (N, in)
  const y2 = tf.matMul(x2, w); // (N, in) @ (in, out) -> (N, out)
  const y = b ? tf.add(y2, b) : y2;
  return tf.reshape(y, [...lead, outDim]); // (N, out) -> (..., out)
}

/** y = x @ Wᵀ + b for x (..., in), W (out, in) as PyTorch stores it, b (out) -> (..., out). */
export function linearTransposed(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const [outDim, inDim] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const y2 = tf.matMul(tf.reshape(x, [-1, inDim]), w, false, true); // (N, in) @ (in, out)
  return tf.reshape(b ? tf.add(y2, b) : y2, [...lead, outDim]);
}

/**
 * Scaled dot-product attention, softmax(q k^T / sqrt(hs) + mask) v.
 * q, k, v: (B, H, T, hs) -> (B, H, T, hs). `causal` masks keys after each query.
 * attentionWithProbs also returns the probabilities (for diagnostics and PTQ).
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, causal: boolean): tf.Tensor4D {
  const fused = fusedOps('attention');
  if (fused && q.dtype === 'float32' && (!causal || k.shape[2] >= q.shape[2])) return fused.attention(q, k, v, causal);
  return attentionWithProbs(q, k, v, causal).out;
}

export function attentionWithProbs(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, causal: boolean): { out: tf.Tensor4D; probs: tf.Tensor4D } {
  const probs = attentionProbs(q, k, causal);
  const out = tf.matMul(probs, v) as tf.Tensor4D; // (B, H, T, Tk) @ (B, H, Tk, hs) -> (B, H, T, hs)
  return { out, probs };
}

/** softmax(q k^T / sqrt(hs) + causal mask), (B, H, T, Tk). */
export function attentionProbs(q: tf.Tensor4D, k: tf.Tensor4D, causal: boolean): tf.Tensor4D {
  const [, , T, hs] = q.shape;
  const Tk = k.shape[2];
  let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hs)) as tf.Tensor4D; // (B, H, T, Tk)
  if (causal) scores = tf.add(scores, causalMask(T, Tk)) as tf.Tensor4D;
  return tf.softmax(scores) as tf.Tensor4D;
}

/**
 * Multi-head self-attention from a packed projection qkv (B, T, 3C) (q, k, v side by side, as
 * GPT-2's c_attn gives them) to the heads' outputs merged back to (B, T, C).
 */
export function packedSelfAttention(qkv: tf.Tensor3D, nHead: number, causal: boolean): tf.Tensor3D {
  const fused = qkv.dtype === 'float32' ? fusedOps('packedAttention') : null;
  if (fused) return fused.packedAttention(qkv, nHead, causal);
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, nHead, C / nHead]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, C) -> (B, H, T, hs)
  const [q, k, v] = tf.split(qkv, 3, -1);
  const z = attention(heads(q), heads(k), heads(v), causal); // (B, H, T, hs)
  return tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B, T, C]); // (B, H, T, hs) -> (B, T, C)
}

const maskCache = new Map<string, tf.Tensor2D>();

/** (T, Tk) additive mask: 0 where key j <= query i (+ offset), -1e9 after. Cached per shape. */
export function causalMask(T: number, Tk: number): tf.Tensor2D {
  const key = `${T}x${Tk}`;
  let m = maskCache.get(key);
  if (!m || m.isDisposed) {
    const vals = new Float32Array(T * Tk);
    const offset = Tk - T;
    for (let i = 0; i < T; i++) for (let j = 0; j < Tk; j++) vals[i * Tk + j] = j > i + offset ? -1e9 : 0;
    m = tf.keep(tf.tensor2d(vals, [T, Tk]));
    maskCache.set(key, m);
  }
  return m;
}

/** The fused ops when they apply to a norm: float32 input, gamma and beta of shape (C) or none. */
function fusedNorm(x: tf.Tensor, gamma: tf.Tensor | null, beta: tf.Tensor | null) {
  const C = x.shape[x.shape.length - 1];
  const fits = (p: tf.Tensor | null) => p === null || (p.rank === 1 && p.shape[0] === C && p.dtype === 'float32');
  return x.dtype === 'float32' && x.rank >= 1 && fits(gamma) && fits(beta) ? fusedOps('norm') : null;
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor | null, beta: tf.Tensor | null, eps: number): tf.Tensor {
  const fused = fusedNorm(x, gamma, beta);
  if (fused) return fused.norm(x, gamma, beta, eps, false);
  const { mean, variance } = tf.moments(x, -1, true);
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  if (gamma) y = tf.mul(y, gamma);
  if (beta) y = tf.add(y, beta);
  return y;
}

/** RMSNorm over the last axis (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * gamma. */
export function rmsNorm(x: tf.Tensor, gamma: tf.Tensor | null, eps: number): tf.Tensor {
  const fused = fusedNorm(x, gamma, null);
  if (fused) return fused.norm(x, gamma, null, eps, true);
  const ms = tf.mean(tf.square(x), -1, true);
  const y = tf.mul(x, tf.rsqrt(tf.add(ms, eps)));
  return gamma ? tf.mul(y, gamma) : y;
}

/** GELU. `tanh`: GPT-2's approximation (HF "gelu_new"); `erf`: the exact form (timm, PyTorch). */
export function gelu(x: tf.Tensor, form: 'tanh' | 'erf' = 'tanh'): tf.Tensor {
  const fused = x.dtype === 'float32' ? fusedOps('gelu') : null;
  if (fused) return fused.gelu(x, form);
  if (form === 'erf') return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
}

/** SiLU (swish): x * sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** SwiGLU's gating (Shazeer 2020, eq. 6 without the projections): silu(gate) * up. */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  const fused = gate.dtype === 'float32' && up.dtype === 'float32' && tf.util.arraysEqual(gate.shape, up.shape) ? fusedOps('swiglu') : null;
  if (fused) return fused.swiglu(gate, up);
  return tf.mul(silu(gate), up);
}

/**
 * Rotary position embedding (Su et al. 2021, eq. 34) in HF's rotate-half form for x (..., T, hs):
 * x cos + rotate_half(x) sin, rotate_half(x) = (-x[hs/2:], x[:hs/2]); cos, sin (T, hs).
 */
export function rope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor {
  const [T, hs] = cos.shape;
  const fits = x.dtype === 'float32' && x.rank >= 2 && x.shape[x.rank - 2] === T && x.shape[x.rank - 1] === hs && hs % 2 === 0;
  const fused = fits ? fusedOps('rope') : null;
  if (fused) return fused.rope(x, cos, sin);
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin));
}

/**
 * Mean token cross-entropy in nats. logits (..., V), targets int32 (...) with the same leading
 * shape. Picks each target's log-probability with a flat gather (no (N, V) one-hot is built).
 */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const V = logits.shape[logits.shape.length - 1];
  const fused = logits.dtype === 'float32' ? fusedOps('crossEntropy') : null;
  if (fused) return fused.crossEntropy(tf.reshape(logits, [-1, V]), tf.reshape(tf.cast(targets, 'int32'), [-1]));
  const logp = tf.reshape(tf.logSoftmax(tf.reshape(logits, [-1, V])), [-1]); // (N*V)
  const n = targets.size;
  const flatIdx = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(V, 'int32')), tf.reshape(tf.cast(targets, 'int32'), [-1]));
  return tf.neg(tf.mean(tf.gather(logp, flatIdx))) as tf.Scalar;
}

/** x as a constant: the same values, no gradient flows back through it (PyTorch's detach). */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return tf.customGrad((t, save) => {
    void save;
    return { value: tf.clone(t as tf.Tensor), gradFunc: (dy) => tf.zerosLike(dy as tf.Tensor) };
  })(x) as T;
}
