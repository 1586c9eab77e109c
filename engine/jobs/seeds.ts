/**
 * `seeds: [..]` on a study: with two or more seeds, the study runs once per seed, each a child run
 * of the same kind and config (`seed: s`, no `seeds`) through the study's executor, and the parent
 * aggregates their summaries:
 * - the table: each row × metric of the study's own table, every seed's value and the mean ± sample
 *   sd (n − 1) with a t interval over seeds, x̄ ± t_{0.975, n−1} · s/√n (`seeds_table.*`);
 * - the key result: the mean over seeds of the children's key results with the t interval over
 *   seeds (and the verdict of a comparison), the interval saying so;
 * - curves: each series' mean over seeds with a ± sd band (`seed_curves.png`, `seed_curves.json`);
 * - warnings: the children's (each naming its seed) and the noise guard of the key result.
 * With one seed, the study runs that seed itself and its intervals are the within-seed ones.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { linePlot, writePlot } from '../plot/index.js';
import { comparison, fmt, meanSd, noiseWarning, tInterval, type Interval, type KeyResult } from '../stats/stats.js';
import type { Project } from '../store/runs.js';
import type { JobContext } from './context.js';
import type { ExecutorConfig } from './executor.js';

export const seedsField = z
  .array(z.number().int().min(0))
  .min(1)
  .refine((s) => new Set(s).size === s.length, { message: 'seeds must be distinct' })
  .optional()
  .describe(
    'training seeds: with two or more, each seed runs the whole study as a child run; tables give each seed’s value and the mean ± sd, the key result a t interval over seeds (default: `seed` alone)',
  );

/** The note a single-seed comparison carries (the seed-set parent drops it from its children's warnings). */
export const SINGLE_SEED =
  'single seed: the intervals are over evaluation units (windows, images, samples), not over training seeds; not a result until repeated over seeds (`seeds: [0, 1, 2]`)';

/** A study's config as the seed layer sees it. */
export interface SeededConfig {
  method: string;
  seed: number;
  seeds?: number[];
  name?: string;
  executor: ExecutorConfig;
}

/** One series of a seed's curves: points (step, value). */
export interface SeedCurve {
  step: number[];
  value: number[];
}

/** What a study tells the seed layer about one seed's summary. */
export interface SeedStudy {
  /** The study's table of one seed: row label → metric → number (null or absent: no value). */
  rows(summary: Record<string, unknown>): Record<string, Record<string, number | null | undefined>>;
  /** One seed's overlaid curves: series name → points, from the seed's run (`runId`) or the runs its summary names. */
  curves?(project: Project, runId: string, summary: Record<string, unknown>): Record<string, SeedCurve>;
  /** Title and y axis of the curves plot. */
  curveAxis?: { title: string; yLabel: string };
}

/** A run's curves of the given metric keys (the last value logged at each step), as points. */
export function metricCurves(project: Project, runId: string, keys: Record<string, string>): Record<string, SeedCurve> {
  const lines = project.run(runId).readMetrics();
  return Object.fromEntries(
    Object.entries(keys).map(([name, key]) => {
      const at = new Map<number, number>();
      for (const m of lines) if (typeof m.step === 'number' && typeof m[key] === 'number') at.set(m.step, m[key] as number);
      const pts = [...at].sort((a, b) => a[0] - b[0]);
      return [name, { step: pts.map((p) => p[0]), value: pts.map((p) => p[1]) }];
    }),
  );
}

/** One cell of the seed table: each seed's value, mean ± sd (n − 1), t interval over seeds (n ≥ 2). */
export interface SeedCell {
  row: string;
  metric: string;
  per_seed: Record<string, number | null>;
  n: number;
  mean: number | null;
  sd: number | null;
  ci95: Interval | null;
}

/** The seed table: every row × metric of the children's tables, over the seeds that have a value. */
export function seedTable(seeds: number[], tables: (Record<string, Record<string, number | null | undefined>> | null)[]): SeedCell[] {
  const order: [string, string][] = [];
  const seen = new Set<string>();
  for (const t of tables)
    for (const [row, metrics] of Object.entries(t ?? {}))
      for (const metric of Object.keys(metrics)) {
        const k = JSON.stringify([row, metric]);
        if (seen.has(k)) continue;
        seen.add(k);
        order.push([row, metric]);
      }
  return order.map(([row, metric]) => {
    const per: Record<string, number | null> = {};
    seeds.forEach((s, i) => {
      const v = tables[i]?.[row]?.[metric];
      per[String(s)] = typeof v === 'number' && Number.isFinite(v) ? v : null;
    });
    const xs = Object.values(per).filter((v): v is number => v !== null);
    const ms = xs.length ? meanSd(xs) : null;
    return {
      row,
      metric,
      per_seed: per,
      n: xs.length,
      mean: ms?.mean ?? null,
      sd: ms && xs.length > 1 ? ms.sd : null,
      ci95: xs.length > 1 ? tInterval(xs).ci95 : null,
    };
  });
}

/**
 * The key result over seeds: the mean of the children's values with the t interval over seeds
 * (n ≥ 2 completed), a comparison's verdict from that interval; with one completed seed, that
 * seed's key result and its within-seed interval, the interval saying so.
 */
export function seedKeyResult(seeds: number[], keys: (KeyResult | null)[]): KeyResult | null {
  const done = keys.map((k, i) => ({ k, seed: seeds[i] })).filter((x): x is { k: KeyResult; seed: number } => x.k !== null);
  if (done.length === 0) return null;
  const first = done[0].k;
  if (done.length === 1)
    return { ...first, interval: `${first.interval ?? 'no interval'}; within seed ${done[0].seed} only (the other seeds did not complete)` };
  const t = tInterval(done.map((d) => d.k.value));
  const label = `${first.label}, mean over ${t.n} seeds`;
  const interval = `t over ${t.n} seeds (${done.map((d) => d.seed).join(', ')}); within each seed: ${first.interval ?? 'no interval'}`;
  return first.better
    ? comparison(label, t.mean, t.ci95, first.better, interval, first.unit)
    : { label, value: t.mean, ci95: t.ci95, interval, ...(first.unit ? { unit: first.unit } : {}) };
}

/** Each series' mean over seeds at the steps every seed logged, with a ± sd band. */
export function seedCurves(curves: Record<string, SeedCurve>[]): { name: string; x: number[]; y: number[]; lo: number[]; hi: number[]; seeds: number }[] {
  const names = [...new Set(curves.flatMap((c) => Object.keys(c)))];
  return names.flatMap((name) => {
    const mine = curves.map((c) => c[name]).filter((c): c is SeedCurve => c !== undefined && c.step.length > 0);
    if (mine.length === 0) return [];
    const steps = mine[0].step.filter((st) => mine.every((c) => c.step.includes(st)));
    const stats = steps.map((st) => meanSd(mine.map((c) => c.value[c.step.indexOf(st)])));
    return [{ name, x: steps, y: stats.map((s) => s.mean), lo: stats.map((s) => s.mean - s.sd), hi: stats.map((s) => s.mean + s.sd), seeds: mine.length }];
  });
}

const csvCell = (c: string) => (/[,"\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c);
const num = (v: number | null) => (v === null ? '' : fmt(v));

/**
 * Run a study once per seed (child runs of the same kind through the study's executor; each seed's
 * study runs its own children in its process) and aggregate: see the module comment.
 */
export async function runSeeds(ctx: JobContext, cfg: SeededConfig, study: SeedStudy): Promise<Record<string, unknown>> {
  const seeds = cfg.seeds ?? [];
  if (seeds.length < 2) fail('internal', `runSeeds needs at least 2 seeds, got ${seeds.length}`);
  const label = cfg.name ?? cfg.method;
  ctx.log(`${cfg.method}: ${seeds.length} seeds (${seeds.join(', ')}), each a child ${cfg.method} run (${cfg.executor.kind} executor)`);
  ctx.progress({ step: 0, total: seeds.length, phase: 'seeds', message: `${seeds.length} seeds` });
  const { seeds: _seeds, ...one } = cfg as SeededConfig & Record<string, unknown>;
  const outcomes = await ctx.runChildren(
    seeds.map((s) => ({
      key: `seed ${s}`,
      name: `${label} seed=${s}`,
      config: { ...one, seed: s, name: `${label} seed=${s}`, executor: { kind: 'local', parallel: 1 } },
    })),
  );
  const summaries = outcomes.map((o) => o.summary);
  const missing = outcomes.flatMap((o, i) => (o.summary ? [] : [{ seed: seeds[i], run_id: o.runId, status: o.status }]));
  if (missing.length === seeds.length) fail('state', `no seed of the study completed; normlab resume ${ctx.run.id} reruns them`);
  ctx.progress({ step: seeds.length, total: seeds.length, phase: 'aggregate' });

  const table = seedTable(
    seeds,
    summaries.map((s) => (s ? study.rows(s) : null)),
  );
  const keys = summaries.map((s) => (s?.key_result as KeyResult | undefined) ?? null);
  const key = seedKeyResult(seeds, keys);
  const warnings: string[] = [];
  if (key?.ci95) {
    const w = noiseWarning(`${key.label} (over seeds)`, key.value, key.ci95);
    if (w) warnings.push(w);
  }
  if (missing.length)
    warnings.push(`seeds ${missing.map((m) => `${m.seed} (${m.status})`).join(', ')} did not complete: the table and key result are over the others`);
  summaries.forEach((s, i) => {
    for (const w of (s?.warnings as string[] | undefined) ?? []) if (w !== SINGLE_SEED) warnings.push(`seed ${seeds[i]}: ${w}`);
  });
  for (const w of warnings) ctx.log(`warning: ${w}`);

  const dir = ctx.run.artifactsDir;
  const artifacts = ['seeds_table.json', 'seeds_table.csv', 'seeds_table.md'];
  await writeJsonAtomic(path.join(dir, 'seeds_table.json'), table);
  const header = ['row', 'metric', 'mean', 'sd', 'ci95_lo', 'ci95_hi', 'n', ...seeds.map((s) => `seed_${s}`)];
  const csv = table.map((c) =>
    [c.row, c.metric, num(c.mean), num(c.sd), num(c.ci95?.[0] ?? null), num(c.ci95?.[1] ?? null), String(c.n), ...seeds.map((s) => num(c.per_seed[s]))]
      .map(csvCell)
      .join(','),
  );
  await writeFileAtomic(path.join(dir, 'seeds_table.csv'), [header.join(','), ...csv].join('\n') + '\n');
  const md = [
    `| row | metric | mean ± sd | 95% interval over seeds | ${seeds.map((s) => `seed ${s}`).join(' | ')} |`,
    `|---|---|--:|--:|${seeds.map(() => '--:').join('|')}|`,
    ...table.map(
      (c) =>
        `| ${c.row} | ${c.metric} | ${c.mean === null ? '—' : `${fmt(c.mean)}${c.sd === null ? '' : ` ± ${fmt(c.sd)}`}`} | ${c.ci95 ? `[${fmt(c.ci95[0])}, ${fmt(c.ci95[1])}]` : '—'} | ${seeds.map((s) => (c.per_seed[s] === null ? '—' : fmt(c.per_seed[s]!))).join(' | ')} |`,
    ),
    '',
    ...warnings.map((w) => `**Warning:** ${w}\n`),
  ].join('\n');
  await writeFileAtomic(path.join(dir, 'seeds_table.md'), md);
  ctx.log('\n' + md);

  let curves: ReturnType<typeof seedCurves> = [];
  if (study.curves) {
    curves = seedCurves(outcomes.flatMap((o) => (o.summary ? [study.curves!(ctx.project, o.runId, o.summary)] : [])));
    if (curves.length) {
      await writeJsonAtomic(path.join(dir, 'seed_curves.json'), curves);
      await writePlot(
        path.join(dir, 'seed_curves.png'),
        await linePlot({
          title: `${study.curveAxis?.title ?? 'Curves'}: mean over seeds, band ± sd`,
          xLabel: 'step',
          yLabel: study.curveAxis?.yLabel ?? 'value',
          series: curves.map((c) => ({ name: `${c.name} (${c.seeds} seeds)`, x: c.x, y: c.y, band: { lo: c.lo, hi: c.hi } })),
          points: false,
          width: 720,
        }),
      );
      artifacts.push('seed_curves.json', 'seed_curves.png');
    }
  }
  return {
    key_result: key,
    seeds,
    seed_key_results: Object.fromEntries(seeds.map((s, i) => [String(s), keys[i]])),
    seed_table: table,
    warnings,
    missing_children: missing,
    runs: Object.fromEntries(outcomes.map((o, i) => [String(seeds[i]), o.runId])),
    artifacts,
  };
}
