/** Grouped bars: one bar per group at each label (pruning drop per layer per variant, accuracy per bits). */
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.js';
import { checkTitle } from './data.js';
import { plotSize, renderSpec, specToSvg, type PlotSize } from './render.js';
import { axisTitles, frame, legendPlacement, plotConfig, titleFor, variantColors, type PageColors } from './theme.js';

export interface BarGroup {
  /** Group (variant, method): one colour, one legend entry. */
  name: string;
  /** One bar per label; labels shared across groups line up (layer 0, layer 1, … or 4-bit, 8-bit). */
  values: { label: string; value: number }[];
}

export interface BarPlotOptions extends PlotSize, PageColors {
  title: string;
  xLabel: string;
  yLabel: string;
  groups: BarGroup[];
}

export function barPlotSpec(o: BarPlotOptions): TopLevelSpec {
  const title = checkTitle(o.title, 'barPlot');
  const { width, height } = plotSize(o);
  if (!Array.isArray(o.groups) || o.groups.length === 0) {
    fail('data', `barPlot "${title}": no groups given: nothing to plot`);
  }
  const names: string[] = [];
  const labels: string[] = [];
  const rows: { g: string; label: string; value: number }[] = [];
  for (const g of o.groups) {
    if (typeof g.name !== 'string') fail('data', `barPlot "${title}": a group has no name`);
    if (names.includes(g.name)) fail('data', `barPlot "${title}": two groups are named "${g.name}"`);
    names.push(g.name);
    if (!Array.isArray(g.values) || g.values.length === 0) {
      fail('data', `barPlot "${title}": group "${g.name}" is empty: nothing to plot`);
    }
    for (const v of g.values) {
      const label = String(v.label);
      if (!labels.includes(label)) labels.push(label);
      if (Number.isFinite(v.value)) rows.push({ g: g.name, label, value: v.value });
    }
  }
  if (rows.length === 0) fail('data', `barPlot "${title}": no group has a finite value`);
  const anyNegative = rows.some((r) => r.value < 0);
  const axes = axisTitles(o.xLabel, o.yLabel, width, height, names.length > 1 ? names : []);
  const longest = Math.max(...labels.map((l) => l.length));
  const layers: unknown[] = [
    {
      mark: { type: 'bar', stroke: 'white', strokeWidth: 0.5 },
      encoding: {
        x: {
          field: 'label',
          type: 'nominal',
          title: axes.x,
          scale: { domain: labels, paddingInner: 0.2, paddingOuter: 0.1 },
          axis: { labelAngle: labels.length * longest > 60 ? -45 : 0, grid: false, labelOverlap: 'parity' },
        },
        xOffset: { field: 'g', type: 'nominal', scale: { domain: names, paddingInner: 0.05 } },
        y: { field: 'value', type: 'quantitative', title: axes.y, scale: { zero: true } },
        color: {
          field: 'g',
          type: 'nominal',
          title: null,
          scale: { domain: names, range: variantColors(names, o.variants) },
          legend: names.length > 1 ? { symbolType: 'square', ...legendPlacement(names, width) } : null,
        },
        tooltip: [{ field: 'g' }, { field: 'label' }, { field: 'value' }],
      },
    },
  ];
  if (anyNegative) {
    layers.push({ mark: { type: 'rule', color: '#444', strokeWidth: 1 }, encoding: { y: { datum: 0 } } });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: titleFor(title, width),
    ...frame(width, height),
    config: plotConfig(),
    data: { values: rows },
    layer: layers,
  } as TopLevelSpec;
}

/** PNG bytes of the figure (width × height × scale pixels). */
export async function barPlot(o: BarPlotOptions): Promise<Uint8Array> {
  return (await renderSpec(barPlotSpec(o), o.scale ?? 1)).png;
}

/** SVG text of the figure. */
export async function barPlotSvg(o: BarPlotOptions): Promise<string> {
  return specToSvg(barPlotSpec(o));
}
