/**
 * Text of the SVG figures (Bars, Histogram, ParallelCoords): a label as placed in the SVG, text
 * widths, and text cut to a width, so each figure's layout can keep its labels apart.
 */

/** Width in px of `text` at `fontSize` px in the figures' font. */
export type Measure = (text: string, fontSize: number) => number;

/** One SVG `<text>`: baseline at `y`, anchored at `x`, turned `angle`° about (x, y). */
export interface SvgLabel {
  text: string;
  x: number;
  y: number;
  size: number;
  anchor: 'start' | 'middle' | 'end';
  angle?: number;
  /** CSS class (its colour; the size is `size`). */
  cls: string;
  /** The whole text where `text` was cut to fit, shown on hover. */
  full?: string;
}

/** `text` cut with an ellipsis to fit `maxWidth` px (whole when it fits). */
export function fitText(text: string, maxWidth: number, fontSize: number, measure: Measure): string {
  if (measure(text, fontSize) <= maxWidth) return text;
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (measure(chars.slice(0, mid).join('').trimEnd() + '…', fontSize) <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return chars.slice(0, lo).join('').trimEnd() + '…';
}

/** A label with `text` cut to `maxWidth` px, keeping the whole text for hover when cut. */
export function fittedLabel(label: Omit<SvgLabel, 'full'>, maxWidth: number, measure: Measure): SvgLabel {
  const text = fitText(label.text, maxWidth, label.size, measure);
  return text === label.text ? label : { ...label, text, full: label.text };
}

/** The font size (px) of the figures' axis labels and titles. */
export const AXIS_FONT = 11;
/** The space (px) kept right of a figure's plot. */
export const PLOT_RIGHT = 10;
/** The y-axis title's centre line; its glyphs reach AXIS_FONT·0.8 left of it and AXIS_FONT·0.2 right. */
const Y_TITLE_X = 12;

/** The left margin that fits the y tick labels `texts` (set 6 px left of the axis) right of the y-axis title: at least 40 px. */
export function yAxisLeft(texts: string[], measure: Measure): number {
  return Math.ceil(Math.max(40, ...texts.map((t) => measure(t, AXIS_FONT) + 6 + Y_TITLE_X + AXIS_FONT * 0.2 + 3)));
}

/** A y tick label: right-aligned 6 px left of the axis at `left`, level with the tick at `y`. */
export function yTickLabel(text: string, left: number, y: number): SvgLabel {
  return { text, x: left - 6, y: y + 4, size: AXIS_FONT, anchor: 'end', cls: 'figure-axis-label' };
}

/** The y-axis title, upright and centred on the plot from `top` of `height` px, cut to fit it. */
export function yTitle(text: string, top: number, height: number, measure: Measure): SvgLabel {
  return fittedLabel({ text, x: Y_TITLE_X, y: top + height / 2, size: AXIS_FONT, anchor: 'middle', angle: -90, cls: 'figure-axis-label' }, height - 4, measure);
}

let canvas: CanvasRenderingContext2D | null | undefined;
let family = '';
let lastFont = '';

/** Widths as the page draws them: a canvas in the document's font (about 0.6 em a character without one). */
export const pageMeasure: Measure = (text, fontSize) => {
  if (canvas === undefined) {
    canvas = typeof document === 'undefined' ? null : document.createElement('canvas').getContext('2d');
    if (canvas) family = getComputedStyle(document.body).fontFamily;
  }
  if (!canvas) return text.length * fontSize * 0.6;
  const font = `${fontSize}px ${family}`;
  if (font !== lastFont) canvas.font = lastFont = font;
  return canvas.measureText(text).width;
};
