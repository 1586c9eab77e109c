/**
 * NormLab's WGSL kernels (./fused.ts) on webgpu (software Vulkan) against the same ops composed
 * from stock tfjs kernels on the `cpu` backend: values and gradients, on odd shapes (rows longer
 * than a workgroup, sizes not a multiple of one), AdamW over several steps, and tiny GPT-2 and
 * LLaMA models trained a few steps. Each check also counts the kernels webgpu dispatched, so that
 * a fused op silently falling back to the composed path fails it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it, vi } from 'vitest';
import { initBackend } from '../backend.js';
import { fusedOps, setWebgpuFusedKernels } from '../fused-ops.js';
import { attention, crossEntropy, gelu, layerNorm, packedSelfAttention, rmsNorm, rope, swiglu } from '../../nn/ops.js';
import { GPT2, GPT2_DEFAULTS } from '../../models/gpt2.js';
import { Llama, LLAMA_DEFAULTS } from '../../models/llama.js';
import type { CausalLM } from '../../models/lm.js';
import { AdamW } from '../../nn/optim.js';
import { lmTrainStep, readStep } from '../../train/lm-step.js';
import { adamwSteps, expectClose, on, rand, size, valueAndGrads } from '../../testing/backends.js';
import { describeWebgpu } from '../../testing/webgpu.js';

/** `f`'s result and how often it ran each kernel: every op, fused or stock, dispatches through the engine's runKernel. */
async function countingKernels<T>(f: () => Promise<T>): Promise<{ result: T; runs: (kernel: string) => number }> {
  const engine = tf.engine();
  const runKernel = engine.runKernel.bind(engine);
  const counts = new Map<string, number>();
  const spy = vi.spyOn(engine, 'runKernel').mockImplementation((name, inputs, attrs) => {
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return runKernel(name, inputs, attrs);
  });
  try {
    return { result: await f(), runs: (kernel) => counts.get(kernel) ?? 0 };
  } finally {
    spy.mockRestore();
  }
}

/** cpu's composed ops are the reference; webgpu runs the fused kernels, `kernels` among them. */
async function compare(f: () => tf.Tensor[], tol = 1e-4, kernels: string[] = []): Promise<void> {
  const want = await on('cpu', f);
  const { result: got, runs } = await countingKernels(() => on('webgpu', f));
  for (const k of kernels) expect(runs(k), k).toBeGreaterThan(0);
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expectClose(got[i], want[i], tol);
}

describeWebgpu('fused WGSL kernels on webgpu vs composed tfjs ops on cpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setWebgpuFusedKernels(true);
    for (const op of ['gelu', 'swiglu', 'rope', 'norm', 'crossEntropy', 'adamw', 'attention', 'packedAttention'] as const) expect(fusedOps(op)).not.toBeNull();
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

  it('RoPE and its gradient, head sizes 16 and 64, rows of every rank the models use', async () => {
    for (const [shape, seed] of [
      [[2, 3, 37, 16], 40], // 3552 elements: not a multiple of a workgroup
      [[37, 64], 41],
      [[3, 37, 64], 42],
    ] as const) {
      const [T, hs] = shape.slice(-2);
      // Tables whose two halves differ, so that each half's cos / sin index is checked, not only its values.
      const cos = rand(T * hs, seed + 1);
      const sin = rand(T * hs, seed + 2);
      const x = { v: rand(size([...shape]), seed, 2), shape: [...shape] };
      await compare(
        valueAndGrads((t) => rope(t, tf.tensor2d(cos, [T, hs]), tf.tensor2d(sin, [T, hs])), [x], seed + 3),
        2e-5,
        ['NormLabRope'],
      );
    }
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
    for (const [T, Tk, causal, hs] of [
      [5, 5, true, 4],
      [5, 5, false, 4],
      [3, 7, true, 4],
      [6, 4, false, 4],
      [70, 70, true, 16], // 2 x 3 x 70 query rows: not a multiple of a workgroup
    ] as const) {
      const q = { v: rand(2 * 3 * T * hs, 11 + T, 2), shape: [2, 3, T, hs] };
      const k = { v: rand(2 * 3 * Tk * hs, 12 + Tk, 2), shape: [2, 3, Tk, hs] };
      const v = { v: rand(2 * 3 * Tk * hs, 13 + Tk), shape: [2, 3, Tk, hs] };
      await compare(
        valueAndGrads((a, b, c) => attention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, causal), [q, k, v], 14),
        1e-4,
        ['NormLabAttention', 'NormLabAttentionGrad'],
      );
    }
  });

  it('self-attention straight from a packed qkv projection, head sizes 4, 16 and 64, causal and not', async () => {
    for (const [T, heads, hs, causal] of [
      [9, 3, 4, true],
      [70, 3, 16, true], // 2 x 3 x 70 query rows: not a multiple of a workgroup
      [70, 3, 16, false],
      [33, 2, 64, true],
    ] as const) {
      const C3 = 3 * heads * hs;
      const qkv = { v: rand(2 * T * C3, 19 + T + hs, 2), shape: [2, T, C3] };
      await compare(
        valueAndGrads((t) => packedSelfAttention(t as tf.Tensor3D, heads, causal), [qkv], 20 + hs),
        1e-4,
        ['NormLabPackedAttention', 'NormLabPackedAttentionGrad'],
      );
    }
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

  /** Three AdamW steps of `build()`'s model on a fixed batch (B 2, T 8): cpu's losses, webgpu's, and the kernels webgpu ran. */
  async function trainThreeSteps(build: () => CausalLM, vocab: number) {
    const ids = (seed: number) => Int32Array.from(rand(2 * 8, seed), (r) => Math.floor(((r + 1) / 2) * vocab));
    const batch = { x: ids(41), y: ids(42), batch: 2, seq: 8 };
    const losses = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend);
      const model = build();
      const opt = new AdamW(model.params, { weightDecay: 0.01 });
      const out: number[] = [];
      for (let s = 0; s < 3; s++) out.push((await readStep(lmTrainStep(model, opt, batch, 1e-2))).loss);
      opt.dispose();
      model.dispose();
      return out;
    };
    const want = await losses('cpu');
    const { result: got, runs } = await countingKernels(() => losses('webgpu'));
    expect(want[2]).toBeLessThan(want[0]); // it learns
    for (let s = 0; s < 3; s++) expect(Math.abs(got[s] - want[s]) / want[s]).toBeLessThan(1e-4);
    return runs;
  }

  it('a tiny GPT-2 trains three steps to the losses the cpu backend gives, on the packed attention kernels', async () => {
    const L = 2;
    const runs = await trainThreeSteps(() => new GPT2({ ...GPT2_DEFAULTS, vocab_size: 50, n_positions: 8, n_embd: 16, n_layer: L, n_head: 2 }, 0), 50);
    expect(runs('NormLabPackedAttention')).toBe(3 * L);
    expect(runs('NormLabPackedAttentionGrad')).toBe(3 * L);
    expect(runs('NormLabAttention')).toBe(0); // not the split-heads path
  });

  it('a tiny LNS LLaMA trains three steps to the losses the cpu backend gives, on the RoPE kernel', async () => {
    const L = 2;
    const cfg = {
      ...LLAMA_DEFAULTS,
      vocab_size: 50,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: L,
      num_attention_heads: 2, // head size 16
      max_position_embeddings: 8,
      normlab_norm_variant: 'lns' as const,
    };
    const runs = await trainThreeSteps(() => new Llama(cfg, 0), 50);
    expect(runs('NormLabRope')).toBe(3 * L * 2 * 2); // q and k, forward and backward
    expect(runs('NormLabAttention')).toBe(3 * L);
    expect(runs('NormLabAttentionGrad')).toBe(3 * L);
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
