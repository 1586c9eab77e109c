/**
 * Text labels of a rendered figure as rotated boxes, and the pairs of them that overlap: the guard
 * that tick labels, value labels, legend entries and titles stay apart. The boxes come from vega's
 * scenegraph (the layout the SVG is drawn from) with DejaVu Sans widths (engine/plot/textmetrics.ts).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { installTextMetrics, textWidth } from '../plot/textmetrics.js';

/** A drawn text label: its text and the four corners of its box, in figure pixels. */
export interface LabelBox {
  text: string;
  /** What it is: the vega mark's role (axis-label, legend-label, title-text, mark, …), 'svg-text', or 'shape' for a drawn shape. */
  role: string;
  corners: [number, number][];
}

interface SceneItem {
  x?: number;
  y?: number;
  dx?: number;
  dy?: number;
  angle?: number;
  align?: string;
  baseline?: string;
  fontSize?: number;
  fontWeight?: number | string;
  opacity?: number;
  text?: unknown;
  items?: SceneMark[];
}

interface SceneMark {
  marktype: string;
  role?: string;
  items: SceneItem[];
}

/** vega's own baseline shift (vega-scenegraph `offset`), so boxes sit where the SVG draws the text. */
function baselineOffset(baseline: string | undefined, size: number): number {
  if (baseline === 'top') return Math.round(0.79 * size);
  if (baseline === 'middle') return Math.round(0.3 * size);
  if (baseline === 'bottom') return Math.round(-0.21 * size);
  return 0;
}

function isBold(weight: number | string | undefined): boolean {
  return weight === 'bold' || Number(weight) >= 600;
}

/** The box of one text item, in its group's frame moved by (ox, oy); null for hidden or empty text. */
function itemBox(item: SceneItem, role: string, ox: number, oy: number): LabelBox | null {
  const text = Array.isArray(item.text) ? item.text.join(' ') : String(item.text ?? '').trim();
  const size = Number(item.fontSize ?? 11);
  if (text === '' || size <= 0 || item.opacity === 0) return null;
  const w = textWidth(text, size, isBold(item.fontWeight));
  const left = (item.dx ?? 0) - (item.align === 'center' ? w / 2 : item.align === 'right' ? w : 0);
  const top = (item.dy ?? 0) + baselineOffset(item.baseline, size) - Math.round(0.8 * size);
  return turnedBox(text, role, [ox + (item.x ?? 0), oy + (item.y ?? 0)], [left, top, w, size], item.angle ?? 0);
}

/** The box [left, top, width, height] (relative to `at`) turned `angle`° about `at`. */
function turnedBox(text: string, role: string, at: [number, number], [left, top, w, h]: number[], angle: number): LabelBox {
  const a = (angle * Math.PI) / 180;
  const [cos, sin] = [Math.cos(a), Math.sin(a)];
  const corner = (px: number, py: number): [number, number] => [at[0] + px * cos - py * sin, at[1] + px * sin + py * cos];
  return { text, role, corners: [corner(left, top), corner(left + w, top), corner(left + w, top + h), corner(left, top + h)] };
}

function collect(mark: SceneMark, ox: number, oy: number, out: LabelBox[]): void {
  for (const item of mark.items ?? []) {
    if (mark.marktype === 'text') {
      const box = itemBox(item, mark.role ?? 'mark', ox, oy);
      if (box) out.push(box);
    } else if (mark.marktype === 'group') {
      for (const child of item.items ?? []) collect(child, ox + (item.x ?? 0), oy + (item.y ?? 0), out);
    }
  }
}

/** Every visible text label of the figure `spec` draws (labels vega hid for overlap are left out). */
export async function labelBoxes(spec: TopLevelSpec): Promise<LabelBox[]> {
  installTextMetrics();
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none', logLevel: vega.Error });
  try {
    await view.runAsync();
    const root = (view.scenegraph() as unknown as { root: SceneMark }).root;
    const out: LabelBox[] = [];
    collect(root, 0, 0, out);
    return out;
  } finally {
    view.finalize();
  }
}

/** An SVG `<text>` (baseline at y, `anchor` at x, turned `angle`° about (x, y)) as a box, with DejaVu Sans widths. */
export function svgTextBox(t: { text: string; x: number; y: number; size: number; anchor: 'start' | 'middle' | 'end'; angle?: number }): LabelBox {
  const w = textWidth(t.text, t.size);
  const left = t.anchor === 'middle' ? -w / 2 : t.anchor === 'end' ? -w : 0;
  return turnedBox(t.text, 'svg-text', [t.x, t.y], [left, -0.8 * t.size, w, t.size], t.angle ?? 0);
}

/** A drawn shape that labels must keep off (a tick, a bar) as a box; shapes may overlap each other. */
export function shapeBox(name: string, x1: number, y1: number, x2: number, y2: number): LabelBox {
  return {
    text: name,
    role: 'shape',
    corners: [
      [x1, y1],
      [x2, y1],
      [x2, y2],
      [x1, y2],
    ],
  };
}

/** True when the projections of two convex boxes on some edge normal are apart by more than `slack` px. */
function separated(a: LabelBox, b: LabelBox, slack: number): boolean {
  for (const box of [a, b]) {
    for (let i = 0; i < 4; i++) {
      const [x1, y1] = box.corners[i];
      const [x2, y2] = box.corners[(i + 1) % 4];
      const len = Math.hypot(x2 - x1, y2 - y1) || 1;
      const [nx, ny] = [(y1 - y2) / len, (x2 - x1) / len];
      const project = (c: [number, number][]) => c.map(([x, y]) => x * nx + y * ny);
      const pa = project(a.corners);
      const pb = project(b.corners);
      if (Math.max(...pa) - slack <= Math.min(...pb) || Math.max(...pb) - slack <= Math.min(...pa)) return true;
    }
  }
  return false;
}

/**
 * The pairs of boxes, not both shapes, that overlap by more than `slack` px (default 1:
 * glyph boxes include the line's ascent and descent, so stacked lines may touch).
 */
export function overlappingLabels(boxes: LabelBox[], slack = 1): [LabelBox, LabelBox][] {
  const out: [LabelBox, LabelBox][] = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      if (boxes[i].role === 'shape' && boxes[j].role === 'shape') continue;
      if (!separated(boxes[i], boxes[j], slack)) out.push([boxes[i], boxes[j]]);
    }
  return out;
}

/** The overlapping pairs as one line each ("axis-label "12" × axis-label "13""), for a test's message. */
export function describeOverlaps(pairs: [LabelBox, LabelBox][]): string[] {
  return pairs.map(([a, b]) => `${a.role} "${a.text}" × ${b.role} "${b.text}"`);
}
