/**
 * Fault points: the phase boundaries where the fault run (engine/testing/fault-run.ts) and the
 * kill-and-resume tests SIGKILL a real engine process, so that a resume from exactly there can be
 * compared with an uninterrupted run. They do nothing unless `NORMLAB_FAULT_AT` is set; then each
 * point a process passes writes one line to stderr, `normlab-fault-point POINT#N METHOD RUN` (N
 * counts the passes of that point in this process), and the pass the variable names, `POINT#N` or
 * `POINT` (its first pass), kills the process there (SIGKILL: no cleanup, as a crash or an OOM
 * kill). Any other value (e.g. `trace`) only lists the passes.
 */

/** Every fault point, in the order a run passes them. */
export const FAULT_POINTS = [
  /** A trainer's last step is done (logged), its final checkpoint not yet written. */
  'after-last-step',
  /** A trainer's final checkpoint is written; its evaluation and summary are not. */
  'after-final-checkpoint',
  /** An exported model is written (an LN-removal arm's LN-free model, a PTQ export), the summary is not. */
  'after-export',
  /** A parent's children have ended; its collect (tables, plots, its own summary) has not run. */
  'children-done',
  /** A run's summary.json is written; its end state (completed) is not. */
  'after-summary',
] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];

/** The start of each stderr line a fault point writes. */
export const FAULT_TRACE = 'normlab-fault-point';

const passes = new Map<FaultPoint, number>();

/** Pass fault point `point` in run `run` (see the module comment): nothing unless NORMLAB_FAULT_AT is set. */
export function faultPoint(point: FaultPoint, run: { id: string; record: { method: string } }): void {
  const at = process.env.NORMLAB_FAULT_AT;
  if (!at) return;
  const n = (passes.get(point) ?? 0) + 1;
  passes.set(point, n);
  process.stderr.write(`${FAULT_TRACE} ${point}#${n} ${run.record.method} ${run.id}\n`);
  if (at === `${point}#${n}` || (at === point && n === 1)) process.kill(process.pid, 'SIGKILL');
}
