/**
 * The job queue: runs jobs one at a time (by default) in this process, with progress events,
 * cancellation and resume. Every state change is written to the run store first and published
 * after, so a listener never sees a state the disk does not have. A parent job's children run
 * through its executor (engine/jobs/executor.ts): inline here, in child processes, or on Slurm.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, type BackendChoice } from '../backend/backend.js';
import { asNormLabError, fail, WASM_ABORT } from '../core/errors.js';
import { faultPoint } from '../core/fault-points.js';
import type { EngineEvent } from '../protocol/protocol.js';
import { Project, type Run } from '../store/runs.js';
import { resolveConfig } from './config.js';
import { checkInputPath, configPaths } from './paths.js';
import { withoutPreset } from './presets.js';
import { CANCEL, completedSummary, INTERRUPT, throwIfCancelled, type ChildOutcome, type ChildSpec, type JobContext } from './context.js';
import { defaultEngineCommand, DeferredToScheduler, executorOf, runInProcesses, type ExecutorConfig } from './executor.js';
import { jobKind } from './registry.js';
import { submitToSlurm } from './slurm.js';

/**
 * How a parent treats its children: `fresh` runs them all; `resume` runs those that did not
 * complete; `collect` (the Slurm collect job) runs none that already ran, only new ones.
 */
export type ChildMode = 'fresh' | 'resume' | 'collect';

type Listener = (e: EngineEvent) => void;

/** How often a working queue looks for `cancel.request` files of its runs (`normlab cancel` from another process). */
const CANCEL_POLL_MS = 300;

/** How often a parent looks again at children that still run in another process. */
const LIVE_CHILD_POLL_MS = 1000;

/** What a parent hands its executor: children to run or submit (see `JobQueue.dryRun`). */
export interface ChildPlan {
  executor: ExecutorConfig;
  parent: Run;
  children: Run[];
  projectDir: string;
  backend: string;
  engineCommand: string;
}

interface Pending {
  run: Run;
  resume: boolean;
  mode: ChildMode;
  /** The backend this run asked for (else the queue's). */
  backend: BackendChoice;
  controller: AbortController;
  done: Promise<void>;
  settle: () => void;
}

export class JobQueue {
  /** The backend of the run executing now (its children run on it too). */
  private runBackend: BackendChoice;
  private readonly listeners = new Set<Listener>();
  private readonly pending: Pending[] = [];
  private active: Pending | null = null;
  /** Runs executing in this queue now (the active run and the children it runs inline). */
  private readonly executing = new Map<string, Run>();
  /**
   * Set by `normlab run --dry-run`: a parent's children are handed to this (what the executor
   * would run or submit) instead of being run or submitted; the parent then stops there.
   */
  dryRun: ((plan: ChildPlan) => void) | null = null;

  constructor(
    public project: Project,
    private readonly backendChoice: BackendChoice = 'auto',
  ) {
    this.runBackend = backendChoice;
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: EngineEvent): void {
    for (const l of this.listeners) l(e);
  }

  /**
   * Validate a config and queue a new run, on `backend` (default: the queue's); returns the run
   * (status queued). A file or folder the config names that is missing or unreadable is refused
   * here, with one line, before any run folder is made.
   */
  enqueue(rawConfig: Record<string, unknown>, parent?: string, backend: BackendChoice = this.backendChoice): Run {
    const config = resolveConfig(rawConfig);
    for (const { field, value } of configPaths(jobKind(config.method).schema, config)) {
      const check = checkInputPath(value);
      if (!check.ok) fail('config', `config ${field}: ${check.error}`);
    }
    const run = this.project.createRun(config.method, config, {
      seed: config.seed,
      name: typeof config.name === 'string' ? config.name : undefined,
      tags: Array.isArray(config.tags) ? (config.tags as string[]) : [],
      parent,
    });
    this.schedule(run, false, 'fresh', backend);
    return run;
  }

  /**
   * Queue an interrupted, cancelled or failed run to continue from its latest checkpoint. A
   * parent (study, sweep) continues only its children that did not complete, through its
   * executor; it may also be resumed after completing with children missing.
   */
  resume(runId: string): Run {
    const run = this.project.run(runId);
    const status = run.status;
    const kind = jobKind(run.record.method);
    if (this.active?.run.id === run.id || this.pending.some((p) => p.run.id === run.id)) fail('state', `run ${run.id} is already ${status}`);
    if (status === 'running') fail('state', `run ${run.id} is running in process ${run.record.pid} on ${run.record.host ?? 'this machine'}`);
    if (status === 'queued' && run.record.slurm?.length)
      fail('state', `run ${run.id} is waiting for its Slurm jobs; cancel it first (normlab cancel ${run.id})`);
    const missing = (run.readSummary()?.missing_children as unknown[] | undefined)?.length ?? 0;
    if (status === 'completed' && missing === 0) fail('state', `run ${run.id} is completed; nothing to resume`);
    if (status === 'damaged') fail('state', `run ${run.id} is damaged; it cannot be resumed`);
    if (!kind.resumable && !kind.parent) fail('state', `${run.record.method} runs cannot be resumed; start a new run`);
    run.acquire(); // refused while another live process on this machine owns the run
    run.clearCancelRequest(); // a cancel asked for before is answered by this resume
    run.update({ status: 'queued', pid: process.pid, host: os.hostname(), error: null });
    this.schedule(run, kind.resumable || kind.parent === true, 'resume');
    return run;
  }

  /**
   * Queue an existing run folder to execute in this process (`normlab run-child`): fresh if it
   * never started, else from its latest checkpoint; a kind that cannot resume starts over, its
   * earlier metric lines set aside. Returns null if the run already completed.
   */
  runExisting(runId: string): Run | null {
    const run = this.project.run(runId);
    if (run.status === 'completed') return null;
    if (run.status === 'running') fail('state', `run ${run.id} is running in process ${run.record.pid} on ${run.record.host ?? 'this machine'}`);
    run.acquire(); // two run-child processes never train one child
    const resume = this.prepareRestart(run);
    run.update({ status: 'queued', pid: process.pid, host: os.hostname(), error: null });
    this.schedule(run, resume, 'resume');
    return run;
  }

  /** The Slurm collect job: finish a parent whose children ended (`normlab collect PARENT`). */
  collect(runId: string): Run | null {
    const run = this.project.run(runId);
    if (run.status === 'cancelled' || run.status === 'completed') return null;
    run.acquire();
    run.update({ status: 'queued', pid: process.pid, host: os.hostname(), error: null });
    this.schedule(run, false, 'collect');
    return run;
  }

  /**
   * Stop every queued and running run as interrupted (SIGTERM / SIGINT before a preemption or a
   * kill): a trainer saves a checkpoint at its next step boundary, then the run ends interrupted.
   */
  interruptAll(): void {
    for (const p of [this.active, ...this.pending]) p?.controller.abort(INTERRUPT);
  }

  /** Does an existing run continue from its checkpoint (true) or start over (false)? */
  private prepareRestart(run: Run): boolean {
    if (run.record.started === null) return false;
    if (jobKind(run.record.method).resumable || jobKind(run.record.method).parent) return true;
    run.setAsideMetrics();
    return false;
  }

  /** Is this run queued or running in this queue? */
  owns(runId: string): boolean {
    return this.active?.run.id === runId || this.pending.some((p) => p.run.id === runId);
  }

  /**
   * Cancel a queued or running run: a running trainer stops at its next step boundary with a
   * checkpoint (as on SIGTERM) and the run ends cancelled; `resume` continues from there.
   */
  cancel(runId: string): void {
    const p = this.active?.run.id === runId ? this.active : this.pending.find((x) => x.run.id === runId);
    if (!p) fail('state', `run ${runId} is not queued or running`);
    p.controller.abort(CANCEL);
  }

  /**
   * Answer `cancel.request` files (`normlab cancel` from another process): a request for a run
   * this queue executes, or for one of the children it runs inline, cancels the job it belongs to.
   */
  private answerCancelRequests(): void {
    for (const p of this.pending) if (p.run.cancelRequested()) p.controller.abort(CANCEL);
    if (this.active && [...this.executing.values()].some((r) => r.cancelRequested())) this.active.controller.abort(CANCEL);
  }

  /** Resolves when the given run has finished (completed, failed, cancelled). */
  wait(runId: string): Promise<void> {
    const p = this.active?.run.id === runId ? this.active : this.pending.find((x) => x.run.id === runId);
    return p ? p.done : Promise.resolve();
  }

  private schedule(run: Run, resume: boolean, mode: ChildMode, backend: BackendChoice = this.backendChoice): void {
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    this.pending.push({ run, resume, mode, backend, controller: new AbortController(), done, settle });
    this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'queued' });
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    if (this.active || this.pending.length === 0) return;
    this.active = this.pending.shift()!;
    const poll = setInterval(() => this.answerCancelRequests(), CANCEL_POLL_MS);
    poll.unref();
    try {
      const p = this.active;
      this.runBackend = p.backend;
      await this.execute(p.run, p.resume, p.mode, p.controller.signal);
    } finally {
      clearInterval(poll);
      this.active.settle();
      this.active = null;
      setImmediate(() => void this.pump());
    }
  }

  /** Run one run folder to its end state (completed, failed, cancelled, interrupted or handed to Slurm). */
  private async execute(run: Run, resume: boolean, mode: ChildMode, signal: AbortSignal): Promise<void> {
    this.executing.set(run.id, run);
    try {
      throwIfCancelled(signal);
      if (!run.held) run.acquire(); // a child run inline: the parent's process becomes its writer
      const backend = await initBackend(this.runBackend);
      run.markRunning(backend.name, backend.detail);
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'running' });
      const summary = await this.runJob(run, resume, mode, signal);
      run.writeSummary(summary);
      faultPoint('after-summary', run);
      run.markFinished('completed');
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'completed' });
    } catch (err) {
      if (err instanceof DeferredToScheduler) {
        // The children are Slurm's now; the collect job finishes this run.
        this.settle(run, () => run.update({ status: 'queued', pid: null, slurm: [...(run.record.slurm ?? []), err.submission] }));
        this.emit({ kind: 'event', event: 'log', runId: run.id, message: err.message });
        this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'queued' });
        return;
      }
      const e = asNormLabError(err);
      const status = signal.reason === INTERRUPT ? 'interrupted' : e.code === 'cancelled' ? 'cancelled' : 'failed';
      const error = status === 'failed' ? { code: e.code, message: e.message } : null;
      if (!this.settle(run, () => run.markFinished(status, error))) return;
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status, error: error ?? undefined });
    } finally {
      this.executing.delete(run.id);
      run.release();
    }
  }

  /**
   * Write a run's end state; when even that fails (a full disk) the run is left as its record
   * says (read as interrupted once its lock is released, resumable) and a one-line log says why,
   * so the queue and its server go on. Returns whether the end state was written.
   */
  private settle(run: Run, write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      const e = asNormLabError(err);
      const message = `could not record the end of run ${run.id}: ${e.message}; it reads as interrupted (normlab resume continues it)`;
      this.emit({ kind: 'event', event: 'log', runId: run.id, message });
      this.emit({ kind: 'event', event: 'run-state', runId: run.id, status: 'interrupted', error: { code: e.code, message } });
      return false;
    }
  }

  /** This parent's child run for each spec (by key), created queued where it does not exist yet. */
  private childRuns(parent: Run, specs: ChildSpec[]): { run: Run; created: boolean }[] {
    const existing = new Map(this.project.children(parent.id).map((r) => [r.record.child_key, r]));
    const keys = new Set<string>();
    return specs.map((spec, index) => {
      if (keys.has(spec.key)) fail('internal', `two children of ${parent.id} share the key "${spec.key}"`);
      keys.add(spec.key);
      const found = existing.get(spec.key);
      if (found) return { run: found, created: false };
      const resolved = resolveConfig({ ...spec.config, name: spec.name });
      const run = this.project.createRun(resolved.method, resolved, {
        seed: resolved.seed,
        name: spec.name,
        parent: parent.id,
        tags: resolved.tags as string[],
        child: { key: spec.key, index },
      });
      run.update({ pid: null });
      run.release(); // whoever executes it (this process, a run-child, a Slurm task) takes the lock
      return { run, created: true };
    });
  }

  /**
   * Wait until none of this parent's children runs in another live process (a resumed parent whose
   * earlier process was killed while its `run-child` processes went on): each then ended as it
   * ended, and is adopted (completed) or run again (interrupted, failed) like any other.
   */
  private async waitForLiveChildren(parent: Run, signal: AbortSignal): Promise<void> {
    const elsewhere = (r: Run) => (r.status === 'running' || r.status === 'queued') && r.record.pid !== null && r.record.pid !== process.pid;
    let said = false;
    for (;;) {
      const live = this.project.children(parent.id).filter(elsewhere);
      if (live.length === 0) return;
      if (!said) {
        this.emit({ kind: 'event', event: 'log', runId: parent.id, message: `waiting for ${live.length} child runs still running in other processes` });
        said = true;
      }
      await new Promise((r) => setTimeout(r, LIVE_CHILD_POLL_MS));
      throwIfCancelled(signal);
    }
  }

  /** JobContext.runChildren: the parent's children through its executor. */
  private async runChildren(parent: Run, specs: ChildSpec[], mode: ChildMode, signal: AbortSignal): Promise<ChildOutcome[]> {
    const executor = executorOf(parent.record.config);
    if (mode !== 'fresh') await this.waitForLiveChildren(parent, signal);
    const children = this.childRuns(parent, specs);
    const todo = children.filter((c) => (mode === 'collect' ? c.created : c.run.status !== 'completed')).map((c) => c.run);
    if (todo.length > 0) {
      const backend = this.runBackend;
      const engineCommand = executor.engine_command ?? defaultEngineCommand();
      if (this.dryRun) {
        this.dryRun({ executor, parent, children: todo, projectDir: this.project.dir, backend, engineCommand });
        throw new DeferredToScheduler(
          { array_job: 'dry-run', collect_job: 'dry-run', children: todo.map((c) => c.id), submitted: new Date().toISOString() },
          `dry run: ${todo.length} children not run`,
        );
      }
      if (executor.kind === 'slurm') {
        const jobs = submitToSlurm({
          cfg: executor,
          parent,
          children: todo,
          projectDir: this.project.dir,
          backend,
          engineCommand,
          logDir: path.join(parent.dir, 'slurm'),
        });
        throw new DeferredToScheduler(
          { ...jobs, children: todo.map((c) => c.id), submitted: new Date().toISOString() },
          `submitted ${todo.length} children to Slurm: array job ${jobs.array_job}, collect job ${jobs.collect_job}`,
        );
      }
      const inProcesses = (runs: Run[], parallel: number) => runInProcesses(runs, { parallel, engineCommand, projectDir: this.project.dir, backend, signal });
      if (executor.parallel > 1) {
        await inProcesses(todo, executor.parallel);
      } else {
        // A large child runs in its own process; after a child aborted the wasm module, so does every later one.
        const own = new Set(children.filter((_, i) => specs[i].ownProcess).map((c) => c.run.id));
        let wasmLost = false;
        for (const child of todo) {
          if (wasmLost || own.has(child.id)) await inProcesses([child], 1);
          else await this.execute(child, this.prepareRestart(child), 'resume', signal);
          wasmLost ||= this.project.run(child.id).record.error?.message === WASM_ABORT;
          throwIfCancelled(signal);
        }
      }
    }
    throwIfCancelled(signal);
    faultPoint('children-done', parent);
    return children.map(({ run }) => {
      const r = this.project.run(run.id);
      const completed = r.status === 'completed';
      return { key: r.record.child_key ?? r.id, runId: r.id, status: r.status, summary: completed ? r.readSummary() : null, error: r.record.error };
    });
  }

  /** Run a job kind in the given run folder, inline (used for top-level runs and study children). */
  private async runJob(run: Run, resume: boolean, mode: ChildMode, signal: AbortSignal): Promise<Record<string, unknown>> {
    const kind = jobKind(run.record.method);
    const config = kind.schema.parse(withoutPreset(run.record.config));
    const resumeFrom = resume ? run.latestCheckpoint() : null;
    if (resume) {
      if (!resumeFrom) {
        const kept = kind.parent ? ' (its completed child runs are kept)' : '';
        this.emit({ kind: 'event', event: 'log', runId: run.id, message: `run ${run.id} has no checkpoint yet: it starts again from step 0${kept}` });
        run.setAsideMetrics(); // the lines it logs again (a step-0 evaluation, a study's own lines) would be there twice
      }
      run.update({ resumes: [...run.record.resumes, resumeFrom?.step ?? 0] });
      run.appendMetric({
        event: 'resume',
        step: resumeFrom?.step ?? 0,
        ...(resumeFrom?.scope ? { scope: resumeFrom.scope } : {}),
        ...(resumeFrom?.metricBytes !== undefined ? { metric_bytes: resumeFrom.metricBytes } : {}),
      });
    }
    const backend = await initBackend(this.runBackend);
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
      runChildren: (specs) => this.runChildren(run, specs, mode, signal),
      runChild: async (childConfig, name) => {
        const [child] = await this.runChildren(run, [{ key: name, name, config: childConfig }], mode, signal);
        return { runId: child.runId, summary: completedSummary(child, name) };
      },
    };
    return kind.run(ctx, config);
  }
}

export { Project };
