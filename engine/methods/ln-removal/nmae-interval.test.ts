import { describe, expect, it } from 'vitest';
import { nmae, promptSums } from './dla.js';
import { nmaeInterval, nmaeIntervalText } from './nmae-interval.js';

/** The NMAE (%) of the prompts `idx` picks from hand-summed per-prompt |DLA − DE| and |DE|. */
const ratio = (err: number[], de: number[], idx: number[]) => (idx.reduce((s, i) => s + err[i], 0) / idx.reduce((s, i) => s + de[i], 0)) * 100;

describe('DLA NMAE interval over prompts', () => {
  it('sums each prompt over every head and its tokens, and the pooled NMAE is their ratio', () => {
    // 2 heads × 3 prompts × 2 tokens, (heads, tokens) row-major as headDla writes them.
    const dla = [1, 2, 3, 4, 5, 6, /* head 1 */ 0, 1, 1, 2, 2, 2];
    const de = [1, 1, 2, 2, 4, 8, /* head 1 */ 1, 1, 2, 2, 3, 1];
    const s = promptSums(dla, de, 2, 6, 3);
    // Prompt 0 holds tokens 0-1 of both heads: |1−1|+|2−1|+|0−1|+|1−1| = 2, |DE| = 1+1+1+1 = 4.
    expect(Array.from(s.absErr)).toEqual([2, 4, 5]);
    expect(Array.from(s.absDe)).toEqual([4, 8, 16]);
    expect(nmaeInterval(s, 0).nmae_pct).toBeCloseTo(nmae(dla, de), 12);
    expect(nmaeInterval(s, 0).nmae_pct).toBeCloseTo((11 / 28) * 100, 12);
  });

  it("matches the exact bootstrap distribution's 2.5th and 97.5th percentiles (all 4⁴ resamples enumerated)", () => {
    const err = [1, 4, 2, 9];
    const de = [10, 12, 8, 15];
    // Every ordered resample of 4 prompts is equally likely under the bootstrap: 256 of them.
    const exact: number[] = [];
    for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) for (let c = 0; c < 4; c++) for (let d = 0; d < 4; d++) exact.push(ratio(err, de, [a, b, c, d]));
    exact.sort((x, y) => x - y);
    const q = (p: number) => exact[Math.min(exact.length - 1, Math.floor(p * exact.length))];
    const r = nmaeInterval({ absErr: Float64Array.from(err), absDe: Float64Array.from(de) }, 3);
    expect(r.nmae_pct).toBeCloseTo(ratio(err, de, [0, 1, 2, 3]), 12);
    expect(r.prompts).toBe(4);
    const [lo, hi] = r.ci95!;
    // 2000 Monte Carlo resamples put each end well within the exact 1st–5th and 95th–99th percentiles.
    expect(lo).toBeGreaterThanOrEqual(q(0.01));
    expect(lo).toBeLessThanOrEqual(q(0.05));
    expect(hi).toBeGreaterThanOrEqual(q(0.95));
    expect(hi).toBeLessThanOrEqual(q(0.99));
    // Seeded: the same call gives the same interval.
    expect(nmaeInterval({ absErr: Float64Array.from(err), absDe: Float64Array.from(de) }, 3).ci95).toEqual([lo, hi]);
  });

  it('resamples prompts, not tokens: prompts with one ratio give a zero-width interval; one prompt gives none', () => {
    const same = nmaeInterval({ absErr: Float64Array.from([1, 2, 3]), absDe: Float64Array.from([10, 20, 30]) }, 0);
    expect(same.ci95![0]).toBeCloseTo(10, 12);
    expect(same.ci95![1]).toBeCloseTo(10, 12);
    expect(nmaeInterval({ absErr: Float64Array.from([1]), absDe: Float64Array.from([4]) }, 0)).toEqual({ nmae_pct: 25, ci95: null, prompts: 1 });
    expect(nmaeIntervalText(8, 0)).toBe('percentile bootstrap over 8 prompts (2000 resamples, seed 0)');
  });
});
