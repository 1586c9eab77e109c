/**
 * Vega-Lite spec → SVG (vega, headless: `renderer: 'none'`, no canvas, no DOM) → PNG (resvg).
 *
 * Text is drawn with DejaVu Sans loaded from its font file, so a figure renders the same on every
 * machine; where the file is missing, resvg falls back to the system's fonts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import { appPath } from '../core/app-paths.js';
import { fail } from '../core/errors.js';
import { installTextMetrics } from './textmetrics.js';

/** The font family every plot uses. */
export const PLOT_FONT = 'DejaVu Sans';

/** Default figure size in pixels (before `scale`). */
export const DEFAULT_WIDTH = 640;
export const DEFAULT_HEIGHT = 400;

/** Size options every plot accepts. */
export interface PlotSize {
  /** Figure width in CSS pixels (default 640). */
  width?: number;
  /** Figure height in CSS pixels (default 400). */
  height?: number;
  /** Pixel density of the PNG: 2 gives a 1280×800 PNG for a 640×400 figure (default 1). */
  scale?: number;
}

/** A rendered figure: the SVG text and the PNG bytes made from it. */
export interface RenderedPlot {
  svg: string;
  png: Uint8Array;
}

const FONT_DIRS = [
  process.env.NORMLAB_FONT_DIR,
  appPath('fonts'), // the portable bundle's copy (engine/bundle/build.ts); absent in a checkout
  '/usr/share/fonts/truetype/dejavu',
  '/usr/share/fonts/dejavu',
  '/usr/share/fonts/TTF',
  '/usr/local/share/fonts',
  '/Library/Fonts',
].filter((d): d is string => typeof d === 'string' && d.length > 0);
const FONT_FILES = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf'];

let fontFilesCache: string[] | undefined;

/** The DejaVu Sans font files found on this machine (regular first); empty when none. */
export function plotFontFiles(): string[] {
  if (fontFilesCache) return fontFilesCache;
  for (const dir of FONT_DIRS) {
    const regular = path.join(dir, FONT_FILES[0]);
    if (fs.existsSync(regular)) {
      fontFilesCache = FONT_FILES.map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f));
      return fontFilesCache;
    }
  }
  fontFilesCache = [];
  return fontFilesCache;
}

function resvgFont(): NonNullable<ResvgRenderOptions['font']> {
  const files = plotFontFiles();
  if (files.length > 0) {
    return {
      fontFiles: files,
      loadSystemFonts: false,
      defaultFontFamily: PLOT_FONT,
      sansSerifFamily: PLOT_FONT,
    };
  }
  return { loadSystemFonts: true, defaultFontFamily: PLOT_FONT, sansSerifFamily: PLOT_FONT };
}

/** Checked figure size: positive integers, defaults filled in. */
export function plotSize(size: PlotSize): { width: number; height: number; scale: number } {
  const width = size.width ?? DEFAULT_WIDTH;
  const height = size.height ?? DEFAULT_HEIGHT;
  const scale = size.scale ?? 1;
  for (const [name, v, min] of [
    ['width', width, 120],
    ['height', height, 100],
  ] as const) {
    if (!Number.isInteger(v) || v < min || v > 8000) {
      fail('data', `plot ${name} must be an integer from ${min} to 8000 pixels, got ${v}`);
    }
  }
  if (!Number.isFinite(scale) || scale <= 0 || scale > 8) {
    fail('data', `plot scale must be a number in (0, 8], got ${scale}`);
  }
  return { width, height, scale };
}

/** Render a Vega-Lite spec to SVG text (the spec should set width/height and autosize 'fit'). */
export async function specToSvg(spec: TopLevelSpec): Promise<string> {
  installTextMetrics();
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterize SVG text to PNG bytes on a white background; `scale` multiplies the pixel size. */
export function svgToPng(svg: string, scale = 1): Uint8Array {
  const resvg = new Resvg(svg, {
    background: 'white',
    font: resvgFont(),
    fitTo: scale === 1 ? { mode: 'original' } : { mode: 'zoom', value: scale },
    shapeRendering: 2,
    textRendering: 1,
  });
  const png = resvg.render().asPng();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Spec → SVG and PNG. */
export async function renderSpec(spec: TopLevelSpec, scale = 1): Promise<RenderedPlot> {
  const svg = await specToSvg(spec);
  return { svg, png: svgToPng(svg, scale) };
}
