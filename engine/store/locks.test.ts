/**
 * Locks that hold: a stale `run.lock` is taken over by one process only, however many try at
 * once; `run-child` takes the lock (a child another live process holds is not trained twice); a
 * resumed parent waits for a child that still runs in another process and adopts its result; a
 * lock file of a shared cache is held by one live process at a time.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../core/app-paths.js';
import { raceForStaleLock } from '../testing/lock-race.js';
import '../jobs/all.js';
import { resolveConfig } from '../jobs/config.js';
import { JobQueue } from '../jobs/queue.js';
import { releaseFileLock, takeFileLock } from './file-lock.js';
import { Project } from './runs.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A pid no process has now (a process that already exited). */
const deadPid = () => spawnSync('true').pid!;

const lm = {
  method: 'lm-pretrain',
  model: { arch: 'llama', layers: 1, d_model: 16, heads: 2 },
  train: { steps: 6, batch: 2, seq: 16, warmup: 1, eval_every: 6, eval_windows: 1, checkpoint_every: 3, log_every: 1 },
  data: { val_fraction: 0.05 },
};

describe('run locks', () => {
  it('one stale lock, many processes taking it over at the same moment: exactly one owns the run', async () => {
    const dir = tempDir('normlab-takeover-');
    const project = Project.open(path.join(dir, 'project'));
    const outcomes = await raceForStaleLock(project, dir);
    expect(
      outcomes.filter((o) => o === 'won'),
      outcomes.join('\n'),
    ).toHaveLength(1);
    for (const o of outcomes.filter((x) => x !== 'won')) expect(o).toMatch(/^lost: run .* (in process \d+|being taken over|locked by another process)/);
  }, 60_000);

  it('run-child refuses a child whose lock another live process holds', () => {
    const project = Project.open(tempDir('normlab-run-child-lock-'));
    const config = resolveConfig(lm);
    const run = project.createRun('lm-pretrain', config, { seed: 0 }); // this test process holds its lock
    const r = spawnSync(process.execPath, [CLI_ENTRY, '--project', project.dir, '--backend', 'wasm', 'run-child', run.id], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^normlab: run \S+ is queued in process \d+/);
    expect(project.run(run.id).record.started).toBeNull(); // nobody trained it
    run.release();
  }, 60_000);

  it('a resumed sweep waits for a child still running in another process and adopts its result', async () => {
    const project = Project.open(tempDir('normlab-adopt-'));
    const q = new JobQueue(project, 'wasm');
    const sweep = q.enqueue({ method: 'sweep', base: lm, seeds: [0, 1] });
    let started = 0;
    const off = q.on((e) => {
      if (e.event === 'run-state' && e.status === 'running' && e.runId !== sweep.id && ++started === 2) q.cancel(sweep.id);
    });
    await q.wait(sweep.id);
    off();
    const [first, second] = project.children(sweep.id);
    expect([first.status, second.status]).toEqual(['completed', 'cancelled']);

    // The second child runs on in another process (its parent's process was killed).
    const other = spawn('sleep', ['60']);
    const child = project.run(second.id);
    child.update({ status: 'running', pid: other.pid!, finished: null });
    fs.writeFileSync(path.join(child.dir, 'run.lock'), JSON.stringify({ pid: other.pid, start: null }));
    const logs: string[] = [];
    q.on((e) => void (e.event === 'log' && logs.push(e.message)));
    q.resume(sweep.id);
    setTimeout(() => {
      child.writeSummary({ ...project.run(first.id).readSummary(), finished_elsewhere: true });
      child.update({ status: 'completed', pid: null, finished: new Date().toISOString() });
      fs.rmSync(path.join(child.dir, 'run.lock'));
      other.kill();
    }, 2500);
    await q.wait(sweep.id);
    const done = project.run(sweep.id);
    expect(done.status).toBe('completed');
    expect(done.readSummary()!.children_completed).toBe(2);
    expect(logs.join('\n')).toContain('waiting for 1 child runs still running in other processes');
    expect(project.run(second.id).readSummary()!.finished_elsewhere).toBe(true); // adopted, not trained again
    expect(project.run(second.id).record.resumes).toEqual([]);
  }, 120_000);
});

describe('shared cache locks', () => {
  it('one live holder at a time; a lock whose process is gone is taken', () => {
    const lock = path.join(tempDir('normlab-cache-lock-'), 'vit.lock');
    const other = spawn('sleep', ['30']);
    try {
      fs.writeFileSync(lock, JSON.stringify({ pid: other.pid, start: null }));
      expect(takeFileLock(lock)).toEqual({ taken: false, owner: { pid: other.pid, start: null } });
      fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), start: null }));
      expect(takeFileLock(lock)).toEqual({ taken: true });
      expect(JSON.parse(fs.readFileSync(lock, 'utf8')).pid).toBe(process.pid);
      releaseFileLock(lock);
      expect(fs.existsSync(lock)).toBe(false);
    } finally {
      other.kill();
    }
  });

  it('an unreadable lock is being written while young and stale once old (a writer killed mid-write)', () => {
    const lock = path.join(tempDir('normlab-cache-lock-'), 'vit.lock');
    fs.writeFileSync(lock, '');
    expect(takeFileLock(lock)).toEqual({ taken: false, owner: null });
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    expect(takeFileLock(lock)).toEqual({ taken: true });
    releaseFileLock(lock);
  });
});
