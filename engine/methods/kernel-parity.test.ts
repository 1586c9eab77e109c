/**
 * Every method's training step on the three kernel sets of the wasm backend: NormLab's native
 * kernels (where they load), NormLab's wasm kernels alone, and tfjs's stock wasm kernels. A few
 * steps of each must give the same losses to float tolerance: the fast kernels may not change
 * any method's results. (The GPT-2 LM step has its own test in engine/backend/wasm-kernels.test.ts.)
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/backend.js';
import { Rng } from '../data/rng.js';
import { ConsistencyNet } from '../models/consistency-net.js';
import { Llama, LLAMA_DEFAULTS } from '../models/llama.js';
import { ViT, VIT_DEFAULTS } from '../models/vit.js';
import { AdamW } from '../nn/optim.js';
import { kernelSets, rand, withKernelSet } from '../testing/backends.js';
import { lmTrainStep, readStep } from '../train/lm-step.js';
import { createLctTrainStep, improvementsSchema, lctTrainSchema, networkSchema, readLctStep } from './lct/lct.js';

/** The losses of `train` on every kernel set agree with the stock kernels' to `tol` (relative). */
async function expectSameLosses(train: () => Promise<number[]>, tol = 2e-4): Promise<void> {
  const runs: { set: string; losses: number[] }[] = [];
  for (const set of kernelSets()) runs.push({ set, losses: await withKernelSet(set, train) });
  const ref = runs[runs.length - 1].losses; // stock
  for (const { set, losses } of runs) {
    expect(losses.every(Number.isFinite), set).toBe(true);
    losses.forEach((l, i) => expect(Math.abs(l - ref[i]), `${set} step ${i}`).toBeLessThan(tol * Math.max(1, Math.abs(ref[i]))));
  }
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('method training steps on native, wasm and stock kernels', () => {
  it('LLaMA LM (RMSNorm, RoPE, SwiGLU, LNS scaling)', async () => {
    await expectSameLosses(async () => {
      const config = {
        ...LLAMA_DEFAULTS,
        vocab_size: 41,
        hidden_size: 24,
        intermediate_size: 40,
        num_hidden_layers: 3,
        num_attention_heads: 3,
        max_position_embeddings: 16,
        normlab_norm_variant: 'lns' as const,
      };
      const model = new Llama(config, 3);
      const opt = new AdamW(model.params, { weightDecay: 0.1 });
      const losses: number[] = [];
      for (let s = 0; s < 4; s++) {
        const x = Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 7 + s * 3) % 41);
        const y = Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 5 + s) % 41);
        losses.push((await readStep(lmTrainStep(model, opt, { x, y, batch: 2, seq: 16 }, 3e-3, { clip: 1 }))).loss);
      }
      opt.dispose();
      model.dispose();
      return losses;
    });
  });

  it('ViT classifier (patch embedding, LayerNorm, exact GELU, attention, cross-entropy)', async () => {
    await expectSameLosses(async () => {
      const model = new ViT({ ...VIT_DEFAULTS, img_size: 8, patch_size: 4, in_chans: 1, num_classes: 5, embed_dim: 16, depth: 2, num_heads: 2 }, 4);
      const opt = new AdamW(model.params, { weightDecay: 0.05 });
      const vars = model.params.trainable();
      const losses: number[] = [];
      for (let s = 0; s < 4; s++) {
        const images = tf.tensor4d(rand(3 * 64, 40 + s), [3, 8, 8, 1]);
        const labels = tf.tensor1d([s % 5, (s + 1) % 5, (s + 3) % 5], 'int32');
        const { value, grads } = tf.variableGrads(() => model.loss(images, labels), vars);
        const named = new Map(Object.entries(grads).map(([id, g]) => [model.params.nameOf(vars.find((v) => v.name === id)!), g]));
        opt.step(named, 1e-2);
        losses.push(value.dataSync()[0]);
        tf.dispose([value, images, labels, ...Object.values(grads)]);
      }
      opt.dispose();
      model.params.dispose();
      return losses;
    });
  });

  it('latent consistency training (full recipe: Cauchy, diffusion loss, OT, adaptive c, NsLN)', async () => {
    await expectSameLosses(async () => {
      const improvements = improvementsSchema.parse({});
      const train = lctTrainSchema.parse({ steps: 100, batch: 16, lr: 1e-3, s0: 10, s1: 40 });
      const net = new ConsistencyNet({ ...networkSchema.parse({ arch: 'mlp', width: 32, depth: 2, mlp_ratio: 2 }), latent_shape: [2, 2, 2], norm: 'nsln' }, 5);
      const ema = net.cloneParams();
      const opt = new AdamW(net.params, { weightDecay: 0 });
      const rng = new Rng(6);
      const latents = Float32Array.from({ length: 64 * net.latentDim }, () => 0.5 * rng.normal());
      const step = createLctTrainStep({ net, ema, opt, latents, n: 64, improvements, train, rng: new Rng(7) });
      const losses: number[] = [];
      for (const k of [0, 1, 2, 3]) losses.push((await readLctStep(step(k))).loss);
      opt.dispose();
      ema.dispose();
      net.dispose();
      return losses;
    });
  });
});
