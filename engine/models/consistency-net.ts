/**
 * The consistency network F(x, c_noise) of latent consistency training (Dao et al. 2025 §3):
 * a small DiT-style transformer over latent patches (Peebles & Xie 2023), or a residual MLP over
 * the whole flattened latent. No convolutions (the wasm backend has no conv weight gradient).
 * Read top-down: config → norm → time embedding → block → model → checkpoint tensors.
 *
 * Conditioning on the noise level is adaLN (each block's norm output is shifted and scaled by a
 * linear map of the time embedding, and each residual branch is gated), zero-initialized so every
 * block starts as the identity and F starts at 0 (so f = c_skip x at init).
 *
 * Norms (`norm`; docs/methods.md, "Latent consistency training"): `ln` = LayerNorm without
 * affine parameters, as the official DiT's block and final norms are (`elementwise_affine=False`);
 * `nsln` = the paper's Non-scaling LayerNorm: gamma fixed at 1 (kept in the checkpoint as a frozen
 * all-ones `*.weight`, so the file loads into torch.nn.LayerNorm), beta learnable. eps 1e-5 as in
 * the LCT code's network_dit.py.
 * Names follow the DiT reference code (`x_embedder.proj`, `t_embedder.mlp.0`, `blocks.{i}.attn.qkv`,
 * `blocks.{i}.adaLN_modulation.1`, `final_layer.linear`); weights are stored (in, out).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { HostTensor } from '../io/safetensors.js';
import { fromTf, toTf } from '../io/tensors.js';
import { attention, layerNorm, linear, silu } from '../nn/ops.js';
import { normalInit, ParamSet, paramSeed } from '../nn/params.js';

export interface ConsistencyNetConfig {
  arch: 'transformer' | 'mlp'; // transformer over patches, or residual MLP over the whole latent
  latent_shape: [number, number, number]; // (h, w, c) of the latent grid
  patch: number; // patch side (transformer); latent h and w must divide by it
  width: number; // model width
  depth: number; // number of blocks
  heads: number; // attention heads (transformer); width must divide by it
  mlp_ratio: number; // hidden width of each MLP = mlp_ratio * width
  norm: 'ln' | 'nsln'; // LayerNorm without affine, or Non-scaling LayerNorm (gamma fixed at 1, learnable beta)
  freq_dim: number; // sinusoidal features of the noise label
}

export const NORM_EPS = 1e-5;

/** Check that a latent grid fits the network; one-line errors before any training. */
export function checkConsistencyNetConfig(c: ConsistencyNetConfig): void {
  const [h, w, ch] = c.latent_shape;
  if (!c.latent_shape.every((v) => Number.isInteger(v) && v > 0))
    fail('config', `latent shape must be positive integers, got ${JSON.stringify(c.latent_shape)}`);
  for (const k of ['width', 'depth', 'heads', 'patch', 'freq_dim'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) fail('config', `network ${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.arch === 'transformer') {
    if (h % c.patch !== 0 || w % c.patch !== 0) {
      fail('config', `latent shape ${h}x${w}x${ch} cannot be cut into ${c.patch}x${c.patch} patches: h and w must divide by the patch size`);
    }
    if (c.width % c.heads !== 0) fail('config', `network width ${c.width} is not divisible by heads ${c.heads}`);
  }
  if (c.freq_dim % 2 !== 0) fail('config', `freq_dim must be even, got ${c.freq_dim}`);
}

/** Sinusoidal embedding of the noise label (DiT's TimestepEmbedder): [cos(t f_k), sin(t f_k)]. */
export function timestepFeatures(t: Float32Array, dim: number): tf.Tensor2D {
  const half = dim / 2;
  const out = new Float32Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let k = 0; k < half; k++) {
      const f = Math.exp((-Math.log(10000) * k) / half);
      out[b * dim + k] = Math.cos(t[b] * f);
      out[b * dim + half + k] = Math.sin(t[b] * f);
    }
  }
  return tf.tensor2d(out, [t.length, dim]);
}

export class ConsistencyNet {
  readonly params = new ParamSet();
  /** Tokens per latent and values per token. */
  readonly tokens: number;
  readonly patchDim: number;
  readonly latentDim: number;

  constructor(
    readonly config: ConsistencyNetConfig,
    seed = 0,
  ) {
    checkConsistencyNetConfig(config);
    const { arch, width: W, depth, mlp_ratio, freq_dim } = config;
    const [h, w, c] = config.latent_shape;
    this.latentDim = h * w * c;
    const p = arch === 'transformer' ? config.patch : 0;
    this.tokens = arch === 'transformer' ? (h / p) * (w / p) : 1;
    this.patchDim = arch === 'transformer' ? p * p * c : this.latentDim;
    const hidden = Math.round(mlp_ratio * W);
    const xavier = (name: string, i: number, o: number) => {
      this.params.add(`${name}.weight`, normalInit([i, o], Math.sqrt(2 / (i + o)), paramSeed(seed, name)));
      this.params.add(`${name}.bias`, tf.zeros([o]));
    };
    const zeros = (name: string, i: number, o: number) => {
      this.params.add(`${name}.weight`, tf.zeros([i, o]));
      this.params.add(`${name}.bias`, tf.zeros([o]));
    };
    const norm = (name: string) => {
      if (config.norm === 'ln') return; // no affine parameters
      // NsLN: gamma exists in the file as frozen ones (not trainable), only beta learns.
      this.params.add(`${name}.weight`, tf.ones([W]), false);
      this.params.add(`${name}.bias`, tf.zeros([W]));
    };
    xavier('x_embedder.proj', this.patchDim, W);
    this.params.add('pos_embed', normalInit([this.tokens, W], 0.02, paramSeed(seed, 'pos_embed')));
    xavier('t_embedder.mlp.0', freq_dim, W);
    xavier('t_embedder.mlp.2', W, W);
    for (let i = 0; i < depth; i++) {
      const b = `blocks.${i}`;
      if (arch === 'transformer') {
        norm(`${b}.norm1`);
        xavier(`${b}.attn.qkv`, W, 3 * W);
        xavier(`${b}.attn.proj`, W, W);
      }
      norm(`${b}.norm2`);
      xavier(`${b}.mlp.fc1`, W, hidden);
      xavier(`${b}.mlp.fc2`, hidden, W);
      zeros(`${b}.adaLN_modulation.1`, W, (arch === 'transformer' ? 6 : 3) * W);
    }
    norm('final_layer.norm_final');
    zeros('final_layer.adaLN_modulation.1', W, 2 * W);
    zeros('final_layer.linear', W, this.patchDim);
  }

  private lin(x: tf.Tensor, name: string, params: ParamSet): tf.Tensor {
    return linear(x, params.get(`${name}.weight`), params.get(`${name}.bias`));
  }

  /** LN: layerNorm(x) without affine; NsLN: layerNorm(x, null, beta) (gamma fixed at 1). */
  private norm(x: tf.Tensor, name: string, params: ParamSet): tf.Tensor {
    return layerNorm(x, null, this.config.norm === 'nsln' ? params.get(`${name}.bias`) : null, NORM_EPS);
  }

  /** Latents (B, h*w*c) in HWC order -> tokens (B, T, p*p*c). */
  patchify(x: tf.Tensor): tf.Tensor3D {
    const B = x.shape[0];
    if (this.config.arch === 'mlp') return tf.reshape(x, [B, 1, this.latentDim]) as tf.Tensor3D;
    const [h, w, c] = this.config.latent_shape;
    const p = this.config.patch;
    const g = tf.reshape(x, [B, h / p, p, w / p, p, c]); // (B, gh, p, gw, p, c)
    return tf.reshape(tf.transpose(g, [0, 1, 3, 2, 4, 5]), [B, this.tokens, this.patchDim]) as tf.Tensor3D; // (B, gh*gw, p*p*c)
  }

  /** Inverse of patchify: tokens (B, T, p*p*c) -> latents (B, h*w*c). */
  unpatchify(t: tf.Tensor): tf.Tensor2D {
    const B = t.shape[0];
    if (this.config.arch === 'mlp') return tf.reshape(t, [B, this.latentDim]) as tf.Tensor2D;
    const [h, w, c] = this.config.latent_shape;
    const p = this.config.patch;
    const g = tf.reshape(t, [B, h / p, w / p, p, p, c]); // (B, gh, gw, p, p, c)
    return tf.reshape(tf.transpose(g, [0, 1, 3, 2, 4, 5]), [B, this.latentDim]) as tf.Tensor2D;
  }

  /**
   * F(x_in, c_noise): x_in (B, D) the c_in-scaled latent, cNoise (B) the noise labels -> (B, D).
   * `params` defaults to this net's own (the EMA copy passes its ParamSet).
   */
  forward(xIn: tf.Tensor, cNoise: Float32Array, params: ParamSet = this.params): tf.Tensor2D {
    const { arch, width: W, depth, heads } = this.config;
    const B = xIn.shape[0];
    const T = this.tokens;
    const mod = (v: tf.Tensor) => tf.expandDims(v, 1); // (B, W) -> (B, 1, W), broadcast over tokens
    let x = tf.add(this.lin(this.patchify(xIn), 'x_embedder.proj', params), params.get('pos_embed')); // (B, T, W)
    // Time embedding: sinusoid -> linear -> SiLU -> linear; c = SiLU(temb) feeds every adaLN.
    const temb = this.lin(silu(this.lin(timestepFeatures(cNoise, this.config.freq_dim), 't_embedder.mlp.0', params)), 't_embedder.mlp.2', params);
    const c = silu(temb); // (B, W)
    for (let i = 0; i < depth; i++) {
      const b = `blocks.${i}`;
      const m = this.lin(c, `${b}.adaLN_modulation.1`, params); // (B, 6W) or (B, 3W)
      if (arch === 'transformer') {
        const [sh1, sc1, g1, sh2, sc2, g2] = tf.split(m, 6, 1);
        const hs = W / heads;
        const y = tf.add(tf.mul(this.norm(x, `${b}.norm1`, params), tf.add(1, mod(sc1))), mod(sh1));
        const qkv = this.lin(y, `${b}.attn.qkv`, params); // (B, T, 3W)
        const [q, k, v] = tf.split(qkv, 3, 2).map(
          (u) => tf.transpose(tf.reshape(u, [B, T, heads, hs]), [0, 2, 1, 3]) as tf.Tensor4D, // (B, T, W) -> (B, H, T, hs)
        );
        const att = tf.reshape(tf.transpose(attention(q, k, v, false), [0, 2, 1, 3]), [B, T, W]); // (B, H, T, hs) -> (B, T, W)
        x = tf.add(x, tf.mul(mod(g1), this.lin(att, `${b}.attn.proj`, params)));
        const y2 = tf.add(tf.mul(this.norm(x, `${b}.norm2`, params), tf.add(1, mod(sc2))), mod(sh2));
        x = tf.add(x, tf.mul(mod(g2), this.lin(silu(this.lin(y2, `${b}.mlp.fc1`, params)), `${b}.mlp.fc2`, params)));
      } else {
        const [sh, sc, g] = tf.split(m, 3, 1);
        const y = tf.add(tf.mul(this.norm(x, `${b}.norm2`, params), tf.add(1, mod(sc))), mod(sh));
        x = tf.add(x, tf.mul(mod(g), this.lin(silu(this.lin(y, `${b}.mlp.fc1`, params)), `${b}.mlp.fc2`, params)));
      }
    }
    const [shF, scF] = tf.split(this.lin(c, 'final_layer.adaLN_modulation.1', params), 2, 1);
    const y = tf.add(tf.mul(this.norm(x, 'final_layer.norm_final', params), tf.add(1, mod(scF))), mod(shF));
    return this.unpatchify(this.lin(y, 'final_layer.linear', params)); // (B, T, p*p*c) -> (B, D)
  }

  /** A second ParamSet holding copies of every parameter (the EMA weights for sampling). */
  cloneParams(): ParamSet {
    const out = new ParamSet();
    for (const [name, v] of this.params.vars) out.add(name, tf.clone(v), false);
    return out;
  }

  async toTensors(params: ParamSet = this.params): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of params.vars) out.set(name, await fromTf(v));
    return out;
  }

  /** Load weights into `params` (default: this net's own). */
  loadTensors(tensors: Map<string, HostTensor>, params: ParamSet = this.params): void {
    for (const name of params.vars.keys()) {
      const t = tensors.get(name);
      if (!t) fail('model', `consistency-net checkpoint lacks tensor ${name}`);
      const tt = toTf(t);
      params.assign(name, tt);
      tt.dispose();
    }
  }

  dispose(): void {
    this.params.dispose();
  }
}
