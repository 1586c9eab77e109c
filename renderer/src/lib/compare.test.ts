import { describe, expect, it } from 'vitest';
import { keyResultRows, pairReadings, type ComparedRun } from './compare';

const run = (id: string, keyResult: unknown): ComparedRun => ({ id, label: `run ${id}`, method: 'lm-pretrain', status: 'completed', keyResult });
const valLoss = (value: number, ci95?: [number, number]) => ({ label: 'val loss', value, ...(ci95 ? { ci95, interval: 't over 16 validation windows' } : {}) });

describe('compare: key results with their own intervals, and what two runs’ intervals let one read', () => {
  it('shows each value with its interval, its own verdict and how the interval was computed', () => {
    const rows = keyResultRows([
      run('a', valLoss(2.5129, [2.4912, 2.5346])),
      run('b', {
        label: 'LN-free − vanilla CE',
        value: 0.0487,
        ci95: [0.0127, 0.0848],
        verdict: 'worse',
        better: 'lower',
        interval: 'paired t over 16 validation windows',
      }),
      run('c', null),
    ]);
    expect(rows[0]).toMatchObject({ key_result: 'val loss', value: '2.5129 [2.4912, 2.5346]', verdict: '', interval: 't over 16 validation windows' });
    expect(rows[1]).toMatchObject({ value: '+0.0487 [0.0127, 0.0848]', verdict: 'worse' });
    expect(rows[2]).toMatchObject({ key_result: '', value: '—', interval: 'none in the summary' });
  });

  it('overlapping intervals: the difference cannot be read; separate intervals: a conservative difference, never a paired test', () => {
    const [overlap] = pairReadings([run('a', valLoss(2.51, [2.49, 2.53])), run('b', valLoss(2.52, [2.5, 2.54]))]);
    expect(overlap.reading).toBe('overlap');
    expect(overlap.text).toBe(
      'run a 2.5100 [2.4900, 2.5300] and run b 2.5200 [2.5000, 2.5400]: their 95% intervals overlap, so the difference between these runs cannot be read from them.',
    );
    const [apart] = pairReadings([run('a', valLoss(2.51, [2.49, 2.53])), run('b', valLoss(3.1, [3.0, 3.2]))]);
    expect(apart.reading).toBe('apart');
    expect(apart.text).toContain('do not overlap');
    expect(apart.text).toContain('not a paired test');
    // Touching ends count as overlapping.
    expect(pairReadings([run('a', valLoss(1, [0.9, 1.1])), run('b', valLoss(1.2, [1.1, 1.3]))])[0].reading).toBe('overlap');
  });

  it('says when there is nothing to read: no interval, or key results that measure different things; runs without a key result are left out', () => {
    const [none] = pairReadings([run('a', valLoss(2.51)), run('b', valLoss(2.52, [2.5, 2.54]))]);
    expect(none).toMatchObject({ reading: 'no-interval' });
    expect(none.text).toContain('cannot be read: run a has no interval in its summary');
    const [different] = pairReadings([run('a', valLoss(2.51, [2.49, 2.53])), run('b', { label: 'DLA NMAE %', value: 3, ci95: [2, 4] })]);
    expect(different).toMatchObject({ reading: 'different' });
    expect(different.text).toContain('measure different things (val loss vs DLA NMAE %)');
    expect(pairReadings([run('a', valLoss(2.51, [2.49, 2.53])), run('b', null)])).toEqual([]);
    expect(pairReadings([run('a', valLoss(1, [0.9, 1.1])), run('b', valLoss(1, [0.9, 1.1])), run('c', valLoss(1, [0.9, 1.1]))]).map((p) => [p.a, p.b])).toEqual(
      [
        ['run a', 'run b'],
        ['run a', 'run c'],
        ['run b', 'run c'],
      ],
    );
  });
});
