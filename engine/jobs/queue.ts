/**
 * The job queue: runs jobs one at a time (by default) in this process, with progress events,
 * cancellation and resume. Every state change is written to the run store first and published
 * after, so a listener never sees a state the disk does not have.
 */
import { initBackend, type BackendChoice } from '../backend/backend.js';
import { asNormLabError, fail } from '../core/errors.js';
import type { EngineEvent } from '../protocol/protocol.js';
import { Project, releaseLiveRun, type Run } from '../store/runs.js';
import { resolveConfig } from './config.js';
import { throwIfCancelled, type JobContext } from './context.js';
import { jobKind } from './registry.js';

type Listener = (e: EngineEvent) => void;

interface Pending {
  run: Run;
  resume: boolean;
  /** The backend this run asked for (else the queue's). */
  backend: BackendChoice;
  controller: AbortController;
  done: Promise<void>;
  settle: () => void;
}

export class JobQueue {
  private readonly listeners = new Set<Listener>();
  private readonly pending: Pending[] = [];
  private active: Pending | null = null;

  constructor(
    public project: Project,
    private readonly backendChoice: BackendChoice = 'auto',
  ) {}

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: EngineEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Validate a config and queue a new run, on `backend` (default: the queue's); returns the run (status queued). */
  enqueue(rawConfig: Record<string, unknown>, parent?: string, backend: BackendChoice = this.backendChoice): Run {
    const config = resolveConfig(rawConfig);
    const run = this.project.createRun(config.method, config, {
      seed: config.seed,
      name: typeof config.name === 'string' ? config.name : undefined,
      tags: Array.isArray(config.tags) ? (config.tags as string[]) : [],
      parent,
    });
    this.schedule(run, false, backend);
    return run;
  }

  /** Queue an interrupted, cancelled or failed run to continue from its latest checkpoint. */
  resume(runId: string): Run {
    const run = this.project.run(runId);
    const status = run.status;
    if (this.active?.run.id === run.id || this.pending.some((p) => p.run.id === run.id)) fail('state', `run ${run.id} is already ${status}`);
    if (status === 'completed') fail('state', `run ${run.id} is completed; nothing to resume`);
    if (!jobKind(run.record.method).resumable) fail('state', `${run.record.method} runs cannot be resumed; start a new run`);
    run.update({ status: 'queued', pid: process.pid, error: null });
    this.schedule(run, true, this.backendChoice);
    return run;
  }

  /** Cancel a queued or running run. */
  cancel(runId: string): void {
    const p = this.active?.run.id === runId ? this.active : this.pending.find((x) => x.run.id === runId);
    if (!p) fail('state', `run ${runId} is not queued or running`);
    p.controller.abort();
  }

  /** Resolves when the given run has finished (completed, failed, cancelled). */
  wait(runId: string): Promise<void> {
    const p = this.active?.run.id === runId ? this.active : this.pending.find((x) => x.run.id === runId);
    return p ? p.done : Promise.resolve();
  }

  isBusy(): boolean {
    return this.active !== null || this.pending.length > 0;
  }

  private schedule(run: Run, resume: boolean, backend: BackendChoice): void {
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    this.pending.push({ run, resume, backend, controller: new AbortController(), done, settle });
    this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'queued' });
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    if (this.active || this.pending.length === 0) return;
    this.active = this.pending.shift()!;
    try {
      await this.execute(this.active);
    } finally {
      this.active.settle();
      this.active = null;
      setImmediate(() => void this.pump());
    }
  }

  private async execute(p: Pending): Promise<void> {
    const { run, controller } = p;
    try {
      throwIfCancelled(controller.signal);
      const backend = await initBackend(p.backend);
      run.markRunning(backend.name, backend.detail);
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'running' });
      const summary = await this.runJob(run, p.resume, controller.signal, p.backend);
      run.writeSummary(summary);
      run.markFinished('completed');
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'completed' });
    } catch (err) {
      const e = asNormLabError(err);
      const status = e.code === 'cancelled' ? 'cancelled' : 'failed';
      run.markFinished(status, status === 'failed' ? { code: e.code, message: e.message } : null);
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status, error: status === 'failed' ? { code: e.code, message: e.message } : undefined });
    } finally {
      releaseLiveRun(run.id);
    }
  }

  /** Run a job kind in the given run folder, inline (used for top-level runs and study children). */
  private async runJob(run: Run, resume: boolean, signal: AbortSignal, backendChoice: BackendChoice): Promise<Record<string, unknown>> {
    const kind = jobKind(run.record.method);
    const config = kind.schema.parse(run.record.config);
    const resumeFrom = resume ? run.latestCheckpoint() : null;
    if (resume) {
      run.update({ resumes: [...run.record.resumes, resumeFrom?.step ?? 0] });
      run.appendMetric({ event: 'resume', step: resumeFrom?.step ?? 0 });
    }
    const backend = await initBackend(backendChoice);
    const started = Date.now();
    let startStep = -1;
    const ctx: JobContext = {
      run,
      project: this.project,
      backend,
      signal,
      resumeFrom,
      progress: (pr) => {
        if (startStep < 0) startStep = pr.step;
        const done = pr.step - startStep;
        const eta = done > 0 ? ((Date.now() - started) / 1000 / done) * (pr.total - pr.step) : undefined;
        this.emit({ kind: 'event', event: 'progress', runId: run.id, ...pr, etaSeconds: eta });
      },
      metric: (m) => {
        run.appendMetric(m);
        this.emit({ kind: 'event', event: 'metric', runId: run.id, metric: m });
      },
      log: (message) => this.emit({ kind: 'event', event: 'log', runId: run.id, message }),
      tick: async () => {
        await new Promise<void>((r) => setImmediate(r));
        throwIfCancelled(signal);
      },
      runChild: async (childConfig, name) => {
        const resolved = resolveConfig({ ...childConfig, name });
        const child = this.project.createRun(resolved.method, resolved, { seed: resolved.seed, name, parent: run.id, tags: [] });
        child.markRunning(backend.name, backend.detail);
        this.emit({ kind: 'event', event: 'run-state', runId: child.id, status: 'running' });
        try {
          const summary = await this.runJob(child, false, signal, backendChoice);
          child.writeSummary(summary);
          child.markFinished('completed');
          this.emit({ kind: 'event', event: 'run-state', runId: child.id, status: 'completed' });
          return { runId: child.id, summary };
        } catch (err) {
          const e = asNormLabError(err);
          child.markFinished(e.code === 'cancelled' ? 'cancelled' : 'failed', { code: e.code, message: e.message });
          this.emit({ kind: 'event', event: 'run-state', runId: child.id, status: e.code === 'cancelled' ? 'cancelled' : 'failed' });
          throw err;
        } finally {
          releaseLiveRun(child.id);
        }
      },
    };
    return kind.run(ctx, config);
  }
}

export { Project };
