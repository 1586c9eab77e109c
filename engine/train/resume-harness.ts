/**
 * Test support for the trainers' resume tests (imported by `*.test.ts` only): run a config
 * uninterrupted, run it again killed (or cancelled, or interrupted) at a step, resume that run, and compare.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../io/safetensors-file.js';
import { JobQueue } from '../jobs/queue.js';
import { Project, type Run } from '../store/runs.js';

export function tempQueue(prefix: string): JobQueue {
  return new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), prefix))), 'wasm');
}

/** Run a config to its end; throws with the run's error if it did not complete. */
export async function runToEnd(q: JobQueue, config: Record<string, unknown>): Promise<Run> {
  const run = q.enqueue(config);
  await q.wait(run.id);
  const done = q.project.run(run.id);
  if (done.status !== 'completed') throw new Error(`run ${done.id} ${done.status}: ${done.record.error?.message}`);
  return done;
}

/**
 * The same config uninterrupted, and killed at the progress event of step `cancelAt` (of
 * `phase`, when given) and then resumed to its end. Returns both runs (each completed).
 */
export async function straightAndResumed(
  q: JobQueue,
  config: Record<string, unknown>,
  cancelAt: number,
  phase?: string,
): Promise<{ straight: Run; resumed: Run }> {
  const straight = await runToEnd(q, config);
  return { straight, resumed: await interruptedAndResumed(q, config, cancelAt, phase) };
}

/** How `interruptedAndResumed` stops a run, and the state it ends in. */
const STOPPED_AS = { kill: 'failed', cancel: 'cancelled', interrupt: 'interrupted' } as const;

/**
 * The config stopped at the progress event of step `cancelAt` (of `phase`, when given), then
 * resumed to its end. `stop`: `kill` (the job dies there, as in a crash or SIGKILL: it resumes from
 * its last periodic checkpoint), `cancel` (a user's cancel, ends cancelled) or `interrupt` (SIGTERM
 * / SIGINT, ends interrupted); a cancel or an interrupt checkpoints the step it reached first.
 */
export async function interruptedAndResumed(
  q: JobQueue,
  config: Record<string, unknown>,
  cancelAt: number,
  phase?: string,
  stop: keyof typeof STOPPED_AS = 'kill',
): Promise<Run> {
  const run = q.enqueue(config);
  const off = q.on((e) => {
    if (e.event === 'progress' && e.runId === run.id && e.step === cancelAt && (phase === undefined || e.phase === phase)) {
      if (stop === 'kill') throw new Error(`killed at step ${cancelAt}`);
      if (stop === 'cancel') q.cancel(run.id);
      else q.interruptAll();
    }
  });
  await q.wait(run.id);
  off();
  const cancelled = q.project.run(run.id);
  const expected = STOPPED_AS[stop];
  if (cancelled.status !== expected) throw new Error(`run ${run.id} was not ${expected} at step ${cancelAt} (status ${cancelled.status})`);
  q.resume(run.id);
  await q.wait(run.id);
  const resumed = q.project.run(run.id);
  if (resumed.status !== 'completed') throw new Error(`resumed run ${run.id} ${resumed.status}: ${resumed.record.error?.message}`);
  return resumed;
}

/** Max relative L2 difference over the tensors of two safetensors files (which must hold the same names). */
export async function maxRelDiff(fileA: string, fileB: string): Promise<number> {
  const [a, b] = [(await readSafetensors(fileA)).tensors, (await readSafetensors(fileB)).tensors];
  const names = [...a.keys()].sort();
  if (names.join() !== [...b.keys()].sort().join()) throw new Error(`${fileA} and ${fileB} hold different tensors`);
  let worst = 0;
  for (const name of names) {
    const [ta, tb] = [a.get(name)!.data, b.get(name)!.data];
    let num = 0;
    let den = 0;
    for (let i = 0; i < ta.length; i++) {
      num += (Number(ta[i]) - Number(tb[i])) ** 2;
      den += Number(tb[i]) ** 2;
    }
    worst = Math.max(worst, Math.sqrt(num / Math.max(den, 1e-30)));
  }
  return worst;
}

/** The numeric values of metric `key`, in step order, as a reader sees them (superseded lines dropped). */
export function metricSeries(run: Run, key: string): { step: number; value: number }[] {
  return run
    .readMetrics()
    .filter((m) => typeof m[key] === 'number')
    .map((m) => ({ step: m.step as number, value: m[key] as number }));
}
