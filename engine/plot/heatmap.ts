/** A value per (x, y) cell with a colour bar: angular distance d(l, n) between layers. */
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.js';
import { checkTitle } from './data.js';
import { plotSize, renderSpec, specToSvg, type PlotSize } from './render.js';
import { axisTitles, frame, plotConfig, titleFor } from './theme.js';

export interface HeatmapOptions extends PlotSize {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Column labels, left to right. */
  x: (number | string)[];
  /** Row labels; row 0 is drawn at the top unless `yUp`. */
  y: (number | string)[];
  /** values[yi][xi]; NaN (or any non-finite value) leaves the cell empty. */
  values: ArrayLike<number>[];
  /** Title of the colour bar. */
  colorLabel: string;
  /** Fix the colour range (e.g. [0, 1] for angular distance); default: the data's min and max. */
  colorDomain?: [number, number];
  /** Vega colour scheme (default 'viridis'; low values dark, high values bright). */
  scheme?: string;
  /** Draw row 0 at the bottom, as on a numeric y axis (default false: at the top, as in a matrix). */
  yUp?: boolean;
}

export function heatmapSpec(o: HeatmapOptions): TopLevelSpec {
  const title = checkTitle(o.title, 'heatmap');
  const { width, height } = plotSize(o);
  const nx = o.x?.length ?? 0;
  const ny = o.y?.length ?? 0;
  if (nx === 0 || ny === 0) fail('data', `heatmap "${title}": no ${nx === 0 ? 'x' : 'y'} labels: nothing to plot`);
  if (!Array.isArray(o.values) || o.values.length !== ny) {
    fail('data', `heatmap "${title}": values has ${o.values?.length ?? 0} rows, expected ${ny} (one per y label)`);
  }
  const xs = o.x.map(String);
  const ys = o.y.map(String);
  for (const [axis, labels] of [
    ['x', xs],
    ['y', ys],
  ] as const) {
    if (new Set(labels).size !== labels.length) fail('data', `heatmap "${title}": ${axis} labels repeat`);
  }
  const rows: { x: string; y: string; v: number }[] = [];
  for (let yi = 0; yi < ny; yi++) {
    const row = o.values[yi];
    if (row == null || row.length !== nx) {
      fail('data', `heatmap "${title}": values row ${yi} has ${row?.length ?? 0} entries, expected ${nx}`);
    }
    for (let xi = 0; xi < nx; xi++) {
      const v = row[xi];
      if (Number.isFinite(v)) rows.push({ x: xs[xi], y: ys[yi], v });
    }
  }
  if (rows.length === 0) fail('data', `heatmap "${title}": every value is NaN or infinite: nothing to plot`);
  if (o.colorDomain && !(o.colorDomain[0] < o.colorDomain[1])) {
    fail('data', `heatmap "${title}": colorDomain must be [low, high] with low < high`);
  }
  const labelAxis = {
    grid: false,
    ticks: false,
    domain: false,
    labelAngle: 0,
    labelOverlap: 'parity' as const,
    labelPadding: 4,
    labelLimit: 120,
  };
  const axes = axisTitles(o.xLabel, o.yLabel, width - 60, height);
  const legend = { type: 'gradient', orient: 'right', gradientLength: { expr: 'max(60, height - 16)' }, format: '~g' };
  const colorScale = { scheme: o.scheme ?? 'viridis', ...(o.colorDomain ? { domain: o.colorDomain, clamp: true } : {}) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: titleFor(title, width),
    ...frame(width, height),
    config: { ...plotConfig(), view: { stroke: null } },
    data: { values: rows },
    // A hairline stroke in the cell's own colour hides the anti-aliasing seams between cells.
    mark: { type: 'rect', strokeWidth: 0.6, stroke: { expr: "scale('color', datum.v)" } },
    encoding: {
      x: {
        field: 'x',
        type: 'ordinal',
        title: axes.x,
        scale: { domain: xs, paddingInner: 0, paddingOuter: 0 },
        axis: labelAxis,
      },
      y: {
        field: 'y',
        type: 'ordinal',
        title: axes.y,
        scale: { domain: ys, paddingInner: 0, paddingOuter: 0, reverse: o.yUp === true },
        axis: labelAxis,
      },
      color: {
        field: 'v',
        type: 'quantitative',
        title: o.colorLabel,
        scale: colorScale,
        legend,
      },
      tooltip: [{ field: 'x' }, { field: 'y' }, { field: 'v' }],
    },
  } as TopLevelSpec;
}

/** PNG bytes of the figure (width × height × scale pixels). */
export async function heatmap(o: HeatmapOptions): Promise<Uint8Array> {
  return (await renderSpec(heatmapSpec(o), o.scale ?? 1)).png;
}

/** SVG text of the figure. */
export async function heatmapSvg(o: HeatmapOptions): Promise<string> {
  return specToSvg(heatmapSpec(o));
}
