/**
 * A run's results as a resumed run must reproduce them (the fault run, engine/testing/fault-run.ts,
 * and the kill-and-resume tests): its summary and the metric lines a reader sees, and the same of
 * each child run by its key, with what legitimately differs between two runs of one config left
 * out: wall-clock times and throughputs, and run ids and project paths inside strings.
 */
import type { Project, Run } from '../store/runs.js';

/** One run's results and its children's, by child key. */
export interface RunResult {
  method: string;
  status: string;
  summary: unknown;
  metrics: unknown[];
  children: Record<string, RunResult>;
}

/** Keys whose values are times or speeds (they differ between any two runs). */
const TIMING_KEY = /^(time|seconds)$|_seconds$|_per_s$/;

/** Run ids as the store makes them (`20250101-120000-lm-pretrain-1a2b`). */
const RUN_ID = /\d{8}-\d{6}-[a-z0-9-]+?-[0-9a-f]{4}/g;

function normalize(value: unknown, projectDir: string): unknown {
  if (typeof value === 'string') return value.split(projectDir).join('<project>').replace(RUN_ID, '<run>');
  if (Array.isArray(value)) return value.map((v) => normalize(v, projectDir));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !TIMING_KEY.test(k))
        .map(([k, v]) => [k, normalize(v, projectDir)]),
    );
  return value;
}

/** The results of run `run` of `project` and of its children (recursively). */
export function runResult(project: Project, run: Run): RunResult {
  const children: Record<string, RunResult> = {};
  for (const child of project.children(run.id)) {
    const key = child.record.child_key ?? `unkeyed ${child.id}`;
    children[children[key] ? `${key} (again: ${child.id})` : key] = runResult(project, child);
  }
  return {
    method: run.record.method,
    status: run.status,
    summary: normalize(run.readSummary(), project.dir),
    metrics: run.readMetrics().map((m) => normalize(m, project.dir)),
    children,
  };
}

/**
 * Where `got` differs from `want`: one line per differing value, by its path. Numbers must agree
 * to `tol` (absolute, or relative to the larger magnitude); 0 asks for exact equality.
 */
export function resultDiffs(got: unknown, want: unknown, tol = 0, at = ''): string[] {
  if (typeof got === 'number' && typeof want === 'number') {
    const d = Math.abs(got - want);
    return Object.is(got, want) || d <= tol * Math.max(1, Math.abs(got), Math.abs(want)) ? [] : [`${at}: ${got} != ${want}`];
  }
  if (Array.isArray(got) && Array.isArray(want)) {
    if (got.length !== want.length) return [`${at}: ${got.length} entries != ${want.length}`];
    return got.flatMap((g, i) => resultDiffs(g, want[i], tol, `${at}[${i}]`));
  }
  if (got !== null && want !== null && typeof got === 'object' && typeof want === 'object' && !Array.isArray(got) && !Array.isArray(want)) {
    const keys = [...new Set([...Object.keys(got), ...Object.keys(want)])];
    return keys.flatMap((k) => {
      const [g, w] = [(got as Record<string, unknown>)[k], (want as Record<string, unknown>)[k]];
      if (g === undefined || w === undefined) return g === w ? [] : [`${at}.${k}: ${g === undefined ? 'missing' : 'extra'}`];
      return resultDiffs(g, w, tol, `${at}.${k}`);
    });
  }
  return JSON.stringify(got) === JSON.stringify(want) ? [] : [`${at}: ${JSON.stringify(got)?.slice(0, 120)} != ${JSON.stringify(want)?.slice(0, 120)}`];
}
