/**
 * The quantizers of post-training quantization for ViTs, each as a host-side function (used to
 * calibrate, to export and in tests) and as a tfjs fake-quantize op (used in the forward pass).
 * Both follow the same formulas, so the simulation and the exported model's dequantized
 * reference agree.
 *
 * - Uniform, asymmetric (RepQ-ViT's UniformQuantizer): `q = clamp(round(x / s) + z, 0, 2^b − 1)`,
 *   `x̂ = (q − z) s` with `s = (max − min) / (2^b − 1)`, `z = round(−min / s)`; the clipping range
 *   is chosen among percentiles of x by least squared error (per output channel for weights, per
 *   tensor for activations, per channel for post-LayerNorm activations before reparameterization).
 * - log-√2 (RepQ-ViT, Li et al. 2023, eq. 8): `q = round(−2 log2(x / Δ))`; codes `0..2^b − 1`;
 *   `x̂ = Δ 2^(−q/2)` (= `2^(−⌈q/2⌉)·(√2 if q odd)·Δ`); values whose code would be ≥ 2^b
 *   become exactly 0 (as in RepQ-ViT's code, so the grid is 2^b levels plus zero). Δ is chosen
 *   among percentiles of x by least squared error.
 * - TanQ (DopQ-ViT, Yang et al. 2024). The paper's exact formula could not be read here (see
 *   docs/methods.md, "DopQ-ViT"); the reading implemented: a log quantizer in the tangent domain,
 *   `u = log2 tan(πx/2)`, `q = round((u_top − u) / k)`, codes `0..2^b − 1` (underflow to 0
 *   like log-√2), `x̂ = (2/π) atan(2^(u_top − qk))`. Near 0, tan(πx/2) ≈ πx/2, so the grid is
 *   a log grid like log2/log-√2 (resolution for the dense small values of the power law); near 1,
 *   u ≈ −log2(π(1 − x)/2), so the grid is *also* logarithmic in the distance to 1: levels pile up
 *   near 1, the "values near 1" TanQ is built to keep. The top level u_top and the step k are
 *   chosen on the calibration data by least squared error over a small grid.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';

export const MIN_BITS = 2;
export const MAX_BITS = 16;

/** Percentiles tried for clipping ranges (1 = min/max), as in RepQ-ViT's search plus min/max. */
export const CLIP_PERCENTILES = [1, 0.99999, 0.9999, 0.999];

export function checkBits(bits: number, what: string): number {
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    fail('config', `${what} bit width must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${bits}`);
  }
  return bits;
}

// ---------------------------------------------------------------------------------------------
// uniform (asymmetric)

export interface UniformParams {
  kind: 'uniform';
  bits: number;
  scale: number;
  zero: number;
}

/** Scale and zero point covering [min, max] with 2^b levels (RepQ-ViT's formula). */
export function uniformFromRange(min: number, max: number, bits: number): UniformParams {
  const qmax = 2 ** bits - 1;
  let scale = (max - min) / qmax;
  if (!(scale > 1e-12)) scale = Math.max(Math.abs(max), Math.abs(min), 1e-8) / qmax; // constant input
  return { kind: 'uniform', bits, scale: Math.fround(scale), zero: Math.round(-min / scale) };
}

/** q = clamp(round(x / s) + z, 0, 2^b − 1) */
export function uniformCode(x: number, p: UniformParams): number {
  const q = Math.round(Math.fround(x / p.scale)) + p.zero;
  return Math.min(2 ** p.bits - 1, Math.max(0, q));
}

export function uniformDequant(q: number, p: UniformParams): number {
  return Math.fround((q - p.zero) * p.scale);
}

export function uniformLevels(p: UniformParams): number[] {
  const out: number[] = [];
  for (let q = 0; q < 2 ** p.bits; q++) out.push(uniformDequant(q, p));
  return out;
}

/** Rearrange a so that a[k] is the k-th smallest, smaller ones before it, larger after (quickselect). */
function selectInPlace(a: Float32Array | Float64Array, k: number): void {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three as the pivot
    if (a[mid] < a[lo]) [a[mid], a[lo]] = [a[lo], a[mid]];
    if (a[hi] < a[lo]) [a[hi], a[lo]] = [a[lo], a[hi]];
    if (a[hi] < a[mid]) [a[hi], a[mid]] = [a[mid], a[hi]];
    const pivot = a[mid];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        [a[i], a[j]] = [a[j], a[i]];
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/**
 * The order statistics a clipping search reads: the quantiles p with p or 1 - p at least
 * `minTail` away from the median lie among the ~minTail·n smallest or largest values, so only
 * those tails are sorted (quickselect finds them): O(n) instead of a full sort of every
 * activation tensor. `quantile(p)` is the p-quantile of all values with linear interpolation,
 * like torch.quantile.
 */
class SortedTails {
  private readonly n: number;
  private readonly k: number;
  private readonly low: Float32Array | Float64Array;
  private readonly high: Float32Array | Float64Array;

  constructor(values: ArrayLike<number>, minTail: number) {
    // float32 data stays float32: the same values, half the memory
    const copy = values instanceof Float32Array ? Float32Array.from(values) : Float64Array.from(values);
    this.n = copy.length;
    this.k = Math.min(this.n, Math.ceil(minTail * (this.n - 1)) + 2);
    if (2 * this.k >= this.n || copy.some(Number.isNaN)) {
      copy.sort();
      this.k = this.n;
      this.low = this.high = copy;
      return;
    }
    selectInPlace(copy, this.k - 1);
    this.low = copy.slice(0, this.k).sort();
    selectInPlace(copy, this.n - this.k);
    this.high = copy.slice(this.n - this.k).sort();
  }

  /** The i-th smallest value (i within a tail). */
  private at(i: number): number {
    if (i < this.k) return this.low[i];
    if (i >= this.n - this.k) return this.high[i - (this.n - this.k)];
    throw new Error(`order statistic ${i} of ${this.n} is outside the sorted tails`);
  }

  quantile(p: number): number {
    const pos = p * (this.n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(this.n - 1, lo + 1);
    return this.at(lo) + (this.at(hi) - this.at(lo)) * (pos - lo);
  }
}

/** How far into each tail a clipping search over `percentiles` reads. */
const tailOf = (percentiles: number[]) => Math.max(...percentiles.map((p) => Math.min(p, 1 - p)));

/**
 * Sum of squared round-trip errors of `values` under p (uniformCode then uniformDequant, inlined:
 * this loop is most of a ViT's calibration time), or any number >= `bound` once the sum passes it.
 */
function uniformSqError(values: ArrayLike<number>, p: UniformParams, bound = Infinity): number {
  const { scale, zero } = p;
  const qmax = 2 ** p.bits - 1;
  let e = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    let q = Math.round(Math.fround(x / scale)) + zero;
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    const d = x - Math.fround((q - zero) * scale);
    e += d * d;
    if (e >= bound) return e;
  }
  return e;
}

/** Clipping range among CLIP_PERCENTILES with least squared round-trip error. */
export function calibrateUniform(values: ArrayLike<number>, bits: number, percentiles = CLIP_PERCENTILES): UniformParams {
  if (values.length === 0) fail('data', 'cannot calibrate a quantizer on zero values');
  const sorted = new SortedTails(values, tailOf(percentiles));
  let best: UniformParams | null = null;
  let bestErr = Infinity;
  for (const pct of percentiles) {
    const p = uniformFromRange(sorted.quantile(1 - pct), sorted.quantile(pct), bits);
    const err = uniformSqError(values, p, bestErr);
    if (err < bestErr) {
      bestErr = err;
      best = p;
    }
  }
  return best!;
}

/** Per-channel calibration of `values` laid out (rows, channels): one quantizer per channel. */
export function calibrateUniformPerChannel(values: Float32Array, channels: number, bits: number): UniformParams[] {
  const rows = values.length / channels;
  if (!Number.isInteger(rows) || rows === 0) fail('data', `cannot calibrate ${channels} channels on ${values.length} values`);
  const col = new Float32Array(rows);
  const out: UniformParams[] = [];
  for (let c = 0; c < channels; c++) {
    for (let r = 0; r < rows; r++) col[r] = values[r * channels + c];
    out.push(calibrateUniform(col, bits));
  }
  return out;
}

/** Fake-quantize with one scale/zero (scalars) or per-channel ones (vectors over the last axis). */
export function fakeQuantUniform(x: tf.Tensor, scale: tf.Tensor | number, zero: tf.Tensor | number, bits: number): tf.Tensor {
  return tf.tidy(() => {
    const q = tf.clipByValue(tf.add(tf.round(tf.div(x, scale)), zero), 0, 2 ** bits - 1);
    return tf.mul(tf.sub(q, zero), scale);
  });
}

// ---------------------------------------------------------------------------------------------
// log-√2 (RepQ-ViT)

export interface LogSqrt2Params {
  kind: 'log-sqrt2';
  bits: number;
  delta: number;
}

/** Code of x, or −1 for "exactly zero" (underflow). */
export function logSqrt2Code(x: number, p: LogSqrt2Params): number {
  if (!(x > 0)) return -1;
  const q = Math.round(-2 * Math.log2(x / p.delta));
  if (q >= 2 ** p.bits) return -1;
  return Math.max(0, q);
}

export function logSqrt2Dequant(q: number, p: LogSqrt2Params): number {
  return q < 0 ? 0 : p.delta * 2 ** (-q / 2);
}

export function logSqrt2Levels(p: LogSqrt2Params): number[] {
  const out = [0];
  for (let q = 2 ** p.bits - 1; q >= 0; q--) out.push(logSqrt2Dequant(q, p));
  return out;
}

/** Δ among percentiles of x (RepQ-ViT: 0.999 / 0.9999 / 0.99999; plus the max), least L2. */
export function calibrateLogSqrt2(values: ArrayLike<number>, bits: number): LogSqrt2Params {
  if (values.length === 0) fail('data', 'cannot calibrate a quantizer on zero values');
  const sorted = new SortedTails(values, tailOf(CLIP_PERCENTILES));
  let best: LogSqrt2Params | null = null;
  let bestErr = Infinity;
  for (const pct of CLIP_PERCENTILES) {
    const delta = Math.max(sorted.quantile(pct), 1e-8);
    const p: LogSqrt2Params = { kind: 'log-sqrt2', bits, delta: Math.fround(delta) };
    let err = 0;
    for (let i = 0; i < values.length; i++) {
      const d = values[i] - logSqrt2Dequant(logSqrt2Code(values[i], p), p);
      err += d * d;
    }
    if (err < bestErr) {
      bestErr = err;
      best = p;
    }
  }
  return best!;
}

export function fakeQuantLogSqrt2(x: tf.Tensor, p: LogSqrt2Params): tf.Tensor {
  return tf.tidy(() => {
    const n = 2 ** p.bits;
    const xInt = tf.round(tf.mul(tf.log(tf.div(tf.maximum(x, 1e-30), p.delta)), -2 / Math.LN2)); // −2 log2(x/Δ)
    const q = tf.clipByValue(xInt, 0, n - 1);
    const deq = tf.mul(tf.pow(2, tf.mul(q, -0.5)), p.delta);
    return tf.where(tf.logicalOr(tf.greaterEqual(xInt, n), tf.lessEqual(x, 0)), tf.zerosLike(x), deq);
  });
}

// ---------------------------------------------------------------------------------------------
// TanQ (DopQ-ViT, the reading documented at the top of this file)

export interface TanQParams {
  kind: 'tanq';
  bits: number;
  /** log2 tan(π x̂_0 / 2) of the top level x̂_0. */
  uTop: number;
  /** Step between codes in u = log2 tan(πx/2). */
  step: number;
}

/** u = log2 tan(πx/2) for x in (0, 1), computed as log2 sin − log2 cos so x → 1 stays finite. */
function tanDomain(x: number): number {
  const a = (Math.PI / 2) * Math.min(x, 1);
  return Math.log2(Math.sin(a)) - Math.log2(Math.max(Math.cos(a), 1e-30));
}

export function tanqCode(x: number, p: TanQParams): number {
  if (!(x > 0)) return -1;
  const q = Math.round((p.uTop - tanDomain(x)) / p.step);
  if (q >= 2 ** p.bits) return -1;
  return Math.max(0, q);
}

export function tanqDequant(q: number, p: TanQParams): number {
  return q < 0 ? 0 : (2 / Math.PI) * Math.atan(2 ** (p.uTop - q * p.step));
}

export function tanqLevels(p: TanQParams): number[] {
  const out = [0];
  for (let q = 2 ** p.bits - 1; q >= 0; q--) out.push(tanqDequant(q, p));
  return out;
}

/** Candidate steps and top levels of the TanQ calibration grid. */
export const TANQ_STEPS = [0.25, 0.375, 0.5, 0.75, 1, 1.5];
export const TANQ_TOPS = Array.from({ length: 25 }, (_, i) => -2 + 0.5 * i); // −2 … 10

/** (u_top, step) on the TANQ grid with least squared error on (a subsample of) the values. */
export function calibrateTanQ(values: ArrayLike<number>, bits: number, maxSamples = 65536): TanQParams {
  if (values.length === 0) fail('data', 'cannot calibrate a quantizer on zero values');
  const stride = Math.max(1, Math.floor(values.length / maxSamples));
  const xs: number[] = [];
  const us: number[] = [];
  for (let i = 0; i < values.length; i += stride) {
    xs.push(values[i]);
    us.push(values[i] > 0 ? tanDomain(values[i]) : -Infinity);
  }
  let best: TanQParams | null = null;
  let bestErr = Infinity;
  for (const step of TANQ_STEPS) {
    for (const uTop of TANQ_TOPS) {
      const p: TanQParams = { kind: 'tanq', bits, uTop, step };
      const lv = new Float64Array(2 ** bits);
      for (let q = 0; q < lv.length; q++) lv[q] = tanqDequant(q, p);
      let err = 0;
      for (let i = 0; i < xs.length; i++) {
        let xh = 0;
        if (us[i] > -Infinity) {
          const q = Math.round((uTop - us[i]) / step);
          xh = q >= lv.length ? 0 : lv[Math.max(0, q)];
        }
        const d = xs[i] - xh;
        err += d * d;
        if (err >= bestErr) break;
      }
      if (err < bestErr) {
        bestErr = err;
        best = p;
      }
    }
  }
  return best!;
}

export function fakeQuantTanQ(x: tf.Tensor, p: TanQParams): tf.Tensor {
  return tf.tidy(() => {
    const n = 2 ** p.bits;
    const a = tf.mul(tf.minimum(x, 1), Math.PI / 2);
    const u = tf.mul(tf.sub(tf.log(tf.maximum(tf.sin(a), 1e-30)), tf.log(tf.maximum(tf.cos(a), 1e-30))), 1 / Math.LN2); // log2 tan(πx/2)
    const qRaw = tf.round(tf.div(tf.sub(p.uTop, u), p.step));
    const q = tf.clipByValue(qRaw, 0, n - 1);
    const deq = tf.mul(tf.atan(tf.pow(2, tf.sub(p.uTop, tf.mul(q, p.step)))), 2 / Math.PI);
    return tf.where(tf.logicalOr(tf.greaterEqual(qRaw, n), tf.lessEqual(x, 0)), tf.zerosLike(x), deq);
  });
}

// ---------------------------------------------------------------------------------------------
// one interface over the post-softmax quantizers

export type SoftmaxQuantizer = 'uniform' | 'log-sqrt2' | 'tanq';
export type SoftmaxParams = UniformParams | LogSqrt2Params | TanQParams;

export function calibrateSoftmax(kind: SoftmaxQuantizer, values: ArrayLike<number>, bits: number): SoftmaxParams {
  if (kind === 'log-sqrt2') return calibrateLogSqrt2(values, bits);
  if (kind === 'tanq') return calibrateTanQ(values, bits);
  return calibrateUniform(values, bits);
}

export function fakeQuantSoftmax(x: tf.Tensor, p: SoftmaxParams): tf.Tensor {
  if (p.kind === 'log-sqrt2') return fakeQuantLogSqrt2(x, p);
  if (p.kind === 'tanq') return fakeQuantTanQ(x, p);
  return fakeQuantUniform(x, p.scale, p.zero, p.bits);
}

/** The values a post-softmax quantizer can represent, ascending (for plots and tests). */
export function softmaxLevels(p: SoftmaxParams): number[] {
  const lv = p.kind === 'log-sqrt2' ? logSqrt2Levels(p) : p.kind === 'tanq' ? tanqLevels(p) : uniformLevels(p);
  return [...new Set(lv)].sort((a, b) => a - b);
}

/** Host-side round trip of one value through a post-softmax quantizer. */
export function softmaxRoundTrip(x: number, p: SoftmaxParams): number {
  if (p.kind === 'log-sqrt2') return logSqrt2Dequant(logSqrt2Code(x, p), p);
  if (p.kind === 'tanq') return tanqDequant(tanqCode(x, p), p);
  return uniformDequant(uniformCode(x, p), p);
}

// ---------------------------------------------------------------------------------------------
// weights: per output channel

export interface QuantizedWeight {
  /** Codes laid out like the weight, (in, out), each in [0, 2^b − 1]. */
  codes: Int32Array;
  /** Per output channel. */
  scale: Float32Array;
  zero: Int32Array;
  bits: number;
  shape: [number, number];
  /** (codes − zero) · scale, laid out (in, out): what the simulation and the export both use. */
  dequant: Float32Array;
}

/**
 * Per-output-channel asymmetric uniform quantization of a linear weight W (in, out): each
 * column's clipping range is chosen among CLIP_PERCENTILES by least squared error.
 */
export function quantizeWeight(w: Float32Array, shape: [number, number], bits: number): QuantizedWeight {
  const nOut = shape[1];
  const params = calibrateUniformPerChannel(w, nOut, bits);
  return codesToWeight(w, shape, bits, params);
}

function codesToWeight(w: Float32Array, shape: [number, number], bits: number, params: UniformParams[]): QuantizedWeight {
  const [nIn, nOut] = shape;
  const codes = new Int32Array(nIn * nOut);
  const dequant = new Float32Array(nIn * nOut);
  for (let i = 0; i < nIn; i++) {
    for (let o = 0; o < nOut; o++) {
      const q = uniformCode(w[i * nOut + o], params[o]);
      codes[i * nOut + o] = q;
      dequant[i * nOut + o] = uniformDequant(q, params[o]);
    }
  }
  return {
    codes,
    scale: Float32Array.from(params.map((p) => p.scale)),
    zero: Int32Array.from(params.map((p) => p.zero)),
    bits,
    shape,
    dequant,
  };
}

/** Dequantize stored codes (in, out) with per-output-channel scale and zero point. */
export function dequantizeWeight(codes: ArrayLike<number>, scale: ArrayLike<number>, zero: ArrayLike<number>, shape: [number, number]): Float32Array {
  const [nIn, nOut] = shape;
  const out = new Float32Array(nIn * nOut);
  for (let i = 0; i < nIn; i++) for (let o = 0; o < nOut; o++) out[i * nOut + o] = Math.fround((codes[i * nOut + o] - zero[o]) * scale[o]);
  return out;
}
