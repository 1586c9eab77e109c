/**
 * `normlab run --dry-run` / `normlab sweep --dry-run`: what a parent job (sweep or study) would
 * hand its executor, with nothing run or submitted: its children and, for `executor: slurm`, the
 * job-array and collect scripts `sbatch` would get. The parent runs up to its first hand-over in a
 * throwaway project, so the project is left as it was; the scripts name the real project folder.
 * Run ids are examples (a real submission names the runs it creates). A job with later stages
 * (lct-study's lct runs, ptq-study's presets after its ViT) submits those from this stage's
 * collect job, once the results they need exist; a dry run shows the first stage.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackendChoice } from '../backend/backend.js';
import { fail } from '../core/errors.js';
import { Project } from '../store/runs.js';
import { resolveConfig } from './config.js';
import { runChildCommand, shellQuote } from './executor.js';
import { JobQueue, type ChildPlan } from './queue.js';
import { jobKind } from './registry.js';
import { slurmScripts } from './slurm.js';

export interface DryRunStage {
  executor: ChildPlan['executor'];
  children: { id: string; key: string; method: string }[];
  /** The commands the executor would run: `normlab run-child` per child, or the two sbatch calls. */
  commands: string[];
  /** For Slurm: the job-array script and the collect script (its dependency on `<array job id>`). */
  scripts?: { array: string; collect: string };
}

/**
 * Run `config` up to the hand-over of its first children, in a throwaway project; returns what
 * would be run. A job without children is only checked (its config resolved), never run.
 */
export async function dryRun(config: Record<string, unknown>, projectDir: string, backend: BackendChoice): Promise<{ method: string; stages: DryRunStage[] }> {
  const resolved = resolveConfig(config);
  if (!jobKind(resolved.method).parent) return { method: resolved.method, stages: [] };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-dry-run-'));
  try {
    const q = new JobQueue(Project.open(tmp), backend);
    const stages: DryRunStage[] = [];
    q.dryRun = (plan) => stages.push(describe(plan, tmp, path.resolve(projectDir)));
    const run = q.enqueue(config);
    await q.wait(run.id);
    const ended = q.project.run(run.id);
    if (ended.status === 'failed') fail((ended.record.error?.code as never) ?? 'internal', ended.record.error?.message ?? `run ${run.id} failed`);
    return { method: ended.record.method, stages };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function describe(plan: ChildPlan, tmp: string, projectDir: string): DryRunStage {
  const children = plan.children.map((c) => ({ id: c.id, key: c.record.child_key ?? c.record.name, method: c.record.method }));
  const { executor } = plan;
  if (executor.kind === 'local')
    return { executor, children, commands: plan.children.map((c) => runChildCommand(plan.engineCommand, projectDir, plan.backend, shellQuote(c.id))) };
  const parentDir = path.join(projectDir, path.relative(tmp, plan.parent.dir));
  const logDir = path.join(parentDir, 'slurm');
  const s = slurmScripts({ ...plan, cfg: executor, projectDir, logDir });
  return {
    executor,
    children,
    commands: [`sbatch --parsable ${path.join(logDir, 'array-<time>.sbatch')}`, `sbatch --parsable ${path.join(logDir, 'collect-<time>.sbatch')}`],
    scripts: { array: s.array, collect: s.collect('<array job id>') },
  };
}

/** The dry run for a terminal: each stage's children, then its commands and scripts. */
export function formatDryRun(r: { method: string; stages: DryRunStage[] }): string {
  if (r.stages.length === 0) return `${r.method}: the config is valid; it has no child runs to hand to an executor (it runs in this process); nothing was run`;
  return r.stages
    .flatMap((st) => [
      `# ${r.method}: ${st.children.length} child runs, executor ${st.executor.kind}${st.executor.kind === 'local' ? ` (parallel ${st.executor.parallel})` : ''}; nothing was run or submitted`,
      ...st.children.map((c) => `#   ${c.id}  ${c.method}  ${c.key}`),
      ...(st.scripts ? [`# ${st.commands[0]}`, st.scripts.array, `# ${st.commands[1]}`, st.scripts.collect] : st.commands.map((c) => `${c}`)),
    ])
    .join('\n');
}
