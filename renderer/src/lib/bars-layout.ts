/**
 * Where the Bars figure draws its bars and labels, with no two labels overlapping: category labels
 * level, turned 45° or upright, thinned only when even upright ones would touch (numbered ones like
 * "block 12" show their numbers level, the shared word as the axis title); value labels above each
 * bar, upright when wider than the bar, left out when the bars are thinner than the text.
 */
import { fmtNum } from './format';
import { AXIS_FONT as FONT, fittedLabel, PLOT_RIGHT as RIGHT, yAxisLeft, yTickLabel, yTitle, type Measure, type SvgLabel } from './text-layout';

export interface BarsInput {
  width: number;
  yLabel: string;
  categories: string[];
  groups: { values: (number | null)[] }[];
  measure: Measure;
}

export interface BarRect {
  ci: number;
  gi: number;
  v: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface BarsLayout {
  height: number;
  left: number;
  right: number;
  ticks: { v: number; y: number }[];
  zeroY: number;
  bars: BarRect[];
  labels: SvgLabel[];
}

const VALUE_FONT = 10.5;
const TOP = 16;
const PLOT_H = 170;
const DIAGONAL = Math.SQRT1_2;

function niceStep(raw: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** "block 1", "block 2", … → the shared word ("block") and the numbers; null unless every category is such a pair. */
function numberedCategories(categories: string[]): { head: string; tails: string[] } | null {
  const parts = categories.map((c) => /^(.*\S)\s+(-?\d+(?:\.\d+)?)$/.exec(c));
  if (categories.length < 2 || parts.some((p) => !p || p[1] !== parts[0]![1])) return null;
  return { head: parts[0]![1], tails: parts.map((p) => p![2]) };
}

type ValueMode = 'level' | 'upright' | 'none';

/** Value labels level when they fit a bar, upright when a bar is at least a line thick, else none. */
function valueMode(texts: string[], barW: number, measure: Measure): ValueMode {
  const widest = Math.max(0, ...texts.map((t) => measure(t, VALUE_FONT)));
  if (widest + 2 <= barW - 1) return 'level';
  if (VALUE_FONT + 2 <= barW - 1) return 'upright';
  return 'none';
}

/** The y scale over [lo, hi] with `above`/`below` px kept free past the bars for their value labels. */
function yScale(lo: number, hi: number, above: number, below: number): { yOf: (v: number) => number; top: number; bottom: number } {
  const scale = (PLOT_H - above - below) / (hi - lo || 1);
  const top = hi + above / scale;
  return { yOf: (v) => TOP + (top - v) * scale, top, bottom: lo - below / scale };
}

function gridTicks(lo: number, hi: number, yOf: (v: number) => number): { v: number; y: number }[] {
  const step = niceStep((hi - lo) / 4);
  const out: { v: number; y: number }[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
    const t = Number(v.toPrecision(12));
    out.push({ v: t, y: yOf(t) });
  }
  return out;
}

export function barsLayout(o: BarsInput): BarsLayout {
  const { width, categories, groups, measure } = o;
  const all = groups.flatMap((g) => g.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const lo = Math.min(0, ...all);
  const hi = Math.max(0, ...all);
  const valueTexts = all.map((v) => fmtNum(v, 3));
  const nc = Math.max(1, categories.length);
  const ng = Math.max(1, groups.length);

  // The left margin fits the y tick labels right of the y title; the ticks depend on the value
  // labels' head room, which depends on the bar width: widen it until they fit (two passes, as a rule).
  let left = 40;
  let layout!: { barW: number; slot: number; mode: ValueMode; y: ReturnType<typeof yScale>; ticks: { v: number; y: number }[] };
  for (let pass = 0; pass < 6; pass++) {
    const slot = (width - left - RIGHT) / nc;
    const barW = Math.max(2, (slot * 0.8) / ng);
    const mode = valueMode(valueTexts, barW, measure);
    const room = mode === 'level' ? VALUE_FONT + 5 : mode === 'upright' ? Math.max(0, ...valueTexts.map((t) => measure(t, VALUE_FONT))) + 6 : 8;
    const y = yScale(lo, hi, hi > 0 ? room : 8, lo < 0 ? room : 0);
    const ticks = gridTicks(y.bottom, y.top, y.yOf);
    layout = { barW, slot, mode, y, ticks };
    const need = yAxisLeft(
      ticks.map((t) => fmtNum(t.v, 3)),
      measure,
    );
    if (need <= left) break;
    left = need;
  }
  const { barW, slot, mode, y, ticks } = layout;
  const plotBottom = TOP + PLOT_H;
  const labels: SvgLabel[] = ticks.map((t) => yTickLabel(fmtNum(t.v, 3), left, t.y));

  const bars: BarRect[] = [];
  categories.forEach((_, ci) =>
    groups.forEach((g, gi) => {
      const v = g.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const x = left + ci * slot + slot * 0.1 + gi * barW;
      const [top, bottom] = [Math.min(y.yOf(v), y.yOf(0)), Math.max(y.yOf(v), y.yOf(0))];
      bars.push({ ci, gi, v, x, y: top, w: barW - 1, h: Math.max(1, bottom - top) });
      const cx = x + (barW - 1) / 2;
      const text = fmtNum(v, 3);
      const cls = 'figure-value-label';
      if (mode === 'level') labels.push({ text, x: cx, y: v >= 0 ? top - 3 : bottom + VALUE_FONT * 0.8 + 3, size: VALUE_FONT, anchor: 'middle', cls });
      if (mode === 'upright')
        labels.push({ text, x: cx + VALUE_FONT * 0.3, y: v >= 0 ? top - 3 : bottom + 3, size: VALUE_FONT, anchor: v >= 0 ? 'start' : 'end', angle: -90, cls });
    }),
  );

  const axis = categoryLabels(categories, left, slot, plotBottom, measure);
  labels.push(...axis.labels);
  let height = plotBottom + axis.depth;
  if (axis.title) {
    height += FONT + 4;
    labels.push(
      fittedLabel(
        { text: axis.title, x: left + (width - left - RIGHT) / 2, y: height - 5, size: FONT, anchor: 'middle', cls: 'figure-axis-label' },
        width - left - RIGHT,
        measure,
      ),
    );
  }
  labels.push(yTitle(o.yLabel, TOP, PLOT_H, measure));
  return { height, left, right: width - RIGHT, ticks, zeroY: y.yOf(0), bars, labels };
}

/**
 * The category labels under the plot and the depth they take: level when each fits its slot
 * (numbers level, every k-th when they do not all fit), else turned 45° when a slot is a line
 * thick along the diagonal, else upright, every k-th when a slot is thinner than a line.
 */
function categoryLabels(
  categories: string[],
  left: number,
  slot: number,
  plotBottom: number,
  measure: Measure,
): { labels: SvgLabel[]; depth: number; title?: string } {
  const numbered = numberedCategories(categories);
  const texts = numbered?.tails ?? categories;
  const numeric = numbered !== null || texts.every((t) => /^-?\d+(\.\d+)?$/.test(t));
  const widest = Math.max(0, ...texts.map((t) => measure(t, FONT)));
  const cx = (ci: number) => left + (ci + 0.5) * slot;
  const cls = 'figure-axis-label';
  if (widest + 4 <= slot || numeric) {
    const every = Math.max(1, Math.ceil((widest + 4) / slot));
    const labels = texts.flatMap((t, ci): SvgLabel[] =>
      ci % every === 0 ? [{ text: t, x: cx(ci), y: plotBottom + 14, size: FONT, anchor: 'middle', cls }] : [],
    );
    return { labels, depth: 20, title: numbered?.head };
  }
  const angle = (FONT + 2) / DIAGONAL <= slot ? -45 : -90;
  const every = Math.max(1, Math.ceil((FONT + 2) / slot));
  const maxLen = 120;
  const labels: SvgLabel[] = [];
  let longest = 0;
  texts.forEach((t, ci) => {
    if (ci % every !== 0) return;
    // Anchored at the label's end just under the axis, its glyphs centred on the category.
    const x = cx(ci) + FONT * (angle === -45 ? 0.21 : 0.3);
    const room = angle === -45 ? Math.min(maxLen, (x - FONT - 2) / DIAGONAL) : maxLen;
    const label = fittedLabel({ text: t, x, y: plotBottom + 6, size: FONT, anchor: 'end', angle, cls }, room, measure);
    longest = Math.max(longest, measure(label.text, FONT));
    labels.push(label);
  });
  const depth = (angle === -45 ? longest * DIAGONAL + FONT : longest) + 12;
  return { labels, depth: Math.ceil(depth) };
}
