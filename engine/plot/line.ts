/** Several (x, y) series overlaid with a legend: loss curves, per-layer variance vs layer. */
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.js';
import { allIntegers, checkTitle, decimate, extent, logDomain } from './data.js';
import { MARK_LABEL_SIZE, markLabelRows } from './mark-labels.js';
import { plotSize, renderSpec, specToSvg, type PlotSize } from './render.js';
import { textWidth } from './textmetrics.js';
import { axisTitles, frame, legendPlacement, plotConfig, titleFor, variantColors, type PageColors } from './theme.js';

export interface LineSeries {
  /** The legend entry. */
  name: string;
  /** The page-wide variant it shows, which picks its colour (`variants`); default: its name. */
  variant?: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** An interval around y at each x (e.g. a 95% confidence interval), drawn as a translucent band in the series' colour. */
  band?: { lo: ArrayLike<number>; hi: ArrayLike<number> };
}

export interface LinePlotOptions extends PlotSize, PageColors {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** Log-scale y axis; points with y ≤ 0 are dropped (a series with none left stays in the legend). */
  logY?: boolean;
  /** Log-scale x axis; points with x ≤ 0 are dropped. */
  logX?: boolean;
  /** Vertical rules, e.g. the steps where a LayerNorm was removed; labels go in up to three rows at the top, left out where none has room. */
  marks?: { x: number; label?: string }[];
  /** Draw a dot at each point (default: when no series has more than 60 points). */
  points?: boolean;
  /** Longer series are thinned (min/max per bucket) to about this many points (default 2000). */
  maxPoints?: number;
}

interface Row {
  s: string;
  x: number;
  y: number;
}

export function linePlotSpec(o: LinePlotOptions): TopLevelSpec {
  const title = checkTitle(o.title, 'linePlot');
  const { width, height } = plotSize(o);
  if (!Array.isArray(o.series) || o.series.length === 0) {
    fail('data', `linePlot "${title}": no series given: nothing to plot`);
  }
  const names: string[] = [];
  const rows: Row[] = [];
  let longest = 0;
  let dropped = 0;
  const maxPoints = o.maxPoints ?? 2000;
  for (const s of o.series) {
    if (typeof s.name !== 'string') fail('data', `linePlot "${title}": a series has no name`);
    if (names.includes(s.name)) fail('data', `linePlot "${title}": two series are named "${s.name}"`);
    names.push(s.name);
    const n = s.x?.length ?? 0;
    if (n === 0 || (s.y?.length ?? 0) === 0) {
      fail('data', `linePlot "${title}": series "${s.name}" is empty: nothing to plot`);
    }
    if (s.y.length !== n) {
      fail('data', `linePlot "${title}": series "${s.name}" has ${n} x values but ${s.y.length} y values`);
    }
    const xs: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = s.x[i];
      const y = s.y[i];
      if (!Number.isFinite(x) || !Number.isFinite(y) || (o.logY && y <= 0) || (o.logX && x <= 0)) {
        dropped++;
        continue;
      }
      xs.push(x);
      ys.push(y);
    }
    longest = Math.max(longest, xs.length);
    const thin = decimate(xs, ys, maxPoints);
    for (let i = 0; i < thin.x.length; i++) rows.push({ s: s.name, x: thin.x[i], y: thin.y[i] });
  }
  if (rows.length === 0) {
    const why = o.logY || o.logX ? 'finite positive values for a log scale' : 'finite values';
    fail('data', `linePlot "${title}": no series has ${why} (${dropped} points dropped)`);
  }
  const bandRows = o.series.flatMap((s) =>
    s.band ? Array.from(s.x, (x, i) => ({ s: s.name, x, lo: s.band!.lo[i], hi: s.band!.hi[i] })).filter((r) => [r.x, r.lo, r.hi].every(Number.isFinite)) : [],
  );
  const marks = (o.marks ?? []).filter((m) => Number.isFinite(m.x) && !(o.logX && m.x <= 0));
  const xInts = allIntegers(rows.map((r) => r.x).concat(marks.map((m) => m.x)));
  const showPoints = o.points ?? longest <= 40;
  const axes = axisTitles(o.xLabel, o.yLabel, width, height, names);
  const colorScale = {
    domain: names,
    range: variantColors(
      o.series.map((s) => s.variant ?? s.name),
      o.variants,
    ),
  };
  const yExt = extent(rows.map((r) => r.y).concat(bandRows.flatMap((r) => [r.lo, r.hi]))) as [number, number];
  const xExt = extent(rows.map((r) => r.x).concat(marks.map((m) => m.x))) as [number, number];
  // Few integer x (layers): a tick at every integer; otherwise about one tick per 75 px.
  const xAxis =
    xInts && !o.logX && xExt[1] - xExt[0] <= 32
      ? { values: range(xExt[0], xExt[1]), format: 'd' }
      : { tickCount: { expr: 'ceil(width / 75)' }, format: xInts && !o.logX ? 'd' : '~g' };

  const layers: unknown[] = [
    {
      data: { values: rows },
      mark: { type: 'line', clip: true, point: showPoints ? { size: 22, filled: true } : false },
      encoding: {
        x: {
          field: 'x',
          type: 'quantitative',
          title: axes.x,
          scale: o.logX ? { type: 'log', domain: logDomain(...xExt) } : { zero: false, nice: false, ...(showPoints ? { padding: 8 } : {}) },
          axis: xAxis,
        },
        y: {
          field: 'y',
          type: 'quantitative',
          title: axes.y,
          scale: o.logY ? { type: 'log', domain: logDomain(...yExt) } : { zero: false },
          axis: o.logY ? { format: '~g' } : {},
        },
        color: {
          field: 's',
          type: 'nominal',
          title: null,
          scale: colorScale,
          legend: { symbolType: showPoints ? 'circle' : 'stroke', ...legendPlacement(names, width) },
        },
      },
    },
  ];
  if (bandRows.length > 0 && !o.logY && !o.logX) {
    layers.push({
      data: { values: bandRows },
      mark: { type: 'area', opacity: 0.2, clip: true },
      encoding: {
        x: { field: 'x', type: 'quantitative' },
        y: { field: 'lo', type: 'quantitative' },
        y2: { field: 'hi' },
        color: { field: 's', type: 'nominal', scale: colorScale },
      },
    });
  }
  if (marks.length > 0) {
    layers.push({
      data: { values: marks.map((m) => ({ x: m.x })) },
      mark: { type: 'rule', color: '#555', strokeDash: [5, 4], strokeWidth: 1 },
      encoding: { x: { field: 'x', type: 'quantitative' } },
    });
    const labelled = marks.filter((m) => m.label).map((m) => ({ x: m.x, label: m.label! }));
    const markRows = markLabelRows(labelled, markPx(xExt, o.logX === true, width, names));
    if (markRows.length > 0) {
      layers.push({
        data: { values: markRows },
        mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, fontSize: MARK_LABEL_SIZE, color: '#333' },
        encoding: {
          x: { field: 'x', type: 'quantitative' },
          y: { field: 'dy', type: 'quantitative', scale: null },
          text: { field: 'label', type: 'nominal' },
        },
      });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: titleFor(title, width),
    ...frame(width, height),
    config: plotConfig(),
    layer: layers,
  } as TopLevelSpec;
}

/**
 * x value → px from the plot's left edge, for placing rule labels: the plot is taken to be the
 * figure less 130 px for padding and the y axis and less a legend on the right, at most its width.
 */
function markPx(xExt: [number, number], logX: boolean, width: number, names: string[]): (x: number) => number {
  const legend = legendPlacement(names, width).orient === 'right' ? Math.max(...names.map((n) => textWidth(n, 11))) + 38 : 0;
  const plotW = width - 130 - legend;
  const [lo, hi] = logX ? logDomain(...xExt).map(Math.log) : xExt;
  return (x) => (((logX ? Math.log(x) : x) - lo) / (hi - lo || 1)) * plotW;
}

function range(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let v = lo; v <= hi; v++) out.push(v);
  return out;
}

/** PNG bytes of the figure (width × height × scale pixels). */
export async function linePlot(o: LinePlotOptions): Promise<Uint8Array> {
  return (await renderSpec(linePlotSpec(o), o.scale ?? 1)).png;
}

/** SVG text of the figure. */
export async function linePlotSvg(o: LinePlotOptions): Promise<string> {
  return specToSvg(linePlotSpec(o));
}
