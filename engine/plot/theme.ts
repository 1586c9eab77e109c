/**
 * The look shared by every NormLab figure: white background, DejaVu Sans, a framed plot area,
 * light grid, axis titles in plain weight, and a colour-blind-friendly categorical palette.
 */
import type { Config } from 'vega-lite';
import { PLOT_FONT } from './render.js';
import { textWidth } from './textmetrics.js';

/** Categorical colours (Okabe–Ito, reordered so the first few are far apart in hue and lightness). */
export const CATEGORY_COLORS = [
  '#0072B2', // blue
  '#D55E00', // vermillion
  '#009E73', // green
  '#CC79A7', // pink
  '#E69F00', // orange
  '#56B4E9', // sky blue
  '#000000', // black
  '#F0E442', // yellow
  '#7F7F7F', // grey
];

/** The page-wide colour option of the plots that colour series, bar groups or quantizers by name. */
export interface PageColors {
  /**
   * Every variant (series, bar group, quantizer name) the figures of this run's page show, in
   * the page's order (e.g. the study's config variants): each name takes the colour at its place
   * here, so a variant has one colour in every figure, even one that shows only some of them.
   * Default: this figure's own order.
   */
  variants?: readonly string[];
}

/**
 * The colour of each of `names` (this figure's variants, in its order): the palette colour at the
 * name's place in `variants`, the page's list; names not in it come after it, in this order.
 */
export function variantColors(names: readonly string[], variants: readonly string[] = []): string[] {
  const order = [...variants];
  for (const n of names) if (!order.includes(n)) order.push(n);
  return names.map((n) => CATEGORY_COLORS[order.indexOf(n) % CATEGORY_COLORS.length]);
}

/** The Vega-Lite config every plot uses. */
export function plotConfig(): Config {
  return {
    font: PLOT_FONT,
    background: 'white',
    padding: 10,
    title: { fontSize: 14, fontWeight: 'bold', color: '#111', offset: 10, anchor: 'middle', frame: 'group' },
    view: { stroke: '#444', strokeWidth: 1 },
    axis: {
      labelFontSize: 11,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      titleColor: '#111',
      labelColor: '#222',
      domainColor: '#444',
      tickColor: '#444',
      gridColor: '#e5e5e5',
      labelOverlap: true,
      labelFlush: false,
      titlePadding: 8,
    },
    legend: {
      labelFontSize: 11,
      titleFontSize: 11,
      titleFontWeight: 'normal',
      labelLimit: 200,
      symbolStrokeWidth: 2,
    },
    range: { category: CATEGORY_COLORS },
    line: { strokeWidth: 1.75 },
  };
}

/** Size and layout fields of a top-level spec: the figure fills exactly width × height. */
export function frame(width: number, height: number) {
  return {
    width,
    height,
    autosize: { type: 'fit' as const, contains: 'padding' as const },
  };
}

/**
 * `text` cut with an ellipsis to fit `maxWidth` px. Long titles are cut here, with DejaVu's own
 * widths, rather than by vega's `limit`: with a custom text measure (textmetrics.ts) vega sizes
 * the layout from the uncut text, which would push the rest of the figure aside.
 */
export function fitText(text: string, maxWidth: number, fontSize: number, bold = false): string {
  if (textWidth(text, fontSize, bold) <= maxWidth) return text;
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textWidth(chars.slice(0, mid).join('').trimEnd() + '…', fontSize, bold) <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return chars.slice(0, lo).join('').trimEnd() + '…';
}

/**
 * Where a legend with these entries goes: on the right while it leaves the plot at least 70% of
 * the figure's width, else in columns below the plot (names too long for a column are cut).
 */
export function legendPlacement(names: string[], width: number): Record<string, unknown> {
  const entry = Math.max(...names.map((n) => textWidth(n, 11)), 10) + 28;
  if (entry <= width * 0.3) return { orient: 'right' };
  const fit = Math.floor((width - 40) / entry);
  const wanted = names.length > 3 ? Math.min(3, Math.floor(width / 150)) : 1;
  const columns = Math.max(1, Math.min(names.length, Math.max(fit, wanted)));
  const labelWidth = Math.max(60, Math.floor((width - 40) / columns) - 34);
  const cut: Record<string, string> = {};
  for (const n of names) {
    const short = fitText(n, labelWidth, 11);
    if (short !== n) cut[n] = short;
  }
  const labelExpr = Object.keys(cut).length > 0 ? `(${JSON.stringify(cut)})[datum.label] || datum.label` : undefined;
  return { orient: 'bottom', direction: 'horizontal', columns, labelLimit: 0, ...(labelExpr ? { labelExpr } : {}) };
}

/** Rows a bottom legend takes (0 for a legend on the right). */
function legendRows(names: string[], width: number): number {
  const p = legendPlacement(names, width);
  return p.orient === 'bottom' ? Math.ceil(names.length / Number(p.columns)) : 0;
}

/** The figure title, cut to fit the figure's width. */
export function titleFor(text: string, width: number): string {
  return fitText(text, width - 24, 14, true);
}

/** Axis titles cut to fit the plot area (roughly: the figure less axes, title and legend). */
export function axisTitles(xLabel: string, yLabel: string, width: number, height: number, legendNames: string[] = []): { x: string; y: string } {
  const rows = legendNames.length > 0 ? legendRows(legendNames, width) : 0;
  const plotHeight = height - 90 - (rows > 0 ? rows * 16 + 14 : 0);
  return {
    x: fitText(String(xLabel ?? ''), Math.max(60, width - 90), 12),
    y: fitText(String(yLabel ?? ''), Math.max(40, plotHeight), 12),
  };
}
