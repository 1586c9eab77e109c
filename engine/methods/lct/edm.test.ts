import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import {
  EDM,
  adaptiveC,
  cIn,
  cNoise,
  cOut,
  cSkip,
  cauchy,
  checkCurriculum,
  curriculumN,
  diffusionWeight,
  erf,
  inDiffusionRange,
  karrasSigmas,
  pseudoHuber,
  scalingC,
  stageLength,
  timestepProbs,
  twoStepSigma,
} from './edm.js';
import { robustLoss, upscale } from './lct.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('EDM parametrization', () => {
  it('meets the boundary condition: c_skip(sigma_min) = 1 and c_out(sigma_min) = 0', () => {
    expect(cSkip(EDM.sigmaMin)).toBe(1);
    expect(cOut(EDM.sigmaMin)).toBe(0);
  });

  it('matches hand-computed c_skip, c_out, c_in and the noise label at sigma = 1', () => {
    // sd = 0.5: c_skip = 0.25 / (0.998^2 + 0.25), c_out = 0.998 * 0.5 / sqrt(1.25), c_in = 1/sqrt(1.25)
    expect(cSkip(1)).toBeCloseTo(0.25 / (0.996004 + 0.25), 12);
    expect(cOut(1)).toBeCloseTo(0.499 / 1.118033988749895, 12);
    expect(cIn(1)).toBeCloseTo(0.894427190999916, 12);
    expect(cNoise(1)).toBeCloseTo(0, 12);
    expect(cNoise(Math.E)).toBeCloseTo(250, 9);
  });

  it('builds the descending Karras grid from sigma_max to sigma_min', () => {
    const s = karrasSigmas(11);
    expect(s[0]).toBeCloseTo(80, 9);
    expect(s[10]).toBeCloseTo(0.002, 12);
    expect(s[1]).toBeCloseTo(45.313734075226606, 9); // python: (80^(1/7) + 0.1 (0.002^(1/7) - 80^(1/7)))^7
    expect(s[9]).toBeCloseTo(0.01672075323499393, 12);
    expect(twoStepSigma(420, 641)).toBeCloseTo(0.5285640302978319, 9);
  });
});

describe('iCT curriculum N(k)', () => {
  const c = { s0: 10, s1: 640, total: 1000 };
  it('has K/(log2(s1/s0)+1) = 142 steps per stage and doubles N-1 at each boundary up to s1', () => {
    expect(stageLength(c)).toBe(142); // floor(1000 / (log2(64) + 1)) = floor(1000/7)
    expect([0, 141, 142, 283, 284, 425, 426, 567, 568, 709, 710, 851, 852, 999].map((k) => curriculumN(k, c))).toEqual([
      11, 11, 21, 21, 41, 41, 81, 81, 161, 161, 321, 321, 641, 641,
    ]);
  });
  it('rejects a curriculum with s1 < s0 before training', () => {
    expect(() => checkCurriculum({ s0: 40, s1: 10, total: 100 })).toThrow(/s1 \(10\) must be an integer no smaller than s0 \(40\)/);
  });
});

describe('timestep distribution', () => {
  it('computes erf to double precision', () => {
    const ref: Array<[number, number]> = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1.0, 0.8427007929497149],
      [2.0, 0.9953222650189527],
      [2.7, 0.9998656672600594],
      [3.5, 0.9999992569016276],
      [-1.3, -0.9340079449406524],
    ];
    for (const [x, v] of ref) expect(erf(x)).toBeCloseTo(v, 13);
  });
  it('gives the lognormal pair probabilities python computes for N = 11', () => {
    const p = timestepProbs(karrasSigmas(11));
    const ref = [
      0.003979612214311477, 0.008943868413767814, 0.019580092241339202, 0.04107990622240078, 0.08060462167684372, 0.14244605802390148, 0.21349444702335393,
      0.24550142196717065, 0.18173697971064975, 0.0626329925062612,
    ];
    ref.forEach((v, j) => expect(p[j]).toBeCloseTo(v, 12));
  });
});

describe('losses', () => {
  it('Pseudo-Huber and Cauchy match hand values', () => {
    expect(pseudoHuber(0.01, 0.1)).toBeCloseTo(Math.SQRT2 * 0.1 - 0.1, 14); // sqrt(0.02) - 0.1
    expect(cauchy(0.01, 0.1)).toBeCloseTo(Math.log(1.5), 14); // log(1 + 0.01/0.02)
    expect(pseudoHuber(0, 0.3)).toBe(0);
    expect(cauchy(0, 0.3)).toBe(0);
  });
  it('the training step’s tensor losses equal the scalar formulas', () => {
    const m = [0.01, 0.5, 3];
    const c = 0.1;
    const ph = tf.tidy(() => Array.from(robustLoss(tf.tensor1d(m), c, false).dataSync()));
    const ca = tf.tidy(() => Array.from(robustLoss(tf.tensor1d(m), c, true).dataSync()));
    m.forEach((v, i) => {
      expect(ph[i]).toBeCloseTo(pseudoHuber(v, c), 5);
      expect(ca[i]).toBeCloseTo(cauchy(v, c), 5);
    });
    expect(ca[1]).toBeCloseTo(Math.log(26), 5); // 1 + 0.5/0.02
  });
  it('weights the diffusion loss 1/s^2 + 1/sd^2 on the smallest 25% of sigmas', () => {
    expect(diffusionWeight(0.5)).toBeCloseTo(8, 12);
    // N = 11 grid points, pairs j = 0..9: j >= floor(8.25) = 8 are in range
    expect([7, 8, 9].map((j) => inDiffusionRange(j, 11))).toEqual([false, true, true]);
  });
});

describe('adaptive c (improvement 4)', () => {
  it('follows exp(-1.15 ln(N-1) - 0.85) for N-1 = 10, 40, 640', () => {
    expect(adaptiveC(11)).toBeCloseTo(0.030258659925593418, 12);
    expect(adaptiveC(41)).toBeCloseTo(0.0061444172587729155, 12);
    expect(adaptiveC(641)).toBeCloseTo(0.0002533627243762615, 14);
  });
  it('starts at 0.00054 sqrt(d) in the first stage and when off', () => {
    expect(scalingC(11, 64, true, 0)).toBeCloseTo(0.00432, 12);
    expect(scalingC(41, 64, true, 2)).toBeCloseTo(0.0061444172587729155, 12);
    expect(scalingC(641, 64, false, 6)).toBeCloseTo(0.00432, 12);
    // At d = 64 the paper's fitted curve jumps up at stage 2 (0.0043 -> exp(-1.15 ln 20 - 0.85) = 0.0136);
    // dim-scaled multiplies it by sqrt(64/4096) = 1/8 and so keeps c falling; at d = 4096 both agree.
    expect(scalingC(21, 64, true, 1, 'paper')).toBeCloseTo(Math.exp(-1.15 * Math.log(20) - 0.85), 12);
    expect(scalingC(21, 64, true, 1, 'paper')).toBeCloseTo(0.013632, 5);
    expect(scalingC(21, 64, true, 1, 'dim-scaled')).toBeCloseTo(0.013632 / 8, 6);
    expect(scalingC(21, 64, true, 0, 'dim-scaled')).toBeCloseTo(0.00432, 12); // stage 1 keeps iCT's c
    expect(scalingC(21, 4096, true, 1, 'dim-scaled')).toBe(scalingC(21, 4096, true, 1, 'paper'));
  });
});

describe('sample grid upscaling', () => {
  it('repeats each pixel k x k times', () => {
    const px = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8); // 2 x 1 RGBA
    const u = upscale(px, 2, 1, 2);
    expect([u.width, u.height]).toEqual([4, 2]);
    expect(Array.from(u.rgba.subarray(0, 16))).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8]);
    expect(Array.from(u.rgba.subarray(16, 32))).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8]);
  });
});
