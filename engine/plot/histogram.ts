/**
 * A histogram with each quantizer's levels marked: post-softmax values against the points a
 * uniform / log2 / … quantizer can represent. Each quantizer gets a colour and a lane of ticks
 * above the bars, with faint rules down through the histogram.
 */
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.js';
import { checkTitle, logDomain } from './data.js';
import { plotSize, renderSpec, specToSvg, type PlotSize } from './render.js';
import { axisTitles, frame, legendPlacement, plotConfig, titleFor, variantColors, type PageColors } from './theme.js';

export interface QuantizerLevels {
  /** Quantizer name: one colour, one legend entry, one lane. */
  name: string;
  /** The values it can represent. */
  points: ArrayLike<number>;
}

export interface HistogramOptions extends PlotSize, PageColors {
  title: string;
  /** The samples (NaN and ±Infinity are dropped). */
  values: ArrayLike<number>;
  /** Number of equal-width bins over [min, max] of the values. */
  bins: number;
  levels: QuantizerLevels[];
  /** Log-scale counts; empty bins are left out. */
  logY?: boolean;
  /** Axis titles (default 'value' and 'count'). */
  xLabel?: string;
  yLabel?: string;
  /** Bin range (default: the values' min and max); values outside it are not counted. */
  range?: [number, number];
}

export interface Histogram {
  lo: number;
  width: number;
  counts: number[];
  /** Values outside the range or not finite. */
  skipped: number;
}

/** Count `values` into `bins` equal bins over [lo, hi] (the last bin includes hi). */
export function histogram(values: ArrayLike<number>, bins: number, lo: number, hi: number): Histogram {
  const counts = new Array<number>(bins).fill(0);
  const width = (hi - lo) / bins;
  let skipped = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) {
      skipped++;
      continue;
    }
    const b = Math.min(bins - 1, Math.floor((v - lo) / width));
    counts[b]++;
  }
  return { lo, width, counts, skipped };
}

export function histogramSpec(o: HistogramOptions): TopLevelSpec {
  const title = checkTitle(o.title, 'histogramWithLevels');
  const { width, height } = plotSize(o);
  if (!Number.isInteger(o.bins) || o.bins < 1 || o.bins > 10000) {
    fail('data', `histogramWithLevels "${title}": bins must be an integer from 1 to 10000, got ${o.bins}`);
  }
  if (o.values == null || o.values.length === 0) {
    fail('data', `histogramWithLevels "${title}": values is empty: nothing to plot`);
  }
  let lo = Infinity;
  let hi = -Infinity;
  if (o.range) {
    [lo, hi] = o.range;
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) {
      fail('data', `histogramWithLevels "${title}": range must be [low, high] with low < high`);
    }
  } else {
    for (let i = 0; i < o.values.length; i++) {
      const v = o.values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
      // Infinities made the extent unusable: recompute over finite values only.
      lo = Infinity;
      hi = -Infinity;
      for (let i = 0; i < o.values.length; i++) {
        const v = o.values[i];
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (!(lo <= hi)) fail('data', `histogramWithLevels "${title}": no value is finite: nothing to plot`);
    if (lo === hi) {
      lo -= 0.5;
      hi += 0.5;
    }
  }
  const h = histogram(o.values, o.bins, lo, hi);
  const bars: { a: number; b: number; n: number }[] = [];
  h.counts.forEach((n, i) => {
    if (o.logY && n <= 0) return;
    bars.push({ a: h.lo + i * h.width, b: h.lo + (i + 1) * h.width, n });
  });
  if (bars.length === 0) fail('data', `histogramWithLevels "${title}": no value falls in the bin range`);

  const names: string[] = [];
  const ticks: { q: string; x: number; lane: number }[] = [];
  for (const q of o.levels ?? []) {
    if (typeof q.name !== 'string') fail('data', `histogramWithLevels "${title}": a quantizer has no name`);
    if (names.includes(q.name)) fail('data', `histogramWithLevels "${title}": two quantizers are named "${q.name}"`);
    const lane = names.length;
    names.push(q.name);
    for (let i = 0; i < (q.points?.length ?? 0); i++) {
      const x = q.points[i];
      if (Number.isFinite(x)) ticks.push({ q: q.name, x, lane });
    }
  }

  const axes = axisTitles(o.xLabel ?? 'value', o.yLabel ?? (o.logY ? 'count (log)' : 'count'), width, height, names);
  const laneH = 12;
  const top = names.length > 0 ? names.length * laneH + 8 : 0;
  const maxCount = Math.max(...bars.map((b) => b.n));
  const yScale: { type?: 'log'; domain?: [number, number]; zero?: boolean; nice: boolean } = o.logY
    ? { type: 'log', domain: [0.5, logDomain(1, Math.max(1, maxCount))[1]], nice: false }
    : { zero: true, nice: true };
  const colors = variantColors(names, o.variants);
  const layers: unknown[] = [
    {
      data: { values: bars },
      mark: { type: 'rect', color: '#9aa3ad', stroke: '#6b7580', strokeWidth: 0.4 },
      encoding: {
        x: { field: 'a', type: 'quantitative', title: axes.x, scale: { zero: false, nice: false } },
        x2: { field: 'b' },
        y: {
          field: 'n',
          type: 'quantitative',
          title: axes.y,
          scale: { ...yScale, range: [{ expr: 'height' }, top] },
          axis: o.logY ? { format: '~s', tickCount: Math.max(2, Math.floor(Math.log10(yScale.domain![1] / 0.5))) } : { format: '~s' },
        },
        y2: o.logY ? { value: 'height' } : { datum: 0 },
      },
    },
  ];
  if (ticks.length > 0) {
    // Both layers carry the same legend definition so vega-lite merges them into one legend.
    const color = {
      field: 'q',
      type: 'nominal',
      title: null,
      scale: { domain: names, range: colors },
      legend: {
        symbolType: 'stroke',
        symbolStrokeWidth: 3,
        symbolDash: [],
        symbolOpacity: 1,
        ...legendPlacement(names, width),
      },
    };
    layers.push(
      {
        data: { values: ticks },
        mark: { type: 'rule', strokeWidth: 1, opacity: 0.35, strokeDash: [3, 3] },
        encoding: {
          x: { field: 'x', type: 'quantitative' },
          y: { value: top },
          y2: { value: 'height' },
          color,
        },
      },
      {
        data: { values: ticks.map((t) => ({ ...t, y0: t.lane * laneH + 3, y1: (t.lane + 1) * laneH + 1 })) },
        mark: { type: 'rule', strokeWidth: 1.5 },
        encoding: {
          x: { field: 'x', type: 'quantitative' },
          y: { field: 'y0', type: 'quantitative', scale: null },
          y2: { field: 'y1' },
          color,
        },
      },
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: titleFor(title, width),
    ...frame(width, height),
    config: plotConfig(),
    layer: layers,
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

/** PNG bytes of the figure (width × height × scale pixels). */
export async function histogramWithLevels(o: HistogramOptions): Promise<Uint8Array> {
  return (await renderSpec(histogramSpec(o), o.scale ?? 1)).png;
}

/** SVG text of the figure. */
export async function histogramWithLevelsSvg(o: HistogramOptions): Promise<string> {
  return specToSvg(histogramSpec(o));
}
