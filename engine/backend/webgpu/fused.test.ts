/**
 * NormLab's WGSL kernels (./fused.ts) on webgpu (software Vulkan) against the same ops composed
 * from stock tfjs kernels on the `cpu` backend: values and gradients, on odd shapes (rows longer
 * than a workgroup, sizes not a multiple of one), and AdamW over several steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../backend.js';
import { fusedOps, setWebgpuFusedKernels } from '../fused-ops.js';
import { attention, crossEntropy, gelu, layerNorm, packedSelfAttention, rmsNorm, swiglu } from '../../nn/ops.js';
import { GPT2, GPT2_DEFAULTS } from '../../models/gpt2.js';
import { AdamW } from '../../nn/optim.js';
import { lmTrainStep, readStep } from '../../train/lm-step.js';
import { adamwSteps, expectClose, rand, size } from '../../testing/backends.js';
import { describeWebgpu } from '../../testing/webgpu.js';

type Input = { v: Float32Array; shape: number[] };

/** Run `f` on a backend and read every output back (asynchronously: webgpu has no sync reads). */
async function on(backend: 'cpu' | 'webgpu', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend(backend);
  const outs = tf.tidy(f);
  const vals = await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(outs);
  return vals;
}

/** f(inputs) and its gradients with respect to every input, under a fixed random weighting. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: Input[], seed: number): () => tf.Tensor[] {
  return () => {
    const xs = inputs.map(({ v, shape }) => tf.tensor(v, shape));
    const y = f(...xs);
    const w = tf.tensor(rand(y.size, seed), y.shape);
    const g = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(...args), w)));
    return [y, ...g(xs)];
  };
}

/** cpu's composed ops are the reference; webgpu runs the fused kernels. */
async function compare(f: () => tf.Tensor[], tol = 1e-4): Promise<void> {
  const want = await on('cpu', f);
  const got = await on('webgpu', f);
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expectClose(got[i], want[i], tol);
}

describeWebgpu('fused WGSL kernels on webgpu vs composed tfjs ops on cpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setWebgpuFusedKernels(true);
    for (const op of ['gelu', 'swiglu', 'norm', 'crossEntropy', 'adamw', 'attention'] as const) expect(fusedOps(op)).not.toBeNull();
    expect(fusedOps('rope')).toBeNull(); // no WGSL RoPE: ops.ts composes it
  }, 120_000);

  it('GELU, erf and tanh forms, over the saturating range', async () => {
    const x = { v: rand(3 * 5 * 67, 1, 7), shape: [3, 5, 67] };
    for (const form of ['erf', 'tanh'] as const)
      await compare(
        valueAndGrads((t) => gelu(t, form), [x], 2),
        2e-5,
      );
  });

  it("SwiGLU's gate silu(g) * u", async () => {
    const g = { v: rand(4 * 37, 31, 9), shape: [4, 37] };
    const u = { v: rand(4 * 37, 32, 2), shape: [4, 37] };
    await compare(
      valueAndGrads((a, b) => swiglu(a, b), [g, u], 33),
      2e-5,
    );
  });

  it('LayerNorm with and without gamma / beta, and RMSNorm, on rows longer than a workgroup', async () => {
    for (const C of [13, 130]) {
      const shape = [2, 3, C];
      const x = { v: rand(size(shape), 3 + C, 3), shape };
      const g = { v: rand(C, 4, 2), shape: [C] };
      const b = { v: rand(C, 5), shape: [C] };
      await compare(valueAndGrads((t, gm, bt) => layerNorm(t, gm, bt, 1e-5), [x, g, b], 6));
      await compare(valueAndGrads((t, gm) => layerNorm(t, gm, null, 1e-5), [x, g], 7));
      await compare(valueAndGrads((t, bt) => layerNorm(t, null, bt, 1e-6), [x, b], 8));
      await compare(valueAndGrads((t, gm) => rmsNorm(t, gm, 1e-6), [x, g], 9));
      await compare(valueAndGrads((t) => rmsNorm(t, null, 1e-6), [x], 10));
    }
  });

  it('attention without the (T, Tk) probabilities, causal and not, with more keys than queries', async () => {
    for (const [T, Tk, causal] of [
      [5, 5, true],
      [5, 5, false],
      [3, 7, true],
      [6, 4, false],
    ] as const) {
      const q = { v: rand(2 * 3 * T * 4, 11 + T, 2), shape: [2, 3, T, 4] };
      const k = { v: rand(2 * 3 * Tk * 4, 12 + Tk, 2), shape: [2, 3, Tk, 4] };
      const v = { v: rand(2 * 3 * Tk * 4, 13 + Tk), shape: [2, 3, Tk, 4] };
      await compare(valueAndGrads((a, b, c) => attention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, causal), [q, k, v], 14));
    }
  });

  it('self-attention from a packed qkv projection (split into heads, then the fused attention)', async () => {
    const qkv = { v: rand(2 * 9 * 36, 19, 2), shape: [2, 9, 36] }; // C 12 = 3 heads of 4
    await compare(valueAndGrads((t) => packedSelfAttention(t as tf.Tensor3D, 3, true), [qkv], 20));
  });

  it('token cross-entropy and its gradient', async () => {
    const N = 9;
    const V = 211;
    const targets = Int32Array.from({ length: N }, (_, i) => (i * 37) % V);
    const logits = { v: rand(N * V, 15, 6), shape: [3, 3, V] };
    await compare(
      valueAndGrads((l) => crossEntropy(l, tf.tensor(targets, [3, 3], 'int32')), [logits], 16),
      2e-5,
    );
  });

  it('AdamW steps (with and without weight decay) land where the composed update does', async () => {
    const want = await on('cpu', adamwSteps);
    const got = await on('webgpu', adamwSteps);
    for (let i = 0; i < want.length; i++) expectClose(got[i], want[i], 1e-5);
  });

  it('a tiny GPT-2 trains three steps to the losses the cpu backend gives', async () => {
    const cfg = { ...GPT2_DEFAULTS, vocab_size: 50, n_positions: 8, n_embd: 16, n_layer: 2, n_head: 2 };
    const ids = (seed: number) => Int32Array.from(rand(2 * 8, seed), (r) => Math.floor((r + 1) * 25));
    const batch = { x: ids(41), y: ids(42), batch: 2, seq: 8 };
    const losses = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend);
      const model = new GPT2(cfg, 0);
      const opt = new AdamW(model.params, { weightDecay: 0.01 });
      const out: number[] = [];
      for (let s = 0; s < 3; s++) out.push((await readStep(lmTrainStep(model, opt, batch, 1e-2))).loss);
      opt.dispose();
      model.dispose();
      return out;
    };
    const want = await losses('cpu');
    const got = await losses('webgpu');
    expect(want[2]).toBeLessThan(want[0]); // it learns
    for (let s = 0; s < 3; s++) expect(Math.abs(got[s] - want[s]) / want[s]).toBeLessThan(1e-4);
  });

  it('switched off, ops take the composed path (the stock webgpu kernels)', async () => {
    await initBackend('webgpu');
    setWebgpuFusedKernels(false);
    try {
      expect(fusedOps('norm')).toBeNull();
    } finally {
      setWebgpuFusedKernels(true);
    }
  });
});
