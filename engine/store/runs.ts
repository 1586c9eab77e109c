/**
 * The run store (DESIGN.md "Runs on disk", a contract). A project is a folder; each run is a
 * folder in `runs/` with `run.json` (identity, resolved config, seed, backend, status, times,
 * versions), `metrics.jsonl` (append-only, one JSON object per line), `checkpoints/` (step-N
 * folders + `latest.json`), `artifacts/` (plots, tables) and `summary.json` (final results).
 *
 * Crash safety: JSON files are replaced atomically (temp, fsync, rename); metric lines are
 * appended whole with one write each; a checkpoint is written into a temp folder and renamed into
 * place before `latest.json` points at it. A run whose process died while it was `running` is
 * read as `interrupted` (its pid is gone) and can resume from its latest checkpoint.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail } from '../core/errors.js';
import { readJsonSync, writeJsonAtomicSync } from '../io/atomic.js';
import { versions } from '../core/versions.js';
import type { RunRecord, RunStatus } from '../protocol/protocol.js';

export type { RunRecord, RunStatus };

/** Is a process with this pid alive (on this machine)? */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs this process is executing now (their pid is ours but they are live, not stale). */
const liveHere = new Set<string>();

export class Run {
  private metricsFd: number | null = null;
  constructor(
    readonly dir: string,
    public record: RunRecord,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Status as a reader should see it: a running run whose process is gone is interrupted. */
  get status(): RunStatus {
    const r = this.record;
    if (r.status !== 'running' && r.status !== 'queued') return r.status;
    if (r.pid === null) return r.status === 'queued' ? 'queued' : 'interrupted';
    if (r.host !== undefined && r.host !== os.hostname()) return r.status; // another machine's process: trust the record
    if (r.pid === process.pid) return liveHere.has(r.id) ? r.status : 'interrupted';
    return pidAlive(r.pid) ? r.status : 'interrupted';
  }

  /** Atomically update run.json. */
  update(patch: Partial<RunRecord>): void {
    this.record = { ...this.record, ...patch };
    writeJsonAtomicSync(path.join(this.dir, 'run.json'), this.record);
  }

  /** Mark the run as owned and executing by this process. */
  markRunning(backend: string, backendDetail: string | null = null): void {
    liveHere.add(this.id);
    const now = new Date().toISOString();
    this.update({
      status: 'running',
      pid: process.pid,
      host: os.hostname(),
      backend,
      backendDetail,
      started: this.record.started ?? now,
      runningSince: now,
      finished: null,
      error: null,
    });
  }

  /** Mark the run finished with a final status (and error, if any). */
  markFinished(status: Exclude<RunStatus, 'running' | 'queued'>, error: { code: string; message: string } | null = null): void {
    this.closeMetrics();
    const now = new Date();
    const since = this.record.runningSince ? Date.parse(this.record.runningSince) : NaN;
    const stretch = Number.isFinite(since) ? Math.max(0, (now.getTime() - since) / 1000) : 0;
    this.update({ status, error, finished: now.toISOString(), pid: null, runSeconds: (this.record.runSeconds ?? 0) + stretch, runningSince: null });
    liveHere.delete(this.id);
  }

  /** Append one metric object as one line of metrics.jsonl. */
  appendMetric(obj: Record<string, unknown>): void {
    if (this.metricsFd === null) {
      const file = path.join(this.dir, 'metrics.jsonl');
      this.metricsFd = fs.openSync(file, 'a+');
      // A line cut by a crash mid-write is terminated (kept on disk, skipped by readers).
      const size = fs.fstatSync(this.metricsFd).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        fs.readSync(this.metricsFd, last, 0, 1, size - 1);
        if (last[0] !== 0x0a) fs.writeSync(this.metricsFd, '\n');
      }
    }
    fs.writeSync(this.metricsFd, JSON.stringify({ ...obj, time: Date.now() }) + '\n');
  }

  private closeMetrics(): void {
    if (this.metricsFd !== null) {
      fs.fsyncSync(this.metricsFd);
      fs.closeSync(this.metricsFd);
      this.metricsFd = null;
    }
  }

  /**
   * Metric lines in order. A `{"event":"resume","step":S}` line drops the earlier lines of steps
   * after S (they were computed past the checkpoint the run resumed from); the file keeps them.
   */
  readMetrics(): Record<string, unknown>[] {
    const file = path.join(this.dir, 'metrics.jsonl');
    if (!fs.existsSync(file)) return [];
    const out: Record<string, unknown>[] = [];
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        continue; // a line a crash cut short
      }
      if (obj.event === 'resume' && typeof obj.step === 'number') {
        const s = obj.step;
        for (let i = out.length - 1; i >= 0; i--) if (typeof out[i].step === 'number' && (out[i].step as number) > s) out.splice(i, 1);
        continue;
      }
      out.push(obj);
    }
    return out;
  }

  /**
   * Before a run that cannot resume starts again from scratch: its metric lines move to
   * `metrics.attempt-N.jsonl` (kept, not read), so the new attempt's curves start clean.
   */
  setAsideMetrics(): void {
    this.closeMetrics();
    const file = path.join(this.dir, 'metrics.jsonl');
    if (!fs.existsSync(file)) return;
    let n = 1;
    while (fs.existsSync(path.join(this.dir, `metrics.attempt-${n}.jsonl`))) n++;
    fs.renameSync(file, path.join(this.dir, `metrics.attempt-${n}.jsonl`));
  }

  get checkpointsDir(): string {
    return path.join(this.dir, 'checkpoints');
  }

  /**
   * Write a checkpoint for `step`: `write(tmpDir)` fills a temp folder, which is then renamed to
   * `checkpoints/step-N` and recorded in `latest.json`. Keeps the newest `keep` checkpoints.
   */
  async saveCheckpoint(step: number, write: (dir: string) => Promise<void>, keep = 2): Promise<string> {
    const root = this.checkpointsDir;
    fs.mkdirSync(root, { recursive: true });
    const tmp = path.join(root, `.tmp-${step}-${randomBytes(3).toString('hex')}`);
    fs.mkdirSync(tmp);
    await write(tmp);
    const final = path.join(root, `step-${String(step).padStart(7, '0')}`);
    if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
    writeJsonAtomicSync(path.join(root, 'latest.json'), { step, dir: path.basename(final) });
    const all = fs
      .readdirSync(root)
      .filter((d) => /^step-\d+$/.test(d))
      .sort();
    for (const old of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(path.join(root, old), { recursive: true, force: true });
    return final;
  }

  /** The latest complete checkpoint, or null. */
  latestCheckpoint(): { step: number; dir: string } | null {
    const file = path.join(this.checkpointsDir, 'latest.json');
    if (!fs.existsSync(file)) return null;
    const latest = readJsonSync(file, 'checkpoint index') as { step: number; dir: string };
    const dir = path.join(this.checkpointsDir, latest.dir);
    return fs.existsSync(dir) ? { step: latest.step, dir } : null;
  }

  get artifactsDir(): string {
    const d = path.join(this.dir, 'artifacts');
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  artifacts(): string[] {
    const d = path.join(this.dir, 'artifacts');
    return fs.existsSync(d)
      ? fs
          .readdirSync(d)
          .filter((f) => !f.startsWith('.'))
          .sort()
      : [];
  }

  writeSummary(summary: Record<string, unknown>): void {
    writeJsonAtomicSync(path.join(this.dir, 'summary.json'), summary);
  }

  readSummary(): Record<string, unknown> | null {
    const file = path.join(this.dir, 'summary.json');
    return fs.existsSync(file) ? (readJsonSync(file, 'run summary') as Record<string, unknown>) : null;
  }
}

export class Project {
  private constructor(readonly dir: string) {}

  /** Open (creating if asked) a project folder. */
  static open(dir: string, create = true): Project {
    const abs = path.resolve(dir);
    if (!fs.existsSync(abs)) {
      if (!create) fail('not-found', `project folder ${abs} does not exist`);
      fs.mkdirSync(abs, { recursive: true });
    } else if (!fs.statSync(abs).isDirectory()) fail('io', `project path ${abs} is not a folder`);
    fs.mkdirSync(path.join(abs, 'runs'), { recursive: true });
    return new Project(abs);
  }

  get runsDir(): string {
    return path.join(this.dir, 'runs');
  }

  createRun(method: string, config: Record<string, unknown>, opts: { seed: number; name?: string; tags?: string[]; parent?: string }): Run {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${stamp}-${method}-${randomBytes(2).toString('hex')}`;
    const dir = path.join(this.runsDir, id);
    fs.mkdirSync(dir, { recursive: true });
    const record: RunRecord = {
      id,
      method,
      name: opts.name ?? method,
      tags: opts.tags ?? [],
      config,
      seed: opts.seed,
      backend: null,
      status: 'queued',
      created: new Date().toISOString(),
      started: null,
      finished: null,
      pid: process.pid,
      error: null,
      versions: versions(),
      resumes: [],
      parent: opts.parent ?? null,
    };
    liveHere.add(id);
    const run = new Run(dir, record);
    run.update({});
    return run;
  }

  /** A run by id (or unique id prefix). */
  run(idOrPrefix: string): Run {
    const direct = path.join(this.runsDir, idOrPrefix);
    if (/^[\w.-]+$/.test(idOrPrefix) && fs.existsSync(path.join(direct, 'run.json'))) return this.readRun(direct);
    const matches = this.runIds().filter((id) => id.startsWith(idOrPrefix) || id.endsWith(idOrPrefix));
    if (matches.length === 1) return this.readRun(path.join(this.runsDir, matches[0]));
    if (matches.length > 1) fail('not-found', `run "${idOrPrefix}" is ambiguous: ${matches.slice(0, 3).join(', ')}…`);
    return fail('not-found', `no run "${idOrPrefix}" in ${this.runsDir}`);
  }

  private runIds(): string[] {
    return fs
      .readdirSync(this.runsDir)
      .filter((d) => fs.existsSync(path.join(this.runsDir, d, 'run.json')))
      .sort();
  }

  private readRun(dir: string): Run {
    const record = readJsonSync(path.join(dir, 'run.json'), 'run record') as RunRecord;
    return new Run(dir, record);
  }

  /** The child runs of a parent run, oldest first. */
  children(parentId: string): Run[] {
    return this.listRuns().filter((r) => r.record.parent === parentId);
  }

  /** All runs, oldest first. Runs whose process died are persisted as interrupted. */
  listRuns(): Run[] {
    return this.runIds().map((id) => {
      const run = this.readRun(path.join(this.runsDir, id));
      if (run.status === 'interrupted' && run.record.status !== 'interrupted') run.update({ status: 'interrupted', pid: null });
      return run;
    });
  }
}

/** Forget that this process runs `id` (after a crash of its job, tests). */
export function releaseLiveRun(id: string): void {
  liveHere.delete(id);
}
