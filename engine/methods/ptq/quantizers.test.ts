import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { Rng } from '../../data/rng.js';
import {
  calibrateLogSqrt2,
  calibrateTanQ,
  calibrateUniform,
  CLIP_PERCENTILES,
  checkBits,
  fakeQuantSoftmax,
  logSqrt2Code,
  logSqrt2Deltas,
  REPQ_PERCENTILES,
  softmaxCandidatesTried,
  logSqrt2Dequant,
  softmaxLevels,
  softmaxRoundTrip,
  tanqCode,
  tanqDequant,
  uniformCode,
  uniformDequant,
  uniformFromRange,
  type LogSqrt2Params,
  type TanQParams,
} from './quantizers.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Post-softmax-like values: softmax rows of 50 tokens with mixed temperatures (a power law). */
function softmaxSample(rows: number, seed = 1): Float32Array {
  const rng = new Rng(seed);
  const T = 50;
  const out = new Float32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const temp = 0.5 + 4 * rng.next();
    let m = -Infinity;
    const z = Array.from({ length: T }, () => rng.normal() * temp);
    for (const v of z) m = Math.max(m, v);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    for (let t = 0; t < T; t++) out[r * T + t] = e[t] / s;
  }
  return out;
}

describe('uniform quantizer', () => {
  it('picks the clipping range a search over the fully sorted values picks (tails found by selection)', () => {
    const rng = new Rng(9);
    const quantile = (sorted: Float64Array, p: number) => {
      const pos = p * (sorted.length - 1);
      const lo = Math.floor(pos);
      const hi = Math.min(sorted.length - 1, lo + 1);
      return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    };
    for (const n of [7, 1000, 250_001]) {
      // heavy tails and ties, as activations have
      const xs = Float32Array.from({ length: n }, (_, i) => (i % 13 === 0 ? 0 : rng.normal() ** 3 * 3));
      const sorted = Float64Array.from(xs).sort();
      let want = null;
      let wantErr = Infinity;
      for (const pct of CLIP_PERCENTILES) {
        const p = uniformFromRange(quantile(sorted, 1 - pct), quantile(sorted, pct), 4);
        let err = 0;
        for (const x of xs) err += (x - uniformDequant(uniformCode(x, p), p)) ** 2;
        if (err < wantErr) [want, wantErr] = [p, err];
      }
      expect(calibrateUniform(xs, 4)).toEqual(want);
      expect(calibrateUniform(Array.from(xs), 4)).toEqual(want);
    }
  });

  it('round-trips every value inside its range within half a step', () => {
    const rng = new Rng(3);
    const xs = Float32Array.from({ length: 4000 }, () => rng.normal() * 2 + 0.5);
    for (const bits of [3, 4, 8]) {
      const p = calibrateUniform(xs, bits);
      const lo = uniformDequant(0, p);
      const hi = uniformDequant(2 ** bits - 1, p);
      let inside = 0;
      for (const x of xs) {
        if (x < lo || x > hi) continue;
        inside++;
        expect(Math.abs(uniformDequant(uniformCode(x, p), p) - x)).toBeLessThanOrEqual(p.scale / 2 + 1e-6);
      }
      expect(inside).toBeGreaterThan(0.99 * xs.length);
    }
  });
});

describe('log-sqrt2 quantizer (RepQ-ViT)', () => {
  it('round-trips within half a step of its grid (the log2 domain, step 1/2) and keeps the formula', () => {
    const xs = softmaxSample(200);
    for (const bits of [3, 4, 6]) {
      const p = calibrateLogSqrt2(xs, bits);
      const smallest = logSqrt2Dequant(2 ** bits - 1, p);
      for (const x of xs) {
        const q = logSqrt2Code(x, p);
        if (x < smallest || x > p.delta) continue;
        expect(q).toBeGreaterThanOrEqual(0);
        // code domain: -2 log2(x/Δ) is within 0.5 of the code, i.e. log2 x within 1/4 of its level
        expect(Math.abs(-2 * Math.log2(x / p.delta) - q)).toBeLessThanOrEqual(0.5 + 1e-9);
        // dequantization is 2^(-ceil(q/2)) * (sqrt2 if odd) * Δ
        const formula = 2 ** -Math.ceil(q / 2) * (q % 2 ? Math.SQRT2 : 1) * p.delta;
        expect(logSqrt2Dequant(q, p)).toBeCloseTo(formula, 12);
      }
    }
  });
});

describe("TanQ quantizer (NormLab's reconstruction)", () => {
  it('round-trips within half a step of its grid (u = log2 tan(πx/2))', () => {
    const xs = softmaxSample(200);
    const u = (x: number) => Math.log2(Math.tan((Math.PI * x) / 2));
    for (const bits of [3, 4, 6]) {
      const p = calibrateTanQ(xs, bits);
      const smallest = tanqDequant(2 ** bits - 1, p);
      const top = tanqDequant(0, p);
      for (const x of xs) {
        if (x < smallest || x > top) continue;
        const q = tanqCode(x, p);
        expect(Math.abs((p.uTop - u(x)) / p.step - q)).toBeLessThanOrEqual(0.5 + 1e-9);
        expect(u(tanqDequant(q, p))).toBeCloseTo(p.uTop - q * p.step, 9); // levels sit exactly on the grid
      }
    }
  });

  it('puts more levels near 1 than log-sqrt2 at the same bit width', () => {
    const xs = softmaxSample(400);
    for (const bits of [3, 4, 6, 8]) {
      const log = softmaxLevels(calibrateLogSqrt2(xs, bits));
      const tan = softmaxLevels(calibrateTanQ(xs, bits));
      const near1 = (lv: number[]) => lv.filter((v) => v >= 0.5).length;
      // Calibrated with the same budget of 150 candidates; at 3 bits (8 levels) both keep 2 above 0.5.
      if (bits === 3) expect(near1(tan)).toBeGreaterThanOrEqual(near1(log));
      else expect(near1(tan)).toBeGreaterThan(near1(log));
      // and with fixed, uncalibrated parameters (top level 1 for log-sqrt2)
      const fixedLog: LogSqrt2Params = { kind: 'log-sqrt2', bits, delta: 1 };
      const fixedTan: TanQParams = { kind: 'tanq', bits, uTop: 4, step: 0.5 };
      expect(near1(softmaxLevels(fixedTan))).toBeGreaterThan(near1(softmaxLevels(fixedLog)));
    }
  });
});

describe('fake-quantize ops', () => {
  it('match the host-side quantizers value for value', () => {
    const xs = softmaxSample(40);
    for (const p of [calibrateUniform(xs, 4), calibrateLogSqrt2(xs, 4), calibrateTanQ(xs, 4)]) {
      const t = tf.tensor1d(xs);
      const got = fakeQuantSoftmax(t, p).dataSync();
      t.dispose();
      let mismatches = 0;
      for (let i = 0; i < xs.length; i++) if (Math.abs(got[i] - softmaxRoundTrip(xs[i], p)) > 1e-5) mismatches++;
      // float32 vs float64 can flip a value sitting exactly on a rounding boundary; nothing else
      expect(mismatches).toBeLessThanOrEqual(2);
    }
  });
});

describe('bit widths', () => {
  it('outside 2-16 are a one-line config error', () => {
    expect(() => checkBits(1, 'weight')).toThrow(/weight bit width must be an integer from 2 to 16, got 1/);
    expect(() => checkBits(17, 'activation')).toThrow(/from 2 to 16, got 17/);
    expect(checkBits(8, 'weight')).toBe(8);
  });
});

describe('post-softmax calibration budget', () => {
  it('gives log-√2 and TanQ the same number of candidates, the log-√2 budget containing RepQ-ViT’s own search', () => {
    const xs = softmaxSample(300, 4);
    for (const n of [4, 20, 150]) {
      expect(softmaxCandidatesTried('log-sqrt2', n)).toBe(n);
      expect(logSqrt2Deltas(xs, n)).toHaveLength(n);
      expect(softmaxCandidatesTried('tanq', n)).toBeLessThanOrEqual(n);
      expect(softmaxCandidatesTried('tanq', n)).toBeGreaterThan(n * 0.8);
    }
    expect(softmaxCandidatesTried('tanq', 150)).toBe(150); // 6 steps × 25 top levels
    expect(softmaxCandidatesTried('uniform', 150)).toBe(CLIP_PERCENTILES.length);
    // The budgeted search tries RepQ-ViT's three quantiles too, so it is never worse on these values.
    const sq = (p: LogSqrt2Params) => Array.from(xs).reduce((e, x) => e + (x - softmaxRoundTrip(x, p)) ** 2, 0);
    for (const bits of [3, 4, 6]) {
      const repq = calibrateLogSqrt2(xs, bits, { percentiles: REPQ_PERCENTILES });
      const budget = calibrateLogSqrt2(xs, bits, { candidates: 150 });
      expect(sq(budget)).toBeLessThanOrEqual(sq(repq) * (1 + 1e-12));
    }
    expect(() => calibrateTanQ(xs, 4, 3)).toThrow(/at least 4 candidates, got 3/);
  });
});
