/**
 * The runs table's key-result cell (value, 95% interval, verdict, warnings), extra columns and
 * grouping, and the axes of a parallel-coordinates view: config keys (`config:<dotted key>`) and
 * summary numbers (`metric:<key>`) of the runs.
 */
import type { RunSummary } from '../../../engine/protocol/protocol';
import { asKeyResult, keyResultText, verdictTitle, verdictTone, type Verdict } from './intervals';

/** A run's key result as one compact cell: "−0.0350 [−0.0500, −0.0200] better", tinted only outside noise. */
export interface KeyResultCell {
  label: string;
  /** The value with its 95% interval where the summary has one. */
  value: string;
  verdict: Verdict | null;
  tone: 'good' | 'bad' | null;
  /** The hover: how the interval was computed and what the verdict means. */
  title: string;
}

export function keyResultCell(r: RunSummary): KeyResultCell | null {
  const kr = asKeyResult(r.keyResult);
  if (!kr) return null;
  const t = keyResultText(kr);
  return {
    label: t.label,
    value: t.value,
    verdict: t.verdict,
    tone: verdictTone(t.verdict),
    title: [t.interval ?? 'no interval in the summary', ...(t.verdict ? [verdictTitle(t.verdict)] : [])].join(' · '),
  };
}

/** "1 warning", "3 warnings", or null without any. */
export const warningsText = (n: number): string | null => (n > 0 ? `${n} warning${n === 1 ? '' : 's'}` : null);

export type Cell = string | number | boolean | null | undefined;

/** A column id's value for one run. */
export function columnValue(r: RunSummary, col: string): Cell {
  if (col.startsWith('config:')) return r.config?.[col.slice(7)];
  if (col.startsWith('metric:')) return r.metrics?.[col.slice(7)];
  return undefined;
}

/** The column ids the runs offer: summary numbers first, then config keys, each sorted. */
export function availableColumns(runs: RunSummary[]): { metrics: string[]; config: string[] } {
  const m = new Set<string>();
  const c = new Set<string>();
  for (const r of runs) {
    for (const k of Object.keys(r.metrics ?? {})) m.add(`metric:${k}`);
    for (const k of Object.keys(r.config ?? {})) if (k !== 'method' && k !== 'name') c.add(`config:${k}`);
  }
  return { metrics: [...m].sort(), config: [...c].sort() };
}

/** The label of a column id ("config:train.steps" → "train.steps"). */
export const columnLabel = (col: string) => col.replace(/^(config|metric):/, '');

export interface RunGroup {
  key: string;
  label: string;
  runs: RunSummary[];
}

/**
 * Runs grouped by their parent (a study or sweep with its runs; a run without one is its own
 * group's head) or by a column's value; groups keep the runs' order.
 */
export function groupRuns(runs: RunSummary[], by: string): RunGroup[] {
  const groups = new Map<string, RunGroup>();
  const names = new Map(runs.map((r) => [r.id, r.name]));
  for (const r of runs) {
    let key: string;
    let label: string;
    if (by === 'parent') {
      key = r.parent ?? r.id;
      label = names.get(key) ?? key;
    } else {
      const v = columnValue(r, by);
      key = v === undefined || v === null ? '—' : String(v);
      label = `${columnLabel(by)} = ${key}`;
    }
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { key, label, runs: [] }));
    g.runs.push(r);
  }
  const out = [...groups.values()];
  // A study or sweep heads its group.
  if (by === 'parent') for (const g of out) g.runs.sort((a, b) => Number(b.id === g.key) - Number(a.id === g.key));
  return out;
}

export interface Axis {
  col: string;
  label: string;
  /** Numeric axes map values linearly; categorical ones space their categories evenly. */
  kind: 'number' | 'category';
  categories?: string[];
  min?: number;
  max?: number;
}

/**
 * Axes for a parallel-coordinates view of `runs`: every config key whose value differs between
 * them (numbers, or at most 12 categories), then every summary number all of them have.
 */
export function parallelAxes(runs: RunSummary[]): Axis[] {
  const axes: Axis[] = [];
  const { metrics, config } = availableColumns(runs);
  const make = (col: string, requireVarying: boolean): Axis | null => {
    const vals = runs.map((r) => columnValue(r, col));
    if (vals.some((v) => v === undefined || v === null)) return null;
    const distinct = new Set(vals.map(String));
    if (requireVarying && distinct.size < 2) return null;
    if (vals.every((v) => typeof v === 'number')) {
      const nums = vals as number[];
      return { col, label: columnLabel(col), kind: 'number', min: Math.min(...nums), max: Math.max(...nums) };
    }
    if (distinct.size > 12) return null;
    return { col, label: columnLabel(col), kind: 'category', categories: [...distinct].sort() };
  };
  for (const c of config) {
    const a = make(c, true);
    if (a) axes.push(a);
  }
  for (const m of metrics) {
    const a = make(m, false);
    if (a) axes.push(a);
  }
  return axes;
}

/** Position of a run's value on an axis, in [0, 1] (0 = bottom). */
export function axisPosition(axis: Axis, v: Cell): number {
  if (axis.kind === 'number') {
    const span = (axis.max ?? 0) - (axis.min ?? 0);
    return span === 0 ? 0.5 : ((v as number) - axis.min!) / span;
  }
  const cats = axis.categories ?? [];
  return cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1);
}
