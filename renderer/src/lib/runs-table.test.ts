import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../engine/protocol/protocol';
import { availableColumns, axisPosition, columnValue, groupRuns, keyResultCell, parallelAxes, warningsText } from './runs-table';

const run = (id: string, parent: string | null, config: RunSummary['config'], metrics: RunSummary['metrics']): RunSummary => ({
  id,
  method: 'lm-pretrain',
  name: `name-${id}`,
  status: 'completed',
  backend: 'wasm',
  created: '2026-01-01T00:00:00Z',
  finished: null,
  tags: [],
  parent,
  keyResult: null,
  warnings: 0,
  error: null,
  config,
  metrics,
});

const runs = [
  run('study', null, { method: 'lns-study', 'train.steps': 20 }, {}),
  run('a', 'study', { method: 'lm-pretrain', 'model.norm': 'pre', 'train.lr': 0.003, 'train.steps': 20 }, { final_val_loss: 4.1 }),
  run('b', 'study', { method: 'lm-pretrain', 'model.norm': 'lns', 'train.lr': 0.001, 'train.steps': 20 }, { final_val_loss: 3.9 }),
];

describe('runs table columns, grouping and parallel coordinates', () => {
  it('offers summary numbers and config keys as columns and reads their values', () => {
    expect(availableColumns(runs)).toEqual({ metrics: ['metric:final_val_loss'], config: ['config:model.norm', 'config:train.lr', 'config:train.steps'] });
    expect(columnValue(runs[1], 'config:train.lr')).toBe(0.003);
    expect(columnValue(runs[2], 'metric:final_val_loss')).toBe(3.9);
    expect(columnValue(runs[0], 'metric:final_val_loss')).toBeUndefined();
  });

  it('groups a study with its runs, or runs by a config value', () => {
    expect(groupRuns(runs, 'parent').map((g) => [g.label, g.runs.map((r) => r.id)])).toEqual([['name-study', ['study', 'a', 'b']]]);
    // The study heads its group even when it is listed after its runs.
    expect(groupRuns([runs[1], runs[2], runs[0]], 'parent')[0].runs.map((r) => r.id)).toEqual(['study', 'a', 'b']);
    expect(groupRuns(runs, 'config:model.norm').map((g) => [g.key, g.runs.length])).toEqual([
      ['—', 1],
      ['pre', 1],
      ['lns', 1],
    ]);
  });

  it('parallel axes: only config keys that vary, then the shared summary numbers; positions span [0, 1]', () => {
    const axes = parallelAxes(runs.slice(1));
    expect(axes.map((a) => a.col)).toEqual(['config:model.norm', 'config:train.lr', 'metric:final_val_loss']);
    const [norm, lr, loss] = axes;
    expect(norm.categories).toEqual(['lns', 'pre']);
    expect(axisPosition(norm, 'pre')).toBe(1);
    expect(axisPosition(lr, 0.001)).toBe(0);
    expect(axisPosition(lr, 0.002)).toBeCloseTo(0.5);
    expect(axisPosition(loss, 4.1)).toBe(1);
  });

  it('key result cell: value with its interval and verdict, tinted only outside noise; the hover says how the interval was computed', () => {
    const withKey = (keyResult: RunSummary['keyResult']): RunSummary => ({ ...runs[1], keyResult });
    const better = keyResultCell(
      withKey({
        label: 'LN-free − vanilla CE',
        value: -0.035,
        ci95: [-0.05, -0.02],
        verdict: 'better',
        better: 'lower',
        interval: 'paired t over 16 validation windows',
      }),
    );
    expect(better).toEqual({
      label: 'LN-free − vanilla CE',
      value: '−0.0350 [−0.0500, −0.0200]',
      verdict: 'better',
      tone: 'good',
      title: '95% interval: paired t over 16 validation windows · better: the 95% interval excludes 0',
    });
    const noise = keyResultCell(withKey({ label: 'gap', value: 0.004, ci95: [-0.019, 0.027], verdict: 'within noise', better: 'lower', interval: 'paired t' }));
    expect(noise).toMatchObject({ value: '+0.0040 [−0.0190, 0.0270]', verdict: 'within noise', tone: null });
    expect(noise!.title).toContain('within noise: the 95% interval covers 0');
    expect(
      keyResultCell(withKey({ label: 'worse top-1', value: -0.02, ci95: [-0.03, -0.01], verdict: 'worse', better: 'higher', unit: 'fraction' })),
    ).toMatchObject({
      value: '−2.00 pp [−3.00, −1.00]',
      tone: 'bad',
    });
    // A plain value (no comparison) shows its interval and no verdict; one without an interval says so on hover.
    expect(
      keyResultCell(withKey({ label: 'val loss', value: 2.5129, ci95: [2.4912, 2.5346], interval: 't over 16 validation windows of 32 tokens' })),
    ).toMatchObject({
      value: '2.5129 [2.4912, 2.5346]',
      verdict: null,
      tone: null,
    });
    expect(keyResultCell(withKey({ label: 'DLA NMAE %', value: 3.14159 }))!.title).toBe('no interval in the summary');
    expect(keyResultCell(runs[0])).toBeNull();
    expect([warningsText(0), warningsText(1), warningsText(3)]).toEqual([null, '1 warning', '3 warnings']);
  });
});
