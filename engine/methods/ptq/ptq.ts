/**
 * Post-training quantization of a ViT, simulated (fake quantization in float32), following
 * RepQ-ViT's pipeline (public code, zkkli/RepQ-ViT) with DopQ-ViT's two changes as options:
 *
 * 1. Weights: every linear (patch embedding and head included) per output channel, asymmetric
 *    uniform at `wBits`, clipping by least L2 error among percentiles.
 * 2. Calibration pass on N images: each activation quantizer is calibrated the first time its site
 *    is reached, on activations that already went through the quantizers upstream (RepQ-ViT's
 *    "initial quantization" pass). Sites: the input of every linear (the patch embedding's at
 *    `patchBits`, 8 like RepQ-ViT's conv input), q, k, v (uniform per tensor), the post-softmax
 *    probabilities (uniform, log-√2 or TanQ (NormLab's reconstruction), log-√2 and TanQ with the
 *    same budget of calibration candidates), post-GELU (uniform per tensor). Post-LayerNorm
 *    activations (inputs of qkv and fc1) are calibrated per channel when a reparameterization is
 *    chosen, per tensor otherwise.
 * 3. Reparameterization (./reparam.ts): per-channel post-LN scales → one layer scale (mean,
 *    median or MAD rule), folded into the LN affine and the next linear; that linear's weight
 *    quantizer is recalibrated on the folded weight; the site becomes a per-tensor quantizer.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import type { ImageSet } from '../../data/images.js';
import { linearNames, type ViT, type ViTHooks } from '../../models/vit.js';
import {
  calibrateSoftmax,
  calibrateUniform,
  calibrateUniformPerChannel,
  checkBits,
  DEFAULT_SOFTMAX_CANDIDATES,
  fakeQuantSoftmax,
  fakeQuantUniform,
  quantizeWeight,
  type QuantizedWeight,
  type SoftmaxParams,
  type SoftmaxQuantizer,
  type UniformParams,
} from './quantizers.js';
import { foldLnReparam, targetScale, type LnTarget } from './reparam.js';

export type LnReparam = 'none' | LnTarget;

export interface PtqOptions {
  wBits: number;
  aBits: number;
  softmax: SoftmaxQuantizer;
  lnReparam: LnReparam;
  /** Bits of the patch embedding's input (the pixels); 8 like RepQ-ViT. */
  patchBits?: number;
  /** Outlier threshold of the `mad` rule, in robust standard deviations. */
  madK?: number;
  /** Calibration candidates of the log-√2 and TanQ post-softmax quantizers (the same budget for both). */
  softmaxCandidates?: number;
}

/** Per-tensor uniform, per-channel uniform (post-LN before reparameterization), or post-softmax. */
export type ActParams = UniformParams | SoftmaxParams | { kind: 'uniform-per-channel'; bits: number; scale: number[]; zero: number[] };

export interface LnCalibration {
  /** The LayerNorm folded into `linear`. */
  norm: string;
  linear: string;
  scales: number[];
  zeros: number[];
  target: { scale: number; zero: number } | null;
}

const isPostLn = (site: string) => site.endsWith('.attn.qkv.in') || site.endsWith('.mlp.fc1.in');

/** A quantized ViT: a (folded) model plus the quantizers of every weight and activation site. */
export class QuantizedViT {
  readonly weightTensors = new Map<string, tf.Tensor>();
  private readonly actTensors = new Map<string, { scale: tf.Tensor; zero: tf.Tensor }>();

  constructor(
    /** The model the quantizers apply to (LN reparameterization folded in); owned. */
    readonly model: ViT,
    readonly options: Required<PtqOptions>,
    readonly weights: Map<string, QuantizedWeight>,
    readonly acts: Map<string, ActParams>,
    readonly lnCalibrations: LnCalibration[],
  ) {
    for (const [name, q] of weights) this.weightTensors.set(name, tf.tensor2d(q.dequant, q.shape));
  }

  setWeight(name: string, q: QuantizedWeight): void {
    this.weights.set(name, q);
    this.weightTensors.get(name)?.dispose();
    this.weightTensors.set(name, tf.tensor2d(q.dequant, q.shape));
  }

  /** Fake-quantize an activation with its calibrated quantizer (identity for unknown sites). */
  quantizeAct(site: string, x: tf.Tensor): tf.Tensor {
    const p = this.acts.get(site);
    if (!p) return x;
    if (p.kind === 'uniform-per-channel') {
      let t = this.actTensors.get(site);
      if (!t) {
        t = { scale: tf.keep(tf.tensor1d(p.scale)), zero: tf.keep(tf.tensor1d(p.zero)) };
        this.actTensors.set(site, t);
      }
      return fakeQuantUniform(x, t.scale, t.zero, p.bits);
    }
    return fakeQuantSoftmax(x, p);
  }

  hooks(): ViTHooks {
    return {
      weight: (name, w) => this.weightTensors.get(name.replace(/\.weight$/, '')) ?? w,
      act: (site, x) => this.quantizeAct(site, x),
    };
  }

  dispose(): void {
    for (const t of this.weightTensors.values()) t.dispose();
    for (const t of this.actTensors.values()) {
      t.scale.dispose();
      t.zero.dispose();
    }
    this.model.dispose();
  }
}

async function readWeight(model: ViT, name: string): Promise<{ data: Float32Array; shape: [number, number] }> {
  const v = model.params.get(`${name}.weight`);
  return { data: (await v.data()) as Float32Array, shape: v.shape as [number, number] };
}

async function readVar(model: ViT, name: string): Promise<Float32Array> {
  return (await model.params.get(name).data()) as Float32Array;
}

/**
 * Quantize `model` (left untouched) with `calib` images (B, H, W, C): weights, calibration pass,
 * post-LN reparameterization. Returns the quantized model (caller disposes it).
 */
export async function quantizeViT(model: ViT, calib: tf.Tensor4D, opts: PtqOptions): Promise<QuantizedViT> {
  if (calib.shape[0] === 0) fail('config', 'PTQ needs at least one calibration image, got 0');
  const o: Required<PtqOptions> = { patchBits: 8, madK: 3, softmaxCandidates: DEFAULT_SOFTMAX_CANDIDATES, ...opts };
  checkBits(o.wBits, 'weight');
  checkBits(o.aBits, 'activation');
  checkBits(o.patchBits, 'patch-embedding input');
  const folded = model.clone();
  const weights = new Map<string, QuantizedWeight>();
  for (const name of linearNames(model.config)) {
    const w = await readWeight(folded, name);
    weights.set(name, quantizeWeight(w.data, w.shape, o.wBits));
  }
  const acts = new Map<string, ActParams>();
  const q = new QuantizedViT(folded, o, weights, acts, []);

  // Calibration pass: calibrate each site on first sight (an asynchronous read of its values),
  // then quantize with it. The forward pauses at each site (ViT.forwardSites), so it runs in a
  // scope of its own rather than a tidy; the scope frees everything it made.
  tf.engine().startScope();
  try {
    const steps = folded.forwardSites(calib, { weight: q.hooks().weight });
    let r = steps.next();
    while (!r.done) {
      const { site, x } = r.value;
      if (!acts.has(site)) {
        const data = (await x.data()) as Float32Array;
        if (site.endsWith('.attn.probs')) acts.set(site, calibrateSoftmax(o.softmax, data, o.aBits, o.softmaxCandidates));
        else if (site === 'patch_embed.proj.in') acts.set(site, calibrateUniform(data, o.patchBits));
        else if (isPostLn(site) && o.lnReparam !== 'none') {
          const C = x.shape[x.shape.length - 1];
          const per = calibrateUniformPerChannel(data, C, o.aBits);
          acts.set(site, { kind: 'uniform-per-channel', bits: o.aBits, scale: per.map((p) => p.scale), zero: per.map((p) => p.zero) });
        } else acts.set(site, calibrateUniform(data, o.aBits));
      }
      r = steps.next(q.quantizeAct(site, x));
    }
  } finally {
    tf.engine().endScope();
  }

  // Reparameterization of every post-LN site, folded into the LN and the next linear.
  for (let i = 0; i < model.config.depth; i++) {
    for (const [norm, linear, site] of [
      [`blocks.${i}.norm1`, `blocks.${i}.attn.qkv`, `blocks.${i}.attn.qkv.in`],
      [`blocks.${i}.norm2`, `blocks.${i}.mlp.fc1`, `blocks.${i}.mlp.fc1.in`],
    ] as const) {
      const p = acts.get(site);
      if (!p || p.kind !== 'uniform-per-channel') {
        if (p && p.kind === 'uniform') q.lnCalibrations.push({ norm, linear, scales: [p.scale], zeros: [p.zero], target: null });
        continue;
      }
      const target = targetScale(p.scale, p.zero, o.lnReparam as LnTarget, o.madK);
      const w = await readWeight(folded, linear);
      const hasBias = folded.params.vars.has(`${linear}.bias`);
      const f = foldLnReparam(
        { gamma: await readVar(folded, `${norm}.weight`), beta: await readVar(folded, `${norm}.bias`) },
        { weight: w.data, bias: hasBias ? await readVar(folded, `${linear}.bias`) : null, out: w.shape[1] },
        p.scale,
        p.zero,
        target,
      );
      const set = (name: string, data: Float32Array, shape: number[]) => {
        const t = tf.tensor(data, shape);
        if (folded.params.has(name)) folded.params.assign(name, t);
        else folded.params.add(name, tf.clone(t));
        t.dispose();
      };
      set(`${norm}.weight`, f.gamma, [f.gamma.length]);
      set(`${norm}.bias`, f.beta, [f.beta.length]);
      set(`${linear}.weight`, f.weight, w.shape);
      set(`${linear}.bias`, f.bias, [f.bias.length]);
      q.setWeight(linear, quantizeWeight(f.weight, w.shape, o.wBits)); // recalibrate the folded weight
      q.lnCalibrations.push({ norm, linear, scales: p.scale, zeros: p.zero, target });
      acts.set(site, { kind: 'uniform', bits: o.aBits, scale: target.scale, zero: target.zero });
    }
  }
  return q;
}

/** Images (n, H, W, C) as a tensor, with the model's input normalization (config mean/std). */
export function imageBatch(
  images: Float32Array,
  start: number,
  count: number,
  shape: [number, number, number],
  norm?: { mean: number[]; std: number[] },
): tf.Tensor4D {
  const [H, W, C] = shape;
  const px = H * W * C;
  const x = tf.tensor4d(images.subarray(start * px, (start + count) * px), [count, H, W, C]);
  if (!norm) return x;
  return tf.tidy(() => tf.div(tf.sub(x, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std))) as tf.Tensor4D;
}

/** The part of an image set that top-1 evaluation reads. */
export type LabelledImages = Pick<ImageSet, 'images' | 'labels' | 'n' | 'height' | 'width' | 'channels'>;

/** Top-1 accuracy of model (+ hooks) on a labelled image set, in batches. */
export async function top1(model: ViT, data: LabelledImages, hooks?: ViTHooks, batch = 250, tick?: () => Promise<void>): Promise<number> {
  const correct = await correctMask(model, data, hooks, batch, tick);
  return correct.reduce((s, c) => s + c, 0) / data.n;
}

/** 1 where the model's top-1 class is the label, per image: the units of paired accuracy comparisons. */
export async function correctMask(model: ViT, data: LabelledImages, hooks?: ViTHooks, batch = 250, tick?: () => Promise<void>): Promise<Uint8Array> {
  if (data.n === 0) fail('data', 'no evaluation images');
  const correct = new Uint8Array(data.n);
  const norm = inputNorm(model);
  for (let s = 0; s < data.n; s += batch) {
    const B = Math.min(batch, data.n - s);
    const pred = tf.tidy(() => {
      const x = imageBatch(data.images, s, B, [data.height, data.width, data.channels], norm);
      return tf.argMax(model.forward(x, hooks), -1);
    });
    const p = (await pred.data()) as Int32Array;
    pred.dispose();
    for (let i = 0; i < B; i++) correct[s + i] = +(p[i] === data.labels[s + i]);
    if (tick) await tick();
  }
  return correct;
}

/** A 0/1 mask as a string of '0' and '1' (one character per image, for summaries). */
export const maskText = (m: Uint8Array): string => m.join('');
/** The mask back from maskText. */
export const maskFromText = (t: string): Uint8Array => Uint8Array.from(t, (c) => +(c === '1'));

/** The model's input normalization from its config (`mean` / `std` like timm's pretrained_cfg), if any. */
export function inputNorm(model: ViT): { mean: number[]; std: number[] } | undefined {
  const c = model.config as unknown as { mean?: number[]; std?: number[] };
  if (Array.isArray(c.mean) && Array.isArray(c.std)) return { mean: c.mean, std: c.std };
  return undefined;
}

/** Capture the values at some activation sites (FP model) on a batch. */
export async function captureActs(model: ViT, images: tf.Tensor4D, sites: string[]): Promise<Map<string, Float32Array>> {
  const want = new Set(sites);
  const kept = new Map<string, tf.Tensor>();
  tf.tidy(() => {
    model.forward(images, {
      act: (site, x) => {
        if (want.has(site)) kept.set(site, tf.keep(x));
        return x;
      },
    });
  });
  const out = new Map<string, Float32Array>();
  for (const [site, x] of kept) out.set(site, (await x.data()) as Float32Array);
  tf.dispose([...kept.values()]);
  return out;
}

/** Every linear layer of the model has a quantized weight (sanity for exporters). */
export function checkComplete(q: QuantizedViT): void {
  for (const name of linearNames(q.model.config)) if (!q.weights.has(name)) fail('internal', `no quantized weight for ${name}`);
}
