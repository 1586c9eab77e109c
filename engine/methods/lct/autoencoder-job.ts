/**
 * Job kind `autoencoder-train`: train the small autoencoder of the latent stage on MNIST or an
 * image folder, then compute the per-element statistics of the training latents (encoder means)
 * and save them with the weights, so `lct` can standardize latents to std 0.5 (Dao et al. 2025
 * standardize SD-VAE latents per element the same way). Writes a reconstruction grid PNG.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { Rng } from '../../data/rng.js';
import { imageGrid, writePng } from '../../io/png.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { Autoencoder, type AutoencoderConfig } from '../../models/autoencoder.js';
import { seededNormal } from '../../nn/random.js';
import { gatherRows, imageDataSchema, loadReferenceImages, loadTrainImages, type ImageData } from './data.js';
import { gradAccumField } from '../../train/accumulate.js';
import { checkpointEveryField } from '../../train/checkpoint.js';
import { fit } from './fit.js';
import { tInterval } from '../../stats/stats.js';

const shape3 = z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]);

export const autoencoderTrainSchema = z
  .object({
    method: z.literal('autoencoder-train'),
    ...baseConfig,
    data: imageDataSchema.default(imageDataSchema.parse({})),
    kind: z.enum(['kl', 'plain']).default('kl').describe('kl: KL-regularized (SD-VAE-like); plain: deterministic'),
    latent_shape: shape3.default([4, 4, 4]).describe('latent grid (h, w, c)'),
    hidden: z.number().int().positive().max(SIZE_LIMITS.width).default(256).describe('hidden width of encoder and decoder'),
    kl_weight: z.number().min(0).default(0.05).describe('KL weight against the summed per-image BCE (kl only)'),
    steps: z.number().int().positive().default(800).describe('AdamW steps'),
    batch: z.number().int().positive().max(SIZE_LIMITS.batch).default(128).describe('images per micro-batch (per step without grad_accum)'),
    grad_accum: gradAccumField,
    lr: z.number().positive().default(2e-3).describe('peak learning rate (warmup + cosine)'),
    checkpoint_every: checkpointEveryField(200),
  })
  .strict();
export type AutoencoderTrainConfig = z.infer<typeof autoencoderTrainSchema>;

/** Encoder means (B, D) of n images, in batches. */
export async function encodeAll(ae: Autoencoder, images: Float32Array, n: number, batch = 500): Promise<Float32Array> {
  const D = ae.latentDim;
  const out = new Float32Array(n * D);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const z = tf.tidy(() => ae.encode(tf.tensor2d(images.subarray(s * ae.imageDim, e * ae.imageDim), [e - s, ae.imageDim])).mean);
    out.set((await z.data()) as Float32Array, s * D);
    z.dispose();
  }
  return out;
}

/** Decode raw latents (n, D) to images (n, H*W*C), in batches. */
export async function decodeAll(ae: Autoencoder, z: Float32Array, n: number, batch = 500): Promise<Float32Array> {
  const out = new Float32Array(n * ae.imageDim);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const x = tf.tidy(() => ae.decode(tf.tensor2d(z.subarray(s * ae.latentDim, e * ae.latentDim), [e - s, ae.latentDim])));
    out.set((await x.data()) as Float32Array, s * ae.imageDim);
    x.dispose();
  }
  return out;
}

/** Per-element mean and std of n latent rows of width D. */
export function latentStats(z: Float32Array, n: number, D: number): { mean: Float32Array; std: Float32Array } {
  const mean = new Float64Array(D);
  const sq = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let k = 0; k < D; k++) mean[k] += z[i * D + k];
  for (let k = 0; k < D; k++) mean[k] /= n;
  for (let i = 0; i < n; i++) for (let k = 0; k < D; k++) sq[k] += (z[i * D + k] - mean[k]) ** 2;
  const std = Float32Array.from(sq, (s) => Math.max(Math.sqrt(s / Math.max(1, n - 1)), 1e-6));
  return { mean: Float32Array.from(mean), std };
}

export async function saveAutoencoder(ae: Autoencoder, dir: string, data: ImageData): Promise<void> {
  await saveModelDir(dir, { normlab_model: 'autoencoder', ...ae.config, normlab_data: data }, await ae.toTensors());
}

export async function loadAutoencoder(dir: string): Promise<{ ae: Autoencoder; data: ImageData }> {
  const { config, tensors } = await loadModelDir(dir);
  if (config.normlab_model !== 'autoencoder')
    fail('model', `${dir} is not an autoencoder model folder (normlab_model is ${JSON.stringify(config.normlab_model)})`);
  const ae = Autoencoder.fromTensors(config as unknown as AutoencoderConfig, tensors);
  if (!ae.latentMean) fail('model', `autoencoder ${dir} has no latent statistics (latent_mean / latent_std)`);
  return { ae, data: imageDataSchema.parse(config.normlab_data ?? {}) };
}

registerJobKind({
  name: 'autoencoder-train',
  title: 'Train a latent autoencoder',
  description: 'Train the small MLP autoencoder whose standardized latents the lct job generates.',
  schema: autoencoderTrainSchema,
  resumable: true,
  async run(ctx, cfg) {
    const train = await loadTrainImages(cfg.data, cfg.seed);
    const ref = await loadReferenceImages(cfg.data, cfg.seed);
    const ae = new Autoencoder(
      {
        kind: cfg.kind,
        image_shape: [train.height, train.width, train.channels],
        latent_shape: cfg.latent_shape,
        hidden: cfg.hidden,
        kl_weight: cfg.kl_weight,
      },
      cfg.seed,
    );
    try {
      const dim = ae.imageDim;
      const rng = new Rng(cfg.seed * 104729 + 3);
      /** The trained model's latent statistics over the training images, saved with its weights. */
      const setTrainingLatentStats = async (): Promise<Float32Array> => {
        const { mean, std } = latentStats(await encodeAll(ae, train.images, train.n), train.n, ae.latentDim);
        ae.setLatentStats(mean, std);
        return std;
      };
      const { modelDir } = await fit(
        ctx,
        ae.params,
        {
          rng,
          draw: (step, rows) => ({
            x: gatherRows(
              train.images,
              dim,
              Array.from({ length: rows }, () => rng.int(train.n)),
            ),
            eps: cfg.kind === 'kl' ? (seededNormal([rows, ae.latentDim], 0, 1, cfg.seed * 1000003 + step) as tf.Tensor2D) : undefined,
          }),
          loss: ({ x, eps }, mb) => {
            const xs = tf.tensor2d(x.subarray(mb.start * dim, (mb.start + mb.rows) * dim), [mb.rows, dim]);
            const r = ae.loss(xs, !eps ? null : mb.rows < mb.total ? tf.slice(eps, [mb.start, 0], [mb.rows, ae.latentDim]) : eps);
            return { loss: r.loss, extra: { recon_bce: r.recon, kl: r.kl } };
          },
        },
        {
          steps: cfg.steps,
          lr: cfg.lr,
          phase: 'autoencoder',
          batch: cfg.batch,
          gradAccum: cfg.grad_accum,
          checkpointEvery: cfg.checkpoint_every,
          saveModel: async (d) => {
            await setTrainingLatentStats();
            await saveAutoencoder(ae, d, cfg.data);
          },
        },
      );
      // A run resumed from its final checkpoint did not save the model here: its stats are not set yet.
      const std = ae.latentStd ?? (await setTrainingLatentStats());
      // Reconstruction error on the reference images (through the encoder mean).
      const rz = await encodeAll(ae, ref.images, ref.n);
      const rec = await decodeAll(ae, rz, ref.n);
      // Per-image MSE: the interval is a t interval of their mean over the reference images.
      const perImage = new Float64Array(ref.n);
      for (let i = 0; i < rec.length; i++) perImage[Math.floor(i / dim)] += (rec[i] - ref.images[i]) ** 2 / dim;
      const mseT = tInterval(perImage);
      const mse = mseT.mean;
      const show = Math.min(32, ref.n);
      const both = new Float32Array(2 * show * dim);
      for (let i = 0; i < show; i++) {
        // rows of 8: originals, then their reconstructions below
        const row = Math.floor(i / 8);
        const col = i % 8;
        both.set(ref.images.subarray(i * dim, (i + 1) * dim), (row * 16 + col) * dim);
        both.set(rec.subarray(i * dim, (i + 1) * dim), (row * 16 + 8 + col) * dim);
      }
      const grid = imageGrid(both, 2 * show, train.height, train.width, train.channels, 8);
      await writePng(path.join(ctx.run.artifactsDir, 'reconstructions.png'), grid.rgba, grid.width, grid.height);
      const stdSpread = [Math.min(...std), Math.max(...std)];
      ctx.metric({ step: cfg.steps, ref_recon_mse: mse });
      ctx.log(`autoencoder: reference reconstruction MSE ${mse.toFixed(5)}; latent std per element in [${stdSpread.map((v) => v.toFixed(3)).join(', ')}]`);
      return {
        key_result: {
          label: 'reconstruction MSE',
          value: mse,
          ci95: mseT.ci95,
          interval: `t interval of the mean per-image MSE over ${ref.n} reference images`,
        },
        ref_recon_mse: mse,
        latent_dim: ae.latentDim,
        latent_std_range: stdSpread,
        model_dir: modelDir,
      };
    } finally {
      ae.dispose();
    }
  },
});
