/**
 * Job kind `lct`: improved latent consistency training (Dao et al., ICLR 2025) on the
 * standardized latents of an `autoencoder-train` model. Consistency training as iCT (Song &
 * Dhariwal 2023): EDM parametrization f = c_skip x + c_out F(c_in x, c_noise), the exponential
 * curriculum N(k), lognormal sampling of grid pairs, lambda = 1/(sigma_j - sigma_{j+1}), a
 * stop-gradient target (the student itself, no EMA) and an EMA copy for sampling. The paper's
 * five improvements are switches: Cauchy loss, diffusion loss on the smallest 25% of sigmas
 * (weight 5), minibatch OT coupling, adaptive c, Non-scaling LayerNorm.
 * Evaluates 1-step and 2-step samples with FID on the features of an `image-classifier`.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { Rng } from '../../data/rng.js';
import { writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { saveModelDir } from '../../io/model-dir.js';
import { imageGrid, writePng } from '../../io/png.js';
import type { JobContext } from '../../jobs/context.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import type { Autoencoder } from '../../models/autoencoder.js';
import { ConsistencyNet, checkConsistencyNetConfig, type ConsistencyNetConfig } from '../../models/consistency-net.js';
import { AdamW, RAdam, clipGlobalNorm } from '../../nn/optim.js';
import type { ParamSet } from '../../nn/params.js';
import { learningRate } from '../../nn/schedule.js';
import { barPlot, linePlot, writePlot } from '../../plot/index.js';
import { Z95 } from '../../stats/stats.js';
import { accumulate, gradAccumField, microBatches, namedGrads } from '../../train/accumulate.js';
import {
  checkpointEveryField,
  endOfStep,
  isCheckpointStep,
  readTrainerState,
  restoreTrainingCheckpoint,
  saveTrainingCheckpoint,
} from '../../train/checkpoint.js';
import { autoencoderTrainSchema, decodeAll, encodeAll, loadAutoencoder } from './autoencoder-job.js';
import { ImageClassifier } from './classifier.js';
import { loadReferenceImages, loadTrainImages } from './data.js';
import {
  EDM,
  cIn,
  cNoise,
  cOut,
  cSkip,
  checkCurriculum,
  curriculumN,
  curriculumStage,
  diffusionWeight,
  ictWeight,
  inDiffusionRange,
  karrasSigmas,
  ADAPTIVE_C_RULES,
  scalingC,
  timestepProbs,
  twoStepSigma,
} from './edm.js';
import { fidAgainst, fidBootstrap, fidReference, gaussianStats, type FidReference } from './fid.js';
import { otCouple } from './ot.js';
import { pathField } from '../../jobs/paths.js';

/** The paper's five improvements (docs/methods.md, "Latent consistency training"), each a switch of its own. */
export const IMPROVEMENTS = {
  cauchy: 'improvement 1: Cauchy loss (off: Pseudo-Huber)',
  diffusion_loss: 'improvement 2: diffusion loss on the smallest 25% of sigmas, weight 5',
  ot: 'improvement 3: minibatch optimal-transport coupling of latents and noise',
  adaptive_c: 'improvement 4: adaptive scaling c = exp(-1.15 ln(N-1) - 0.85) from stage 2 (see train.adaptive_c_rule)',
  nsln: 'improvement 5: Non-scaling LayerNorm (gamma fixed at 1) in the network',
} as const;
export type ImprovementName = keyof typeof IMPROVEMENTS;
export const IMPROVEMENT_NAMES = Object.keys(IMPROVEMENTS) as ImprovementName[];

/** The five switches as zod fields, each defaulting to `on`. */
export function improvementFields(on: boolean): Record<ImprovementName, z.ZodDefault<z.ZodBoolean>> {
  return Object.fromEntries(IMPROVEMENT_NAMES.map((k) => [k, z.boolean().default(on).describe(IMPROVEMENTS[k])])) as Record<
    ImprovementName,
    z.ZodDefault<z.ZodBoolean>
  >;
}

export const improvementsSchema = z.object(improvementFields(true)).strict();
export type Improvements = z.infer<typeof improvementsSchema>;

export const networkSchema = z
  .object({
    arch: z.enum(['transformer', 'mlp']).default('mlp').describe('transformer over latent patches, or residual MLP over the whole latent'),
    patch: z.number().int().positive().max(SIZE_LIMITS.patch).default(1).describe('patch side over the latent grid (transformer)'),
    width: z.number().int().positive().max(SIZE_LIMITS.width).default(192).describe('model width'),
    depth: z.number().int().positive().default(4).describe('blocks'),
    heads: z.number().int().positive().max(SIZE_LIMITS.heads).default(4).describe('attention heads'),
    mlp_ratio: z.number().positive().default(2).describe('MLP hidden width / width'),
    freq_dim: z.number().int().positive().max(SIZE_LIMITS.width).default(128).describe('sinusoidal features of the noise label'),
  })
  .strict();

export const lctTrainSchema = z
  .object({
    steps: z.number().int().positive().default(1200).describe('training steps K (the curriculum spans them)'),
    batch: z
      .number()
      .int()
      .positive()
      .max(SIZE_LIMITS.batch)
      .default(128)
      .describe('latents per micro-batch (per step without grad_accum; minibatch OT couples the whole step)'),
    grad_accum: gradAccumField,
    lr: z.number().positive().default(1e-3).describe('peak learning rate (the official code: RAdam at 1e-4; preset lct-official-optimizer)'),
    optimizer: z
      .enum(['adamw', 'radam'])
      .default('adamw')
      .describe('adamw (β 0.9/0.999); radam = torch.optim.RAdam as the official code uses it (Liu et al. 2020)'),
    weight_decay: z
      .number()
      .min(0)
      .default(0)
      .describe('adamw: decoupled, on matrices; radam: L2 added to the gradient of every parameter, as torch.optim.RAdam (official: 1e-4)'),
    eps: z.number().positive().default(1e-8).describe('the optimizer’s epsilon (official RAdam: 1e-4)'),
    warmup: z.number().int().min(0).default(100).describe('linear warmup steps'),
    schedule: z.enum(['constant', 'cosine']).default('constant').describe('learning-rate schedule after warmup'),
    ema: z.number().min(0).max(1).default(0.999).describe('EMA decay of the sampling weights (paper 0.9999 for far longer runs)'),
    ema_warmup: z.boolean().default(true).describe('EMA decay min(ema, (1+k)/(10+k)) so short runs do not sample near the initial weights'),
    s0: z.number().int().positive().default(10).describe('curriculum: initial discretization steps'),
    s1: z.number().int().positive().default(640).describe('curriculum: final discretization steps'),
    p_mean: z.number().default(-1.1).describe('lognormal timestep sampling: mean of ln sigma'),
    p_std: z.number().positive().default(2.0).describe('lognormal timestep sampling: std of ln sigma'),
    diffusion_weight: z.number().min(0).default(5).describe('weight of the diffusion loss (improvement 2)'),
    adaptive_c_rule: z
      .enum(ADAPTIVE_C_RULES)
      .default('paper')
      .describe(
        "adaptive c from stage 2: paper = exp(-1.15 ln(N-1) - 0.85), fitted for 4096-dim latents (at d = 64 it jumps from iCT's 0.00054√d = 0.0043 up to 0.0136); dim-scaled = the same curve × √(d/4096)",
      ),
    clip: z.number().min(0).default(1).describe('global gradient-norm clip (0: off)'),
    log_every: z.number().int().positive().default(25).describe('metric interval'),
    sample_every: z.number().int().positive().default(400).describe('sample grid + quick FID interval'),
    checkpoint_every: checkpointEveryField(200),
  })
  .strict()
  .refine((t) => t.s1 >= t.s0, { message: 'curriculum s1 must be no smaller than s0', path: ['s1'] });

export const lctEvalSchema = z
  .object({
    samples: z.number().int().min(2).max(SIZE_LIMITS.count).default(1000).describe('generated images per FID'),
    quick_samples: z.number().int().min(2).max(SIZE_LIMITS.count).default(500).describe('generated images per FID during training'),
    two_step_index: z.number().int().positive().default(420).describe('2-step sampling: sigma at this index of a 641-point grid (paper: 420)'),
    grid: z.number().int().positive().max(SIZE_LIMITS.count).default(64).describe('images per sample grid PNG'),
    bootstrap: z
      .number()
      .int()
      .min(2)
      .max(10_000)
      .default(50)
      .describe('bootstrap resamples of the generated samples for the standard error of each final FID (seeded; the reference features stay fixed)'),
  })
  .strict();

/** The progress line of an LCT step: the discretization N, and the loss once a step has logged one. */
export function lctProgressMessage(N: number, lastLoss: number): string {
  return Number.isFinite(lastLoss) ? `N ${N} loss ${lastLoss.toExponential(3)}` : `N ${N}`;
}

export const lctSchema = z
  .object({
    method: z.literal('lct'),
    ...baseConfig,
    autoencoder: pathField(
      z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe('model folder of an autoencoder-train run (its checkpoints/step-N); null: train one on MNIST first (child run)'),
    ),
    classifier: pathField(
      z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe('model folder of an image-classifier run, for FID features; null: train one on the autoencoder’s data first (child run)'),
    ),
    improvements: improvementsSchema.default(improvementsSchema.parse({})),
    network: networkSchema.default(networkSchema.parse({})),
    train: lctTrainSchema.default(lctTrainSchema.parse({})),
    eval: lctEvalSchema.default(lctEvalSchema.parse({})),
  })
  .strict();
export type LctConfig = z.infer<typeof lctSchema>;
export type LctTrainConfig = z.infer<typeof lctTrainSchema>;

/**
 * The per-sample consistency distance of m = mean over elements of (f(x_{j}) - f^-(x_{j+1}))^2:
 * Cauchy log(1 + m / (2 c^2)) (improvement 1) or Pseudo-Huber sqrt(m + c^2) - c (iCT).
 */
export function robustLoss(m: tf.Tensor, c: number, cauchy: boolean): tf.Tensor {
  return cauchy ? tf.log1p(tf.div(m, 2 * c * c)) : tf.sub(tf.sqrt(tf.add(m, c * c)), c);
}

/** f(x, sigma) = c_skip x + c_out F(c_in x, c_noise) for per-row sigmas. x (B, D). */
export function denoise(net: ConsistencyNet, x: tf.Tensor, sigma: ArrayLike<number>, params?: ParamSet): tf.Tensor2D {
  const B = sigma.length;
  // (map through a lambda: Float32Array.from passes the index as a second argument)
  const col = (f: (s: number) => number) =>
    tf.tensor2d(
      Float32Array.from(sigma, (s) => f(s)),
      [B, 1],
    );
  const F = net.forward(
    tf.mul(x, col(cIn)),
    Float32Array.from(sigma, (s) => cNoise(s)),
    params,
  );
  return tf.add(tf.mul(x, col(cSkip)), tf.mul(F, col(cOut))) as tf.Tensor2D;
}

/**
 * 1-step: x = f(sigma_max z, sigma_max). 2-step (multistep consistency sampling): then
 * x' = x + sqrt(s_mid^2 - s_min^2) z', x = f(x', s_mid). Returns standardized latents.
 */
export async function sampleLatents(net: ConsistencyNet, params: ParamSet, n: number, steps: 1 | 2, seed: number, midIndex: number): Promise<Float32Array> {
  const D = net.latentDim;
  const rng = new Rng(seed);
  const noise = () => Float32Array.from({ length: n * D }, () => rng.normal());
  const z1 = noise();
  const z2 = noise();
  const out = new Float32Array(n * D);
  const chunk = 500;
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk);
    const b = e - s;
    const x = tf.tidy(() => {
      let x = denoise(net, tf.mul(tf.tensor2d(z1.subarray(s * D, e * D), [b, D]), EDM.sigmaMax), new Float32Array(b).fill(EDM.sigmaMax), params);
      if (steps === 2) {
        const sm = twoStepSigma(midIndex);
        const xn = tf.add(x, tf.mul(tf.tensor2d(z2.subarray(s * D, e * D), [b, D]), Math.sqrt(sm * sm - EDM.sigmaMin ** 2)));
        x = denoise(net, xn, new Float32Array(b).fill(sm), params);
      }
      return x;
    });
    out.set((await x.data()) as Float32Array, s * D);
    x.dispose();
  }
  return out;
}

export interface SampleEval {
  fid: number;
  classHistogram: number[];
  /** The samples' classifier features (n x F), kept so the FID can be resampled. */
  feats: Float32Array;
}

interface EvalKit {
  ae: Autoencoder;
  clf: ImageClassifier;
  ref: FidReference;
  classes: number;
}

/** The seed of every lct run's FID bootstrap: runs with the same n share their resample indices (paired). */
export const FID_BOOTSTRAP_SEED = 2025;
/** The noise seed of the final samples: every configuration draws the same noise (paired arms). */
export const FINAL_SAMPLE_SEED = 777;

/** Generate n images, embed them, FID against the reference Gaussian, class histogram. */
async function evaluate(
  kit: EvalKit,
  net: ConsistencyNet,
  params: ParamSet,
  n: number,
  steps: 1 | 2,
  seed: number,
  midIndex: number,
): Promise<{ ev: SampleEval; images: Float32Array }> {
  const zs = await sampleLatents(net, params, n, steps, seed, midIndex);
  const z = tf.tidy(() => kit.ae.unstandardize(tf.tensor2d(zs, [n, net.latentDim])));
  const raw = (await z.data()) as Float32Array;
  z.dispose();
  const images = await decodeAll(kit.ae, raw, n);
  const { feats, preds } = await kit.clf.embed(images, n);
  const fid = fidAgainst(kit.ref, gaussianStats(feats, n, kit.clf.config.hidden[1]));
  const hist = new Array<number>(kit.classes).fill(0);
  for (const p of preds) hist[p] += 1 / n;
  return { ev: { fid, classHistogram: hist, feats }, images };
}

/** Nearest-neighbour upscaling of an RGBA image by an integer factor (small digits stay legible). */
export function upscale(rgba: Uint8Array, w: number, h: number, k: number): { rgba: Uint8Array; width: number; height: number } {
  const W = w * k;
  const out = new Uint8Array(W * h * k * 4);
  for (let y = 0; y < h * k; y++) {
    for (let x = 0; x < W; x++) {
      const src = (Math.floor(y / k) * w + Math.floor(x / k)) * 4;
      out.set(rgba.subarray(src, src + 4), (y * W + x) * 4);
    }
  }
  return { rgba: out, width: W, height: h * k };
}

async function saveGrid(file: string, images: Float32Array, n: number, shape: [number, number, number]): Promise<void> {
  const g = imageGrid(images, n, shape[0], shape[1], shape[2], Math.ceil(Math.sqrt(n)));
  const k = Math.max(1, Math.min(4, Math.floor(640 / Math.max(g.width, g.height)))); // about 640 px across
  const u = upscale(g.rgba, g.width, g.height, k);
  await writePng(file, u.rgba, u.width, u.height);
}

export interface LctStepInputs {
  net: ConsistencyNet;
  /** EMA copy of the trainable weights (sampling weights), updated after every step. */
  ema: ParamSet;
  opt: AdamW;
  /** Standardized training latents, n rows of net.latentDim values. */
  latents: Float32Array;
  n: number;
  improvements: Improvements;
  train: LctTrainConfig;
  /** Draws the batch, the noise and the grid pairs. */
  rng: Rng;
}

/** A step's losses and gradient norm stay on the device until `readLctStep` (or `disposeLctStep`). */
export interface LctStepResult {
  loss: tf.Scalar;
  parts: { ct: tf.Scalar; diff: tf.Scalar };
  N: number;
  c: number;
  lr: number;
  gradNorm: tf.Scalar;
}

export interface LctStepValues {
  loss: number;
  parts: { ct: number; diff: number };
  N: number;
  c: number;
  lr: number;
  gradNorm: number;
}

/** What one training step draws: the batch, its noise, the grid pairs and their weights. */
export interface LctBatch {
  B: number;
  D: number;
  /** Latents (B, D) and noise (B, D), OT-coupled when improvement 3 is on (noise rows permuted). */
  x0: Float32Array;
  noise: Float32Array;
  /** Grid pair index j of each row: the student sees sigmas[j], the target sigmas[j+1]. */
  j: Int32Array;
  sHi: Float32Array;
  sLo: Float32Array;
  /** iCT weight 1/(sigma_j - sigma_{j+1}). */
  lambda: Float32Array;
  /** Improvement 2: 1 where j is among the smallest 25% of sigmas, its weight 1/sigma_j^2 + 1/sd^2 there (0 elsewhere). */
  diffMask: Float32Array;
  diffW: Float32Array;
  nDiff: number;
}

/** The sigma grid of N points and the cumulative pair probabilities, cached per N. */
function gridCache(pMean: number, pStd: number): (N: number) => { sigmas: Float64Array; cdf: Float64Array } {
  const cache = new Map<number, { sigmas: Float64Array; cdf: Float64Array }>();
  return (N) => {
    let g = cache.get(N);
    if (!g) {
      const sigmas = karrasSigmas(N);
      const p = timestepProbs(sigmas, pMean, pStd);
      const cdf = new Float64Array(p.length);
      let acc = 0;
      p.forEach((v, i) => (cdf[i] = acc += v));
      g = { sigmas, cdf };
      cache.set(N, g);
    }
    return g;
  };
}

/** Read a step's results to the host and dispose them. */
export async function readLctStep(r: LctStepResult): Promise<LctStepValues> {
  const ts = [r.loss, r.parts.ct, r.parts.diff, r.gradNorm];
  const stacked = tf.stack(ts);
  disposeLctStep(r);
  const [loss, ct, diff, gradNorm] = await stacked.data();
  stacked.dispose();
  return { loss, parts: { ct, diff }, N: r.N, c: r.c, lr: r.lr, gradNorm };
}

export function disposeLctStep(r: LctStepResult): void {
  tf.dispose([r.loss, r.parts.ct, r.parts.diff, r.gradNorm]);
}

/**
 * Draw one step's batch: B latents (uniformly, with replacement), standard normal noise
 * (OT-coupled to the latents with improvement 3), and per row a grid pair j ~ P(j) of iCT's
 * lognormal distribution (inverse CDF of one uniform), with its lambda and diffusion-loss weight.
 */
export function drawLctBatch(
  rng: Rng,
  latents: Float32Array,
  n: number,
  D: number,
  B: number,
  grid: { sigmas: Float64Array; cdf: Float64Array },
  imp: Pick<Improvements, 'ot' | 'diffusion_loss'>,
): LctBatch {
  const { sigmas, cdf } = grid;
  const N = sigmas.length;
  const x0 = new Float32Array(B * D);
  for (let i = 0; i < B; i++) {
    const r = rng.int(n);
    x0.set(latents.subarray(r * D, r * D + D), i * D);
  }
  let noise: Float32Array = Float32Array.from({ length: B * D }, () => rng.normal());
  if (imp.ot) noise = otCouple(x0, noise, B, D).noise;
  const j = new Int32Array(B);
  const sHi = new Float32Array(B);
  const sLo = new Float32Array(B);
  const lambda = new Float32Array(B);
  const diffMask = new Float32Array(B);
  const diffW = new Float32Array(B);
  for (let i = 0; i < B; i++) {
    const u = rng.next();
    let k = 0;
    while (k < cdf.length - 1 && cdf[k] < u) k++;
    j[i] = k;
    sHi[i] = sigmas[k];
    sLo[i] = sigmas[k + 1];
    lambda[i] = ictWeight(sigmas[k], sigmas[k + 1]);
    if (imp.diffusion_loss && inDiffusionRange(k, N)) {
      diffMask[i] = 1;
      diffW[i] = diffusionWeight(sigmas[k]);
    }
  }
  return { B, D, x0, noise, j, sHi, sLo, lambda, diffMask, diffW, nDiff: diffMask.reduce((a, b) => a + b, 0) };
}

/** Rows [start, start + rows) of a batch (a gradient-accumulation micro-batch), or all of them. */
export interface LctRows {
  start: number;
  rows: number;
}

/** The per-row arrays of `rows`, as views. */
function batchRows(batch: LctBatch, r: LctRows) {
  const D = batch.D;
  const cut = <A extends Float32Array>(a: A, width = 1) => a.subarray(r.start * width, (r.start + r.rows) * width) as A;
  return { x0: cut(batch.x0, D), noise: cut(batch.noise, D), sHi: cut(batch.sHi), sLo: cut(batch.sLo), lambda: cut(batch.lambda), diffW: cut(batch.diffW) };
}

/**
 * The step's loss on a drawn batch, to differentiate inside tf.variableGrads:
 *   L_CT = mean_i lambda_i d(f(x0 + sigma_j z), target_i),  d = Cauchy or Pseudo-Huber of the
 *          per-row mean squared difference, target_i = f(x0 + sigma_{j+1} z) (given, no gradient);
 *   L_diff = sum_i diffW_i mean((f(x0 + sigma_j z) - x0)^2) / nDiff over the selected rows;
 *   L = L_CT + diffusion_weight L_diff.
 * On `rows` (a micro-batch) it is that rows' share: the sums over them divided by the whole
 * batch's B and nDiff, so the shares of all micro-batches add up to the batch's loss.
 * `target` holds the target rows of `rows`.
 */
export function lctLoss(
  net: ConsistencyNet,
  batch: LctBatch,
  target: tf.Tensor,
  c: number,
  cauchy: boolean,
  diffusionWeight: number,
  rows: LctRows = { start: 0, rows: batch.B },
): { total: tf.Scalar; ct: tf.Scalar; diff: tf.Scalar } {
  const R = rows.rows;
  const D = batch.D;
  const b = batchRows(batch, rows);
  const x0 = tf.tensor2d(b.x0, [R, D]);
  const xHi = tf.add(x0, tf.mul(tf.tensor2d(b.noise, [R, D]), tf.tensor2d(b.sHi, [R, 1])));
  const student = denoise(net, xHi, b.sHi);
  const m = tf.mean(tf.square(tf.sub(student, target)), 1); // (R): mean over elements
  const ct = tf.div(tf.sum(tf.mul(robustLoss(m, c, cauchy), tf.tensor1d(b.lambda))), batch.B) as tf.Scalar;
  if (batch.nDiff === 0) return { total: ct, ct, diff: tf.scalar(0) };
  const md = tf.mean(tf.square(tf.sub(student, x0)), 1);
  const diff = tf.div(tf.sum(tf.mul(md, tf.tensor1d(b.diffW))), batch.nDiff) as tf.Scalar; // diffW is 0 outside the selected rows
  return { total: tf.add(ct, tf.mul(diff, diffusionWeight)) as tf.Scalar, ct, diff };
}

/** The stop-gradient target f(x0 + sigma_{j+1} z, sigma_{j+1}) of `rows`, with the student's current weights. */
export function lctTarget(net: ConsistencyNet, batch: LctBatch, rows: LctRows = { start: 0, rows: batch.B }): tf.Tensor2D {
  const R = rows.rows;
  const b = batchRows(batch, rows);
  return tf.tidy(() => denoise(net, tf.add(tf.tensor2d(b.x0, [R, batch.D]), tf.mul(tf.tensor2d(b.noise, [R, batch.D]), tf.tensor2d(b.sLo, [R, 1]))), b.sLo));
}

/** EMA decay of step k: `ema`, or with the warmup min(ema, (1 + k) / (10 + k)). */
export function emaDecay(k: number, ema: number, warmup: boolean): number {
  return warmup ? Math.min(ema, (1 + k) / (10 + k)) : ema;
}

/** ema = decay ema + (1 - decay) theta for every trainable parameter. */
export function updateEma(ema: ParamSet, params: ParamSet, decay: number): void {
  tf.tidy(() => {
    for (const [name, v] of params.vars) {
      if (!v.trainable) continue;
      const e = ema.get(name);
      e.assign(tf.add(tf.mul(e, decay), tf.mul(v, 1 - decay)));
    }
  });
}

/** The optimizer a config names: AdamW, or RAdam with torch's L2 weight decay on every parameter. */
export function lctOptimizer(net: ConsistencyNet, t: Pick<LctTrainConfig, 'optimizer' | 'weight_decay' | 'eps'>): AdamW {
  return t.optimizer === 'radam'
    ? new RAdam(net.params, { eps: t.eps, weightDecay: t.weight_decay, decay: () => true })
    : new AdamW(net.params, { eps: t.eps, weightDecay: t.weight_decay });
}

/**
 * The `lct` job's training step, as a function of the step index k: draws a batch (drawLctBatch)
 * of batch × grad_accum rows from N(k) (OT couples the whole step), takes one optimizer step on
 * the consistency (+ diffusion) loss (lctLoss), computed `batch` rows at a time, and updates the
 * EMA weights. Also used by `normlab bench`.
 */
export function createLctTrainStep(inp: LctStepInputs): (step: number) => LctStepResult {
  const { net, ema, opt, latents, rng } = inp;
  const t = inp.train;
  const imp = inp.improvements;
  const D = net.latentDim;
  const curriculum = { s0: t.s0, s1: t.s1, total: t.steps };
  const grid = gridCache(t.p_mean, t.p_std);
  const schedule = { kind: t.schedule, lr: t.lr, warmup: t.warmup, minLr: t.lr * 0.1, total: t.steps };
  const B = t.batch * t.grad_accum; // rows per step, t.batch at a time

  return (step: number): LctStepResult => {
    const N = curriculumN(step, curriculum);
    const c = scalingC(N, D, imp.adaptive_c, curriculumStage(step, curriculum), t.adaptive_c_rule);
    const batch = drawLctBatch(rng, latents, inp.n, D, B, grid(N), imp);
    const lr = learningRate(schedule, step);
    // Each micro-batch adds its rows' share of the batch-mean losses (lctLoss on rows), so the
    // shares add up to the whole step's loss and gradient.
    const ctParts: tf.Scalar[] = [];
    const diffParts: tf.Scalar[] = [];
    const { value, grads } = accumulate(
      microBatches(B, t.batch),
      (mb) => {
        // Stop-gradient target: the student's own weights at the smaller sigma, outside the tape.
        const target = lctTarget(net, batch, mb);
        const r = namedGrads(net.params, () => {
          const l = lctLoss(net, batch, target, c, imp.cauchy, t.diffusion_weight, mb);
          ctParts.push(tf.keep(tf.clone(l.ct))); // copies: the returned loss may be ct itself
          diffParts.push(tf.keep(tf.clone(l.diff)));
          return l.total;
        });
        target.dispose();
        return r;
      },
      () => 1,
    );
    const parts = { ct: tf.addN(ctParts) as tf.Scalar, diff: tf.addN(diffParts) as tf.Scalar };
    tf.dispose([...ctParts, ...diffParts]);
    const clipped = clipGlobalNorm(grads, t.clip);
    opt.step(clipped.grads, lr);
    for (const g of clipped.grads.values()) g.dispose();
    // EMA of the sampling weights (with the warmup, a short run's EMA is not the initial weights).
    updateEma(ema, net.params, emaDecay(step, t.ema, t.ema_warmup));
    return { loss: value, parts, N, c, lr, gradNorm: clipped.norm };
  };
}

/** What an lct checkpoint records beyond weights and optimizer (../../train/checkpoint.ts). */
interface LctResumeState extends Record<string, unknown> {
  rng: number;
  quick: Array<{ step: number; fid1: number }>;
  loss_curve: { x: number[]; y: number[] };
  autoencoder: string;
  classifier: string;
  /** Seconds of training up to the checkpoint (absent in checkpoints of older engines). */
  train_seconds?: number;
}

export async function runLct(ctx: JobContext, cfg: LctConfig): Promise<Record<string, unknown>> {
  const t = cfg.train;
  const imp = cfg.improvements;
  checkCurriculum({ s0: t.s0, s1: t.s1, total: t.steps });
  twoStepSigma(cfg.eval.two_step_index);
  if (!cfg.autoencoder) {
    // The autoencoder trained below has the default latent grid: check the network takes it first.
    checkConsistencyNetConfig({ ...cfg.network, latent_shape: autoencoderTrainSchema.parse({ method: 'autoencoder-train' }).latent_shape, norm: 'ln' });
  }
  // A resumed run takes the autoencoder and classifier its checkpoint names (no child run again).
  const resumed = ctx.resumeFrom ? await readTrainerState<LctResumeState>(ctx.resumeFrom.dir) : null;
  const aeDir =
    resumed?.autoencoder ??
    cfg.autoencoder ??
    String((await ctx.runChild({ method: 'autoencoder-train', seed: cfg.seed }, 'lct autoencoder')).summary.model_dir);
  const { ae, data } = await loadAutoencoder(aeDir);
  let clf: ImageClassifier;
  let clfDir: string;
  try {
    clfDir =
      resumed?.classifier ??
      cfg.classifier ??
      String((await ctx.runChild({ method: 'image-classifier', seed: cfg.seed, data }, 'lct classifier')).summary.model_dir);
    clf = await ImageClassifier.load(clfDir);
  } catch (err) {
    ae.dispose();
    throw err;
  }
  const netCfg: ConsistencyNetConfig = { ...cfg.network, latent_shape: ae.config.latent_shape, norm: imp.nsln ? 'nsln' : 'ln' };
  let net: ConsistencyNet | null = null;
  let ema: ParamSet | null = null;
  let opt: AdamW | null = null;
  try {
    if (clf.config.image_shape.join('x') !== ae.config.image_shape.join('x')) {
      fail(
        'config',
        `classifier images are ${clf.config.image_shape.join('x')}, the autoencoder's are ${ae.config.image_shape.join('x')}: train both on the same data`,
      );
    }
    net = new ConsistencyNet(netCfg, cfg.seed); // checks the latent shape fits the network
    ema = net.cloneParams();
    opt = lctOptimizer(net, t);
    const shape = ae.config.image_shape;
    const D = net.latentDim;

    // Data: standardized latents of the training images; reference features for FID.
    const train = await loadTrainImages(data, cfg.seed);
    const ref = await loadReferenceImages(data, cfg.seed);
    const zRaw = await encodeAll(ae, train.images, train.n);
    const zT = tf.tidy(() => ae.standardize(tf.tensor2d(zRaw, [train.n, D])));
    const latents = (await zT.data()) as Float32Array;
    zT.dispose();
    const refEmb = await clf.embed(ref.images, ref.n);
    const refHist = new Array<number>(clf.config.classes).fill(0);
    for (const p of refEmb.preds) refHist[p] += 1 / ref.n;
    const F = clf.config.hidden[1];
    const kit: EvalKit = { ae, clf, ref: fidReference(gaussianStats(refEmb.feats, ref.n, F)), classes: clf.config.classes };
    // Floors at the samples' n: FID of n training images and of their autoencoder reconstructions
    // against the reference set (MNIST: the test split, disjoint from them; a folder: its own images).
    const nFloor = Math.min(train.n, cfg.eval.samples);
    const floorImages = train.images.subarray(0, nFloor * train.height * train.width * train.channels);
    const recon = await decodeAll(ae, await encodeAll(ae, floorImages, nFloor), nFloor);
    const fidRecon = fidAgainst(kit.ref, gaussianStats((await clf.embed(recon, nFloor)).feats, nFloor, F));
    const fidTrain = fidAgainst(kit.ref, gaussianStats((await clf.embed(floorImages, nFloor)).feats, nFloor, F));
    ctx.log(
      `FID floors (${clf.config.data_name}-classifier features, ${nFloor} training images vs ${ref.n} reference): training images ${fidTrain.toFixed(3)}, autoencoder reconstructions ${fidRecon.toFixed(3)}`,
    );

    const rng = new Rng(cfg.seed * 2654435761 + 17);
    const trainStep = createLctTrainStep({ net, ema, opt, latents, n: train.n, improvements: imp, train: t, rng });
    let quick: Array<{ step: number; fid1: number }> = [];
    let lossCurve: { x: number[]; y: number[] } = { x: [], y: [] };
    let first = 0;
    let secondsBefore = 0; // training seconds of the steps before this process
    if (ctx.resumeFrom) {
      const state = await restoreTrainingCheckpoint<LctResumeState>(ctx.resumeFrom.dir, { optimizer: opt, groups: { params: net.params, ema } });
      rng.restore(state.rng);
      ({ step: first, quick, loss_curve: lossCurve } = state);
      secondsBefore = state.train_seconds ?? 0;
      ctx.log(`resumed from step ${first}`);
    }
    const modelConfig = { normlab_model: 'consistency-net', ...netCfg, improvements: imp, ema: t.ema };
    const started = Date.now();
    const trainedSeconds = () => secondsBefore + (Date.now() - started) / 1000;

    let lastLoss = NaN; // of the last logged step
    for (let step = first; step < t.steps; step++) {
      const out = trainStep(step);
      const done = step + 1;
      // The step's results are read (a device sync) only on the steps that log them.
      if (done % t.log_every !== 0 && done !== t.steps) disposeLctStep(out);
      else {
        const { loss, parts, N, c, lr, gradNorm } = await readLctStep(out);
        lastLoss = loss;
        if (!Number.isFinite(loss)) fail('internal', `lct training diverged by step ${done} (loss ${loss}); lower train.lr`);
        ctx.metric({
          step: done,
          loss,
          ct_loss: parts.ct,
          diff_loss: parts.diff,
          N,
          c,
          lr,
          grad_norm: gradNorm,
          steps_per_s: (done - first) / ((Date.now() - started) / 1000),
        });
        lossCurve.x.push(done);
        lossCurve.y.push(parts.ct);
      }
      if (done % t.sample_every === 0 && done < t.steps) {
        const { ev, images } = await evaluate(kit, net, ema, cfg.eval.quick_samples, 1, 12345, cfg.eval.two_step_index);
        quick.push({ step: done, fid1: ev.fid });
        ctx.metric({ step: done, quick_fid_1step: ev.fid });
        await saveGrid(
          path.join(ctx.run.artifactsDir, `samples-step${String(done).padStart(6, '0')}-1step.png`),
          images,
          Math.min(cfg.eval.grid, cfg.eval.quick_samples),
          shape,
        );
      }
      ctx.progress({ step: done, total: t.steps, phase: 'lct', message: lctProgressMessage(out.N, lastLoss) });
      await endOfStep(
        ctx,
        isCheckpointStep(done, t.checkpoint_every, t.steps),
        () => {
          // The model folder holds the EMA (sampling) weights; params + ema + optimizer resume training.
          const state: LctResumeState = {
            rng: rng.state(),
            quick,
            loss_curve: lossCurve,
            autoencoder: aeDir,
            classifier: clfDir,
            train_seconds: trainedSeconds(),
          };
          return saveTrainingCheckpoint(ctx.run, done, {
            model: async (dir) => saveModelDir(dir, modelConfig, await net!.toTensors(ema!)),
            optimizer: opt!,
            groups: { params: net!.params, ema: ema! },
            state,
          });
        },
        done === t.steps,
      );
    }
    const trainSeconds = trainedSeconds();

    // Final evaluation with the EMA weights: 1 and 2 steps, fixed sampling seeds.
    const one = await evaluate(kit, net, ema, cfg.eval.samples, 1, FINAL_SAMPLE_SEED, cfg.eval.two_step_index);
    const two = await evaluate(kit, net, ema, cfg.eval.samples, 2, FINAL_SAMPLE_SEED, cfg.eval.two_step_index);
    // Bootstrap SEs over the generated samples; the features stay in the artifacts for resampling.
    const boot1 = fidBootstrap(one.ev.feats, cfg.eval.samples, F, kit.ref, cfg.eval.bootstrap, FID_BOOTSTRAP_SEED);
    await ctx.tick();
    const boot2 = fidBootstrap(two.ev.feats, cfg.eval.samples, F, kit.ref, cfg.eval.bootstrap, FID_BOOTSTRAP_SEED);
    for (const [file, feats] of [
      ['features-1step.f32', one.ev.feats],
      ['features-2step.f32', two.ev.feats],
      ['features-reference.f32', refEmb.feats],
    ] as const)
      await writeFileAtomic(path.join(ctx.run.artifactsDir, file), new Uint8Array(feats.buffer, feats.byteOffset, feats.byteLength));
    const bootInterval = `normal bootstrap interval (FID ± 1.96 SE), ${cfg.eval.bootstrap} resamples of the ${cfg.eval.samples} generated samples, reference fixed`;
    const nGrid = Math.min(cfg.eval.grid, cfg.eval.samples);
    await saveGrid(path.join(ctx.run.artifactsDir, 'samples-1step.png'), one.images, nGrid, shape);
    await saveGrid(path.join(ctx.run.artifactsDir, 'samples-2step.png'), two.images, nGrid, shape);
    const fidLabel = `FID (${clf.config.data_name}-classifier features)`;
    ctx.metric({ step: t.steps, fid_1step: one.ev.fid, fid_2step: two.ev.fid });
    if (lossCurve.x.length > 1) {
      await writePlot(
        path.join(ctx.run.artifactsDir, 'ct-loss.png'),
        await linePlot({
          title: 'Consistency loss (weighted, per step)',
          xLabel: 'step',
          yLabel: imp.cauchy ? 'Cauchy loss × λ' : 'Pseudo-Huber loss × λ',
          series: [{ name: 'L_CT', ...lossCurve }],
          logY: true,
        }),
      );
    }
    const classNames = clf.config.class_names;
    await writePlot(
      path.join(ctx.run.artifactsDir, 'class-histogram.png'),
      await barPlot({
        title: 'Classifier-predicted classes of generated samples',
        xLabel: 'class',
        yLabel: 'fraction of samples',
        groups: [
          { name: '1 step', values: one.ev.classHistogram.map((v, i) => ({ label: classNames[i] ?? String(i), value: v })) },
          { name: '2 steps', values: two.ev.classHistogram.map((v, i) => ({ label: classNames[i] ?? String(i), value: v })) },
          { name: 'reference images', values: refHist.map((v, i) => ({ label: classNames[i] ?? String(i), value: v })) },
        ],
      }),
    );
    const summary: Record<string, unknown> = {
      key_result: {
        label: `${fidLabel}, 1 step`,
        value: one.ev.fid,
        ci95: [one.ev.fid - Z95 * boot1.se, one.ev.fid + Z95 * boot1.se],
        interval: bootInterval,
      },
      fid_label: fidLabel,
      fid_1step: one.ev.fid,
      fid_2step: two.ev.fid,
      fid_1step_se: boot1.se,
      fid_2step_se: boot2.se,
      fid_bootstrap: {
        resamples: cfg.eval.bootstrap,
        seed: FID_BOOTSTRAP_SEED,
        sample_seed: FINAL_SAMPLE_SEED,
        replicates_1step: boot1.replicates,
        replicates_2step: boot2.replicates,
      },
      features: { width: F, files: ['features-1step.f32', 'features-2step.f32', 'features-reference.f32'], dtype: 'float32 little-endian, rows × width' },
      floor_images: nFloor,
      floor_disjoint_from_reference: data.source === 'mnist',
      fid_floor_training_images: fidTrain,
      fid_floor_autoencoder: fidRecon,
      class_histogram_1step: one.ev.classHistogram,
      class_histogram_2step: two.ev.classHistogram,
      class_histogram_reference: refHist,
      class_names: classNames,
      quick_fid_1step: quick,
      improvements: imp,
      network: netCfg,
      params: net.params.count(),
      steps: t.steps,
      train_seconds: Math.round(trainSeconds),
      samples: cfg.eval.samples,
      ref_images: ref.n,
      two_step_sigma: twoStepSigma(cfg.eval.two_step_index),
    };
    await writeJsonAtomic(path.join(ctx.run.artifactsDir, 'eval.json'), summary);
    return summary;
  } finally {
    opt?.dispose();
    ema?.dispose();
    net?.dispose();
    ae.dispose();
    clf.dispose();
  }
}

registerJobKind({
  name: 'lct',
  title: 'Latent consistency training',
  description: 'iCT in an autoencoder latent space with the five improvements of Dao et al. 2025 as switches; FID of 1- and 2-step samples.',
  schema: lctSchema,
  resumable: true,
  run: runLct,
});
