/**
 * The statistics behind every comparison NormLab reports: intervals, paired tests, bootstrap
 * standard errors, and the verdict a key result carries. Distribution quantiles and CDFs come
 * from @stdlib (Student's t, normal, beta, binomial, chi-square); only the formulas that combine
 * them live here, each cited at its function. All intervals are two-sided 95% unless stated.
 */
import betaQuantile from '@stdlib/stats-base-dists-beta-quantile';
import binomialCdf from '@stdlib/stats-base-dists-binomial-cdf';
import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import tCdf from '@stdlib/stats-base-dists-t-cdf';
import tQuantile from '@stdlib/stats-base-dists-t-quantile';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import { Rng } from '../data/rng.js';

/** Which direction of a metric is an improvement: `lower` for losses and FID, `higher` for accuracy. */
export type Better = 'lower' | 'higher';
export type Verdict = 'better' | 'worse' | 'within noise';
export type Interval = [number, number];

/** z_{0.975} = Φ⁻¹(0.975) ≈ 1.959964. */
export const Z95 = normalQuantile(0.975, 0, 1);

/** Sample mean and standard deviation (n − 1 denominator; sd is 0 for one value). */
export function meanSd(xs: ArrayLike<number>): { mean: number; sd: number; n: number } {
  const n = xs.length;
  if (n === 0) fail('data', 'meanSd: no values');
  let mean = 0;
  for (let i = 0; i < n; i++) mean += xs[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i] - mean) ** 2;
  return { mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : 0, n };
}

/**
 * One-sample t interval of a mean: x̄ ± t_{0.975, n−1} · s / √n, with the two-sided p of
 * H0: mean = 0, p = 2 (1 − F_t(|x̄| / (s/√n); n − 1)).
 */
export function tInterval(xs: ArrayLike<number>): { mean: number; sd: number; se: number; n: number; df: number; ci95: Interval; p: number } {
  const { mean, sd, n } = meanSd(xs);
  if (n < 2) fail('data', `a t interval needs at least 2 values, got ${n}`);
  const df = n - 1;
  const se = sd / Math.sqrt(n);
  const half = tQuantile(0.975, df) * se;
  const p = se > 0 ? 2 * (1 - tCdf(Math.abs(mean) / se, df)) : mean === 0 ? 1 : 0;
  return { mean, sd, se, n, df, ci95: [mean - half, mean + half], p };
}

/**
 * Paired t interval of the mean difference a − b over the same units (evaluation windows,
 * seeds): tInterval of dᵢ = aᵢ − bᵢ. Pairing removes the between-window variance both arms share.
 */
export function pairedDifference(a: ArrayLike<number>, b: ArrayLike<number>): ReturnType<typeof tInterval> {
  if (a.length !== b.length) fail('shape', `paired difference: ${a.length} values vs ${b.length}`);
  const d = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i];
  return tInterval(d);
}

function checkCount(k: number, n: number): void {
  if (!Number.isInteger(k) || !Number.isInteger(n) || n < 1 || k < 0 || k > n)
    fail('data', `a binomial interval needs integers 0 ≤ k ≤ n, n ≥ 1; got k=${k}, n=${n}`);
}

/**
 * Wilson score interval of a proportion k/n (Wilson 1927):
 *   (p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z = z_{0.975}.
 * NormLab's top-1 intervals are Wilson intervals (good coverage near 0 and 1, unlike Wald).
 */
export function wilson(k: number, n: number): Interval {
  checkCount(k, n);
  const p = k / n;
  const z2 = Z95 * Z95;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Clopper–Pearson exact interval of a proportion k/n: [B(0.025; k, n−k+1), B(0.975; k+1, n−k)],
 * B the beta quantile, with 0 at k = 0 and 1 at k = n.
 */
export function clopperPearson(k: number, n: number): Interval {
  checkCount(k, n);
  return [k === 0 ? 0 : betaQuantile(0.025, k, n - k + 1), k === n ? 1 : betaQuantile(0.975, k + 1, n - k)];
}

/**
 * McNemar's test of paired binary outcomes from the discordant counts b (A right, B wrong) and
 * c (A wrong, B right). Exact: p = min(1, 2 · P(X ≤ min(b, c))), X ~ Bin(b + c, ½). Continuity
 * corrected: χ² = max(0, |b − c| − 1)² / (b + c) on 1 degree of freedom (Edwards 1948).
 */
export function mcnemar(b: number, c: number): { b: number; c: number; p_exact: number; chi2: number; p_chi2: number } {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0) fail('data', `McNemar needs non-negative integer counts, got b=${b}, c=${c}`);
  const n = b + c;
  if (n === 0) return { b, c, p_exact: 1, chi2: 0, p_chi2: 1 };
  const chi2 = Math.max(0, Math.abs(b - c) - 1) ** 2 / n;
  return { b, c, p_exact: Math.min(1, 2 * binomialCdf(Math.min(b, c), n, 0.5)), chi2, p_chi2: 1 - chisquareCdf(chi2, 1) };
}

/**
 * The difference of two accuracies on the same N examples, acc_A − acc_B = (b − c)/N, with an
 * interval that agrees with the exact McNemar test: conditional on the n = b + c discordant
 * examples, b ~ Bin(n, π) and the difference is (2π − 1)·n/N, so the Clopper–Pearson interval
 * [π_lo, π_hi] of b/n maps to [(2π_lo − 1)·n/N, (2π_hi − 1)·n/N]. It excludes 0 exactly when the
 * exact McNemar p < 0.05. Also returns each arm's Wilson interval.
 */
export function pairedAccuracy(
  correctA: ArrayLike<number | boolean>,
  correctB: ArrayLike<number | boolean>,
): {
  n: number;
  acc_a: number;
  acc_b: number;
  ci95_a: Interval;
  ci95_b: Interval;
  diff: number;
  ci95: Interval;
  mcnemar: ReturnType<typeof mcnemar>;
} {
  const N = correctA.length;
  if (N !== correctB.length || N === 0) fail('shape', `paired accuracy: ${N} vs ${correctB.length} examples`);
  let ka = 0;
  let kb = 0;
  let b = 0;
  let c = 0;
  for (let i = 0; i < N; i++) {
    const a = Boolean(correctA[i]);
    const bb = Boolean(correctB[i]);
    ka += +a;
    kb += +bb;
    if (a && !bb) b++;
    else if (!a && bb) c++;
  }
  const n = b + c;
  const [lo, hi] = n > 0 ? clopperPearson(b, n) : [0.5, 0.5];
  return {
    n: N,
    acc_a: ka / N,
    acc_b: kb / N,
    ci95_a: wilson(ka, N),
    ci95_b: wilson(kb, N),
    diff: (b - c) / N,
    ci95: [((2 * lo - 1) * n) / N, ((2 * hi - 1) * n) / N],
    mcnemar: mcnemar(b, c),
  };
}

/**
 * Bootstrap standard error of a statistic of one or more samples (Efron & Tibshirani 1993):
 * each of `resamples` replicates draws every sample's indices with replacement (seeded, so the
 * same call gives the same SE), and the SE is the sd (n − 1) of the replicated statistic. The
 * replicates come back too: two statistics bootstrapped with the same sizes and seed share their
 * indices, so the sd of their replicates' differences is the paired bootstrap SE of the difference.
 */
export function bootstrapSE(
  sizes: number[],
  resamples: number,
  seed: number,
  stat: (indices: Int32Array[]) => number,
): { se: number; resamples: number; seed: number; replicates: Float64Array } {
  if (!Number.isInteger(resamples) || resamples < 2) fail('config', `bootstrap needs at least 2 resamples, got ${resamples}`);
  const rng = new Rng(seed);
  const values = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const idx = sizes.map((n) => {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = rng.int(n);
      return out;
    });
    values[r] = stat(idx);
  }
  return { se: meanSd(values).sd, resamples, seed, replicates: values };
}

/**
 * Percentile bootstrap 95% interval (Efron & Tibshirani 1993, §13.3): the 2.5th and 97.5th
 * percentiles of a statistic's bootstrap replicates, each the linear interpolation between order
 * statistics x₍ₖ₎ at h = (R − 1)·p (numpy's default percentile).
 */
export function percentileInterval(replicates: ArrayLike<number>): Interval {
  const sorted = Float64Array.from(replicates).sort();
  if (sorted.length < 2 || Number.isNaN(sorted[sorted.length - 1]))
    fail('data', `a percentile interval needs at least 2 replicates, none NaN; got ${sorted.length}`);
  const at = (p: number) => {
    const h = (sorted.length - 1) * p;
    const k = Math.floor(h);
    return k + 1 < sorted.length ? sorted[k] + (h - k) * (sorted[k + 1] - sorted[k]) : sorted[k];
  };
  return [at(0.025), at(0.975)];
}

/**
 * What an interval of a difference (candidate − reference) says: `better` when it lies wholly on
 * the improving side of 0 (below for `lower`, above for `higher`), `worse` when wholly on the
 * other side, and `within noise` when it covers 0.
 */
export function verdict(ci95: Interval, better: Better): Verdict {
  const [lo, hi] = ci95;
  if (!(lo <= hi)) fail('data', `verdict: not an interval [${lo}, ${hi}]`);
  if (lo > 0) return better === 'higher' ? 'better' : 'worse';
  if (hi < 0) return better === 'lower' ? 'better' : 'worse';
  return 'within noise';
}

/** A run summary's headline number (`key_result`): what users script against. */
export const keyResultSchema = z
  .object({
    label: z.string().describe('what the number is, e.g. "LN-free − vanilla CE"'),
    value: z.number().describe('the number (for a comparison: candidate − reference)'),
    ci95: z.tuple([z.number(), z.number()]).optional().describe('95% interval of value; how it was computed is in `interval`'),
    verdict: z.enum(['better', 'worse', 'within noise']).optional().describe('for a comparison: what ci95 says of the candidate'),
    better: z.enum(['lower', 'higher']).optional().describe('which direction of value is an improvement'),
    interval: z.string().optional().describe('how ci95 was computed (paired t over n windows, McNemar-exact, bootstrap…)'),
    unit: z
      .enum(['fraction'])
      .optional()
      .describe('fraction: a proportion such as top-1 accuracy (or a difference of two), which the workbench and CLI show in percent'),
  })
  .describe('a run summary’s key result');
export type KeyResult = z.infer<typeof keyResultSchema>;

/** The key result of a comparison: value = candidate − reference, its interval and verdict. */
export function comparison(label: string, value: number, ci95: Interval, better: Better, interval: string, unit?: KeyResult['unit']): KeyResult {
  return { label, value, ci95, verdict: verdict(ci95, better), better, interval, ...(unit ? { unit } : {}) };
}

/**
 * The warning a reader must see when an interval is wider than the effect it brackets
 * (half-width > |value|), or null. `what` names the comparison.
 */
export function noiseWarning(what: string, value: number, ci95: Interval): string | null {
  const half = (ci95[1] - ci95[0]) / 2;
  if (!(half > Math.abs(value))) return null;
  return `${what}: the 95% interval [${fmt(ci95[0])}, ${fmt(ci95[1])}] is wider than the effect ${fmt(value)}; the difference is within noise at this evaluation size`;
}

/** A number with 4 significant digits, for messages. */
export function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x);
}
