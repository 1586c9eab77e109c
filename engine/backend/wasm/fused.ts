/**
 * Fused kernels for the wasm backend, run by NormLab's native addon (../native.ts) on the wasm
 * heap: GELU, LayerNorm/RMSNorm, causal attention, token cross-entropy and AdamW, each forward and
 * backward as one kernel instead of a chain of tfjs ops. They are registered under NormLab's own
 * kernel names for `wasm` only; engine/nn/ops.ts uses them through `fusedOps()` (which is null on
 * other backends, without the addon, or while the stock kernels are switched on) and otherwise
 * composes the same maths from tfjs ops. Each fused op is checked against that composition in
 * engine/backend/fused.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { nativeKernels, type NativeKernels } from '../native.js';
import { internals, ptrOf, type WasmBackendInternals } from './heap.js';

type Attrs = Record<string, number | boolean>;
type KernelBody = (nk: NativeKernels, be: WasmBackendInternals, inputs: tf.TensorInfo[], attrs: Attrs) => tf.TensorInfo[];

/** Element offset of a tensor in the heap, or -1 for none. */
const at = (be: WasmBackendInternals, t: tf.TensorInfo | undefined): number => (t ? ptrOf(be, t) >>> 2 : -1);
/** The heap as floats: read after every makeOutput, which may grow (and replace) the memory. */
const heapOf = (be: WasmBackendInternals): Float32Array => be.wasm.HEAPF32;

/** The native attention shape for q, k, v and out laid out heads-major, (B, H, T, hs). */
function headsMajorShape(B: number, H: number, T: number, Tk: number, hs: number, causal: boolean): Int32Array {
  const q = [H * T * hs, T * hs, hs];
  const kv = [H * Tk * hs, Tk * hs, hs];
  return Int32Array.from([B, H, T, Tk, hs, causal ? 1 : 0, ...q, ...kv, ...kv, ...q]);
}

/** The native attention shape for q, k, v packed token-major in (B, T, 3C) and out in (B, T, C). */
function packedShape(B: number, H: number, T: number, C: number, causal: boolean): Int32Array {
  const qkv = [T * 3 * C, C / H, 3 * C];
  return Int32Array.from([B, H, T, T, C / H, causal ? 1 : 0, ...qkv, ...qkv, ...qkv, T * C, C / H, C]);
}

/** Input names per kernel, in the order the bodies receive them. */
const kernels: Record<string, { inputs: string[]; body: KernelBody }> = {
  NormLabGelu: {
    inputs: ['x'],
    body: (nk, be, [x], { tanh }) => {
      const y = be.makeOutput(x.shape, 'float32');
      nk.geluFwd(heapOf(be), at(be, x), at(be, y), tf.util.sizeFromShape(x.shape), tanh ? 1 : 0);
      return [y];
    },
  },
  NormLabGeluGrad: {
    inputs: ['x', 'dy'],
    body: (nk, be, [x, dy], { tanh }) => {
      const dx = be.makeOutput(x.shape, 'float32');
      nk.geluBwd(heapOf(be), at(be, x), at(be, dy), at(be, dx), tf.util.sizeFromShape(x.shape), tanh ? 1 : 0);
      return [dx];
    },
  },
  NormLabSwiGLU: {
    inputs: ['gate', 'up'],
    body: (nk, be, [g, u]) => {
      const y = be.makeOutput(g.shape, 'float32');
      nk.swigluFwd(heapOf(be), at(be, g), at(be, u), at(be, y), tf.util.sizeFromShape(g.shape));
      return [y];
    },
  },
  NormLabSwiGLUGrad: {
    inputs: ['gate', 'up', 'dy'],
    body: (nk, be, [g, u, dy]) => {
      const dg = be.makeOutput(g.shape, 'float32');
      const du = be.makeOutput(u.shape, 'float32');
      nk.swigluBwd(heapOf(be), at(be, g), at(be, u), at(be, dy), at(be, dg), at(be, du), tf.util.sizeFromShape(g.shape));
      return [dg, du];
    },
  },
  /** x (..., T, hs) with cos and sin (T, hs); `backward` maps dy to dx instead. */
  NormLabRope: {
    inputs: ['x', 'cos', 'sin'],
    body: (nk, be, [x, cos, sin], { backward }) => {
      const [T, hs] = cos.shape;
      const y = be.makeOutput(x.shape, 'float32');
      nk.rope(heapOf(be), at(be, x), at(be, cos), at(be, sin), at(be, y), tf.util.sizeFromShape(x.shape) / hs, T, hs, backward ? 1 : 0);
      return [y];
    },
  },
  /** Outputs y, mean and rstd ((rows,) each); gamma and beta are optional inputs. */
  NormLabNorm: {
    inputs: ['x', 'gamma', 'beta'],
    body: (nk, be, [x, gamma, beta], { eps, rms }) => {
      const C = x.shape[x.shape.length - 1];
      const rows = tf.util.sizeFromShape(x.shape) / C;
      const y = be.makeOutput(x.shape, 'float32');
      const mean = be.makeOutput([rows], 'float32');
      const rstd = be.makeOutput([rows], 'float32');
      nk.normFwd(heapOf(be), at(be, x), at(be, gamma), at(be, beta), at(be, y), at(be, mean), at(be, rstd), rows, C, eps as number, rms ? 1 : 0);
      return [y, mean, rstd];
    },
  },
  /** Outputs dx, dgamma and dbeta (zeros of shape (C,) where the forward had none). */
  NormLabNormGrad: {
    inputs: ['x', 'gamma', 'mean', 'rstd', 'dy'],
    body: (nk, be, [x, gamma, mean, rstd, dy], { rms }) => {
      const C = x.shape[x.shape.length - 1];
      const rows = tf.util.sizeFromShape(x.shape) / C;
      const dx = be.makeOutput(x.shape, 'float32');
      const dgamma = be.makeOutput([C], 'float32');
      const dbeta = be.makeOutput([C], 'float32');
      nk.normBwd(heapOf(be), at(be, x), at(be, gamma), at(be, mean), at(be, rstd), at(be, dy), at(be, dx), at(be, dgamma), at(be, dbeta), rows, C, rms ? 1 : 0);
      return [dx, dgamma, dbeta];
    },
  },
  /** q (B, H, T, hs), k and v (B, H, Tk, hs); outputs out (B, H, T, hs) and probs (B, H, T, Tk). */
  NormLabAttention: {
    inputs: ['q', 'k', 'v'],
    body: (nk, be, [q, k, v], { causal }) => {
      const [B, H, T, hs] = q.shape;
      const Tk = k.shape[2];
      const out = be.makeOutput(q.shape, 'float32');
      const probs = be.makeOutput([B, H, T, Tk], 'float32');
      const shape = headsMajorShape(B, H, T, Tk, hs, causal as boolean);
      nk.attentionFwd(heapOf(be), at(be, q), at(be, k), at(be, v), at(be, out), at(be, probs), shape, 1 / Math.sqrt(hs));
      return [out, probs];
    },
  },
  NormLabAttentionGrad: {
    inputs: ['q', 'k', 'v', 'probs', 'dout'],
    body: (nk, be, [q, k, v, probs, dout], { causal }) => {
      const [B, H, T, hs] = q.shape;
      const Tk = k.shape[2];
      const [dq, dk, dv] = [q, k, v].map((t) => be.makeOutput(t.shape, 'float32'));
      const shape = headsMajorShape(B, H, T, Tk, hs, causal as boolean); // causal: skip the masked keys' products
      nk.attentionBwd(heapOf(be), at(be, q), at(be, k), at(be, v), at(be, probs), at(be, dout), at(be, dq), at(be, dk), at(be, dv), shape, 1 / Math.sqrt(hs));
      return [dq, dk, dv];
    },
  },
  /** Self-attention straight from the packed projection qkv (B, T, 3C), C = heads * hs (no split or
   * head transposes); outputs out (B, T, C) and probs (B, heads, T, T). */
  NormLabPackedAttention: {
    inputs: ['qkv'],
    body: (nk, be, [qkv], { heads, causal }) => {
      const [B, T, C3] = qkv.shape;
      const C = C3 / 3;
      const H = heads as number;
      const out = be.makeOutput([B, T, C], 'float32');
      const probs = be.makeOutput([B, H, T, T], 'float32');
      const p = at(be, qkv);
      nk.attentionFwd(heapOf(be), p, p + C, p + 2 * C, at(be, out), at(be, probs), packedShape(B, H, T, C, causal as boolean), 1 / Math.sqrt(C / H));
      return [out, probs];
    },
  },
  /** Outputs dqkv (B, T, 3C): the q, k and v column blocks are each written whole. */
  NormLabPackedAttentionGrad: {
    inputs: ['qkv', 'probs', 'dout'],
    body: (nk, be, [qkv, probs, dout], { heads, causal }) => {
      const [B, T, C3] = qkv.shape;
      const C = C3 / 3;
      const H = heads as number;
      const dqkv = be.makeOutput(qkv.shape, 'float32');
      const [p, d] = [at(be, qkv), at(be, dqkv)];
      nk.attentionBwd(
        heapOf(be),
        p,
        p + C,
        p + 2 * C,
        at(be, probs),
        at(be, dout),
        d,
        d + C,
        d + 2 * C,
        packedShape(B, H, T, C, causal as boolean),
        1 / Math.sqrt(C / H),
      );
      return [dqkv];
    },
  },
  /** logits (N, V), targets int32 (N); outputs the per-token loss (N) and logsumexp (N). */
  NormLabCrossEntropy: {
    inputs: ['logits', 'targets'],
    body: (nk, be, [logits, targets]) => {
      const [N, V] = logits.shape;
      const loss = be.makeOutput([N], 'float32');
      const lse = be.makeOutput([N], 'float32');
      nk.xentFwd(heapOf(be), at(be, logits), at(be, targets), at(be, loss), at(be, lse), N, V);
      return [loss, lse];
    },
  },
  NormLabCrossEntropyGrad: {
    inputs: ['logits', 'targets', 'lse', 'dloss'],
    body: (nk, be, [logits, targets, lse, dloss]) => {
      const [N, V] = logits.shape;
      const dlogits = be.makeOutput(logits.shape, 'float32');
      nk.xentBwd(heapOf(be), at(be, logits), at(be, targets), at(be, lse), at(be, dloss), at(be, dlogits), N, V);
      return [dlogits];
    },
  },
  /** Outputs the new parameter, first and second moments. */
  NormLabAdamW: {
    inputs: ['p', 'g', 'm', 'v'],
    body: (nk, be, [p, g, m, v], { lr, beta1, beta2, eps, weightDecay, bc1, bc2 }) => {
      const outs = [p, m, v].map((t) => be.makeOutput(t.shape, 'float32'));
      const hyper = Float64Array.of(lr as number, beta1 as number, beta2 as number, eps as number, weightDecay as number, bc1 as number, bc2 as number);
      nk.adamw(
        heapOf(be),
        at(be, p),
        at(be, g),
        at(be, m),
        at(be, v),
        at(be, outs[0]),
        at(be, outs[1]),
        at(be, outs[2]),
        tf.util.sizeFromShape(p.shape),
        hyper,
      );
      return outs;
    },
  },
};

export type FusedKernelName = keyof typeof kernels;

/** Register the fused kernels for `wasm` (idempotent). They fail with one line without the addon. */
export function fusedKernelConfigs(): tf.KernelConfig[] {
  return Object.entries(kernels).map(([kernelName, { inputs, body }]) => ({
    kernelName,
    backendName: 'wasm',
    kernelFunc: (({ inputs: named, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
      const nk = nativeKernels();
      if (!nk) throw new Error(`${kernelName} needs NormLab's native kernels`);
      for (const t of Object.values(named))
        if (t && t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`${kernelName}: unsupported dtype ${t.dtype}`);
      return body(nk, internals(backend), inputs.map((n) => named[n]) as tf.TensorInfo[], (attrs ?? {}) as Attrs);
    }) as unknown as tf.KernelFunc,
  }));
}
