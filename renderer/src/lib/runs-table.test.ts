import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../engine/protocol/protocol';
import { availableColumns, axisPosition, columnValue, groupRuns, parallelAxes } from './runs-table';

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
});
