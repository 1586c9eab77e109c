/**
 * The statistics module against independent values: SciPy 1.17 (engine/stats/scipy_check.py
 * prints every number hard-coded here) and a McNemar example worked by hand.
 */
import { describe, expect, it } from 'vitest';
import {
  bootstrapSE,
  clopperPearson,
  comparison,
  mcnemar,
  meanSd,
  noiseWarning,
  pairedAccuracy,
  pairedDifference,
  percentileInterval,
  tInterval,
  verdict,
  wilson,
  Z95,
} from './stats.js';

const close = (got: number, want: number, tol = 1e-9) => expect(Math.abs(got - want)).toBeLessThan(tol);

describe('stats', () => {
  it('t quantiles (via the interval half-width) and z match SciPy', () => {
    close(Z95, 1.959963984540054, 1e-12);
    // scipy.stats.t.ppf(0.975, df): half-width of {−1, 1, …} scaled so s/√n = 1.
    const want: Record<number, number> = { 1: 12.706204736174694, 2: 4.302652729749462, 5: 2.5705818356363146, 10: 2.228138851986274, 30: 2.0422724563012378 };
    for (const [df, q] of Object.entries(want)) {
      const n = Number(df) + 1;
      const xs = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : -1));
      const { ci95, se, mean } = tInterval(xs);
      close((ci95[1] - mean) / se, q, 1e-8);
    }
  });

  it('paired t interval and p match scipy.stats.ttest_rel', () => {
    const a = [3.1, 2.9, 3.4, 3.0, 3.3, 2.8, 3.2, 3.05];
    const b = [3.0, 2.95, 3.2, 3.1, 3.1, 2.7, 3.0, 3.0];
    const r = pairedDifference(a, b);
    close(r.mean, 0.08749999999999986, 1e-12);
    close(r.ci95[0], -0.009250621634395106, 1e-9);
    close(r.ci95[1], 0.18425062163439482, 1e-9);
    close(r.p, 0.06978508007630803, 1e-8);
    expect(verdict(r.ci95, 'lower')).toBe('within noise');
    expect(() => pairedDifference([1, 2], [1])).toThrow(/2 values vs 1/);
    expect(() => tInterval([1])).toThrow(/at least 2/);
  });

  it('Wilson and Clopper–Pearson intervals match SciPy binomtest', () => {
    const cases: [number, number, [number, number], [number, number]][] = [
      [0, 10, [0, 0.27753279986288926], [0, 0.30849710781876294]],
      [7, 10, [0.39677814746114526, 0.892208732593699], [0.3475471499399921, 0.9332604888222655]],
      [950, 1000, [0.9346861797557491, 0.9618697376072511], [0.9346095120845064, 0.9626646023953394]],
      [1000, 1000, [0.9961732415144449, 1], [0.9963179161033608, 1]],
    ];
    for (const [k, n, w, cp] of cases) {
      const gw = wilson(k, n);
      const gcp = clopperPearson(k, n);
      close(gw[0], w[0], 1e-10);
      close(gw[1], w[1], 1e-10);
      close(gcp[0], cp[0], 1e-9);
      close(gcp[1], cp[1], 1e-9);
    }
    expect(() => wilson(11, 10)).toThrow(/0 ≤ k ≤ n/);
  });

  it('McNemar: the worked example b=10, c=2 and SciPy values', () => {
    // By hand: P(X ≤ 2), X ~ Bin(12, ½) = (1 + 12 + 66)/4096, two-sided 158/4096;
    // χ² = (|10 − 2| − 1)²/12 = 49/12.
    const m = mcnemar(10, 2);
    close(m.p_exact, 158 / 4096, 1e-14);
    close(m.chi2, 49 / 12, 1e-14);
    close(m.p_chi2, 0.04330814281079206, 1e-10);
    close(mcnemar(25, 15).p_exact, 0.1538599441628321, 1e-10);
    close(mcnemar(25, 15).p_chi2, 0.15472892348537437, 1e-10);
    expect(mcnemar(3, 3).p_exact).toBe(1);
    expect(mcnemar(3, 3).p_chi2).toBe(1);
  });

  it('the paired accuracy interval excludes 0 exactly when the exact McNemar p < 0.05', () => {
    for (let b = 0; b <= 30; b++) {
      for (let c = 0; c <= 30; c++) {
        const N = 200;
        const A = new Uint8Array(N);
        const B = new Uint8Array(N);
        for (let i = 0; i < b; i++) A[i] = 1;
        for (let i = b; i < b + c; i++) B[i] = 1;
        for (let i = b + c; i < b + c + 100; i++) A[i] = B[i] = 1;
        const r = pairedAccuracy(A, B);
        close(r.diff, (b - c) / N, 1e-15);
        expect(r.ci95[0] <= r.diff && r.diff <= r.ci95[1]).toBe(true);
        const excludes = r.ci95[0] > 0 || r.ci95[1] < 0;
        expect(excludes, `b=${b} c=${c}`).toBe(r.mcnemar.p_exact < 0.05);
      }
    }
  });

  it('bootstrap SE is seeded and near s/√n for a mean', () => {
    const xs = Array.from({ length: 400 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453));
    const mean = (idx: Int32Array[]) => idx[0].reduce((s, i) => s + xs[i], 0) / idx[0].length;
    const a = bootstrapSE([xs.length], 500, 7, mean);
    expect(bootstrapSE([xs.length], 500, 7, mean).se).toBe(a.se);
    const { sd } = meanSd(xs);
    expect(Math.abs(a.se / (sd / Math.sqrt(xs.length)) - 1)).toBeLessThan(0.1);
  });

  it("percentile interval: numpy's default percentiles (2.5, 97.5) of the replicates", () => {
    const xs = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5, 5.8];
    close(percentileInterval(xs)[0], 1.125, 1e-12);
    close(percentileInterval(xs)[1], 8.25, 1e-12);
    const ys = Array.from({ length: 40 }, (_, i) => i + 1);
    close(percentileInterval(ys)[0], 1.975, 1e-12);
    close(percentileInterval(ys)[1], 39.025, 1e-12);
    expect(() => percentileInterval([1])).toThrow(/at least 2/);
  });

  it('verdict, comparison and the noise warning', () => {
    expect(verdict([-0.3, -0.1], 'lower')).toBe('better');
    expect(verdict([-0.3, -0.1], 'higher')).toBe('worse');
    expect(verdict([0.1, 0.3], 'higher')).toBe('better');
    expect(verdict([0.1, 0.3], 'lower')).toBe('worse');
    expect(verdict([-0.1, 0.3], 'lower')).toBe('within noise');
    expect(comparison('x', 0.2, [0.1, 0.3], 'lower', 'paired t')).toMatchObject({ ci95: [0.1, 0.3], verdict: 'worse' });
    expect(noiseWarning('gap', 0.01, [-0.02, 0.04])).toMatch(/wider than the effect 0.01/);
    expect(noiseWarning('gap', 0.1, [0.05, 0.15])).toBeNull();
  });
});
