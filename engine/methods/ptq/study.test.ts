import { describe, expect, it } from 'vitest';
import { outlierNote, PRESETS } from './study.js';

describe('ptq-study labels and notes', () => {
  it('says when no LN site has outlier channels (max/median < 2), since mean and median presets then tie by construction', () => {
    expect(outlierNote({ max_over_median_all_sites: 1.42 })).toMatch(/no outlier channels .* 1\.42 < 2\): .* tie by construction/);
    expect(outlierNote({ max_over_median_all_sites: 2 })).toBeNull();
    expect(outlierNote({ max_over_median_all_sites: 7.5 })).toBeNull();
    expect(outlierNote({})).toBeNull(); // no per-channel calibration in the study
  });

  it("labels every TanQ and MAD-guided preset as NormLab's reconstruction", () => {
    for (const p of Object.values(PRESETS)) {
      if (p.softmax === 'tanq') expect(p.label).toContain("TanQ (NormLab's reconstruction)");
      if (p.ln === 'mad') expect(p.label).toContain("MAD-guided rule, NormLab's reconstruction");
    }
  });
});
