/**
 * The workbench's SVG figures keep their labels apart at realistic sizes: no two text labels'
 * boxes intersect, no label lies on a bar or a quantizer level tick, and every label stays
 * inside the figure. Boxes from each figure's layout, with DejaVu Sans widths.
 */
import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../engine/protocol/protocol';
import { textWidth } from '../../../engine/plot/textmetrics';
import { describeOverlaps, overlappingLabels, shapeBox, svgTextBox, type LabelBox } from '../../../engine/testing/label-overlap';
import { barsLayout } from './bars-layout';
import { histogramLayout } from './histogram-layout';
import { parallelLayout } from './parallel-layout';
import { parallelAxes } from './runs-table';
import type { Measure, SvgLabel } from './text-layout';

const measure: Measure = (text, size) => textWidth(text, size);
const WIDTHS = [420, 640, 900];

/** Overlapping pairs and labels outside the width × height figure, as lines for the failure message. */
function problems(labels: SvgLabel[], shapes: LabelBox[], width: number, height: number): string[] {
  const boxes = labels.map(svgTextBox);
  const outside = boxes
    .filter((b) => b.corners.some(([x, y]) => x < -1 || x > width + 1 || y < -1 || y > height + 1))
    .map((b) => `"${b.text}" outside the ${width} × ${height} figure`);
  return [...describeOverlaps(overlappingLabels([...boxes, ...shapes])), ...outside];
}

/** A deterministic value in [0, 1) for index i. */
const jitter = (i: number) => (((i * 0.618034) % 1) + 1) % 1;

describe('Bars labels', () => {
  /** LN sites of an L-block GPT-2 in removal order (ln_2, ln_1 QK, ln_1 V of each block, then ln_f): 3L + 1 sites. */
  const sites = (L: number) => [...['ln_2', 'ln_1_qk', 'ln_1_v'].flatMap((w) => Array.from({ length: L }, (_, i) => `h.${i}.${w}`)), 'ln_f'];

  it.each([4, 8, 10])('frozen σ per LN site: %i blocks (13–31 sites)', (L) => {
    const categories = sites(L);
    for (const width of WIDTHS) {
      const l = barsLayout({ width, yLabel: 'σ', categories, groups: [{ values: categories.map((_, i) => 0.8 + 40 * jitter(i)) }], measure });
      const bars = l.bars.map((b) => shapeBox('bar', b.x, b.y, b.x + b.w, b.y + b.h));
      expect(problems(l.labels, bars, width, l.height), `${categories.length} sites at ${width} px`).toEqual([]);
    }
  });

  it.each([24, 36, 48])('layer-pruning drop: %i blocks, 1–3 models', (L) => {
    const categories = Array.from({ length: L }, (_, i) => `block ${i + 1}`);
    for (const models of [1, 2, 3])
      for (const width of WIDTHS) {
        const groups = Array.from({ length: models }, (_, m) => ({
          values: categories.map((_, i) => (i === 0 ? 2.31 + m : (jitter(i + 7 * m) - 0.1) * 0.05)),
        }));
        const l = barsLayout({ width, yLabel: 'ΔP (nats)', categories, groups, measure });
        const bars = l.bars.map((b) => shapeBox('bar', b.x, b.y, b.x + b.w, b.y + b.h));
        expect(problems(l.labels, bars, width, l.height), `${L} blocks × ${models} models at ${width} px`).toEqual([]);
      }
  });

  it('leaves out no more than it must: every site at 640 px and wider, every value on 24 wide bars', () => {
    const categories = sites(8);
    for (const width of [640, 900]) {
      const l = barsLayout({ width, yLabel: 'σ', categories, groups: [{ values: categories.map((_, i) => 1 + i) }], measure });
      expect(l.labels.filter((x) => categories.includes(x.full ?? x.text)).map((x) => x.text)).toEqual(categories);
    }
    const blocks = Array.from({ length: 24 }, (_, i) => `block ${i + 1}`);
    const l = barsLayout({ width: 900, yLabel: 'ΔP (nats)', categories: blocks, groups: [{ values: blocks.map((_, i) => 0.0123 * (i + 1)) }], measure });
    expect(l.labels.filter((x) => x.cls === 'figure-value-label')).toHaveLength(24);
  });

  it('keeps value labels where they fit: a few wide bars are labelled', () => {
    const l = barsLayout({ width: 640, yLabel: 'points', categories: ['W4A4', 'W6A6', 'W8A8'], groups: [{ values: [12.5, 1.25, 0.125] }], measure });
    expect(l.labels.filter((x) => x.cls === 'figure-value-label').map((x) => x.text)).toEqual(['12.5', '1.25', '0.125']);
  });
});

describe('Histogram labels', () => {
  const levels = [
    { label: 'uniform', values: Array.from({ length: 16 }, (_, i) => i / 15) },
    { label: 'log-√2 (RepQ-ViT)', values: Array.from({ length: 16 }, (_, i) => (i === 0 ? 0 : 2 ** (-(15 - i) / 2))) },
    { label: "TanQ (NormLab's reconstruction)", values: Array.from({ length: 16 }, (_, i) => 0.5 + 0.5 * Math.tanh(4 * (i / 15 - 0.5))) },
  ];

  it.each([1e3, 1e6, 4e7])('post-softmax values with 16 levels per quantizer, largest bin %d', (top) => {
    const counts = Array.from({ length: 100 }, (_, b) => Math.round(top * Math.exp(-b / 6)));
    for (const width of WIDTHS) {
      const l = histogramLayout({ width, xLabel: 'attention probability', lo: 0, binWidth: 0.01, counts, levels, measure });
      const ticks = l.ticks.map((t) => shapeBox('level tick', t.x - 0.75, t.y1, t.x + 0.75, t.y2));
      expect(problems(l.labels, ticks, width, l.height), `largest bin ${top} at ${width} px`).toEqual([]);
      if (width >= 640) for (const q of levels) expect(l.labels.map((x) => x.text)).toContain(`${q.label} (16 levels)`);
    }
  });
});

describe('parallel-coordinates labels', () => {
  const run = (k: number, config: Record<string, unknown>, metrics: Record<string, number>): RunSummary =>
    ({
      id: `r${k}`,
      method: 'lm-pretrain',
      name: `run ${k}`,
      status: 'completed',
      backend: 'wasm',
      created: '2026-01-01T00:00:00Z',
      finished: null,
      tags: [],
      parent: 'sweep',
      keyResult: null,
      error: null,
      config,
      metrics,
    }) as RunSummary;
  /** A sweep's runs: `config` keys that vary and `metrics` every run has, with long dotted names. */
  const sweep = (config: string[], metrics: string[]) =>
    Array.from({ length: 6 }, (_, k) =>
      run(
        k,
        Object.fromEntries(config.map((c, i) => [c, i === 0 ? ['pre_ln', 'lns', 'mix_ln_peri'][k % 3] : 10 ** -(k % 4) * (i + 1)])),
        Object.fromEntries(metrics.map((m, i) => [m, 3 + jitter(k + i) * 1e-3 * 10 ** i])),
      ),
    );
  const CONFIG = ['model.norm', 'train.lr_schedule.warmup_steps', 'optimizer.weight_decay', 'train.gradient_clip_norm', 'model.residual_scale_init'];
  const METRICS = ['final_val_loss', 'deep_half_prune_drop_mean', 'shallow_half_prune_drop_mean'];

  it.each([
    [6, 3, 3],
    [7, 4, 3],
    [8, 5, 3],
  ])('%i axes (%i config keys, %i summary numbers) with long names', (_n, nConfig, nMetrics) => {
    const axes = parallelAxes(sweep(CONFIG.slice(0, nConfig), METRICS.slice(0, nMetrics)));
    expect(axes).toHaveLength(nConfig + nMetrics);
    for (const width of [640, 800, 1000]) {
      const l = parallelLayout({ width, axes, measure });
      const lines = axes.map((_, i) => shapeBox('axis', l.xOf(i) - 0.5, l.top, l.xOf(i) + 0.5, l.bottom));
      expect(problems(l.labels, lines, width, l.height), `${axes.length} axes at ${width} px`).toEqual([]);
      // Every axis keeps its title, whole or cut with the whole on hover.
      expect(l.labels.filter((x) => x.cls === 'figure-axis-title').map((x) => x.full ?? x.text)).toEqual(axes.map((a) => a.label));
    }
  });
});
