/**
 * Where the Histogram figure draws its bins, quantizer level ticks and labels, with no two labels
 * overlapping: the count labels get the margin they need beside the count axis title, and each
 * quantizer's name has its own line above its lane of level ticks, clear of the ticks.
 */
import { fmtNum } from './format';
import { AXIS_FONT as FONT, fittedLabel, PLOT_RIGHT as RIGHT, yAxisLeft, yTickLabel, yTitle, type Measure, type SvgLabel } from './text-layout';

export interface HistogramInput {
  width: number;
  xLabel: string;
  lo: number;
  binWidth: number;
  counts: number[];
  levels: { label: string; values: number[] }[];
  measure: Measure;
}

export interface LevelTick {
  li: number;
  x: number;
  y1: number;
  y2: number;
}

export interface HistogramLayout {
  height: number;
  left: number;
  right: number;
  barsBottom: number;
  xOf: (v: number) => number;
  hOf: (count: number) => number;
  decades: { v: number; y: number }[];
  ticks: LevelTick[];
  labels: SvgLabel[];
}

const LEVEL_FONT = 10.5;
const TOP = 8;
const BARS_H = 180;
/** A lane: its quantizer's name on one line, its level ticks under it. */
const LANE_H = 26;

export function histogramLayout(o: HistogramInput): HistogramLayout {
  const { width, lo, binWidth, counts, levels, measure } = o;
  const hi = lo + binWidth * counts.length;
  const maxC = Math.max(1, ...counts);
  const logMax = Math.log10(maxC + 1);
  const hOf = (c: number) => (c > 0 ? (Math.log10(c + 1) / logMax) * BARS_H : 0);
  const barsBottom = TOP + BARS_H;
  const decades = Array.from({ length: Math.floor(Math.log10(maxC)) + 1 }, (_, k) => Math.pow(10, k)).map((v) => ({ v, y: barsBottom - hOf(v) }));
  const left = yAxisLeft(
    decades.map((d) => fmtNum(d.v)),
    measure,
  );
  const plotW = width - left - RIGHT;
  const xOf = (v: number) => left + ((v - lo) / (hi - lo || 1)) * plotW;
  const labels: SvgLabel[] = decades.map((d) => yTickLabel(fmtNum(d.v), left, d.y));

  // x ticks: five intervals, fewer where their labels would touch.
  const tickText = (k: number, n: number) => fmtNum(lo + ((hi - lo) * k) / n, 2);
  let n = 5;
  while (n > 1 && Array.from({ length: n + 1 }, (_, k) => measure(tickText(k, n), FONT)).some((w) => w + 6 > plotW / n)) n--;
  for (let k = 0; k <= n; k++) {
    labels.push({ text: tickText(k, n), x: xOf(lo + ((hi - lo) * k) / n), y: barsBottom + 14, size: FONT, anchor: 'middle', cls: 'figure-axis-label' });
  }

  labels.push(fittedLabel({ text: o.xLabel, x: left + plotW / 2, y: barsBottom + 30, size: FONT, anchor: 'middle', cls: 'figure-axis-label' }, plotW, measure));
  labels.push(yTitle('count (log)', TOP, BARS_H, measure));

  const lanesTop = barsBottom + 40;
  const ticks: LevelTick[] = [];
  levels.forEach((l, li) => {
    const baseline = lanesTop + li * LANE_H + 10;
    const name = {
      text: `${l.label} (${l.values.length} levels)`,
      x: left,
      y: baseline,
      size: LEVEL_FONT,
      anchor: 'start' as const,
      cls: 'figure-level-label',
    };
    labels.push(fittedLabel(name, plotW, measure));
    for (const v of l.values) if (v >= lo && v <= hi) ticks.push({ li, x: xOf(v), y1: baseline + 4, y2: baseline + 13 });
  });
  return { height: lanesTop + levels.length * LANE_H + 4, left, right: width - RIGHT, barsBottom, xOf, hOf, decades, ticks, labels };
}
