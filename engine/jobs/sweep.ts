/**
 * `sweep`: a base job and a grid of overrides, each grid point trained once per seed as a child
 * run through the sweep's executor; when the children end, the parent writes a table of their
 * final metrics by grid point (each seed's value, mean ± sample standard deviation and the t
 * interval over the seeds that completed, x̄ ± t_{0.975, n−1} s/√n; missing seeds marked) and their
 * curves overlaid.
 *
 *   method: sweep
 *   base: { method: lm-pretrain, train: { steps: 300 } }
 *   grid: { model.norm: [pre, lns], train.lr: [1e-3, 5e-4] }
 *   seeds: [0, 1, 2]
 *   executor: { kind: slurm, gpus_per_task: 1 }
 */
import * as path from 'node:path';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { linePlot, writePlot } from '../plot/index.js';
import { tInterval } from '../stats/stats.js';
import { resolveConfig } from './config.js';
import type { ChildOutcome } from './context.js';
import { executorSchema } from './executor.js';
import { baseConfig, registerJobKind } from './registry.js';

const gridValue = z.union([z.string(), z.number(), z.boolean()]);

export const sweepSchema = z
  .object({
    method: z.literal('sweep'),
    ...baseConfig,
    base: z
      .record(z.string(), z.unknown())
      .refine((b) => typeof b.method === 'string' && b.method !== 'sweep', { message: 'base needs a method (the job kind every grid point runs), not sweep' })
      .describe('the job every grid point runs, with its method'),
    grid: z
      .record(z.string().regex(/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/, 'a dotted config path such as model.norm'), z.array(gridValue).min(1))
      .default({})
      .describe('config paths of the base job (model.norm, train.lr) and the values to try; every combination is a grid point'),
    seeds: z.array(z.number().int().min(0)).min(1).optional().describe('seeds each grid point runs with (default: the base seed)'),
    metrics: z.array(z.string().min(1)).optional().describe('summary numbers to tabulate (default: the final_* numbers of the children)'),
    curves: z.array(z.string().min(1)).default(['loss', 'val_loss']).describe('metric keys to overlay as curves (mean over seeds per grid point)'),
    executor: executorSchema,
  })
  .strict();
export type SweepConfig = z.infer<typeof sweepSchema>;

export interface GridPoint {
  label: string;
  values: Record<string, string | number | boolean>;
}

/** Every combination of the grid, the first key varying slowest. */
export function gridPoints(grid: SweepConfig['grid']): GridPoint[] {
  let points: Record<string, string | number | boolean>[] = [{}];
  for (const [key, values] of Object.entries(grid)) points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  return points.map((values) => ({
    values,
    label:
      Object.entries(values)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || 'base',
  }));
}

/** A copy of `obj` with the value at a dotted path replaced (intermediate objects created). */
export function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = dotted.split('.');
  if (rest.length === 0) return { ...obj, [head]: value };
  const inner = obj[head];
  const next = typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as Record<string, unknown>) : {};
  return { ...obj, [head]: setPath(next, rest.join('.'), value) };
}

/** The children of a sweep: grid point × seed, each config checked against its kind's schema. */
export function sweepChildren(cfg: SweepConfig): { point: GridPoint; seed: number; key: string; config: Record<string, unknown> }[] {
  const seeds = cfg.seeds ?? [typeof cfg.base.seed === 'number' ? cfg.base.seed : 0];
  return gridPoints(cfg.grid).flatMap((point) =>
    seeds.map((seed) => {
      let config: Record<string, unknown> = { ...cfg.base, seed };
      for (const [k, v] of Object.entries(point.values)) config = setPath(config, k, v);
      try {
        resolveConfig(config);
      } catch (err) {
        fail('config', `sweep grid point ${point.label}: ${(err as Error).message}`);
      }
      return { point, seed, key: `${point.label} seed=${seed}`, config };
    }),
  );
}

/** Mean and sample standard deviation (n − 1; null for one value). */
export function meanStd(xs: number[]): { mean: number | null; std: number | null } {
  if (xs.length === 0) return { mean: null, std: null };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, std: null };
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) };
}

const fmt = (v: number | null) => (v === null ? '' : Number(v.toPrecision(6)).toString());
const csvCell = (c: string) => (/[,"\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c);

registerJobKind({
  name: 'sweep',
  title: 'Sweep',
  description:
    'A base job over a grid of config values × seeds, through an executor (local or Slurm); a table of final metrics (mean ± std over seeds) and overlaid curves.',
  schema: sweepSchema,
  resumable: false,
  parent: true,
  async run(ctx, cfg) {
    const children = sweepChildren(cfg);
    const points = gridPoints(cfg.grid);
    ctx.log(`sweep: ${points.length} grid points × ${children.length / points.length} seeds = ${children.length} children (${cfg.executor.kind} executor)`);
    ctx.progress({ step: 0, total: children.length, phase: 'children' });
    const outcomes = await ctx.runChildren(children.map((c) => ({ key: c.key, name: `${cfg.name ?? 'sweep'} ${c.key}`, config: c.config })));
    const byKey = new Map<string, ChildOutcome>(outcomes.map((o) => [o.key, o]));
    const completed = outcomes.filter((o) => o.summary);
    ctx.progress({ step: children.length, total: children.length, phase: 'compare', message: `${completed.length} of ${children.length} children completed` });

    const numeric = (s: Record<string, unknown>) => Object.keys(s).filter((k) => typeof s[k] === 'number' && Number.isFinite(s[k]));
    const metrics = cfg.metrics ?? [...new Set(completed.flatMap((o) => numeric(o.summary!).filter((k) => k.startsWith('final_'))))];

    // The table: one row per grid point, mean ± std of each metric over its completed seeds.
    const rows = points.map((point) => {
      const mine = children.filter((c) => c.point.label === point.label).map((c) => ({ seed: c.seed, outcome: byKey.get(c.key)! }));
      const done = mine.filter((m) => m.outcome.summary);
      const row: Record<string, unknown> = {
        grid_point: point.label,
        ...point.values,
        seeds_completed: done.map((m) => m.seed),
        seeds_missing: mine.filter((m) => !m.outcome.summary).map((m) => ({ seed: m.seed, status: m.outcome.status, run_id: m.outcome.runId })),
      };
      for (const metric of metrics) {
        const xs = done.map((m) => m.outcome.summary![metric]).filter((v): v is number => typeof v === 'number');
        const { mean, std } = meanStd(xs);
        row[`${metric}_mean`] = mean;
        row[`${metric}_std`] = std;
        row[`${metric}_ci95`] = xs.length > 1 ? tInterval(xs).ci95 : null; // t over seeds
        row[`${metric}_per_seed`] = Object.fromEntries(done.map((m) => [String(m.seed), m.outcome.summary![metric] ?? null]));
      }
      row.run_ids = mine.map((m) => m.outcome.runId);
      return row;
    });
    const dir = ctx.run.artifactsDir;
    await writeJsonAtomic(path.join(dir, 'sweep_table.json'), rows);
    const keys = Object.keys(cfg.grid);
    const header = [
      'grid_point',
      ...keys,
      ...metrics.flatMap((m) => [`${m}_mean`, `${m}_std`, `${m}_ci95_lo`, `${m}_ci95_hi`]),
      'seeds_completed',
      'seeds_missing',
    ];
    const csv = rows.map((r) =>
      [
        String(r.grid_point),
        ...keys.map((k) => String(r[k])),
        ...metrics.flatMap((m) => {
          const ci = r[`${m}_ci95`] as [number, number] | null;
          return [fmt(r[`${m}_mean`] as number | null), fmt(r[`${m}_std`] as number | null), fmt(ci?.[0] ?? null), fmt(ci?.[1] ?? null)];
        }),
        (r.seeds_completed as number[]).join(' '),
        (r.seeds_missing as { seed: number; status: string }[]).map((m) => `${m.seed} (${m.status})`).join(' '),
      ]
        .map(csvCell)
        .join(','),
    );
    await writeFileAtomic(path.join(dir, 'sweep_table.csv'), [header.join(','), ...csv].join('\n') + '\n');

    // Curves: every completed child's series (for the workbench), and a PNG of the mean per grid point.
    const series = completed.map((o) => {
      const child = children.find((c) => c.key === o.key)!;
      const lines = ctx.project.run(o.runId).readMetrics();
      const curves: Record<string, { step: number[]; value: number[] }> = {};
      for (const key of cfg.curves) {
        const at = new Map<number, number>();
        for (const m of lines) if (typeof m.step === 'number' && typeof m[key] === 'number') at.set(m.step, m[key] as number);
        const sorted = [...at].sort((a, b) => a[0] - b[0]);
        curves[key] = { step: sorted.map((p) => p[0]), value: sorted.map((p) => p[1]) };
      }
      return { grid_point: child.point.label, seed: child.seed, run_id: o.runId, curves };
    });
    await writeJsonAtomic(path.join(dir, 'sweep_curves.json'), { metrics: cfg.curves, series });
    const plots: string[] = [];
    for (const key of cfg.curves) {
      const lines = points.flatMap((point) => {
        const mine = series.filter((s) => s.grid_point === point.label && s.curves[key].step.length > 0);
        if (mine.length === 0) return [];
        const steps = mine[0].curves[key].step.filter((st) => mine.every((s) => s.curves[key].step.includes(st)));
        const mean = steps.map((st) => meanStd(mine.map((s) => s.curves[key].value[s.curves[key].step.indexOf(st)])).mean!);
        return [{ name: `${point.label} (${mine.length} seed${mine.length > 1 ? 's' : ''})`, variant: point.label, x: steps, y: mean }];
      });
      if (lines.length === 0) continue;
      const file = `sweep_${key}.png`;
      // A grid point's colour is its place in the grid, in every curve's figure, whichever points logged it.
      await writePlot(
        path.join(dir, file),
        await linePlot({
          title: `${key}, mean over seeds`,
          xLabel: 'step',
          yLabel: key,
          series: lines,
          variants: points.map((p) => p.label),
          points: false,
          width: 720,
        }),
      );
      plots.push(file);
    }

    const missing = outcomes.filter((o) => !o.summary).map((o) => ({ key: o.key, run_id: o.runId, status: o.status }));
    const first = metrics[0];
    const best = first
      ? rows.filter((r) => typeof r[`${first}_mean`] === 'number').sort((a, b) => (a[`${first}_mean`] as number) - (b[`${first}_mean`] as number))[0]
      : undefined;
    return {
      key_result: best
        ? {
            label: `lowest ${first} (${best.grid_point}), mean over ${(best.seeds_completed as number[]).length} seeds`,
            value: best[`${first}_mean`],
            ...(best[`${first}_ci95`] ? { ci95: best[`${first}_ci95`], interval: `t over ${(best.seeds_completed as number[]).length} seeds` } : {}),
          }
        : undefined,
      grid_points: points.length,
      children: outcomes.length,
      children_completed: completed.length,
      missing_children: missing,
      metrics,
      table: rows,
      executor: cfg.executor.kind,
      artifacts: ['sweep_table.csv', 'sweep_table.json', 'sweep_curves.json', ...plots],
    };
  },
});
