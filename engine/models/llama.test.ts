import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectConfigError } from '../testing/helpers.js';
import { initBackend } from '../backend/backend.js';
import { rmsNorm } from '../nn/ops.js';
import { loadLM, saveModel } from './index.js';
import { deepNormConstants, Llama, LLAMA_DEFAULTS, llamaConfigFromJson, type LlamaConfig } from './llama.js';
import type { ForwardHooks } from './lm.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const L = 3;
const cfg = (over: Partial<LlamaConfig> = {}): LlamaConfig =>
  llamaConfigFromJson({
    vocab_size: 40,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: L,
    num_attention_heads: 2,
    max_position_embeddings: 8,
    ...over,
  });
const idx = () => tf.tensor2d([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3], [2, 8], 'int32');

/** Logits of a model built from `c` (seed 7: every variant gets the same weights), as numbers. */
function logits(c: LlamaConfig, hooks?: ForwardHooks, seed = 7): Float32Array {
  const m = new Llama(c, seed);
  try {
    return tf.tidy(() => m.forward(idx(), hooks).dataSync() as Float32Array);
  } finally {
    m.dispose();
  }
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('LLaMA norm variants', () => {
  it('LNS scales both sublayer norms by 1/sqrt(l) and not the final norm', () => {
    const m = new Llama(cfg({ normlab_norm_variant: 'lns' }), 7);
    expect([0, 1, 2].map((i) => m.normScale(i))).toEqual([1, 1 / Math.SQRT2, 1 / Math.sqrt(3)]);
    m.dispose();
    expect(new Llama(cfg(), 7).normScale(2)).toBe(1);
    // Pre-LN with ln_1 and ln_2 of block i multiplied by 1/sqrt(i+1) by a hook = LNS exactly.
    const scaleBlocks: ForwardHooks = { norm: (site, _x, real) => (site.which === 'ln_f' ? real() : tf.mul(real(), 1 / Math.sqrt(site.layer + 1))) };
    const lns = logits(cfg({ normlab_norm_variant: 'lns' }));
    expect(maxDiff(lns, logits(cfg({ normlab_norm_variant: 'pre' }), scaleBlocks))).toBeLessThan(1e-5);
    // Scaling only one of the two block norms, or the final norm as well, is something else.
    const only1: ForwardHooks = { norm: (site, _x, real) => (site.which === 'ln_1' ? tf.mul(real(), 1 / Math.sqrt(site.layer + 1)) : real()) };
    expect(maxDiff(lns, logits(cfg(), only1))).toBeGreaterThan(1e-3);
    const alsoFinal: ForwardHooks = { norm: (site, _x, real) => tf.mul(real(), site.which === 'ln_f' ? 1 / Math.sqrt(L + 1) : 1 / Math.sqrt(site.layer + 1)) };
    expect(maxDiff(lns, logits(cfg(), alsoFinal))).toBeGreaterThan(1e-3);
  });

  it('mix with k = 0 equals pre, with k = L equals post, and k = 1 is neither', () => {
    // Large init (std 0.3) so every block changes the stream visibly.
    const c = (over: Partial<LlamaConfig>) => cfg({ initializer_range: 0.3, ...over });
    const pre = logits(c({ normlab_norm_variant: 'pre' }));
    const post = logits(c({ normlab_norm_variant: 'post' }));
    expect(maxDiff(logits(c({ normlab_norm_variant: 'mix', normlab_mix_k: 0 })), pre)).toBe(0);
    expect(maxDiff(logits(c({ normlab_norm_variant: 'mix', normlab_mix_k: L })), post)).toBe(0);
    const mix1 = logits(c({ normlab_norm_variant: 'mix', normlab_mix_k: 1 }));
    expect(maxDiff(mix1, pre)).toBeGreaterThan(1e-3);
    expect(maxDiff(mix1, post)).toBeGreaterThan(1e-3);
    const m = new Llama(cfg({ normlab_norm_variant: 'mix', normlab_mix_k: 2 }));
    expect([0, 1, 2].map((i) => m.isPostLN(i))).toEqual([true, true, false]);
    m.dispose();
  });

  it('post places the norm after the residual add: ln_1 sees x + Attn(x), ln_2 sees h + FFN(h), the block returns ln_2 of it', () => {
    for (const normType of ['rmsnorm', 'layernorm'] as const) {
      const m = new Llama(cfg({ normlab_norm_variant: 'post', normlab_norm_type: normType }), 5);
      const priv = m as unknown as { attention(i: number, x: tf.Tensor3D): tf.Tensor3D; mlp(i: number, x: tf.Tensor): tf.Tensor };
      const seen: Record<string, tf.Tensor> = {};
      tf.tidy(() => {
        m.forward(idx(), {
          residual: (l, x) => void (seen[`res${l}`] = tf.keep(x)),
          norm: (site, x, real) => {
            const y = real();
            if (site.layer === 0) {
              seen[`${site.which}_in`] = tf.keep(x);
              seen[`${site.which}_out`] = tf.keep(y);
            }
            return y;
          },
        });
      });
      tf.tidy(() => {
        const x = seen['res-1'] as tf.Tensor3D; // block 0's input (the embeddings)
        const expectIn1 = tf.add(x, priv.attention(0, x));
        expect(maxDiff(seen.ln_1_in.dataSync(), expectIn1.dataSync())).toBeLessThan(1e-5);
        const h = seen.ln_1_out;
        expect(maxDiff(seen.ln_2_in.dataSync(), tf.add(h, priv.mlp(0, h)).dataSync())).toBeLessThan(1e-5);
        expect(maxDiff(seen.res0.dataSync(), seen.ln_2_out.dataSync())).toBe(0);
        // With unit weights (at init) each token of a post block's output has RMS 1 (RMSNorm).
        if (normType === 'rmsnorm') expect(maxDiff(seen.res0.dataSync(), rmsNorm(seen.ln_2_in, null, 1e-6).dataSync())).toBeLessThan(1e-5);
      });
      for (const t of Object.values(seen)) t.dispose();
      m.dispose();
    }
  });

  it('pre-scaled-init draws the out-projections at std/sqrt(2L), the other matrices at std', () => {
    const big = cfg({ normlab_norm_variant: 'pre-scaled-init', hidden_size: 64, intermediate_size: 128, num_attention_heads: 4 });
    const m = new Llama(big, 1);
    const std = (n: string) => tf.tidy(() => Math.sqrt(tf.moments(m.params.get(n)).variance.dataSync()[0]));
    const scaled = 0.02 / Math.sqrt(2 * L);
    expect(std('model.layers.1.self_attn.o_proj.weight') / scaled).toBeCloseTo(1, 1);
    expect(std('model.layers.1.mlp.down_proj.weight') / scaled).toBeCloseTo(1, 1);
    expect(std('model.layers.1.self_attn.q_proj.weight') / 0.02).toBeCloseTo(1, 1);
    expect(std('model.layers.1.mlp.up_proj.weight') / 0.02).toBeCloseTo(1, 1);
    m.dispose();
    const plain = new Llama({ ...big, normlab_norm_variant: 'lns' }, 1);
    expect(tf.tidy(() => Math.sqrt(tf.moments(plain.params.get('model.layers.1.self_attn.o_proj.weight')).variance.dataSync()[0])) / 0.02).toBeCloseTo(1, 1);
    plain.dispose();
  });

  it('lns-scaled-init scales the norm outputs like lns and draws the out-projections at std/sqrt(2L)', () => {
    const big = cfg({ normlab_norm_variant: 'lns-scaled-init', hidden_size: 64, intermediate_size: 128, num_attention_heads: 4 });
    const m = new Llama(big, 1);
    const std = (n: string) => tf.tidy(() => Math.sqrt(tf.moments(m.params.get(n)).variance.dataSync()[0]));
    expect(std('model.layers.1.self_attn.o_proj.weight') / (0.02 / Math.sqrt(2 * L))).toBeCloseTo(1, 1);
    expect(std('model.layers.1.mlp.gate_proj.weight') / 0.02).toBeCloseTo(1, 1);
    expect([0, 1, 2].map((i) => m.normScale(i))).toEqual([1, 1 / Math.SQRT2, 1 / Math.sqrt(3)]);
    m.dispose();
  });

  it('deepnorm draws v/o/FFN Xavier-normal with gain b and q/k with gain 1; its forward is Post-LN with the residual times a', () => {
    const big = cfg({ normlab_norm_variant: 'deepnorm', hidden_size: 64, intermediate_size: 128, num_attention_heads: 4 });
    const { alpha, beta } = deepNormConstants('official', L);
    expect([alpha, beta]).toEqual([Math.sqrt(8), (8 * L) ** 0.25]);
    expect(deepNormConstants('deepnet', L)).toEqual({ alpha: (2 * L) ** 0.25, beta: (8 * L) ** -0.25 });
    expect(big.normlab_deepnorm_beta).toBe(beta); // filled in for the depth when config.json has none
    const m = new Llama(big, 1);
    const std = (n: string) => tf.tidy(() => Math.sqrt(tf.moments(m.params.get(n)).variance.dataSync()[0]));
    const xavier = (i: number, o: number, g: number) => g * Math.sqrt(2 / (i + o));
    expect(std('model.layers.1.self_attn.q_proj.weight') / xavier(64, 64, 1)).toBeCloseTo(1, 1);
    expect(std('model.layers.1.self_attn.v_proj.weight') / xavier(64, 64, beta)).toBeCloseTo(1, 1);
    expect(std('model.layers.1.self_attn.o_proj.weight') / xavier(64, 64, beta)).toBeCloseTo(1, 1);
    expect(std('model.layers.1.mlp.up_proj.weight') / xavier(64, 128, beta)).toBeCloseTo(1, 1);
    expect(std('model.layers.1.mlp.down_proj.weight') / xavier(128, 64, beta)).toBeCloseTo(1, 1);
    expect(std('model.embed_tokens.weight') / 0.02).toBeCloseTo(1, 1);
    m.dispose();
    // With post's weights: a = 1 computes post exactly; a = 2 does not.
    const post = new Llama(cfg({ normlab_norm_variant: 'post' }), 7);
    const withPostWeights = (alpha: number) => {
      const d = new Llama(cfg({ normlab_norm_variant: 'deepnorm', normlab_deepnorm_alpha: alpha }), 0);
      const w = post.checkpointTensors();
      d.loadCheckpointTensors(w);
      for (const t of w.values()) t.dispose();
      const out = tf.tidy(() => d.forward(idx()).dataSync() as Float32Array);
      d.dispose();
      return out;
    };
    const asPost = tf.tidy(() => post.forward(idx()).dataSync() as Float32Array);
    expect(maxDiff(withPostWeights(1), asPost)).toBe(0);
    expect(maxDiff(withPostWeights(2), asPost)).toBeGreaterThan(1e-3);
    post.dispose();
  });

  it('the variant is saved in config.json and applied again on load', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llama-variant-'));
    const m = new Llama(cfg({ normlab_norm_variant: 'mix', normlab_mix_k: 2, normlab_norm_type: 'layernorm' }), 9);
    const before = tf.tidy(() => m.forward(idx()).dataSync() as Float32Array);
    await saveModel(m, dir);
    m.dispose();
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect([json.normlab_norm_variant, json.normlab_mix_k, json.normlab_norm_type]).toEqual(['mix', 2, 'layernorm']);
    const back = await loadLM(dir);
    expect((back as Llama).config.normlab_norm_variant).toBe('mix');
    expect(
      maxDiff(
        tf.tidy(() => back.forward(idx()).dataSync()),
        before,
      ),
    ).toBe(0);
    back.dispose();
  });

  it('a variant that does not exist and mix with k > L are config errors', () => {
    expectConfigError(
      () => cfg({ normlab_norm_variant: 'sandwich' as never }),
      /unknown norm variant "sandwich".*pre, post, mix, deepnorm, pre-scaled-init, lns, lns-scaled-init/,
    );
    expectConfigError(() => cfg({ normlab_norm_variant: 'mix', normlab_mix_k: L + 1 }), /mix: k = 4 .* between 0 and the number of layers \(3\)/);
    expectConfigError(() => cfg({ normlab_norm_type: 'batchnorm' as never }), /unknown norm type "batchnorm"/);
    expect(LLAMA_DEFAULTS.normlab_norm_variant).toBe('pre');
  });
});
