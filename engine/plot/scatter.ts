/** Points with labelled horizontal rules: per-channel scales with their mean and median marked. */
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.js';
import { allIntegers, checkTitle, extent, fmt, logDomain } from './data.js';
import { plotSize, renderSpec, specToSvg, type PlotSize } from './render.js';
import { axisTitles, CATEGORY_COLORS, frame, legendPlacement, plotConfig, titleFor } from './theme.js';

export interface ScatterOptions extends PlotSize {
  title: string;
  xLabel: string;
  yLabel: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** Horizontal rules, each a colour and a legend entry "label = value". */
  rules: { y: number; label: string }[];
  /** Log-scale y axis; points and rules with y ≤ 0 are dropped. */
  logY?: boolean;
  /** Legend name of the points (default: the y label). */
  pointsLabel?: string;
}

export function scatterSpec(o: ScatterOptions): TopLevelSpec {
  const title = checkTitle(o.title, 'scatterWithRules');
  const { width, height } = plotSize(o);
  const n = o.x?.length ?? 0;
  if (n === 0 || (o.y?.length ?? 0) === 0) fail('data', `scatterWithRules "${title}": no points: nothing to plot`);
  if (o.y.length !== n) {
    fail('data', `scatterWithRules "${title}": ${n} x values but ${o.y.length} y values`);
  }
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < n; i++) {
    const x = o.x[i];
    const y = o.y[i];
    if (Number.isFinite(x) && Number.isFinite(y) && !(o.logY && y <= 0)) points.push({ x, y });
  }
  if (points.length === 0) {
    const why = o.logY ? 'finite positive y values for a log scale' : 'finite values';
    fail('data', `scatterWithRules "${title}": no point has ${why}`);
  }
  const rules = (o.rules ?? []).filter((r) => Number.isFinite(r.y) && !(o.logY && r.y <= 0)).map((r) => ({ y: r.y, name: `${r.label} = ${fmt(r.y)}` }));
  const pointsName = o.pointsLabel ?? o.yLabel;
  const names = [pointsName, ...rules.map((r) => r.name)];
  if (new Set(names).size !== names.length) fail('data', `scatterWithRules "${title}": two rules have the same label`);
  const colors = ['#4a5a6a', ...rules.map((_, i) => CATEGORY_COLORS[(i + 1) % CATEGORY_COLORS.length])];
  const axes = axisTitles(o.xLabel, o.yLabel, width, height, names);
  const yExt = extent(points.map((p) => p.y).concat(rules.map((r) => r.y))) as [number, number];
  const xInts = allIntegers(points.map((p) => p.x));
  const color = {
    field: 'name',
    type: 'nominal',
    title: null,
    scale: { domain: names, range: colors },
    legend: {
      ...legendPlacement(names, width),
      symbolType: { expr: `datum.value === ${JSON.stringify(pointsName)} ? 'circle' : 'stroke'` },
      symbolStrokeWidth: 2,
    },
  };
  const size = points.length > 2000 ? 6 : points.length > 300 ? 12 : 24;
  const layers: unknown[] = [
    {
      data: { values: points.map((p) => ({ ...p, name: pointsName })) },
      mark: { type: 'point', filled: true, opacity: 0.75, size },
      encoding: {
        x: {
          field: 'x',
          type: 'quantitative',
          title: axes.x,
          scale: { zero: false, nice: false, padding: 6 },
          axis: { format: xInts ? 'd' : '~g', tickCount: { expr: 'ceil(width / 75)' } },
        },
        y: {
          field: 'y',
          type: 'quantitative',
          title: axes.y,
          scale: o.logY ? { type: 'log', domain: logDomain(...yExt) } : { zero: false },
          axis: { format: '~g' },
        },
        color,
      },
    },
  ];
  if (rules.length > 0) {
    layers.push({
      data: { values: rules },
      mark: { type: 'rule', strokeWidth: 1.75, strokeDash: [6, 3] },
      encoding: { y: { field: 'y', type: 'quantitative' }, color },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: titleFor(title, width),
    ...frame(width, height),
    config: plotConfig(),
    layer: layers,
  } as TopLevelSpec;
}

/** PNG bytes of the figure (width × height × scale pixels). */
export async function scatterWithRules(o: ScatterOptions): Promise<Uint8Array> {
  return (await renderSpec(scatterSpec(o), o.scale ?? 1)).png;
}

/** SVG text of the figure. */
export async function scatterWithRulesSvg(o: ScatterOptions): Promise<string> {
  return specToSvg(scatterSpec(o));
}
