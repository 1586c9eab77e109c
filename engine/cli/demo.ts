/**
 * `normlab demo`: runs the four methods small on embedded data (the configs in assets/demo/, or
 * the full examples in assets/examples/ with --full), one after another in the project, then
 * prints one results table. The project also gets the example configs under `examples/`, ready
 * to launch from the workbench or with `normlab run`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { appPath } from '../core/app-paths.js';
import { fail } from '../core/errors.js';
import { readConfigFile } from '../jobs/config.js';
import type { JobQueue } from '../jobs/queue.js';
import { EXAMPLES_DIR } from '../service.js';
import type { SeedCell } from '../jobs/seeds.js';
import { keyResultValue } from '../stats/key-format.js';
import type { KeyResult } from '../stats/stats.js';

export const DEMO_DIR = appPath('assets', 'demo');

type Summary = Record<string, unknown>;
const num = (v: unknown, digits = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '–');

/**
 * The key result as a reader must see it: value, 95% interval and verdict for a comparison,
 * value and interval for an estimate.
 */
export function keyResultLine(s: Summary): string | null {
  const kr = s.key_result as KeyResult | undefined;
  if (!kr) return null;
  // A fraction (top-1 accuracy) in percent, as the table lines below it.
  const v = keyResultValue(kr);
  const ci = v.ci95 ? ` ${v.ci95} (95%, ${kr.interval ?? 'interval'})` : ' (no interval)';
  // A study over one training seed has intervals over evaluation units, not over seeds.
  const seeded = Array.isArray(s.seeds) && s.seeds.length > 1;
  return `${kr.label}: ${v.value}${ci}${kr.verdict ? ` → ${kr.verdict}${seeded ? '' : '; single seed, not a result'}` : ''}`;
}

/** The lines of the results table that one run contributes: its key result, then by method. */
export function headline(method: string, s: Summary): string[] {
  const key = keyResultLine(s);
  if (Array.isArray(s.seed_table))
    return [...(key ? [key] : []), ...seedLines(s.seed_table as SeedCell[]), ...((s.warnings as string[] | undefined) ?? []).map((w) => `warning: ${w}`)];
  const warnings = ((s.warnings as string[] | undefined) ?? []).map((w) => `warning: ${w}`);
  return [...(key ? [key] : []), ...methodLines(method, s), ...warnings];
}

/** A study over seeds: each row and metric as mean ± sd with the seeds' values. */
function seedLines(table: SeedCell[]): string[] {
  return table.map(
    (c) =>
      `${c.row} ${c.metric}: ${c.mean === null ? '–' : num(c.mean, 4)}${c.sd === null ? '' : ` ± ${num(c.sd, 4)}`} (seeds: ${Object.entries(c.per_seed)
        .map(([seed, v]) => `${seed}: ${v === null ? '–' : num(v, 4)}`)
        .join(', ')})`,
  );
}

function methodLines(method: string, s: Summary): string[] {
  switch (method) {
    case 'lns-study':
      return ((s.variants as Summary[]) ?? []).map(
        (v) => `${v.variant}: val loss ${num(v.final_val_loss)}, ppl ${num(v.final_val_ppl, 2)}, deep-half pruning ΔCE ${num(v.deep_half_prune_drop_mean, 4)}`,
      );
    case 'ln-removal':
      return [
        `val CE original ${num(s.original_val_ce, 4)}, vanilla ${num(s.vanilla_val_ce, 4)}, LN-free ${num(s.ln_free_val_ce, 4)} (gap ${num(s.gap_vs_vanilla, 4)})`,
        ...nmaeLine(s),
      ];
    case 'lct-study':
      return ((s.table as Summary[]) ?? []).map(
        (r) =>
          `${r.configuration}: ${s.fid_label ?? 'FID'} 1 step ${num(r.fid_1step, 2)} (SE ${num(r.fid_1step_se, 2)}), 2 steps ${num(r.fid_2step, 2)} (SE ${num(r.fid_2step_se, 2)})`,
      );
    case 'ptq-study': {
      const table = (s.table as Record<string, Record<string, number>>) ?? {};
      return [
        `FP top-1 ${pct(s.fp_top1)}`,
        ...Object.entries(table).map(
          ([preset, byBits]) =>
            `${preset}: ${Object.entries(byBits)
              .map(([b, a]) => `${b} ${pct(a)}`)
              .join(', ')}`,
        ),
      ];
    }
    default:
      return [];
  }
}

/** DLA vs direct effect: each model's NMAE with its 95% interval over prompts. */
function nmaeLine(s: Summary): string[] {
  const rows = s.dla_nmae as Record<string, { nmae_pct: number; ci95_lo: number | null; ci95_hi: number | null }> | undefined;
  if (!rows) return [];
  const names: Record<string, string> = { original: 'original', vanilla: 'vanilla', ln_free: 'LN-free' };
  const cells = Object.entries(names).flatMap(([key, name]) => {
    const r = rows[key];
    if (!r) return [];
    return [`${name} ${num(r.nmae_pct, 2)}%${r.ci95_lo === null || r.ci95_hi === null ? '' : ` [${num(r.ci95_lo, 2)}, ${num(r.ci95_hi, 2)}]`}`];
  });
  return [`DLA NMAE ${cells.join(', ')} (${s.dla_nmae_interval ?? 'no interval'})`];
}

/** The demo's studies that take `seeds: [..]` (every method of the demo). */
const SEEDED = new Set(['lns-study', 'ln-removal', 'lct-study', 'ptq-study']);

/** `--seeds 0,1`: distinct non-negative integers. */
export function parseSeeds(text: string): number[] {
  const seeds = text.split(',').map((t) => Number(t.trim()));
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0) || new Set(seeds).size !== seeds.length)
    fail('config', `--seeds takes distinct non-negative integers separated by commas, e.g. 0,1; got "${text}"`);
  return seeds;
}

export async function runDemo(
  queue: JobQueue,
  opts: { full: boolean; seeds?: number[]; onRun?: (file: string) => void },
): Promise<{ method: string; runId: string; status: string; lines: string[]; seconds: number }[]> {
  const dir = opts.full ? EXAMPLES_DIR : DEMO_DIR;
  const files = fs
    .readdirSync(dir)
    // (Cluster examples, `*-slurm.yaml`, submit to Slurm, and depth-study.yaml needs its model folders made first: not part of a local demo.)
    .filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('lm-pretrain') && !f.endsWith('-slurm.yaml') && f !== 'depth-study.yaml')
    .sort();
  if (files.length === 0) fail('not-found', `no demo configs in ${dir}`);
  // The example project: the four methods' example configs, ready to launch.
  const examples = path.join(queue.project.dir, 'examples');
  fs.mkdirSync(examples, { recursive: true });
  for (const f of fs.readdirSync(EXAMPLES_DIR)) if (!fs.existsSync(path.join(examples, f))) fs.copyFileSync(path.join(EXAMPLES_DIR, f), path.join(examples, f));

  const results = [];
  for (const f of files) {
    opts.onRun?.(f);
    const started = Date.now();
    const config = readConfigFile(path.join(dir, f));
    const run = queue.enqueue(opts.seeds && SEEDED.has(String(config.method)) ? { ...config, seeds: opts.seeds } : config);
    await queue.wait(run.id);
    const done = queue.project.run(run.id);
    const summary = done.readSummary() ?? {};
    const lines = done.status === 'completed' ? headline(done.record.method, summary) : [`${done.status}: ${done.record.error?.message ?? ''}`];
    results.push({ method: done.record.method, runId: done.id, status: done.status, lines, seconds: Math.round((Date.now() - started) / 1000) });
    if (done.status === 'cancelled') break;
  }
  return results;
}

export function formatDemoTable(results: Awaited<ReturnType<typeof runDemo>>): string {
  const rows: string[][] = [['method', 'run', 'time', 'results']];
  for (const r of results) r.lines.forEach((line, i) => rows.push(i === 0 ? [r.method, r.runId, `${r.seconds}s`, line] : ['', '', '', line]));
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) => row.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell)).join('  ')).join('\n');
}
