/**
 * Fréchet distance between Gaussian fits of two feature sets (Heusel et al. 2017):
 *   FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
 * NormLab computes it on the penultimate features of a small classifier trained on the same image
 * set (not Inception features), so its numbers are comparable only with each other: call it
 * "FID (<data>-classifier features)". Tr (S1 S2)^(1/2) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))),
 * with symmetric eigendecompositions by cyclic Jacobi in float64.
 */
import { fail } from '../../core/errors.js';
import { bootstrapSE } from '../../stats/stats.js';

export interface Gaussian {
  mean: Float64Array;
  /** Row-major d x d covariance (unbiased, n - 1). */
  cov: Float64Array;
  d: number;
  n: number;
}

/** Mean and covariance of n feature rows of width d. */
export function gaussianStats(feats: Float32Array | Float64Array, n: number, d: number): Gaussian {
  if (n < 2) fail('data', `FID needs at least 2 samples, got ${n}`);
  if (feats.length !== n * d) fail('shape', `features: expected ${n}x${d} values, got ${feats.length}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += feats[i * d + k];
  for (let k = 0; k < d; k++) mean[k] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) row[k] = feats[i * d + k] - mean[k];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { mean, cov, d, n };
}

/**
 * Eigen-decomposition of a symmetric d x d matrix (cyclic Jacobi): values and column eigenvectors
 * (`vectors: false` skips accumulating them; then the returned vectors are the identity).
 */
export function symmetricEigen(m: Float64Array, d: number, vectors = true): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < d; p++) {
      diag += a[p * d + p] ** 2;
      for (let q = p + 1; q < d; q++) off += a[p * d + q] ** 2;
    }
    if (off <= 1e-26 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          // rotate columns p, q of a
          const akp = a[k * d + p];
          const akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          // rotate rows p, q of a
          const apk = a[p * d + k];
          const aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; vectors && k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i];
  return { values, vectors: v };
}

/** Symmetric PSD square root: V diag(sqrt(max(l, 0))) V^T. */
export function sqrtPsd(m: Float64Array, d: number): Float64Array {
  const { values, vectors: v } = symmetricEigen(m, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = v[i * d + k] * s;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * v[j * d + k];
    }
  }
  return out;
}

function matMul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  }
  return out;
}

/** The reference side of FID, precomputed once: its Gaussian and R = S_ref^(1/2). */
export interface FidReference {
  g: Gaussian;
  root: Float64Array;
}

export function fidReference(g: Gaussian): FidReference {
  return { g, root: sqrtPsd(g.cov, g.d) };
}

/**
 * FID of a Gaussian against a precomputed reference: ||mu - mu_ref||^2 + Tr(S + S_ref) - 2 Tr (R S R)^(1/2),
 * R = S_ref^(1/2) (Tr (S_ref S)^(1/2) = Tr (R S R)^(1/2): R S R is similar to S_ref S).
 */
export function fidAgainst(ref: FidReference, g: Gaussian): number {
  const g1 = ref.g;
  if (g1.d !== g.d) fail('shape', `FID: feature widths differ (${g1.d} vs ${g.d})`);
  const d = g1.d;
  let meanTerm = 0;
  for (let k = 0; k < d; k++) meanTerm += (g1.mean[k] - g.mean[k]) ** 2;
  const inner = matMul(matMul(ref.root, g.cov, d), ref.root, d);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) inner[i * d + j] = inner[j * d + i] = 0.5 * (inner[i * d + j] + inner[j * d + i]);
  const { values } = symmetricEigen(inner, d, false);
  let trSqrt = 0;
  for (const l of values) trSqrt += Math.sqrt(Math.max(l, 0));
  let tr = 0;
  for (let k = 0; k < d; k++) tr += g1.cov[k * d + k] + g.cov[k * d + k];
  return Math.max(0, meanTerm + tr - 2 * trSqrt);
}

/** The Fréchet distance between two Gaussians. */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  return fidAgainst(fidReference(g1), g2);
}

/** Rows `idx` of n x d features. */
function rows(feats: Float32Array | Float64Array, d: number, idx: Int32Array): Float64Array {
  const out = new Float64Array(idx.length * d);
  for (let i = 0; i < idx.length; i++) for (let k = 0; k < d; k++) out[i * d + k] = feats[idx[i] * d + k];
  return out;
}

/**
 * FID of n generated feature rows against a fixed reference, with its bootstrap standard error
 * over the generated samples (engine/stats bootstrapSE: `resamples` replicates of n rows drawn with
 * replacement, seeded; SE = sd of the replicated FIDs). The replicates are returned: two sample
 * sets of the same n drawn from the same noise seeds and bootstrapped with the same seed share
 * their indices, so sd(replicates_A − replicates_B) is the paired SE of FID_A − FID_B.
 */
export function fidBootstrap(
  feats: Float32Array | Float64Array,
  n: number,
  d: number,
  ref: FidReference,
  resamples: number,
  seed: number,
): { fid: number; se: number; resamples: number; seed: number; replicates: number[] } {
  const fid = fidAgainst(ref, gaussianStats(feats, n, d));
  const b = bootstrapSE([n], resamples, seed, ([idx]) => fidAgainst(ref, gaussianStats(rows(feats, d, idx), n, d)));
  return { fid, se: b.se, resamples, seed, replicates: Array.from(b.replicates) };
}
