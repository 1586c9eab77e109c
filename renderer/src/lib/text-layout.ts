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
