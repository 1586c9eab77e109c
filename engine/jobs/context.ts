/**
 * What a running job sees: its run folder, the backend, cancellation, and the channels it
 * reports through (progress, metrics, logs). Progress and metrics go to the run store and to
 * every listener of the queue (the CLI's progress bar, the protocol's event stream).
 */
import type { BackendInfo } from '../backend/backend.js';
import { fail, NormLabError } from '../core/errors.js';
import type { Project, Run, RunStatus } from '../store/runs.js';

/** One child run a parent asks for: `key` names it within the parent (stable across resumes). */
export interface ChildSpec {
  key: string;
  name: string;
  config: Record<string, unknown>;
  /**
   * Under the in-process executor, run this child in its own `normlab run-child` process anyway
   * (a large model: the memory it grows, a wasm heap that never shrinks, ends with that process).
   */
  ownProcess?: boolean;
}

/** How a child ended: `summary` is null unless it completed. */
export interface ChildOutcome {
  key: string;
  runId: string;
  status: RunStatus;
  summary: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
}

export interface Progress {
  step: number;
  total: number;
  phase?: string;
  message?: string;
}

export interface JobContext {
  readonly run: Run;
  readonly project: Project;
  readonly backend: BackendInfo;
  readonly signal: AbortSignal;
  /** The checkpoint a resumed run continues from, or null for a fresh start. */
  readonly resumeFrom: { step: number; dir: string; scope?: Record<string, string> } | null;
  progress(p: Progress): void;
  /** Append a metric line (must have `step`) and publish it. */
  metric(m: { step: number } & Record<string, unknown>): void;
  log(message: string): void;
  /** Yield to the event loop (lets messages and cancellation in); throws if cancelled. */
  tick(): Promise<void>;
  /**
   * Run child runs through the parent's executor (its config's `executor`: in this process,
   * parallel processes, or a Slurm job array) and return how each ended, in order. A child that
   * already completed (a resumed or collected parent) is not run again. Under Slurm the first
   * call submits and the parent continues in the collect job, where children that ended without
   * completing come back with `summary: null` (the parent marks them missing).
   */
  runChildren(children: ChildSpec[]): Promise<ChildOutcome[]>;
  /** One child that must complete (a stage later work depends on); returns its summary. */
  runChild(config: Record<string, unknown>, name: string): Promise<{ runId: string; summary: Record<string, unknown> }>;
}

/**
 * The abort reason of a run told to stop by SIGTERM or SIGINT (a preemption, a Slurm time
 * limit, scancel, Ctrl-C): it ends `interrupted`, not cancelled, after its trainer saved a
 * checkpoint at the step it reached (engine/train/checkpoint.ts `endOfStep`).
 */
export const INTERRUPT = 'interrupt';

/**
 * The abort reason of a run a user cancelled (the workbench's Cancel, `run.cancel`, `normlab
 * cancel`): it stops exactly as on SIGTERM, with a checkpoint at the step it reached, and ends
 * `cancelled`; `normlab resume` continues from that checkpoint.
 */
export const CANCEL = 'cancel';

/**
 * Was this run told to stop at its next step boundary with a checkpoint: by SIGTERM / SIGINT
 * (ends interrupted) or by a user's cancel (ends cancelled)?
 */
export function stopRequested(signal: AbortSignal): boolean {
  return signal.aborted && (signal.reason === INTERRUPT || signal.reason === CANCEL);
}

/** Throw the cancellation error if the signal fired. */
export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) fail('cancelled', 'the run was cancelled');
}

/** The summary of a child that had to complete (a stage later work needs), else its error. */
export function completedSummary(child: ChildOutcome, name: string): Record<string, unknown> {
  if (child.summary) return child.summary;
  const why = child.error ? `: ${child.error.message}` : '';
  throw new NormLabError((child.error?.code as never) ?? 'state', `child run ${child.runId} (${name}) ended ${child.status}${why}`);
}
