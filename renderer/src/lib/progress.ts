/** A run's progress numbers as its page shows them: the final step and the running time. */
import type { RunRecord } from '../../../engine/protocol/protocol';
import { isResultLine, type Metric } from './metrics';

/** The last training step a run's metric lines reached (0 when none; result records do not count). */
export function finalStep(metrics: Metric[]): number {
  let last = 0;
  for (const m of metrics) if (typeof m.step === 'number' && !('event' in m) && !isResultLine(m) && m.step > last) last = m.step;
  return last;
}

/**
 * Seconds the run has spent running: the finished stretches (`runSeconds`) plus the current one
 * while running. Time queued, cancelled or waiting for a resume is not counted. A run whose
 * process died (interrupted) counts its last stretch up to its last metric line. Records written
 * before `runSeconds` existed fall back to finished − started.
 */
export function elapsedSeconds(record: RunRecord, status: string, metrics: Metric[], now: number): number | null {
  if (!record.started) return null;
  if (record.runSeconds === undefined && !record.runningSince) {
    const end = record.finished ? Date.parse(record.finished) : now;
    return (end - Date.parse(record.started)) / 1000;
  }
  const done = record.runSeconds ?? 0;
  if (!record.runningSince) return done;
  const since = Date.parse(record.runningSince);
  if (status === 'running') return done + Math.max(0, (now - since) / 1000);
  let lastTime = since;
  for (const m of metrics) if (typeof m.time === 'number' && m.time > lastTime) lastTime = m.time;
  return done + (lastTime - since) / 1000;
}
