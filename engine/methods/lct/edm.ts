/**
 * The consistency-training arithmetic of improved latent consistency training (Dao et al.,
 * ICLR 2025, building on iCT, Song & Dhariwal 2023 and EDM, Karras et al. 2022), as pure
 * functions so each can be checked against hand-computed values.
 *
 * Grid convention (the LCT reference code's): sigmas[j], j = 0..N-1, runs DOWN from sigma_max
 * (j = 0) to sigma_min (j = N-1). A training pair is (j, j+1): the student sees the larger
 * sigma_j, the stop-gradient target the smaller sigma_{j+1}.
 */
import { fail } from '../../core/errors.js';

export interface Edm {
  sigmaMin: number;
  sigmaMax: number;
  rho: number;
  sigmaData: number;
}

/** EDM / iCT constants: sigma in [0.002, 80], rho 7, sigma_data 0.5. */
export const EDM: Edm = { sigmaMin: 0.002, sigmaMax: 80, rho: 7, sigmaData: 0.5 };

/** c_skip(s) = sd^2 / ((s - s_min)^2 + sd^2): 1 at s_min (boundary condition f(x, s_min) = x). */
export function cSkip(s: number, e: Edm = EDM): number {
  return e.sigmaData ** 2 / ((s - e.sigmaMin) ** 2 + e.sigmaData ** 2);
}

/** c_out(s) = (s - s_min) sd / sqrt(s^2 + sd^2): 0 at s_min. */
export function cOut(s: number, e: Edm = EDM): number {
  return ((s - e.sigmaMin) * e.sigmaData) / Math.sqrt(s * s + e.sigmaData ** 2);
}

/** c_in(s) = 1 / sqrt(s^2 + sd^2). */
export function cIn(s: number, e: Edm = EDM): number {
  return 1 / Math.sqrt(s * s + e.sigmaData ** 2);
}

/** Noise label fed to the network: 1000 * 0.25 * ln(s + 1e-44). */
export function cNoise(s: number): number {
  return 250 * Math.log(s + 1e-44);
}

/** The Karras grid of N sigmas, descending: sigma_j = (smax^(1/rho) + j/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho. */
export function karrasSigmas(N: number, e: Edm = EDM): Float64Array {
  if (!Number.isInteger(N) || N < 2) fail('config', `the sigma grid needs at least 2 points, got ${N}`);
  const a = e.sigmaMax ** (1 / e.rho);
  const b = e.sigmaMin ** (1 / e.rho);
  const out = new Float64Array(N);
  for (let j = 0; j < N; j++) out[j] = (a + (j / (N - 1)) * (b - a)) ** e.rho;
  return out;
}

export interface Curriculum {
  s0: number;
  s1: number;
  /** Total training steps K. */
  total: number;
}

export function checkCurriculum(c: Curriculum): void {
  if (!Number.isInteger(c.s0) || c.s0 < 1) fail('config', `curriculum s0 must be a positive integer, got ${c.s0}`);
  if (!Number.isInteger(c.s1) || c.s1 < c.s0) fail('config', `curriculum s1 (${c.s1}) must be an integer no smaller than s0 (${c.s0})`);
  if (!Number.isInteger(c.total) || c.total < 1) fail('config', `training steps must be a positive integer, got ${c.total}`);
}

/** Steps per curriculum stage: K' = floor(K / (log2(floor(s1/s0)) + 1)) (at least 1). */
export function stageLength(c: Curriculum): number {
  return Math.max(1, Math.floor(c.total / (Math.floor(Math.log2(Math.floor(c.s1 / c.s0))) + 1)));
}

/** 0-based curriculum stage of step k: floor(k / K'). */
export function curriculumStage(k: number, c: Curriculum): number {
  return Math.floor(k / stageLength(c));
}

/** iCT's exponential curriculum: N(k) = min(s0 * 2^floor(k/K'), s1) + 1 grid points at step k. */
export function curriculumN(k: number, c: Curriculum): number {
  return Math.min(c.s0 * 2 ** curriculumStage(k, c), c.s1) + 1;
}

/** erf: Taylor series for |x| < 2.5, continued fraction of erfc above (double precision, ~1e-15). */
export function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  if (a > 6) return s;
  if (a < 2.5) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 100; n++) {
      term *= (-a * a) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (s * 2 * sum) / Math.sqrt(Math.PI);
  }
  // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
  let f = a;
  for (let n = 60; n >= 1; n--) f = a + n / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return s * (1 - erfc);
}

/**
 * iCT's lognormal timestep distribution over the grid pairs (j, j+1), j = 0..N-2:
 * P(j) ∝ erf((ln sigma_j - Pm) / (sqrt2 Ps)) - erf((ln sigma_{j+1} - Pm) / (sqrt2 Ps)).
 */
export function timestepProbs(sigmas: ArrayLike<number>, pMean = -1.1, pStd = 2.0): Float64Array {
  const n = sigmas.length - 1;
  const e = Array.from(sigmas, (s) => erf((Math.log(s) - pMean) / (Math.SQRT2 * pStd)));
  const p = new Float64Array(n);
  let total = 0;
  for (let j = 0; j < n; j++) {
    p[j] = e[j] - e[j + 1];
    total += p[j];
  }
  for (let j = 0; j < n; j++) p[j] /= total;
  return p;
}

/** iCT's weighting lambda = 1 / (sigma_j - sigma_{j+1}) (the grid gap at the pair). */
export function ictWeight(sigmaHi: number, sigmaLo: number): number {
  return 1 / (sigmaHi - sigmaLo);
}

export const ADAPTIVE_C_RULES = ['paper', 'dim-scaled'] as const;
export type AdaptiveCRule = (typeof ADAPTIVE_C_RULES)[number];

/**
 * The scale c of the Pseudo-Huber / Cauchy losses. Fixed: iCT's c = 0.00054 sqrt(d).
 * Adaptive (improvement 4): 0.00054 sqrt(d) in the first curriculum stage, then
 * c = exp(-1.15 ln(N - 1) - 0.85) (`paper`: fitted on 32x32x4 = 4096-dim latents), or that curve
 * times sqrt(d / 4096) (`dim-scaled`, NormLab's rule for other latent sizes: iCT's own c scales
 * with sqrt(d), and the fit's curve then meets it at d = 4096).
 */
export function scalingC(N: number, d: number, adaptive: boolean, stage: number, rule: AdaptiveCRule = 'paper'): number {
  if (!adaptive || stage === 0) return 0.00054 * Math.sqrt(d);
  return rule === 'paper' ? adaptiveC(N) : adaptiveC(N) * Math.sqrt(d / 4096);
}

/** c = exp(-1.15 ln(N - 1) - 0.85). */
export function adaptiveC(N: number): number {
  return Math.exp(-1.15 * Math.log(N - 1) - 0.85);
}

/** Pseudo-Huber of the per-sample mean squared error m: sqrt(m + c^2) - c. */
export function pseudoHuber(m: number, c: number): number {
  return Math.sqrt(m + c * c) - c;
}

/** Cauchy (improvement 1) of m: log(1 + m / (2 c^2)). */
export function cauchy(m: number, c: number): number {
  return Math.log1p(m / (2 * c * c));
}

/** Improvement 2: is grid pair j among the smallest 25% of sigmas? (j >= floor(0.75 N)). */
export function inDiffusionRange(j: number, N: number): boolean {
  return j >= Math.floor(0.75 * N);
}

/** EDM's diffusion-loss weight 1/s^2 + 1/sd^2. */
export function diffusionWeight(s: number, e: Edm = EDM): number {
  return 1 / (s * s) + 1 / e.sigmaData ** 2;
}

/** Sigma of the second step of 2-step sampling: grid index `index` of a `gridN`-point grid (0, 420 of 641). */
export function twoStepSigma(index = 420, gridN = 641, e: Edm = EDM): number {
  if (!Number.isInteger(index) || index <= 0 || index >= gridN - 1) fail('config', `two-step index must be in 1..${gridN - 2}, got ${index}`);
  return karrasSigmas(gridN, e)[index];
}
