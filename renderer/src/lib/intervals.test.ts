import { describe, expect, it } from 'vitest';
import {
  asKeyResult,
  decimalsFor,
  diffText,
  fmtFixed,
  fmtMeanSd,
  fmtWithInterval,
  foldDifferences,
  keyResultText,
  seedTableRows,
  summaryWarnings,
  verdictTitle,
  verdictTone,
  type DiffCell,
} from './intervals';

describe('intervals and verdicts as the workbench writes them', () => {
  it('a comparison key result: signed value, its interval to the precision the interval supports, the verdict and how it was computed', () => {
    const kr = asKeyResult({
      label: 'LN-free − vanilla CE',
      value: 0.0041234,
      ci95: [-0.018912, 0.027234],
      verdict: 'within noise',
      better: 'lower',
      interval: 'paired t over 8 validation windows',
    })!;
    const t = keyResultText(kr);
    expect(`${t.label} ${t.value} · ${t.verdict}`).toBe('LN-free − vanilla CE +0.0041 [−0.0189, 0.0272] · within noise');
    expect(t.interval).toBe('95% interval: paired t over 8 validation windows');
  });

  it('a plain key result (no comparison) is unsigned, with or without an interval; malformed ones are not key results', () => {
    expect(keyResultText(asKeyResult({ label: 'mean CE', value: 0.9, ci95: [0.85, 0.94], interval: 'paired t' })!).value).toBe('0.9000 [0.8500, 0.9400]');
    expect(keyResultText(asKeyResult({ label: 'DLA NMAE %', value: 1.23456 })!)).toEqual({
      label: 'DLA NMAE %',
      value: '1.235',
      verdict: null,
      interval: null,
    });
    expect(asKeyResult({ label: 'x' })).toBeNull();
    expect(asKeyResult({ label: 'x', value: 1, ci95: [1], verdict: 'maybe' })).toEqual({ label: 'x', value: 1 });
  });

  it('numbers: typographic minus, plus only when signed, no "−0"; decimals from the half-width', () => {
    expect(fmtFixed(-1.5, 1)).toBe('−1.5');
    expect(fmtFixed(1.5, 1, true)).toBe('+1.5');
    expect(fmtFixed(-0.00001, 2, true)).toBe('0.00');
    expect(decimalsFor(0.3, [-1.6, 2.2])).toBe(2);
    expect(decimalsFor(0.0041, [-0.0189, 0.0272])).toBe(4);
    expect(fmtWithInterval(0.003, [-0.016, 0.022], { signed: true, scale: 100 })).toBe('+0.30 [−1.60, 2.20]');
  });

  it('a difference is coloured only outside noise, and its hover says within noise', () => {
    expect(verdictTone('better')).toBe('good');
    expect(verdictTone('worse')).toBe('bad');
    expect(verdictTone('within noise')).toBeNull();
    expect(verdictTone(null)).toBeNull();
    expect(verdictTitle('within noise')).toMatch(/^within noise/);
    const c: DiffCell = { kind: 'diff', value: -0.05, ci95: [-0.08, -0.02], verdict: 'better' };
    expect(diffText(c)).toBe('−0.0500 [−0.0800, −0.0200]');
  });

  it('study tables: X with X_ci95_lo/hi (lns-study) or X_ci95 (lct-study) and X_verdict fold into one difference cell', () => {
    const cols = ['variant', 'd', 'd_ci95_lo', 'd_ci95_hi', 'd_verdict', 'f', 'f_ci95', 'f_verdict', 'run_id'];
    const rows = [
      { variant: 'pre', d: null, d_ci95_lo: null, d_ci95_hi: null, d_verdict: null, run_id: 'a' },
      { variant: 'lns', d: 0.01, d_ci95_lo: -0.02, d_ci95_hi: 0.04, d_verdict: 'within noise', f: -3, f_ci95: [-5, -1], f_verdict: 'better', run_id: 'b' },
    ];
    const out = foldDifferences(cols, rows);
    expect(out.columns).toEqual(['variant', 'd', 'f', 'run_id']);
    expect(out.rows[0]).toEqual({ variant: 'pre', d: null, run_id: 'a' });
    expect(out.rows[1].d).toEqual({ kind: 'diff', value: 0.01, ci95: [-0.02, 0.04], verdict: 'within noise' });
    expect(out.rows[1].f).toEqual({ kind: 'diff', value: -3, ci95: [-5, -1], verdict: 'better' });
    expect(foldDifferences(['a'], [{ a: 1 }])).toEqual({ columns: ['a'], rows: [{ a: 1 }] });
  });

  it('seed tables: mean ± sd, the interval over seeds and each seed in the order of `seeds`', () => {
    const t = seedTableRows(
      [
        { row: 'pre', metric: 'final_val_loss', per_seed: { '0': 4.01, '1': 4.05, '2': null }, n: 2, mean: 4.03, sd: 0.02828, ci95: [3.776, 4.284] },
        { row: 'lns', metric: 'final_val_loss', per_seed: { '0': 3.9 }, n: 1, mean: 3.9, sd: null, ci95: null },
        { row: 'pre', metric: 'val_loss_minus_first', per_seed: { '0': null }, n: 0, mean: null, sd: null, ci95: null },
      ],
      [2, 0, 1],
    );
    expect(t.columns.map((c) => c.key)).toEqual(['row', 'metric', 'mean_sd', 'ci95', 'seed_2', 'seed_0', 'seed_1']);
    expect(t.rows[0]).toEqual({
      row: 'pre',
      metric: 'final_val_loss',
      mean_sd: '4.0300 ± 0.0283',
      ci95: '[3.776, 4.284]',
      seed_2: null,
      seed_0: 4.01,
      seed_1: 4.05,
    });
    expect(t.rows[1].mean_sd).toBe('3.900');
    expect(t.rows[1].ci95).toBe('—');
    expect(t.rows).toHaveLength(2);
    expect(fmtMeanSd(null, null)).toBe('—');
  });

  it('summary warnings: every string entry', () => {
    expect(summaryWarnings({ warnings: ['a', '', 3, 'b'] })).toEqual(['a', 'b']);
    expect(summaryWarnings({})).toEqual([]);
  });

  it('a key result that is a fraction (top-1) reads in percent, as the tables beside it; a difference of fractions in points', () => {
    const top1 = asKeyResult({ label: 'top-1', value: 0.897, ci95: [0.8778, 0.9134], interval: 'Wilson, 1000 images', unit: 'fraction' })!;
    expect(top1.unit).toBe('fraction');
    expect(keyResultText(top1).value).toBe('89.70 % [87.78, 91.34]');
    const diff = asKeyResult({
      label: 'DopQ − RepQ W4A4 top-1',
      value: 0.012,
      ci95: [-0.004, 0.028],
      verdict: 'within noise',
      better: 'higher',
      interval: 'exact McNemar',
      unit: 'fraction',
    })!;
    expect(keyResultText(diff).value).toBe('+1.20 pp [−0.40, 2.80]');
    // A summary written before key results had a unit: an accuracy label is read as a fraction; a unit that is not one is not.
    expect(keyResultText(asKeyResult({ label: 'reference accuracy', value: 0.9 })!).value).toBe('90.00 %');
    expect(keyResultText(asKeyResult({ label: 'val loss', value: 0.9 })!).value).toBe('0.9000');
    expect(keyResultText(asKeyResult({ label: 'top-1', value: 0.9, unit: 'nats' })!).value).toBe('0.9000');
  });
});
