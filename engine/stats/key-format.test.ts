import { describe, expect, it } from 'vitest';
import { keyResultLine } from '../cli/demo.js';
import { keyResultSchema } from './stats.js';
import { keyResultValue } from './key-format.js';

describe('key results that are fractions read in percent in the CLI', () => {
  const top1 = { label: 'top-1', value: 0.897, ci95: [0.8778, 0.9134] as [number, number], interval: 'Wilson, 1000 images', unit: 'fraction' as const };

  it('the schema keeps the unit', () => {
    expect(keyResultSchema.parse(top1).unit).toBe('fraction');
  });

  it('list/show and demo show a top-1 key result in percent, a difference of fractions in points, a loss as a number', () => {
    expect(keyResultValue(top1)).toEqual({ value: '89.70%', ci95: '[87.78%, 91.34%]' });
    expect(keyResultLine({ key_result: top1 })).toBe('top-1: 89.70% [87.78%, 91.34%] (95%, Wilson, 1000 images)');
    const diff = {
      label: 'DopQ − RepQ W4A4 top-1',
      value: 0.012,
      ci95: [-0.004, 0.028] as [number, number],
      verdict: 'within noise',
      better: 'higher',
      unit: 'fraction',
    };
    expect(keyResultValue(diff)).toEqual({ value: '+1.20 pp', ci95: '[-0.40 pp, 2.80 pp]' });
    expect(keyResultValue({ label: 'final val loss', value: 2.95012 })).toEqual({ value: '2.9501', ci95: null });
    // A summary from before key results had a unit: its accuracy label says fraction.
    expect(keyResultValue({ label: 'reference accuracy', value: 0.9 }).value).toBe('90.00%');
  });
});
