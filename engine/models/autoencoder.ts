/**
 * A small image autoencoder for latent generative modelling (the stage before latent consistency
 * training, Dao et al. 2025 §3): MLP encoder and decoder over flattened images (no convolutions:
 * the wasm backend has no conv weight-gradient kernel). Two kinds:
 *   - `kl`:    a KL-regularized autoencoder (as Stable Diffusion's VAE), the encoder predicts a
 *              mean and a log-variance, training samples z = mean + exp(logvar/2) * eps and adds
 *              kl_weight * KL(q(z|x) || N(0, I));
 *   - `plain`: a deterministic autoencoder (encoder mean only).
 * Latents are laid out as a (h, w, c) grid so the consistency network can cut them into patches.
 * Per-element latent statistics (mean, std over the training set's encoder means) are saved with
 * the model: `standardize` maps latents to per-element mean 0, std 0.5 (the paper's sigma_data).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { HostTensor } from '../io/safetensors.js';
import { fromTf, toTf } from '../io/tensors.js';
import { linear, silu } from '../nn/ops.js';
import { normalInit, ParamSet, paramSeed } from '../nn/params.js';

export interface AutoencoderConfig {
  kind: 'kl' | 'plain'; // kl: variational (mean + logvar), plain: deterministic
  image_shape: [number, number, number]; // (H, W, C) of the images, values in [0, 1]
  latent_shape: [number, number, number]; // (h, w, c) latent grid
  hidden: number; // width of the two hidden layers of encoder and decoder
  kl_weight: number; // weight of the KL term (per image, against summed BCE); 0 for plain
}

/** Standardized latents have this per-element std (sigma_data of the EDM parametrization). */
export const LATENT_STD = 0.5;

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

export function checkAutoencoderConfig(c: AutoencoderConfig): void {
  for (const [k, s] of [
    ['image_shape', c.image_shape],
    ['latent_shape', c.latent_shape],
  ] as const) {
    if (!Array.isArray(s) || s.length !== 3 || !s.every((v) => Number.isInteger(v) && v > 0)) {
      fail('config', `autoencoder ${k} must be three positive integers (h, w, c), got ${JSON.stringify(s)}`);
    }
  }
  if (!Number.isInteger(c.hidden) || c.hidden <= 0) fail('config', `autoencoder hidden must be a positive integer, got ${c.hidden}`);
  if (c.kind !== 'kl' && c.kind !== 'plain') fail('config', `autoencoder kind must be "kl" or "plain", got ${String(c.kind)}`);
}

export class Autoencoder {
  readonly params = new ParamSet();
  readonly imageDim: number;
  readonly latentDim: number;
  /** Per-element statistics of the training latents (set by `setLatentStats`). */
  latentMean: Float32Array | null = null;
  latentStd: Float32Array | null = null;

  constructor(
    readonly config: AutoencoderConfig,
    seed = 0,
  ) {
    checkAutoencoderConfig(config);
    this.imageDim = prod(config.image_shape);
    this.latentDim = prod(config.latent_shape);
    const H = config.hidden;
    const dense = (name: string, i: number, o: number) => {
      // He-style init for GELU layers: std = 1/sqrt(in).
      this.params.add(`${name}.weight`, normalInit([i, o], 1 / Math.sqrt(i), paramSeed(seed, name)));
      this.params.add(`${name}.bias`, tf.zeros([o]));
    };
    dense('encoder.fc1', this.imageDim, H);
    dense('encoder.fc2', H, H);
    dense('encoder.mean', H, this.latentDim);
    if (config.kind === 'kl') dense('encoder.logvar', H, this.latentDim);
    dense('decoder.fc1', this.latentDim, H);
    dense('decoder.fc2', H, H);
    dense('decoder.out', H, this.imageDim);
  }

  private lin(x: tf.Tensor, name: string): tf.Tensor {
    return linear(x, this.params.get(`${name}.weight`), this.params.get(`${name}.bias`));
  }

  /** x (B, H*W*C) in [0, 1] -> mean (B, D) and, for kl, logvar (B, D). */
  encode(x: tf.Tensor): { mean: tf.Tensor2D; logvar: tf.Tensor2D | null } {
    const h = silu(this.lin(silu(this.lin(tf.sub(tf.mul(x, 2), 1), 'encoder.fc1')), 'encoder.fc2')); // inputs to [-1, 1]
    const mean = this.lin(h, 'encoder.mean') as tf.Tensor2D;
    const logvar = this.config.kind === 'kl' ? (tf.clipByValue(this.lin(h, 'encoder.logvar'), -30, 20) as tf.Tensor2D) : null;
    return { mean, logvar };
  }

  /** z (B, D) raw latents -> pixel logits (B, H*W*C); `decode` applies the sigmoid. */
  decodeLogits(z: tf.Tensor): tf.Tensor2D {
    return this.lin(silu(this.lin(silu(this.lin(z, 'decoder.fc1')), 'decoder.fc2')), 'decoder.out') as tf.Tensor2D;
  }

  decode(z: tf.Tensor): tf.Tensor2D {
    return tf.sigmoid(this.decodeLogits(z)) as tf.Tensor2D;
  }

  /**
   * Training loss per image: summed binary cross-entropy of the reconstruction (+ kl_weight * KL
   * for kl), averaged over the batch. `eps` is the reparametrization noise (B, D) for kl.
   */
  loss(x: tf.Tensor2D, eps: tf.Tensor2D | null): { loss: tf.Scalar; recon: tf.Scalar; kl: tf.Scalar } {
    const { mean, logvar } = this.encode(x);
    const z = logvar && eps ? tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), eps)) : mean;
    const logits = this.decodeLogits(z);
    // BCE with logits: max(l, 0) - l*x + log(1 + exp(-|l|)), summed over pixels.
    const bce = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, x)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
    const recon = tf.mean(tf.sum(bce, 1)) as tf.Scalar;
    const kl = logvar ? (tf.mean(tf.mul(0.5, tf.sum(tf.sub(tf.add(tf.square(mean), tf.exp(logvar)), tf.add(1, logvar)), 1))) as tf.Scalar) : tf.scalar(0);
    const loss = tf.add(recon, tf.mul(kl, this.config.kind === 'kl' ? this.config.kl_weight : 0)) as tf.Scalar;
    return { loss, recon, kl };
  }

  setLatentStats(mean: Float32Array, std: Float32Array): void {
    if (mean.length !== this.latentDim || std.length !== this.latentDim) {
      fail('shape', `latent stats have ${mean.length}/${std.length} elements, the autoencoder's latents have ${this.latentDim}`);
    }
    this.latentMean = mean;
    this.latentStd = std;
  }

  private stats(): { mean: tf.Tensor1D; std: tf.Tensor1D } {
    if (!this.latentMean || !this.latentStd) fail('state', 'the autoencoder has no latent statistics; train it with autoencoder-train');
    return { mean: tf.tensor1d(this.latentMean), std: tf.tensor1d(this.latentStd) };
  }

  /** Raw latents (B, D) -> standardized latents: per element (z - mean) / std * 0.5. */
  standardize(z: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const { mean, std } = this.stats();
      return tf.mul(tf.div(tf.sub(z, mean), std), LATENT_STD) as tf.Tensor2D;
    });
  }

  /** Standardized latents -> raw latents (inverse of `standardize`). */
  unstandardize(zs: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const { mean, std } = this.stats();
      return tf.add(tf.mul(tf.div(zs, LATENT_STD), std), mean) as tf.Tensor2D;
    });
  }

  /** Weights (+ latent statistics as `latent_mean` / `latent_std`) for a model folder. */
  async toTensors(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of this.params.vars) out.set(name, await fromTf(v));
    if (this.latentMean && this.latentStd) {
      out.set('latent_mean', { dtype: 'F32', shape: [this.latentDim], data: this.latentMean });
      out.set('latent_std', { dtype: 'F32', shape: [this.latentDim], data: this.latentStd });
    }
    return out;
  }

  /** Build from a model folder's config and tensors (every weight must be present). */
  static fromTensors(config: AutoencoderConfig, tensors: Map<string, HostTensor>): Autoencoder {
    const ae = new Autoencoder(config, 0);
    for (const name of ae.params.vars.keys()) {
      const t = tensors.get(name);
      if (!t) fail('model', `autoencoder checkpoint lacks tensor ${name}`);
      const tt = toTf(t);
      ae.params.assign(name, tt);
      tt.dispose();
    }
    const m = tensors.get('latent_mean');
    const s = tensors.get('latent_std');
    if (m && s) ae.setLatentStats(Float32Array.from(m.data as Float32Array), Float32Array.from(s.data as Float32Array));
    return ae;
  }

  dispose(): void {
    this.params.dispose();
  }
}
