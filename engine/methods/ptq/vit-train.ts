/**
 * `vit-train`: train a small ViT (timm layout) on MNIST (default) or a labelled PNG folder with
 * AdamW and warmup + cosine, evaluate top-1 on held-out images, save the model as a timm-style
 * folder (`artifacts/model/`, and a checkpoint per epoch from which a killed run resumes).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { faultPoint } from '../../core/fault-points.js';
import type { ImageSet } from '../../data/images.js';
import { Rng } from '../../data/rng.js';
import type { JobContext } from '../../jobs/context.js';
import { baseConfig, SIZE_LIMITS } from '../../jobs/registry.js';
import { ViT, vitConfigFromJson } from '../../models/vit.js';
import { crossEntropy } from '../../nn/ops.js';
import { AdamW, clipGlobalNorm } from '../../nn/optim.js';
import { learningRate } from '../../nn/schedule.js';
import { accumulate, gradAccumField, microBatches, namedGrads } from '../../train/accumulate.js';
import { endOfStep, restoreTrainingCheckpoint, saveTrainingCheckpoint, yieldUntilCheckpoint } from '../../train/checkpoint.js';
import { imageBatch, inputNorm, top1 } from './ptq.js';
import { checkImagesFit, loadImageSource, loadViT, saveViT } from './vit-io.js';
import { pathField } from '../../jobs/paths.js';
import { wilson } from '../../stats/stats.js';

export const vitModelSchema = z
  .object({
    patch_size: z.number().int().min(1).max(SIZE_LIMITS.patch).default(7).describe('square patch side (image side must divide by it)'),
    embed_dim: z.number().int().min(8).max(SIZE_LIMITS.width).default(64).describe('model width D'),
    depth: z.number().int().min(1).max(48).default(4).describe('number of blocks'),
    num_heads: z.number().int().min(1).max(SIZE_LIMITS.heads).default(4).describe('attention heads (embed_dim must divide by it)'),
    mlp_ratio: z.number().positive().max(64).default(2).describe('MLP hidden width / embed_dim (timm: 4)'),
    init_from: pathField(z.string().optional().describe('a ViT model folder to fine-tune instead of a random init')),
  })
  .strict();

export const vitDataSchema = z
  .object({
    source: pathField(z.string().default('mnist').describe('"mnist" or a folder of labelled PNGs (dir/<class>/*.png)'), { keywords: ['mnist'] }),
    eval_source: pathField(z.string().optional().describe('folder of evaluation PNGs (MNIST uses its test split)'), { keywords: ['mnist'] }),
    train_count: z.number().int().min(1).max(SIZE_LIMITS.count).optional().describe('training images (default: all; MNIST has 8,000)'),
    eval_count: z.number().int().min(1).max(SIZE_LIMITS.count).default(2000).describe('evaluation images (MNIST test split has 2,000)'),
  })
  .strict();

export const vitTrainOptionsSchema = z
  .object({
    epochs: z.number().int().min(1).default(8).describe('passes over the training images'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(32).describe('images per micro-batch (per step without grad_accum)'),
    grad_accum: gradAccumField,
    lr: z.number().positive().default(3e-3).describe('peak learning rate'),
    min_lr_ratio: z.number().min(0).max(1).default(0.05).describe('cosine floor as a fraction of lr'),
    warmup: z.number().int().min(0).default(100).describe('linear warmup steps'),
    weight_decay: z.number().min(0).default(0.05).describe('AdamW decoupled weight decay (matrices only)'),
    clip: z.number().min(0).default(1).describe('gradient global-norm clip (0 = off)'),
    log_every: z.number().int().min(1).default(20).describe('steps between loss logs'),
    eval_every: z.number().int().min(1).default(4).describe('epochs between held-out evaluations (the last epoch is always evaluated)'),
  })
  .strict();

export const vitTrainSchema = z
  .object({
    method: z.literal('vit-train'),
    ...baseConfig,
    model: vitModelSchema.default(vitModelSchema.parse({})),
    data: vitDataSchema.default(vitDataSchema.parse({})),
    train: vitTrainOptionsSchema.default(vitTrainOptionsSchema.parse({})),
  })
  .strict();
export type ViTTrainConfig = z.infer<typeof vitTrainSchema>;

/** The train and evaluation image sets of a config. */
export async function trainAndEvalSets(cfg: ViTTrainConfig): Promise<{ train: ImageSet; evalSet: ImageSet }> {
  const d = cfg.data;
  const train = await loadImageSource(d.source, 'train', d.train_count, cfg.seed);
  const evalSource = d.eval_source ?? d.source;
  const evalSet = await loadImageSource(evalSource, 'test', Math.min(d.eval_count, evalSource === 'mnist' ? 2000 : Infinity), 0);
  for (const [set, what] of [
    [train, 'training'],
    [evalSet, 'evaluation'],
  ] as const) {
    if (set.labels.some((l) => l < 0)) fail('data', `${what} images have no class labels (use dir/<class>/*.png)`);
  }
  return { train, evalSet };
}

/** Gather images idx into one (B, H, W, C) host array. */
function gatherImages(set: ImageSet, idx: ArrayLike<number>): { x: Float32Array; y: Int32Array } {
  const px = set.height * set.width * set.channels;
  const x = new Float32Array(idx.length * px);
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    x.set(set.images.subarray(idx[i] * px, (idx[i] + 1) * px), i * px);
    y[i] = set.labels[idx[i]];
  }
  return { x, y };
}

export async function trainViT(ctx: JobContext, cfg: ViTTrainConfig): Promise<{ model: ViT; summary: Record<string, unknown> }> {
  const { train, evalSet } = await trainAndEvalSets(cfg);
  const m = cfg.model;
  let model: ViT;
  if (ctx.resumeFrom) model = await loadViT(ctx.resumeFrom.dir);
  else if (m.init_from) model = await loadViT(m.init_from);
  else {
    if (train.height !== train.width) fail('data', `training images are ${train.height}×${train.width}; the ViT needs square images`);
    const classes = Math.max(train.classes, ...Array.from(train.labels)) + (train.classes ? 0 : 1);
    model = new ViT(
      vitConfigFromJson({
        img_size: train.height,
        patch_size: m.patch_size,
        in_chans: train.channels,
        num_classes: Math.max(classes, train.classes),
        embed_dim: m.embed_dim,
        depth: m.depth,
        num_heads: m.num_heads,
        mlp_ratio: m.mlp_ratio,
      }),
      cfg.seed,
    );
  }
  try {
    checkImagesFit(model, train, 'training');
    checkImagesFit(model, evalSet, 'evaluation');
    const t = cfg.train;
    // A step takes batch × grad_accum images (the last of an epoch fewer), batch at a time.
    const stepImages = t.batch * t.grad_accum;
    const stepsPerEpoch = Math.ceil(train.n / stepImages);
    const total = stepsPerEpoch * t.epochs;
    if (t.warmup >= total) fail('config', `train.warmup ${t.warmup} must be shorter than the ${total} training steps`);
    const schedule = { kind: 'cosine' as const, lr: t.lr, warmup: t.warmup, minLr: t.lr * t.min_lr_ratio, total };
    const opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.999, weightDecay: t.weight_decay });
    const rng = new Rng(`vit-train:${cfg.seed}`);
    const norm = inputNorm(model);
    const shape: [number, number, number] = [train.height, train.width, train.channels];
    const started = Date.now();
    let step = 0;
    let acc = 0;
    let firstEpoch = 0;
    let firstOffset = 0;
    let imagesSeen = 0;
    try {
      if (ctx.resumeFrom) {
        // A checkpoint holds the RNG state before its epoch's shuffle and the images of that epoch
        // already trained on (0 at an epoch end; more when a SIGTERM stopped the run mid-epoch).
        const state = await restoreTrainingCheckpoint<{ epoch: number; rng: number; top1: number; offset?: number }>(ctx.resumeFrom.dir, {
          optimizer: opt,
        });
        rng.restore(state.rng);
        ({ step, epoch: firstEpoch, top1: acc } = state);
        firstOffset = state.offset ?? 0;
        ctx.log(`resumed in epoch ${firstEpoch + 1} after ${firstOffset} images (step ${step})`);
      }
      let loss = NaN; // of the last logged step
      let gradNorm = NaN;
      for (let epoch = firstEpoch; epoch < t.epochs; epoch++) {
        const epochRng = rng.state();
        const order = rng.shuffle(Array.from({ length: train.n }, (_, i) => i));
        for (let s = epoch === firstEpoch ? firstOffset : 0; s < train.n; s += stepImages) {
          const idx = order.slice(s, s + stepImages);
          const lr = learningRate(schedule, step);
          const { value, grads } = accumulate(microBatches(idx.length, t.batch), (mb) => {
            const { x, y } = gatherImages(train, idx.slice(mb.start, mb.start + mb.rows));
            const xs = imageBatch(x, 0, mb.rows, shape, norm);
            const ys = tf.tensor1d(y, 'int32');
            const r = namedGrads(model.params, () => crossEntropy(model.forward(xs), ys));
            tf.dispose([xs, ys]);
            return r;
          });
          const clipped = clipGlobalNorm(grads, t.clip);
          opt.step(clipped.grads, lr);
          for (const g of clipped.grads.values()) g.dispose();
          step++;
          imagesSeen += idx.length;
          // The loss is read (a device sync) only on the steps that log it.
          if (step % t.log_every === 0 || step === total) {
            const both = tf.stack([value, clipped.norm]);
            [loss, gradNorm] = await both.data();
            both.dispose();
            if (!Number.isFinite(loss)) fail('state', `training diverged by step ${step} (loss ${loss}); lower train.lr`);
            ctx.metric({ step, loss, lr, grad_norm: gradNorm, images_per_s: Math.round(imagesSeen / ((Date.now() - started) / 1000)) });
          }
          tf.dispose([value, clipped.norm]);
          ctx.progress({ step, total, phase: 'train', message: `epoch ${epoch + 1}/${t.epochs}${Number.isNaN(loss) ? '' : ` loss ${loss.toFixed(3)}`}` });
          // Periodic checkpoints are taken at epoch ends (below); this one only when told to stop.
          const offset = s + idx.length;
          await endOfStep(ctx, false, () =>
            saveTrainingCheckpoint(ctx.run, step, { model: (dir) => saveViT(model, dir), optimizer: opt, state: { epoch, offset, rng: epochRng, top1: acc } }),
          );
          if (step === total) faultPoint('after-last-step', ctx.run);
        }
        if ((epoch + 1) % t.eval_every === 0 || epoch + 1 === t.epochs) {
          acc = await top1(model, evalSet, undefined, 250, () => yieldUntilCheckpoint(ctx));
          ctx.metric({ step, epoch: epoch + 1, val_top1: acc });
          ctx.log(`epoch ${epoch + 1}: top-1 ${(100 * acc).toFixed(2)}% on ${evalSet.n} held-out images`);
        }
        await saveTrainingCheckpoint(ctx.run, step, {
          model: (dir) => saveViT(model, dir),
          optimizer: opt,
          state: { epoch: epoch + 1, rng: rng.state(), top1: acc },
        });
        if (epoch + 1 === t.epochs) faultPoint('after-final-checkpoint', ctx.run);
        await ctx.tick(); // a SIGTERM during the evaluation ends the run here, at the epoch's checkpoint
      }
    } finally {
      opt.dispose();
    }
    const modelDir = path.join(ctx.run.artifactsDir, 'model');
    await saveViT(model, modelDir);
    return {
      model,
      summary: {
        key_result: {
          label: 'top-1',
          value: acc,
          ci95: wilson(Math.round(acc * evalSet.n), evalSet.n),
          interval: `Wilson interval of the top-1 proportion, ${evalSet.n} held-out images`,
          unit: 'fraction',
        },
        top1: acc,
        eval_images: evalSet.n,
        train_images: train.n,
        steps: total,
        params: model.params.count(),
        seconds: (Date.now() - started) / 1000,
        images_per_step: stepImages,
        model_dir: modelDir,
        backend: ctx.backend.name,
      },
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}
