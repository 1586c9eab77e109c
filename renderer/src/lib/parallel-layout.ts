/**
 * Where the parallel-coordinates figure draws its axes and labels, with no two labels overlapping:
 * the axis titles on one line while they fit between their neighbours, else on two staggered
 * lines, cut (whole on hover) where even that is too narrow; tick labels cut short of the next axis.
 */
import { fmtNum } from './format';
import { axisPosition, type Axis } from './runs-table';
import { fittedLabel, type Measure, type SvgLabel } from './text-layout';

export interface ParallelLayout {
  height: number;
  top: number;
  bottom: number;
  xOf: (i: number) => number;
  yOf: (t: number) => number;
  labels: SvgLabel[];
}

const TITLE_FONT = 11;
const TICK_FONT = 10.5;
const LEFT = 40;
const BOTTOM = 22;
const AXES_H = 204;
/** Free space kept between two titles on one line. */
const GAP = 8;

/** The text beside each axis: its range for numbers, its categories otherwise. */
function tickTexts(a: Axis): string[] {
  return a.kind === 'number' ? [fmtNum(a.max, 3), fmtNum(a.min, 3)] : (a.categories ?? []);
}

/**
 * Each title's line and its room on that line: titles on `lines` lines take turns, each centred on
 * its axis where it fits and moved aside (never past the middle to its neighbours) where not.
 */
function placeTitles(axes: Axis[], xs: number[], width: number, lines: number, measure: Measure): { label: SvgLabel; cut: boolean }[] {
  return axes.map((a, i) => {
    const prev = i - lines >= 0 ? (xs[i - lines] + xs[i]) / 2 : 0;
    const next = i + lines < xs.length ? (xs[i] + xs[i + lines]) / 2 : width;
    const [lo, hi] = [prev + GAP / 2, next - GAP / 2];
    const label = fittedLabel(
      { text: a.label, x: xs[i], y: 14 + (i % lines) * 14, size: TITLE_FONT, anchor: 'middle', cls: 'figure-axis-title' },
      hi - lo,
      measure,
    );
    const w = measure(label.text, TITLE_FONT);
    return { label: { ...label, x: Math.min(Math.max(xs[i], lo + w / 2), hi - w / 2) }, cut: label.full !== undefined };
  });
}

export function parallelLayout(o: { width: number; axes: Axis[]; measure: Measure }): ParallelLayout {
  const { width, axes, measure } = o;
  // The last axis's tick labels sit right of it: room for them, within reason.
  const last = axes.length ? tickTexts(axes[axes.length - 1]) : [];
  const right = Math.ceil(Math.min(160, Math.max(40, ...last.map((t) => measure(t, TICK_FONT) + 10))));
  const xs = axes.map((_, i) => LEFT + (axes.length < 2 ? 0.5 : i / (axes.length - 1)) * (width - LEFT - right));
  const spacing = axes.length < 2 ? width - LEFT - right : xs[1] - xs[0];
  const oneLine = placeTitles(axes, xs, width, 1, measure);
  const lines = oneLine.some((t) => t.cut) && axes.length > 2 ? 2 : 1;
  const titles = lines === 1 ? oneLine : placeTitles(axes, xs, width, 2, measure);
  const top = 34 + (lines - 1) * 14;
  const height = top + AXES_H + BOTTOM;
  const yOf = (t: number) => top + (1 - t) * AXES_H;
  const labels = titles.map((t) => t.label);
  axes.forEach((a, i) => {
    const room = i === axes.length - 1 ? right - 8 : spacing - 8;
    const tick = (text: string, y: number) => fittedLabel({ text, x: xs[i] + 4, y, size: TICK_FONT, anchor: 'start', cls: 'figure-axis-label' }, room, measure);
    if (a.kind === 'number') labels.push(tick(fmtNum(a.max, 3), top + 4), tick(fmtNum(a.min, 3), height - BOTTOM));
    else for (const c of a.categories ?? []) labels.push(tick(c, yOf(axisPosition(a, c)) + 4));
  });
  return { height, top, bottom: height - BOTTOM, xOf: (i) => xs[i] ?? LEFT, yOf, labels };
}
