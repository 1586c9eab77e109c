/** The demo's printed lines: each comparison with its interval, NMAE and FID with their uncertainty. */
import { describe, expect, it } from 'vitest';
import { headline } from './demo.js';

describe('demo headline', () => {
  it('prints LN removal gap, NMAE intervals and warnings', () => {
    const lines = headline('ln-removal', {
      key_result: {
        label: 'LN-free − vanilla CE',
        value: 0.0487,
        ci95: [0.0127, 0.0848],
        verdict: 'worse',
        better: 'lower',
        interval: 'paired t over 16 windows',
      },
      original_val_ce: 2.5,
      vanilla_val_ce: 2.4,
      ln_free_val_ce: 2.45,
      gap_vs_vanilla: 0.05,
      dla_nmae: {
        original: { nmae_pct: 76.45, ci95_lo: 71.81, ci95_hi: 81.51 },
        vanilla: { nmae_pct: 76.54, ci95_lo: 72.46, ci95_hi: 81.17 },
        ln_free: { nmae_pct: 0, ci95_lo: 0, ci95_hi: 0 },
      },
      dla_nmae_interval: 'percentile bootstrap over 8 prompts (2000 resamples, seed 0)',
      warnings: ['single seed'],
    });
    expect(lines).toContain(
      'DLA NMAE original 76.45% [71.81, 81.51], vanilla 76.54% [72.46, 81.17], LN-free 0.00% [0.00, 0.00] (percentile bootstrap over 8 prompts (2000 resamples, seed 0))',
    );
    expect(lines.at(-1)).toBe('warning: single seed');
  });

  it('prints each LCT configuration with the bootstrap SE of its FIDs', () => {
    const lines = headline('lct-study', {
      fid_label: 'FID',
      table: [{ configuration: 'full', fid_1step: 23.2, fid_1step_se: 0.91, fid_2step: 20.1, fid_2step_se: 0.8 }],
    });
    expect(lines).toEqual(['full: FID 1 step 23.20 (SE 0.91), 2 steps 20.10 (SE 0.80)']);
  });
});
