/**
 * The hot-path ops of engine/nn/ops.ts as single fused kernels with hand-written gradients, every
 * op on both backends: on wasm when NormLab's native kernels load (./wasm/fused.ts), and on webgpu
 * as WGSL (./webgpu/fused.ts). `fusedOps(op)` is null everywhere else, and ops.ts then composes
 * the same maths from tfjs ops; the fused forms are checked against those compositions, values
 * and gradients, in ./fused.test.ts (wasm) and ./webgpu/fused.test.ts (webgpu).
 */
import * as tf from '@tensorflow/tfjs-core';
import { nativeKernels } from './native.js';
import { fastWasmKernelsEnabled } from './wasm-kernels.js';
import { registerWebgpuFusedKernels, WEBGPU_FUSED_KERNELS } from './webgpu/fused.js';

type Inputs = Record<string, tf.Tensor>;

function run(kernel: string, inputs: Inputs, attrs: Record<string, number | boolean> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernel, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out];
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Bias corrections 1 - beta^t. */
  bc1: number;
  bc2: number;
}

export interface FusedOps {
  /** GELU, exact (erf) or GPT-2's tanh form. */
  gelu(x: tf.Tensor, form: 'tanh' | 'erf'): tf.Tensor;
  /** SwiGLU's gate: silu(gate) * up, same shapes. */
  swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor;
  /** Rotary embedding, rotate-half form, of x (..., T, hs) with cos and sin (T, hs) (constants). */
  rope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor;
  /** LayerNorm (rms false) or RMSNorm (rms true) over the last axis; gamma/beta (C) or null. */
  norm(x: tf.Tensor, gamma: tf.Tensor | null, beta: tf.Tensor | null, eps: number, rms: boolean): tf.Tensor;
  /** softmax(q k^T / sqrt(hs) + causal mask) v for q (B, H, T, hs), k and v (B, H, Tk, hs). */
  attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, causal: boolean): tf.Tensor4D;
  /** Self-attention from the packed projection qkv (B, T, 3C) to (B, T, C), nHead heads. */
  packedAttention(qkv: tf.Tensor3D, nHead: number, causal: boolean): tf.Tensor3D;
  /** Mean token cross-entropy of logits (N, V) against int32 targets (N). */
  crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar;
  /** One AdamW update: the new parameter and moments. */
  adamw(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, h: AdamWHyper): [tf.Tensor, tf.Tensor, tf.Tensor];
}

const ops: FusedOps = {
  gelu(x, form) {
    const tanh = form === 'tanh';
    return tf.customGrad((xi, save) => {
      const input = xi as tf.Tensor;
      (save as tf.GradSaveFunc)([input]);
      return {
        value: run('NormLabGelu', { x: input }, { tanh })[0],
        gradFunc: (dy, [xs]) => run('NormLabGeluGrad', { x: xs, dy: dy as tf.Tensor }, { tanh })[0],
      };
    })(x);
  },

  swiglu(gate, up) {
    return tf.customGrad((g, u, save) => {
      (save as tf.GradSaveFunc)([g as tf.Tensor, u as tf.Tensor]);
      return {
        value: run('NormLabSwiGLU', { gate: g as tf.Tensor, up: u as tf.Tensor })[0],
        gradFunc: (dy, [gs, us]) => run('NormLabSwiGLUGrad', { gate: gs, up: us, dy: dy as tf.Tensor }),
      };
    })(gate, up);
  },

  rope(x, cos, sin) {
    return tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([cos, sin]); // the backward needs them after the forward's scope ends
      return {
        value: run('NormLabRope', { x: xi as tf.Tensor, cos, sin }, { backward: false })[0],
        gradFunc: (dy, [c, s]) => run('NormLabRope', { x: dy as tf.Tensor, cos: c, sin: s }, { backward: true })[0],
      };
    })(x);
  },

  norm(x, gamma, beta, eps, rms) {
    const params = [gamma, beta].filter((t): t is tf.Tensor => t !== null);
    const f = tf.customGrad((...args) => {
      const save = args.pop() as tf.GradSaveFunc;
      const [xi, ...ps] = args as tf.Tensor[];
      const inputs: Inputs = { x: xi };
      if (gamma) inputs.gamma = ps[0];
      if (beta) inputs.beta = ps[gamma ? 1 : 0];
      const [y, mean, rstd] = run('NormLabNorm', inputs, { eps, rms });
      save(gamma ? [xi, mean, rstd, inputs.gamma] : [xi, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xs, ms, rs, g] = saved;
          const grad: Inputs = { x: xs, mean: ms, rstd: rs, dy: dy as tf.Tensor };
          if (g) grad.gamma = g;
          const [dx, dgamma, dbeta] = run('NormLabNormGrad', grad, { rms });
          return [dx, ...(gamma ? [dgamma] : []), ...(beta ? [dbeta] : [])];
        },
      };
    });
    return f(x, ...params);
  },

  attention(q, k, v, causal) {
    return tf.customGrad((qi, ki, vi, save) => {
      const [out, probs] = run('NormLabAttention', { q: qi as tf.Tensor, k: ki as tf.Tensor, v: vi as tf.Tensor }, { causal });
      (save as tf.GradSaveFunc)([qi as tf.Tensor, ki as tf.Tensor, vi as tf.Tensor, probs]);
      return {
        value: out,
        gradFunc: (dy, [qs, ks, vs, ps]) => run('NormLabAttentionGrad', { q: qs, k: ks, v: vs, probs: ps, dout: dy as tf.Tensor }, { causal }),
      };
    })(q, k, v) as tf.Tensor4D;
  },

  packedAttention(qkv, nHead, causal) {
    const attrs = { heads: nHead, causal };
    return tf.customGrad((x, save) => {
      const [out, probs] = run('NormLabPackedAttention', { qkv: x as tf.Tensor }, attrs);
      (save as tf.GradSaveFunc)([x as tf.Tensor, probs]);
      return {
        value: out,
        gradFunc: (dy, [xs, ps]) => run('NormLabPackedAttentionGrad', { qkv: xs, probs: ps, dout: dy as tf.Tensor }, attrs)[0],
      };
    })(qkv) as tf.Tensor3D;
  },

  crossEntropy(logits, targets) {
    const N = logits.shape[0];
    return tf.customGrad((li, save) => {
      const [loss, lse] = run('NormLabCrossEntropy', { logits: li as tf.Tensor, targets });
      (save as tf.GradSaveFunc)([li as tf.Tensor, lse, targets]); // targets too: the forward's scope disposes what is not saved
      return {
        value: tf.mean(loss),
        gradFunc: (dy, [ls, lses, ts]) => {
          const dloss = tf.fill([N], 1 / N, 'float32');
          return run('NormLabCrossEntropyGrad', { logits: ls, targets: ts, lse: lses, dloss: tf.mul(dloss, dy as tf.Tensor) })[0];
        },
      };
    })(logits) as tf.Scalar;
  },

  adamw(p, g, m, v, h) {
    const [pn, mn, vn] = run('NormLabAdamW', { p, g, m, v }, { ...h });
    return [pn, mn, vn];
  },
};

/** The kernels each op runs (forward and backward). */
const OP_KERNELS: Record<keyof FusedOps, string[]> = {
  gelu: ['NormLabGelu', 'NormLabGeluGrad'],
  swiglu: ['NormLabSwiGLU', 'NormLabSwiGLUGrad'],
  rope: ['NormLabRope'],
  norm: ['NormLabNorm', 'NormLabNormGrad'],
  attention: ['NormLabAttention', 'NormLabAttentionGrad'],
  packedAttention: ['NormLabPackedAttention', 'NormLabPackedAttentionGrad'],
  crossEntropy: ['NormLabCrossEntropy', 'NormLabCrossEntropyGrad'],
  adamw: ['NormLabAdamW'],
};

let sharedHeap: boolean | null = null;
let webgpuFused = true;

/**
 * Switch webgpu's fused kernels off (ops.ts composes tfjs's stock kernels) or back on, for tests
 * and the bench's comparison; switch only between steps, never inside a gradient tape.
 */
export function setWebgpuFusedKernels(on: boolean): void {
  webgpuFused = on;
}

/** The fused ops when `op` can run fused on the current backend, else null (see the module comment). */
export function fusedOps(op: keyof FusedOps): FusedOps | null {
  const backend = tf.getBackend();
  if (backend === 'webgpu') {
    if (!webgpuFused || !OP_KERNELS[op].every((k) => WEBGPU_FUSED_KERNELS.includes(k))) return null;
    registerWebgpuFusedKernels();
    return ops;
  }
  if (backend !== 'wasm' || !fastWasmKernelsEnabled() || !nativeKernels()) return null;
  // The addon cannot address a shared (threaded) wasm memory.
  sharedHeap ??= (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32.buffer instanceof SharedArrayBuffer;
  return sharedHeap ? null : ops;
}
