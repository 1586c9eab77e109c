/**
 * A parent run's children as every client sees them (CLI `list`/`show`, the protocol's
 * `run.children`): their state in the run store (the shared project folder), joined with Slurm's
 * view of their array tasks where Slurm still knows them; and cancelling a parent everywhere.
 */
import * as os from 'node:os';
import { RUN_STATUSES, type ChildState } from '../protocol/protocol.js';
import type { Project, Run } from '../store/runs.js';
import { cancelSlurmJobs, slurmStates } from './slurm.js';

/** The Slurm jobs a parent submitted (arrays and collect jobs). */
function slurmJobs(parent: Run): string[] {
  return (parent.record.slurm ?? []).flatMap((s) => [s.array_job, s.collect_job]);
}

/** Latest logged step and training loss of a run (its live curve's end). */
function latestLoss(run: Run): { step: number | null; loss: number | null } {
  const metrics = run.readMetrics();
  for (let i = metrics.length - 1; i >= 0; i--) {
    const m = metrics[i];
    if (typeof m.step === 'number' && typeof m.loss === 'number') return { step: m.step, loss: m.loss };
  }
  return { step: null, loss: null };
}

export function childStates(project: Project, parent: Run): ChildState[] {
  const children = project.children(parent.id);
  const slurm = parent.record.slurm?.length ? slurmStates(slurmJobs(parent)) : new Map<string, string>();
  return children.map((c) => ({
    id: c.id,
    key: c.record.child_key ?? c.record.name,
    name: c.record.name,
    status: c.status,
    slurm: c.record.slurm_task ? (slurm.get(c.record.slurm_task) ?? null) : null,
    ...latestLoss(c),
  }));
}

/** Counts of children by state, in the order of the states' lifecycle: "1 queued, 1 running, 2 completed". */
export function childCounts(states: ChildState[]): string {
  return RUN_STATUSES.map((status) => [status, states.filter((s) => s.status === status).length] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
}

/**
 * Cancel a run (a parent: with its children) wherever it runs: scancel a parent's Slurm jobs, ask
 * the live process that owns each run on this machine to cancel it (`cancel.request`: it stops at
 * its next step boundary with a checkpoint and ends cancelled; the process itself, a server
 * included, goes on), and mark what nobody runs yet cancelled. Returns what it did, one line per action.
 */
export function cancelEverywhere(project: Project, parent: Run): string[] {
  const done: string[] = [];
  const jobs = slurmJobs(parent);
  if (parent.status === 'queued' && jobs.length) {
    cancelSlurmJobs(jobs);
    done.push(`scancel ${jobs.join(' ')}`);
  }
  const here = os.hostname();
  for (const run of [parent, ...project.children(parent.id)]) {
    const s = run.status;
    const owned = run.record.pid !== null && (run.record.host ?? here) === here;
    if ((s === 'running' || s === 'queued') && owned) {
      run.requestCancel();
      done.push(`cancel requested: ${run.id} (process ${run.record.pid} stops it at its next step boundary, with a checkpoint)`);
    } else if (s === 'queued') {
      run.update({ status: 'cancelled', pid: null, finished: new Date().toISOString() });
      done.push(`cancelled ${run.id}`);
    }
  }
  return done;
}
