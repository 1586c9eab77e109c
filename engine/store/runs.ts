/**
 * The run store (README "Runs on disk", a contract). A project is a folder; each run is a
 * folder in `runs/` with `run.json` (identity, resolved config, seed, backend, status, times,
 * versions), `metrics.jsonl` (append-only, one JSON object per line), `checkpoints/` (step-N
 * folders + `latest.json`), `artifacts/` (plots, tables) and `summary.json` (final results).
 *
 * Crash safety: JSON files are replaced atomically (temp, fsync, rename); metric lines are
 * appended whole with one write each; a checkpoint is written into a temp folder and renamed into
 * place before `latest.json` points at it. A run whose process died while it was `running` is
 * read as `interrupted` (its pid is gone) and can resume from its latest checkpoint.
 *
 * One writer per run: the process that executes a run holds its `run.lock` (created exclusively,
 * holding the owner's pid and process start time), so a second `normlab resume` or `run-child` is
 * refused while the owner lives; a lock whose process is gone (or whose pid now belongs to another
 * process) is stale and taken over, by one process at a time (`run.lock.takeover`, created
 * exclusively, guards the check and the replacement). The new owner removes the temp files a
 * killed writer left.
 *
 * A cancel from another process (`normlab cancel`) is a request, not a signal: `cancel.request` in
 * the run folder, which the owning process (a server, a CLI run, a `run-child`) polls and turns
 * into a cancel at the run's next step boundary, with a checkpoint.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { asNormLabError, fail } from '../core/errors.js';
import { readJsonSync, writeJsonAtomicSync } from '../io/atomic.js';
import { versions } from '../core/versions.js';
import { lockOwner, ownerAlive, pidAlive, releaseFileLock, takeFileLock } from './file-lock.js';
import type { RunRecord, RunStatus } from '../protocol/protocol.js';

export type { RunRecord, RunStatus };

/** Runs this process is executing now (their pid is ours but they are live, not stale), with their lock files. */
const liveHere = new Map<string, string>();

/** The suffix of a checkpoint folder while one of the same step replaces it (see `Run.saveCheckpoint`). */
const SUPERSEDED = '.superseded';

/** Temp files of interrupted atomic writes (`.name.PID.HEX.tmp`) and checkpoints (`.tmp-STEP-HEX`). */
const TEMP_FILE = /^\.(tmp-.+|.+\.\d+\.[0-9a-f]+\.tmp)$/;

export class Run {
  private metricsFd: number | null = null;
  /**
   * @param damage why run.json could not be read (the run is listed as `damaged` and never
   *   rewritten), or null for a readable run.
   */
  constructor(
    readonly dir: string,
    public record: RunRecord,
    readonly damage: string | null = null,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Is this process the run's writer now (it holds the lock and executes the run)? */
  get held(): boolean {
    return liveHere.has(this.id);
  }

  private get lockFile(): string {
    return path.join(this.dir, 'run.lock');
  }

  /** Status as a reader should see it: a running run whose process is gone is interrupted. */
  get status(): RunStatus {
    const r = this.record;
    if (this.damage !== null) return 'damaged';
    if (r.status !== 'running' && r.status !== 'queued') return r.status;
    if (r.pid === null) return r.status === 'queued' ? 'queued' : 'interrupted';
    if (r.host !== undefined && r.host !== os.hostname()) return r.status; // another machine's process: trust the record
    if (r.pid === process.pid) return liveHere.has(r.id) ? r.status : 'interrupted';
    const owner = lockOwner(this.lockFile);
    const alive = owner && owner.pid === r.pid ? ownerAlive(owner) : pidAlive(r.pid);
    return alive ? r.status : 'interrupted';
  }

  /**
   * Become the run's only writer: take `run.lock` (see engine/store/file-lock.ts), then remove the
   * temp files a killed writer left. Refused with one line while another live process holds the
   * lock, or while this process already executes the run.
   */
  acquire(): void {
    if (liveHere.has(this.id)) fail('state', `run ${this.id} is already ${this.record.status} here`);
    releaseFileLock(this.lockFile); // ours, left by an earlier attempt here (another process's is left alone)
    const attempt = takeFileLock(this.lockFile);
    if (!attempt.taken) {
      const holder = attempt.owner ? `in process ${attempt.owner.pid}` : 'by a process taking it over now';
      fail('state', `run ${this.id} is ${this.record.status} ${holder}; wait for it to finish or stop that process before resuming`);
    }
    liveHere.set(this.id, this.lockFile);
    this.removeTempFiles();
  }

  /** Give up this run's lock (if this process holds it) without changing its record. */
  release(): void {
    releaseLock(this.id, this.lockFile);
  }

  private get cancelFile(): string {
    return path.join(this.dir, 'cancel.request');
  }

  /** Ask the process that owns this run to cancel it at its next step boundary (see the header). */
  requestCancel(): void {
    writeJsonAtomicSync(this.cancelFile, { pid: process.pid, requested: new Date().toISOString() });
  }

  /** Has a cancel been requested for this run (and not yet answered)? */
  cancelRequested(): boolean {
    return fs.existsSync(this.cancelFile);
  }

  /** Forget a cancel request (the run ended, or a user resumes it). */
  clearCancelRequest(): void {
    fs.rmSync(this.cancelFile, { force: true });
  }

  /** Delete temp files of writes a killed process never finished (only the lock holder may). */
  private removeTempFiles(): void {
    for (const dir of [this.dir, this.checkpointsDir, path.join(this.dir, 'artifacts')]) {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) if (TEMP_FILE.test(name)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    }
  }

  /** Atomically update run.json (never for a damaged run: its file is kept as it is). */
  update(patch: Partial<RunRecord>): void {
    if (this.damage !== null) fail('io', `run ${this.id} is damaged (${this.damage}); it is left as it is`);
    this.record = { ...this.record, ...patch };
    writeJsonAtomicSync(path.join(this.dir, 'run.json'), this.record);
  }

  /** Mark the run as owned and executing by this process. */
  markRunning(backend: string, backendDetail: string | null = null): void {
    liveHere.set(this.id, this.lockFile);
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

  /** Mark the run finished with a final status (and error, if any); releases its lock. */
  markFinished(status: Exclude<RunStatus, 'running' | 'queued' | 'damaged'>, error: { code: string; message: string } | null = null): void {
    this.closeMetrics();
    const now = new Date();
    const since = this.record.runningSince ? Date.parse(this.record.runningSince) : NaN;
    const stretch = Number.isFinite(since) ? Math.max(0, (now.getTime() - since) / 1000) : 0;
    try {
      this.update({ status, error, finished: now.toISOString(), pid: null, runSeconds: (this.record.runSeconds ?? 0) + stretch, runningSince: null });
    } finally {
      // Even when run.json cannot be written (a full disk) the run is no longer ours: a reader sees it interrupted.
      this.clearCancelRequest();
      this.release();
    }
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
   * Metric lines in order. A `{"event":"resume","step":S,"metric_bytes":B}` line drops the
   * earlier lines written after the checkpoint the run resumed from (those starting at byte B or
   * later: steps past it, and evaluations after it that the resumed run logs again); the file keeps
   * them. A marker without `metric_bytes` (older engines) drops the lines of steps after S, or with
   * a `scope` (e.g. `{"arm":"ln_free"}`: a checkpoint of one phase of a run whose phases each count
   * steps from 1) only those with the scope's field values.
   */
  readMetrics(): Record<string, unknown>[] {
    const file = path.join(this.dir, 'metrics.jsonl');
    if (!fs.existsSync(file)) return [];
    const out: { obj: Record<string, unknown>; at: number }[] = [];
    const bytes = fs.readFileSync(file);
    for (let start = 0, end = 0; start < bytes.length; start = end + 1) {
      end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const line = bytes.toString('utf8', start, end);
      if (!line.trim()) continue;
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        continue; // a line a crash cut short
      }
      if (obj.event === 'resume' && typeof obj.step === 'number') {
        const s = obj.step;
        const kept = typeof obj.metric_bytes === 'number' ? obj.metric_bytes : null;
        const scope = typeof obj.scope === 'object' && obj.scope !== null ? Object.entries(obj.scope) : [];
        const superseded = (m: { obj: Record<string, unknown>; at: number }) =>
          kept !== null ? m.at >= kept : typeof m.obj.step === 'number' && m.obj.step > s && scope.every(([k, v]) => m.obj[k] === v);
        for (let i = out.length - 1; i >= 0; i--) if (superseded(out[i])) out.splice(i, 1);
        continue;
      }
      out.push({ obj, at: start });
    }
    return out.map((m) => m.obj);
  }

  /** Bytes of metrics.jsonl written so far (a checkpoint records them: the lines a resume from it keeps). */
  private metricBytes(): number {
    try {
      return fs.statSync(path.join(this.dir, 'metrics.jsonl')).size;
    } catch {
      return 0;
    }
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
   * `checkpoints/step-N` and recorded in `latest.json` (with the bytes of metrics.jsonl written by
   * then and `scope`, the metric fields a resume from it supersedes; see `readMetrics`). Keeps this
   * one and the `keep - 1` newest others.
   */
  async saveCheckpoint(step: number, write: (dir: string) => Promise<void>, keep = 2, scope?: Record<string, string>): Promise<string> {
    const root = this.checkpointsDir;
    fs.mkdirSync(root, { recursive: true });
    const tmp = path.join(root, `.tmp-${step}-${randomBytes(3).toString('hex')}`);
    fs.mkdirSync(tmp);
    await write(tmp);
    const final = path.join(root, `step-${String(step).padStart(7, '0')}`);
    // A checkpoint of this step written again (an LN-removal arm's LN-free model): the old one
    // steps aside, not away, until latest.json names the new one (latestCheckpoint reads it meanwhile).
    if (fs.existsSync(final)) {
      fs.rmSync(`${final}${SUPERSEDED}`, { recursive: true, force: true });
      fs.renameSync(final, `${final}${SUPERSEDED}`);
    }
    fs.renameSync(tmp, final);
    writeJsonAtomicSync(path.join(root, 'latest.json'), { step, dir: path.basename(final), metric_bytes: this.metricBytes(), ...(scope ? { scope } : {}) });
    // A run whose phases restart their step count can write a lower step after a higher one:
    // the one just written always stays.
    const names = fs.readdirSync(root);
    for (const old of names.filter((d) => d.endsWith(SUPERSEDED))) fs.rmSync(path.join(root, old), { recursive: true, force: true });
    const others = names.filter((d) => /^step-\d+$/.test(d) && d !== path.basename(final)).sort();
    for (const old of others.slice(0, Math.max(0, others.length - (keep - 1)))) fs.rmSync(path.join(root, old), { recursive: true, force: true });
    return final;
  }

  /** The latest complete checkpoint (with the bytes of metrics.jsonl written before it, where recorded), or null. */
  latestCheckpoint(): { step: number; dir: string; scope?: Record<string, string>; metricBytes?: number } | null {
    const file = path.join(this.checkpointsDir, 'latest.json');
    if (!fs.existsSync(file)) return null;
    const latest = readJsonSync(file, 'checkpoint index') as { step: number; dir: string; scope?: Record<string, string>; metric_bytes?: number };
    const dir = [latest.dir, `${latest.dir}${SUPERSEDED}`].map((d) => path.join(this.checkpointsDir, d)).find((d) => fs.existsSync(d));
    if (!dir) return null;
    return {
      step: latest.step,
      dir,
      ...(latest.scope ? { scope: latest.scope } : {}),
      ...(typeof latest.metric_bytes === 'number' ? { metricBytes: latest.metric_bytes } : {}),
    };
  }

  get artifactsDir(): string {
    const d = path.join(this.dir, 'artifacts');
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /**
   * The real path of artifact `name` when it is a file (or folder) inside artifacts/ after resolving
   * symlinks; a link that points out of the run is no artifact (`not-found`, as a missing one).
   */
  artifactPath(name: string, kind: 'file' | 'folder' = 'file'): string {
    const dir = path.join(this.dir, 'artifacts');
    try {
      const real = fs.realpathSync.native(path.join(dir, name));
      const rel = path.relative(fs.realpathSync.native(dir), real);
      const st = fs.statSync(real);
      if (rel && !rel.startsWith('..') && !path.isAbsolute(rel) && (kind === 'file' ? st.isFile() : st.isDirectory())) return real;
    } catch {
      /* missing: the same answer as outside */
    }
    return fail('not-found', `run ${this.id} has no artifact ${kind === 'file' ? '' : 'folder '}${name}`);
  }

  /** The bytes of artifact `name` (see artifactPath). */
  readArtifact(name: string): Buffer {
    return fs.readFileSync(this.artifactPath(name));
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

  /** Open a project folder: creating it if asked, else only reading (a missing one is `not-found`, nothing is made). */
  static open(dir: string, create = true): Project {
    const abs = path.resolve(dir);
    if (!fs.existsSync(abs)) {
      if (!create) fail('not-found', `project folder ${abs} does not exist (give one with --project DIR)`);
      fs.mkdirSync(abs, { recursive: true });
    } else if (!fs.statSync(abs).isDirectory()) fail('io', `project path ${abs} is not a folder`);
    if (create) fs.mkdirSync(path.join(abs, 'runs'), { recursive: true });
    return new Project(abs);
  }

  get runsDir(): string {
    return path.join(this.dir, 'runs');
  }

  /**
   * Make a run folder (queued, locked by this process). A child run gets its key and place among
   * its parent's children in its first run.json, so a parent killed any time after finds it by key.
   */
  createRun(
    method: string,
    config: Record<string, unknown>,
    opts: { seed: number; name?: string; tags?: string[]; parent?: string; child?: { key: string; index: number } },
  ): Run {
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
      ...(opts.child ? { child_key: opts.child.key, child_index: opts.child.index } : {}),
    };
    const run = new Run(dir, record);
    run.acquire();
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
    if (!fs.existsSync(this.runsDir)) return []; // a project opened for reading that has no run yet
    return fs
      .readdirSync(this.runsDir)
      .filter((d) => fs.existsSync(path.join(this.runsDir, d, 'run.json')))
      .sort();
  }

  private readRun(dir: string): Run {
    const record = readJsonSync(path.join(dir, 'run.json'), 'run record') as RunRecord;
    if (typeof record !== 'object' || record === null || Array.isArray(record) || typeof record.id !== 'string' || typeof record.method !== 'string')
      fail('io', `run record ${path.join(dir, 'run.json')} is not a run record (no id or method)`);
    return new Run(dir, { ...record, tags: Array.isArray(record.tags) ? record.tags : [], resumes: Array.isArray(record.resumes) ? record.resumes : [] });
  }

  /** The child runs of a parent run, oldest first. */
  /**
   * A parent's child runs in the order the parent made them (run ids only resolve seconds, so
   * children made within one second would otherwise sort by their random suffix).
   */
  children(parentId: string): Run[] {
    const position = (r: Run): number => r.record.child_index ?? Number.MAX_SAFE_INTEGER;
    return this.listRuns()
      .filter((r) => r.record.parent === parentId)
      .sort((a, b) => position(a) - position(b) || a.record.created.localeCompare(b.record.created));
  }

  /**
   * All runs, oldest first. Runs whose process died are persisted as interrupted; a run whose
   * run.json cannot be read is listed as `damaged` (with the reason as its error), not dropped.
   */
  listRuns(): Run[] {
    return this.runIds().map((id) => {
      const dir = path.join(this.runsDir, id);
      let run: Run;
      try {
        run = this.readRun(dir);
      } catch (err) {
        return damagedRun(dir, asNormLabError(err).message);
      }
      if (run.status === 'interrupted' && run.record.status !== 'interrupted') run.update({ status: 'interrupted', pid: null });
      return run;
    });
  }
}

/** A placeholder for a run whose run.json cannot be read: listed as damaged, never written. */
function damagedRun(dir: string, reason: string): Run {
  const id = path.basename(dir);
  const record: RunRecord = {
    id,
    method: 'unknown',
    name: id,
    tags: [],
    config: {},
    seed: 0,
    backend: null,
    status: 'failed',
    created: '',
    started: null,
    finished: null,
    pid: null,
    error: { code: 'io', message: reason },
    versions: {},
    resumes: [],
    parent: null,
  };
  return new Run(dir, record, reason);
}

/** Forget that this process runs `id` and give up its lock (after a crash of its job, tests). */
export function releaseLiveRun(id: string): void {
  const lockFile = liveHere.get(id);
  if (lockFile) releaseLock(id, lockFile);
  else liveHere.delete(id);
}

/** Drop `id` from this process's live runs and remove its lock file if this process holds it. */
function releaseLock(id: string, lockFile: string): void {
  liveHere.delete(id);
  releaseFileLock(lockFile);
}
