/**
 * What a running job sees: its run folder, the backend, cancellation, and the channels it
 * reports through (progress, metrics, logs). Progress and metrics go to the run store and to
 * every listener of the queue (the CLI's progress bar, the protocol's event stream).
 */
import type { BackendInfo } from '../backend/backend.js';
import { fail } from '../core/errors.js';
import type { Project, Run } from '../store/runs.js';

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
  /** Run another job kind as a child run of this one (studies); returns its summary. */
  runChild(config: Record<string, unknown>, name: string): Promise<{ runId: string; summary: Record<string, unknown> }>;
}

/** Throw the cancellation error if the signal fired. */
export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) fail('cancelled', 'the run was cancelled');
}
