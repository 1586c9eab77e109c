/**
 * One colour per variant across a run's page of figures: figures given the page's variant list
 * colour each name by its place there, whatever subset they show. Colours are read back from the
 * rendered SVG's legend (symbol and label, in drawing order).
 */
import { describe, expect, it } from 'vitest';
import { barPlotSvg, histogramWithLevelsSvg, linePlotSvg, type LineSeries } from './index.js';
import { CATEGORY_COLORS, variantColors } from './theme.js';

/** Legend label → its symbol's colour, from vega's SVG (symbols and labels come in the same order). */
function legendColors(svg: string): Map<string, string> {
  const group = (role: string) => new RegExp(`<g class="mark-[a-z]+ role-legend-${role}"[^>]*>([\\s\\S]*?)</g></g></g>`, 'g');
  const symbols = [...svg.matchAll(group('symbol'))].flatMap((m) =>
    [...m[1].matchAll(/<path[^>]*?(?:stroke|fill)="(#[0-9A-Fa-f]{6})"/g)].map((p) => p[1].toUpperCase()),
  );
  const labels = [...svg.matchAll(group('label'))].flatMap((m) => [...m[1].matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((t) => t[1].replace(/&#39;/g, "'")));
  expect(symbols.length).toBe(labels.length);
  return new Map(labels.map((l, i) => [l, symbols[i]]));
}

/** The legend colours of a line plot of `series` on a page of `variants` (its titles play no part in them). */
const lineColors = async (title: string, series: LineSeries[], variants: string[]) =>
  legendColors(await linePlotSvg({ title, xLabel: 'step', yLabel: title, series, variants }));

const steps = [0, 10, 20, 30];
const curve = (name: string, k: number) => ({ name, x: steps, y: steps.map((s) => 4 - s / 20 + k / 10) });
const PAGE = ['pre_ln', 'lns', 'mix_ln', 'peri_ln'];

describe('page-wide variant colours', () => {
  it('colour by place in the page list; names not in it follow, in the figure order', () => {
    expect(variantColors(['lns', 'peri_ln'], PAGE)).toEqual([CATEGORY_COLORS[1], CATEGORY_COLORS[3]]);
    expect(variantColors(['new', 'lns'], PAGE)).toEqual([CATEGORY_COLORS[4], CATEGORY_COLORS[1]]);
    expect(variantColors(['lns', 'peri_ln'])).toEqual([CATEGORY_COLORS[0], CATEGORY_COLORS[1]]);
  });

  it('two figures of one page, showing different subsets, give each variant the same colour', async () => {
    const loss = await lineColors('loss', PAGE.map(curve), PAGE);
    const pruning = legendColors(
      await barPlotSvg({
        title: 'Validation loss increase when one block is removed',
        xLabel: 'block',
        yLabel: 'ΔCE',
        groups: ['lns', 'peri_ln'].map((name, k) => ({ name, values: [1, 2, 3].map((b) => ({ label: String(b), value: b / 10 + k })) })),
        variants: PAGE,
      }),
    );
    const grads = await lineColors('gradient norm', [curve('peri_ln', 0), curve('mix_ln', 1)], PAGE);
    expect([...loss.values()]).toEqual(CATEGORY_COLORS.slice(0, 4));
    for (const fig of [pruning, grads]) for (const [name, color] of fig) expect(color, name).toBe(loss.get(name));
    expect(pruning.get('lns')).toBe(CATEGORY_COLORS[1]);
  });

  it("a series' variant, not its legend name, picks its colour (sweep points with their seed counts)", async () => {
    const points = ['lr=1e-3', 'lr=3e-3', 'lr=1e-2'];
    const a = await lineColors(
      'val_loss',
      points.map((p, k) => ({ ...curve(`${p} (3 seeds)`, k), variant: p })),
      points,
    );
    const b = await lineColors('train_loss', [{ ...curve('lr=1e-2 (2 seeds)', 0), variant: 'lr=1e-2' }], points);
    expect(b.get('lr=1e-2 (2 seeds)')).toBe(a.get('lr=1e-2 (3 seeds)'));
    expect(a.get('lr=1e-2 (3 seeds)')).toBe(CATEGORY_COLORS[2]);
  });

  it('quantizer levels take their page colours too', async () => {
    const svg = await histogramWithLevelsSvg({
      title: 'levels',
      values: [0.1, 0.2, 0.5, 0.9],
      bins: 10,
      levels: [{ name: 'log-√2 (RepQ-ViT)', points: [0, 0.5, 1] }],
      variants: ['uniform', 'log-√2 (RepQ-ViT)'],
    });
    expect(legendColors(svg).get('log-√2 (RepQ-ViT)')).toBe(CATEGORY_COLORS[1]);
  });
});
