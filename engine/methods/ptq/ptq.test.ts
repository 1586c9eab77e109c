import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { Rng } from '../../data/rng.js';
import { readSafetensors } from '../../io/safetensors-file.js';
import { ViT, vitConfigFromJson } from '../../models/vit.js';
import { layerNorm, linear } from '../../nn/ops.js';
import { exportQuantized, loadQuantizedViT } from './export.js';
import { quantizeViT } from './ptq.js';
import { quantizeWeight, uniformDequant } from './quantizers.js';
import { foldLnReparam, madInliers, targetScale, type LnTarget } from './reparam.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const tiny = { img_size: 8, patch_size: 4, in_chans: 1, num_classes: 4, embed_dim: 16, depth: 2, num_heads: 2, mlp_ratio: 2 };

function randn(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => shift + scale * rng.normal());
}

describe('post-LayerNorm reparameterization', () => {
  it('leaves the float output of LN + linear unchanged for mean, median and MAD targets', () => {
    const N = 32;
    const C = 16;
    const O = 8;
    const x = tf.tensor2d(randn(N * C, 1, 2, 0.3), [N, C]);
    const gamma = randn(C, 2, 0.5, 1);
    const beta = randn(C, 3, 0.2);
    const W = randn(C * O, 4, 0.3);
    const bias = randn(O, 5, 0.1);
    // per-channel scales with two outlier channels, zero points of mixed sign
    const scales = Array.from(randn(C, 6, 0.01, 0.05), Math.abs);
    scales[3] = 0.9;
    scales[11] = 1.4;
    const zeros = Array.from(randn(C, 7, 3, 8), Math.round);
    const before = tf.tidy(() => linear(layerNorm(x, tf.tensor1d(gamma), tf.tensor1d(beta), 1e-6), tf.tensor2d(W, [C, O]), tf.tensor1d(bias)).dataSync());
    for (const rule of ['mean', 'median', 'mad'] as LnTarget[]) {
      const target = targetScale(scales, zeros, rule);
      const f = foldLnReparam({ gamma, beta }, { weight: W, bias, out: O }, scales, zeros, target);
      const after = tf.tidy(() =>
        linear(layerNorm(x, tf.tensor1d(f.gamma), tf.tensor1d(f.beta), 1e-6), tf.tensor2d(f.weight, [C, O]), tf.tensor1d(f.bias)).dataSync(),
      );
      let maxErr = 0;
      for (let i = 0; i < before.length; i++) maxErr = Math.max(maxErr, Math.abs(before[i] - after[i]));
      expect(maxErr, rule).toBeLessThan(1e-4);
      // every channel's per-channel range now starts at the layer's: a_min,c / r_c - b_c = -z~ s~
      for (let c = 0; c < C; c++) expect((-zeros[c] * scales[c]) / f.r[c] - f.b[c]).toBeCloseTo(-target.zero * target.scale, 9);
    }
    x.dispose();
    // the rules differ as they should: the outliers pull the mean up, not the median
    expect(targetScale(scales, zeros, 'mean').scale).toBeGreaterThan(2 * targetScale(scales, zeros, 'median').scale);
    expect(madInliers(scales, 3)[3]).toBe(false);
    expect(madInliers(scales, 3)[11]).toBe(false);
  });

  it('folded into a whole ViT, leaves its float logits unchanged (before quantization)', async () => {
    const model = new ViT(vitConfigFromJson(tiny), 1);
    // non-trivial LN affines so the reparameterization has work to do
    for (const [name, v] of model.params.vars)
      if (/norm\d?\.(weight|bias)$/.test(name)) model.params.assign(name, tf.add(v, tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 9), 0.5)));
    const x = tf.randomUniform([6, 8, 8, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
    const ref = tf.tidy(() => model.forward(x).dataSync());
    for (const lnReparam of ['mean', 'median'] as const) {
      const q = await quantizeViT(model, x, { wBits: 4, aBits: 4, softmax: 'tanq', lnReparam });
      expect(q.lnCalibrations.length).toBe(4);
      const got = tf.tidy(() => q.model.forward(x).dataSync()); // the folded model, no quantizers
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(1e-4);
      q.dispose();
    }
    x.dispose();
    model.dispose();
  });
});

describe('per-channel weight quantization', () => {
  it('at 8 bits changes a linear output by at most sum_i |x_i| (s_j/2 + clip_ij)', () => {
    // Bound: y_j - ŷ_j = sum_i x_i (w_ij - ŵ_ij); inside channel j's range [lo_j, hi_j] the
    // round-trip error is at most s_j / 2, outside it the weight is clipped to the range, adding
    // its distance to it (clip_ij). So |Δy_j| <= sum_i |x_i| (s_j / 2 + clip_ij).
    const nIn = 64;
    const nOut = 24;
    const W = randn(nIn * nOut, 11, 0.1);
    W[5 * nOut + 3] = 1.5; // an outlier weight that percentile clipping may cut
    const q = quantizeWeight(W, [nIn, nOut], 8);
    const x = randn(nIn, 12, 1);
    for (let j = 0; j < nOut; j++) {
      const p = { kind: 'uniform' as const, bits: 8, scale: q.scale[j], zero: q.zero[j] };
      const lo = uniformDequant(0, p);
      const hi = uniformDequant(255, p);
      let dy = 0;
      let bound = 0;
      let l1 = 0;
      for (let i = 0; i < nIn; i++) {
        const w = W[i * nOut + j];
        dy += x[i] * (w - q.dequant[i * nOut + j]);
        bound += Math.abs(x[i]) * (q.scale[j] / 2 + Math.max(0, w - hi, lo - w));
        l1 += Math.abs(x[i]);
      }
      expect(Math.abs(dy)).toBeLessThanOrEqual(bound * (1 + 1e-5) + 1e-7);
      // and for this unclipped-ish gaussian matrix the bound is small: < 1% of |x|_1 * max|w|
      expect(bound).toBeLessThan(0.01 * l1 * 1.5);
    }
  });
});

describe('export', () => {
  it('writes integer weights + scales whose dequantized reference reproduces the simulated logits', async () => {
    const model = new ViT(vitConfigFromJson(tiny), 2);
    const calib = tf.randomUniform([8, 8, 8, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
    const test = tf.randomUniform([10, 8, 8, 1], 0, 1, 'float32', 7) as tf.Tensor4D;
    const q = await quantizeViT(model, calib, { wBits: 4, aBits: 4, softmax: 'tanq', lnReparam: 'median' });
    const sim = tf.tidy(() => q.model.forward(test, q.hooks()).dataSync());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-ptq-export-'));
    await exportQuantized(q, dir);
    const st = await readSafetensors(path.join(dir, 'model.safetensors'));
    const wq = st.tensors.get('blocks.0.attn.qkv.weight_q')!;
    expect(wq.dtype).toBe('U8');
    expect(wq.shape).toEqual([48, 16]); // timm (out, in)
    expect(Math.max(...wq.data)).toBeLessThanOrEqual(15);
    expect(st.tensors.get('patch_embed.proj.weight_q')!.shape).toEqual([16, 1, 4, 4]);
    expect(st.tensors.has('blocks.0.attn.qkv.weight')).toBe(false);
    const ref = await loadQuantizedViT(dir);
    const got = tf.tidy(() => ref.model.forward(test, ref.hooks).dataSync());
    for (let i = 0; i < sim.length; i++) expect(got[i]).toBeCloseTo(sim[i], 5);
    ref.dispose();
    q.dispose();
    calib.dispose();
    test.dispose();
    model.dispose();
  });

  it('refuses zero calibration images and bit widths outside 2-16', async () => {
    const model = new ViT(vitConfigFromJson(tiny), 2);
    const none = tf.zeros([0, 8, 8, 1]) as tf.Tensor4D;
    const one = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    await expect(quantizeViT(model, none, { wBits: 4, aBits: 4, softmax: 'tanq', lnReparam: 'median' })).rejects.toThrow(
      /at least one calibration image, got 0/,
    );
    await expect(quantizeViT(model, one, { wBits: 4, aBits: 17, softmax: 'tanq', lnReparam: 'median' })).rejects.toThrow(
      /activation bit width must be an integer from 2 to 16, got 17/,
    );
    none.dispose();
    one.dispose();
    model.dispose();
  });
});
