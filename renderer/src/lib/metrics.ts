/**
 * Metric lines (metrics.jsonl) → chart series. Scalars become series; arrays (per-layer values)
 * become one series per index; objects one per key. Losses share a chart.
 */
export type Metric = Record<string, unknown>;

export interface Series {
  label: string;
  x: number[];
  y: number[];
  /** An interval around each y (e.g. a 95% confidence interval), drawn as a band in the series' colour. */
  band?: { lo: number[]; hi: number[] };
  /** Its colour, the same in every figure of a results page (figures.ts `pageColors`); else by its place in the chart. */
  color?: string;
}

export interface ChartSpec {
  id: string;
  title: string;
  series: Series[];
}

const SKIP = new Set(['step', 'time', 'event', 'epoch']);
const EVENT_KEYS = ['removed', 'event', 'marker', 'phase_change'];
/** String fields that tag a training line (which arm of a study logged it), not a result's name. */
const TAG_KEYS = ['arm'];

/**
 * A line that records one configuration's result (a string label such as `configuration` or
 * `preset` next to its numbers) rather than a training step: its "step" only counts results,
 * so it is shown as a table row, never as a point on a curve.
 */
export function isResultLine(m: Metric): boolean {
  return Object.entries(m).some(([k, v]) => typeof v === 'string' && !EVENT_KEYS.includes(k) && !TAG_KEYS.includes(k));
}

/** The metric lines that are result records (see isResultLine). */
export function resultLines(metrics: Metric[]): Metric[] {
  return metrics.filter(isResultLine);
}

/** Exponential moving average as in TensorBoard (debiased), weight in [0, 1). */
export function smooth(y: number[], weight: number): number[] {
  if (weight <= 0) return y;
  const out: number[] = new Array(y.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n += 1;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

/** The x value of a metric line: its step, or seconds since the first line (time axis). */
export function xOf(m: Metric, axis: 'step' | 'time', t0: number): number | null {
  if (axis === 'time') return typeof m.time === 'number' ? (m.time - t0) / 1000 : null;
  return typeof m.step === 'number' ? m.step : null;
}

/** Scalar metric keys present in the lines, in first-seen order. */
export function scalarKeys(metrics: Metric[]): string[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const m of metrics.filter((l) => !isResultLine(l)))
    for (const [k, v] of Object.entries(m))
      if (!SKIP.has(k) && typeof v === 'number' && !seen.has(k)) {
        seen.add(k);
        keys.push(k);
      }
  return keys;
}

/** Steps at which a metric line records a named event (e.g. a LayerNorm removal), for markers. */
export function eventMarkers(metrics: Metric[]): { x: number; label: string }[] {
  const out: { x: number; label: string }[] = [];
  for (const m of metrics) {
    if (typeof m.step !== 'number') continue;
    for (const k of EVENT_KEYS) {
      const v = m[k];
      if (typeof v === 'string' && v !== 'resume') out.push({ x: m.step, label: v });
      else if (Array.isArray(v) && v.every((s) => typeof s === 'string') && v.length) out.push({ x: m.step, label: v.join(', ') });
    }
  }
  return out;
}

export function buildCharts(metrics: Metric[], axis: 'step' | 'time'): ChartSpec[] {
  const t0 = typeof metrics[0]?.time === 'number' ? (metrics[0].time as number) : 0;
  const scalars = new Map<string, Series>();
  const groups = new Map<string, Map<string, Series>>();
  for (const m of metrics) {
    const x = xOf(m, axis, t0);
    if (x === null || isResultLine(m)) continue;
    for (const [k, v] of Object.entries(m)) {
      if (SKIP.has(k)) continue;
      if (typeof v === 'number') {
        let s = scalars.get(k);
        if (!s) scalars.set(k, (s = { label: k, x: [], y: [] }));
        s.x.push(x);
        s.y.push(v);
      } else if (v && typeof v === 'object') {
        const entries = Array.isArray(v) ? v.map((y, i) => [String(i), y] as const) : Object.entries(v as Record<string, unknown>);
        if (!entries.length || !entries.every(([, y]) => typeof y === 'number')) continue;
        let g = groups.get(k);
        if (!g) groups.set(k, (g = new Map()));
        for (const [name, y] of entries) {
          const lab = Array.isArray(v) ? `${k.includes('layer') || k.includes('block') ? 'block' : k} ${name}` : name;
          let s = g.get(lab);
          if (!s) g.set(lab, (s = { label: lab, x: [], y: [] }));
          s.x.push(x);
          s.y.push(y as number);
        }
      }
    }
  }
  const charts: ChartSpec[] = [];
  // A series needs two distinct x values to be a curve.
  for (const [k, s] of scalars) if (new Set(s.x).size < 2) scalars.delete(k);
  const losses = [...scalars.values()].filter((s) => /(^|_)loss$|^loss|_ce$|^ce/.test(s.label));
  if (losses.length) charts.push({ id: 'loss', title: 'loss', series: losses });
  for (const s of scalars.values()) if (!losses.includes(s)) charts.push({ id: s.label, title: s.label, series: [s] });
  for (const [k, g] of groups) {
    const curves = [...g.values()].filter((s) => new Set(s.x).size >= 2);
    if (curves.length) charts.push({ id: k, title: k, series: curves });
  }
  return charts;
}

/** Series colours, distinguishable on light and dark backgrounds. */
export const PALETTE = ['#3b6fd8', '#e0793a', '#2f9e6f', '#c2455b', '#8a5cd1', '#7f8c1f', '#1f9bb5', '#b8578f', '#6b7280', '#d4a017', '#4c6e3b', '#a0522d'];

/** Markers belong on a chart unless all its series are the control's (e.g. LN removal's vanilla run). */
export function chartWantsMarkers(chart: ChartSpec): boolean {
  return !chart.series.every((s) => /^vanilla/i.test(s.label));
}
