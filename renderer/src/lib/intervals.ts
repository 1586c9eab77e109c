/**
 * The numbers a researcher can trust, as the workbench writes them: a key result with its 95%
 * interval and verdict, differences in tables as "+0.3 [−1.6, 2.2]" coloured only when their
 * verdict says they are outside noise, summary warnings, and the per-seed table of a study run
 * over seeds (engine/stats/stats.ts and engine/jobs/seeds.ts write the shapes read here).
 */
import type { SeedCell } from '../../../engine/jobs/seeds';

export type Verdict = 'better' | 'worse' | 'within noise';
export type Interval = [number, number];

/** A run summary's `key_result` (engine/stats/stats.ts `keyResultSchema`). */
export interface KeyResult {
  label: string;
  value: number;
  ci95?: Interval;
  verdict?: Verdict;
  better?: 'lower' | 'higher';
  interval?: string;
  /** `fraction`: a proportion (top-1 accuracy) or a difference of proportions, shown in percent (points for a difference). */
  unit?: 'fraction';
}

/** A table cell that is a difference (candidate − reference) with its interval and verdict. */
export interface DiffCell {
  kind: 'diff';
  value: number;
  ci95: Interval | null;
  verdict: Verdict | null;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const VERDICTS: readonly string[] = ['better', 'worse', 'within noise'];

export const asVerdict = (v: unknown): Verdict | null => (typeof v === 'string' && VERDICTS.includes(v) ? (v as Verdict) : null);
export const asInterval = (v: unknown): Interval | null => (Array.isArray(v) && v.length === 2 && v.every(isNum) ? [v[0], v[1]] : null);

/** The summary's key result, or null when it has none (or not the engine's shape). */
export function asKeyResult(v: unknown): KeyResult | null {
  if (!isRecord(v) || typeof v.label !== 'string' || !isNum(v.value)) return null;
  const ci95 = asInterval(v.ci95);
  const verdict = asVerdict(v.verdict);
  return {
    label: v.label,
    value: v.value,
    ...(ci95 ? { ci95 } : {}),
    ...(verdict ? { verdict } : {}),
    ...(v.better === 'lower' || v.better === 'higher' ? { better: v.better } : {}),
    ...(typeof v.interval === 'string' ? { interval: v.interval } : {}),
    ...(keyResultIsFraction(v.unit, v.label) ? { unit: 'fraction' as const } : {}),
  };
}

/**
 * Whether a key result is a fraction (shown in percent): its `unit` says so; a summary written before key results carried a unit
 * is read as one when its label names an accuracy (top-1, accuracy), the only fractions key results held then.
 */
function keyResultIsFraction(unit: unknown, label: string): boolean {
  if (unit !== undefined) return unit === 'fraction';
  return /\btop-1\b|\baccuracy\b/i.test(label);
}

/** Every summary `warnings` entry (strings only). */
export function summaryWarnings(summary: Record<string, unknown>): string[] {
  return Array.isArray(summary.warnings) ? summary.warnings.filter((w): w is string => typeof w === 'string' && w.trim() !== '') : [];
}

/**
 * Decimals that show an interval's half-width to three significant digits (so the value and both
 * ends share a precision the interval supports); 4 significant digits of the value without one.
 */
export function decimalsFor(value: number, ci95: Interval | null): number {
  const half = ci95 ? (ci95[1] - ci95[0]) / 2 : 0;
  const ref = half > 0 ? half : Math.abs(value);
  if (!(ref > 0) || !Number.isFinite(ref)) return 2;
  return Math.max(0, Math.min(6, (half > 0 ? 2 : 3) - Math.floor(Math.log10(ref))));
}

/** A number with a typographic minus, and a plus sign when `signed` (differences). */
export function fmtFixed(x: number, decimals: number, signed = false): string {
  if (!Number.isFinite(x)) return String(x);
  const s = Math.abs(x).toFixed(decimals);
  const zero = Number(s) === 0;
  return `${x < 0 && !zero ? '−' : signed && !zero ? '+' : ''}${s}`;
}

/**
 * A value with its interval: "+0.0041 [−0.0189, 0.0272]". `scale` multiplies all three (100 for
 * percent points); `signed` writes the value's sign (a difference).
 */
export function fmtWithInterval(value: number, ci95: Interval | null, opts: { signed?: boolean; scale?: number } = {}): string {
  const p = intervalParts(value, ci95, opts);
  return p.interval ? `${p.value} ${p.interval}` : p.value;
}

/** fmtWithInterval's two parts, for views that set the interval smaller. */
export function intervalParts(
  value: number,
  ci95: Interval | null,
  opts: { signed?: boolean; scale?: number } = {},
): { value: string; interval: string | null } {
  const k = opts.scale ?? 1;
  const ci = ci95 ? ([ci95[0] * k, ci95[1] * k] as Interval) : null;
  const d = decimalsFor(value * k, ci);
  return { value: fmtFixed(value * k, d, opts.signed), interval: ci ? `[${fmtFixed(ci[0], d)}, ${fmtFixed(ci[1], d)}]` : null };
}

/** The key result as text: label, value with its interval, and verdict (the headline of a results page). */
export function keyResultText(kr: KeyResult): { label: string; value: string; verdict: Verdict | null; interval: string | null } {
  const comparison = kr.verdict !== undefined || kr.better !== undefined;
  // A fraction reads in percent, as the tables beside it (a difference of fractions in percentage points).
  const p = intervalParts(kr.value, kr.ci95 ?? null, { signed: comparison, scale: kr.unit === 'fraction' ? 100 : 1 });
  const value = kr.unit === 'fraction' ? `${p.value} ${comparison ? 'pp' : '%'}` : p.value;
  return {
    label: kr.label,
    value: p.interval ? `${value} ${p.interval}` : value,
    verdict: kr.verdict ?? null,
    interval: kr.ci95 ? `95% interval: ${kr.interval ?? 'method not stated'}` : null,
  };
}

/** How a verdict colours a difference: only outside noise (better: good, worse: bad). */
export function verdictTone(v: Verdict | null | undefined): 'good' | 'bad' | null {
  return v === 'better' ? 'good' : v === 'worse' ? 'bad' : null;
}

/** What a difference's hover says of its verdict. */
export function verdictTitle(v: Verdict | null | undefined): string {
  if (v === 'within noise') return 'within noise: the 95% interval covers 0';
  if (v === 'better' || v === 'worse') return `${v}: the 95% interval excludes 0`;
  return 'no verdict';
}

export const isDiffCell = (v: unknown): v is DiffCell => isRecord(v) && v.kind === 'diff' && isNum(v.value);

/** A difference cell as text. */
export function diffText(c: DiffCell, scale = 1): string {
  return fmtWithInterval(c.value, c.ci95, { signed: true, scale });
}

/**
 * A study table's difference columns folded into one cell each: a column `X` with `X_verdict` and
 * its interval as `X_ci95` ([lo, hi]) or `X_ci95_lo` / `X_ci95_hi` becomes a DiffCell, and those
 * companion columns go. Other columns pass through.
 */
export function foldDifferences(columns: string[], rows: Record<string, unknown>[]): { columns: string[]; rows: Record<string, unknown>[] } {
  const diffs = columns.filter((c) => columns.includes(`${c}_verdict`) && (columns.includes(`${c}_ci95`) || columns.includes(`${c}_ci95_lo`)));
  if (!diffs.length) return { columns, rows };
  const companions = new Set(diffs.flatMap((c) => [`${c}_verdict`, `${c}_ci95`, `${c}_ci95_lo`, `${c}_ci95_hi`]));
  return {
    columns: columns.filter((c) => !companions.has(c)),
    rows: rows.map((r) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(r)) if (!companions.has(k)) out[k] = v;
      for (const c of diffs)
        if (isNum(r[c]))
          out[c] = {
            kind: 'diff',
            value: r[c],
            ci95: asInterval(r[`${c}_ci95`]) ?? (isNum(r[`${c}_ci95_lo`]) && isNum(r[`${c}_ci95_hi`]) ? [r[`${c}_ci95_lo`], r[`${c}_ci95_hi`]] : null),
            verdict: asVerdict(r[`${c}_verdict`]),
          } satisfies DiffCell;
      return out;
    }),
  };
}

/** The seed table of a summary run over seeds (`seed_table`), or null. */
export function seedCells(summary: Record<string, unknown>): SeedCell[] {
  return Array.isArray(summary.seed_table)
    ? (summary.seed_table.filter((c) => isRecord(c) && typeof c.row === 'string' && isRecord(c.per_seed)) as SeedCell[])
    : [];
}

/** "4.012 ± 0.031" (mean ± sd over seeds; the sd's precision sets both). */
export function fmtMeanSd(mean: number | null, sd: number | null): string {
  if (mean === null) return '—';
  if (sd === null || !(sd > 0)) return fmtFixed(mean, decimalsFor(mean, null));
  const d = decimalsFor(mean, [mean - sd, mean + sd]);
  return `${fmtFixed(mean, d)} ± ${fmtFixed(sd, d)}`;
}

/**
 * The per-seed table: one row per study row × metric, with mean ± sd, the t interval over seeds
 * and each seed's value (columns `seed_<s>`, in the order of `seeds`).
 */
export function seedTableRows(cells: SeedCell[], seeds: number[]): { columns: { key: string; label: string }[]; rows: Record<string, unknown>[] } {
  const seedKeys = seeds.length ? seeds.map(String) : [...new Set(cells.flatMap((c) => Object.keys(c.per_seed)))];
  return {
    columns: [
      { key: 'row', label: 'row' },
      { key: 'metric', label: 'metric' },
      { key: 'mean_sd', label: 'mean ± sd' },
      { key: 'ci95', label: '95% interval over seeds' },
      ...seedKeys.map((s) => ({ key: `seed_${s}`, label: `seed ${s}` })),
    ],
    // A row × metric no seed has a value of (the first variant's difference from itself) says nothing.
    rows: cells
      .filter((c) => c.n > 0)
      .map((c) => {
        const d = c.mean === null ? 2 : decimalsFor(c.mean, c.ci95);
        return {
          row: c.row,
          metric: c.metric,
          mean_sd: fmtMeanSd(c.mean, c.sd),
          ci95: c.ci95 ? `[${fmtFixed(c.ci95[0], d)}, ${fmtFixed(c.ci95[1], d)}]` : '—',
          ...Object.fromEntries(seedKeys.map((s) => [`seed_${s}`, c.per_seed[s] ?? null])),
        };
      }),
  };
}

/** One series of `seed_curves.json`: the mean over seeds at each step with a ± sd band. */
export interface SeedCurve {
  name: string;
  x: number[];
  y: number[];
  lo: number[];
  hi: number[];
  seeds: number;
}

export function asSeedCurves(v: unknown): SeedCurve[] {
  return Array.isArray(v) ? (v.filter((c) => isRecord(c) && typeof c.name === 'string' && Array.isArray(c.x) && Array.isArray(c.y)) as SeedCurve[]) : [];
}
