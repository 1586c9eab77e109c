import { describe, expect, it } from 'vitest';
import { inlineList, pictureArtifacts, summaryBlocks } from './results';
import { buildCharts, chartWantsMarkers, isResultLine } from './metrics';
import { elapsedSeconds, finalStep } from './progress';
import { pathFields } from './paths';
import type { RunRecord } from '../../../engine/protocol/protocol';

describe('generic summary view', () => {
  it('puts scalars and nested scalars in one key/value table, lists inline, skips shown keys, the key result, warnings and markdown copies', () => {
    const blocks = summaryBlocks(
      {
        key_result: { label: 'x', value: 1 },
        warnings: ['shown in the warning box'],
        a: 1,
        nested: { b: 'y', shape: [4, 4, 4] },
        list: [0.5, 0.25],
        table_markdown: '| a |',
        drawn: [1, 2, 3],
      },
      ['drawn'],
    );
    expect(blocks).toEqual([
      {
        kind: 'scalars',
        title: 'Summary',
        rows: [
          { key: 'a', value: 1 },
          { key: 'nested.b', value: 'y' },
          { key: 'nested.shape', value: '4 × 4 × 4' },
          { key: 'list', value: '0.5000, 0.2500' },
        ],
      },
    ]);
  });

  it('lists of records become tables whose list cells are shortened, not raw JSON', () => {
    const [b] = summaryBlocks({ rows: [{ name: 'a', xs: [1, 2, 3, 4, 5, 6, 7] }] });
    expect(b).toEqual({ kind: 'table', title: 'rows', columns: ['name', 'xs'], rows: [{ name: 'a', xs: '1, 2, 3, 4, … (7 values)' }] });
    expect(inlineList('x', [])).toBe('(none)');
  });

  it('only sample grids and reconstructions show inline as pictures; plots of data do not', () => {
    expect(pictureArtifacts(['samples-1step.png', 'samples-step000040-1step.png', 'reconstructions.png', 'fid.png', 'loss_curves.png'])).toEqual([
      'samples-1step.png',
      'reconstructions.png',
    ]);
  });
});

describe('live curves', () => {
  it('result records (a configuration or preset per line) and single points are never drawn as curves', () => {
    const metrics = [
      { step: 1, configuration: 'baseline', fid_1step: 50 },
      { step: 2, configuration: 'full', fid_1step: 40 },
      { step: 1, loss: 3 },
      { step: 2, loss: 2 },
      { step: 2, val_loss: 2.5 },
    ];
    expect(isResultLine(metrics[0])).toBe(true);
    expect(isResultLine({ step: 2, removed: 'ln_f' })).toBe(false);
    expect(isResultLine({ step: 2, vanilla_ce: 3.1, arm: 'vanilla' })).toBe(false); // an arm's training line
    const charts = buildCharts(metrics, 'step');
    expect(charts.map((c) => c.series.map((s) => s.label))).toEqual([['loss']]);
  });

  it('removal markers stay off charts of the vanilla control only', () => {
    expect(chartWantsMarkers({ id: 'a', title: 'a', series: [{ label: 'vanilla_grad_norm', x: [], y: [] }] })).toBe(false);
    expect(
      chartWantsMarkers({
        id: 'b',
        title: 'b',
        series: [
          { label: 'vanilla_ce', x: [], y: [] },
          { label: 'ln_free_ce', x: [], y: [] },
        ],
      }),
    ).toBe(true);
  });
});

describe('progress', () => {
  const rec = (r: Partial<RunRecord>): RunRecord =>
    ({ started: '2026-01-01T00:00:00.000Z', finished: null, runSeconds: 0, runningSince: null, ...r }) as RunRecord;

  it("the final step is the last training step, not a result record's counter", () => {
    expect(
      finalStep([
        { step: 10, loss: 1 },
        { step: 30, loss: 1 },
        { step: 2, configuration: 'x', fid: 1 },
      ]),
    ).toBe(30);
    expect(finalStep([{ step: 2, configuration: 'x' }])).toBe(0);
  });

  it('elapsed time counts finished stretches plus the current one, and ticks with the clock while running', () => {
    const since = Date.parse('2026-01-01T01:00:00.000Z');
    const r = rec({ runSeconds: 30, runningSince: new Date(since).toISOString() });
    expect(elapsedSeconds(r, 'running', [], since + 5000)).toBe(35);
    expect(elapsedSeconds(r, 'running', [], since + 9000)).toBe(39);
    expect(elapsedSeconds(rec({ runSeconds: 42, finished: '2026-01-02T00:00:00.000Z' }), 'completed', [], since + 1e9)).toBe(42);
    // An interrupted run counts its last stretch up to its last metric line.
    expect(elapsedSeconds(r, 'interrupted', [{ step: 1, time: since + 2000 }], since + 1e9)).toBe(32);
    expect(elapsedSeconds(rec({ started: null }), 'queued', [], 0)).toBeNull();
  });
});

describe('path fields of a config', () => {
  it('finds file and folder paths, not run ids or data-set keywords', () => {
    const c = {
      data: { source: 'file', path: 'corpus.txt' },
      source: { kind: 'run', path: '2026-run' },
      vit: { data: { source: './digits' } },
      model: { layers: 2 },
    };
    expect(pathFields(c)).toEqual([
      { path: 'data.path', value: 'corpus.txt' },
      { path: 'vit.data.source', value: './digits' },
    ]);
  });
});
