import { spawn } from 'node:child_process';
import nodeFs, * as fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Project } from './runs.js';

function tmpProject(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-store-'));
}

/** Start the busy writer, let it write for `ms`, SIGKILL it; returns the run id. */
async function killWriterAfter(dir: string, ms: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'testdata/busy-writer.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const id = await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d).trim())));
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return id;
}

describe('run store', () => {
  it('a writer killed with SIGKILL at any moment leaves a readable, interrupted, resumable run', async () => {
    for (const ms of [150, 400, 700]) {
      const dir = tmpProject();
      const id = await killWriterAfter(dir, ms);
      const run = Project.open(dir).run(id);
      expect(run.status).toBe('interrupted');
      const metrics = run.readMetrics();
      expect(metrics.length).toBeGreaterThan(10);
      // Every metric that was read is whole and in order: steps 1..n with no gap.
      metrics.forEach((m, i) => {
        expect(m.step).toBe(i + 1);
        expect((m.payload as string).length).toBe(2000);
      });
      const ckpt = run.latestCheckpoint();
      if (ckpt) {
        const state = JSON.parse(fs.readFileSync(path.join(ckpt.dir, 'state.json'), 'utf8'));
        expect(state.step).toBe(ckpt.step);
        expect(fs.statSync(path.join(ckpt.dir, 'model.bin')).size).toBe(200_000);
      }
      // Listing persists the interrupted status; reopening for append keeps every old line.
      expect(Project.open(dir).listRuns()[0].record.status).toBe('interrupted');
      const before = fs.readFileSync(path.join(run.dir, 'metrics.jsonl'), 'utf8');
      run.appendMetric({ step: 999 });
      const after = fs.readFileSync(path.join(run.dir, 'metrics.jsonl'), 'utf8');
      expect(after.startsWith(before)).toBe(true);
      expect(run.readMetrics().at(-1)?.step).toBe(999);
    }
  }, 30_000);

  it('a resume marker hides the lines past the checkpoint without deleting them', () => {
    const project = Project.open(tmpProject());
    const run = project.createRun('lm-pretrain', {}, { seed: 0 });
    for (let s = 1; s <= 5; s++) run.appendMetric({ step: s, loss: s });
    run.appendMetric({ event: 'resume', step: 3 });
    run.appendMetric({ step: 4, loss: 40 });
    expect(run.readMetrics().map((m) => m.loss)).toEqual([1, 2, 3, 40]);
    expect(fs.readFileSync(path.join(run.dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean)).toHaveLength(7);
  });

  it('keeps only the newest checkpoints and points latest.json at a complete one', async () => {
    const run = Project.open(tmpProject()).createRun('x', {}, { seed: 0 });
    for (const step of [10, 20, 30]) await run.saveCheckpoint(step, async (d) => fs.writeFileSync(path.join(d, 'f'), String(step)), 2);
    expect(fs.readdirSync(run.checkpointsDir).filter((d) => d.startsWith('step-'))).toEqual(['step-0000020', 'step-0000030']);
    expect(run.latestCheckpoint()?.step).toBe(30);
  });

  it('a scoped resume marker hides only the superseded lines of its phase', () => {
    const run = Project.open(tmpProject()).createRun('ln-removal', {}, { seed: 0 });
    for (let s = 1; s <= 4; s++) run.appendMetric({ step: s, a_loss: s, arm: 'a' });
    for (let s = 1; s <= 3; s++) run.appendMetric({ step: s, b_loss: s, arm: 'b' });
    run.appendMetric({ event: 'resume', step: 1, scope: { arm: 'b' } });
    run.appendMetric({ step: 2, b_loss: 20, arm: 'b' });
    expect(run.readMetrics().map((m) => m.a_loss ?? m.b_loss)).toEqual([1, 2, 3, 4, 1, 20]);
  });

  it('a phase that restarts its step count keeps the checkpoint it just wrote, and latest.json names its scope', async () => {
    const run = Project.open(tmpProject()).createRun('x', {}, { seed: 0 });
    const write = (step: number) => async (d: string) => fs.writeFileSync(path.join(d, 'f'), String(step));
    for (const step of [5, 10]) await run.saveCheckpoint(step, write(step), 2, { arm: 'a' });
    await run.saveCheckpoint(3, write(3), 2, { arm: 'b' });
    expect(fs.readdirSync(run.checkpointsDir).filter((d) => d.startsWith('step-'))).toEqual(['step-0000003', 'step-0000010']);
    expect(run.latestCheckpoint()).toEqual({ step: 3, dir: path.join(run.checkpointsDir, 'step-0000003'), scope: { arm: 'b' }, metricBytes: 0 });
  });

  it("a checkpoint written again at its step (an LN-removal arm's LN-free model) leaves a complete one there at every moment", async () => {
    const run = Project.open(tmpProject()).createRun('x', {}, { seed: 0 });
    const write = (text: string) => async (d: string) => fs.writeFileSync(path.join(d, 'f'), text);
    const content = () => fs.readFileSync(path.join(run.latestCheckpoint()!.dir, 'f'), 'utf8');
    await run.saveCheckpoint(8, write('trained'));
    // The process dies just before the new folder takes the step's name.
    const rename = nodeFs.renameSync;
    nodeFs.renameSync = (from, to) => {
      if (path.basename(String(from)).startsWith('.tmp-')) throw new Error('killed');
      rename(from, to);
    };
    syncBuiltinESMExports();
    try {
      await expect(run.saveCheckpoint(8, write('LN-free'))).rejects.toThrow('killed');
    } finally {
      nodeFs.renameSync = rename;
      syncBuiltinESMExports();
    }
    expect(run.latestCheckpoint()?.step).toBe(8);
    expect(content()).toBe('trained');
    await run.saveCheckpoint(8, write('LN-free'));
    expect(content()).toBe('LN-free');
    expect(fs.readdirSync(run.checkpointsDir).filter((d) => d.startsWith('step-'))).toEqual(['step-0000008']);
  });

  it('a resume from a checkpoint hides every line written after it, an evaluation at its own step included', async () => {
    const run = Project.open(tmpProject()).createRun('x', {}, { seed: 0 });
    for (let s = 1; s <= 3; s++) run.appendMetric({ step: s, loss: s });
    await run.saveCheckpoint(3, async (d) => fs.writeFileSync(path.join(d, 'f'), '3'));
    run.appendMetric({ step: 3, eval: 30 }); // the final evaluation, after the final checkpoint; then a kill
    const ckpt = run.latestCheckpoint()!;
    run.appendMetric({ event: 'resume', step: ckpt.step, metric_bytes: ckpt.metricBytes });
    run.appendMetric({ step: 3, eval: 30 }); // the resumed run evaluates again
    expect(run.readMetrics().map((m) => m.loss ?? m.eval)).toEqual([1, 2, 3, 30]);
  });

  it('finds runs by unique prefix and names a missing run in its error', () => {
    const project = Project.open(tmpProject());
    const run = project.createRun('lm-pretrain', {}, { seed: 0 });
    expect(project.run(run.id.slice(-4)).id).toBe(run.id);
    expect(() => project.run('nope')).toThrow(/no run "nope"/);
  });

  it('counts only running time: a cancelled stretch and the pause before a resume are not added', async () => {
    const run = Project.open(tmpProject()).createRun('lm-pretrain', { method: 'lm-pretrain' }, { seed: 0 });
    run.markRunning('cpu');
    await new Promise((r) => setTimeout(r, 120));
    run.markFinished('cancelled');
    const first = run.record.runSeconds!;
    expect(first).toBeGreaterThanOrEqual(0.1);
    expect(first).toBeLessThan(1);
    expect(run.record.runningSince).toBeNull();
    await new Promise((r) => setTimeout(r, 300)); // cancelled: not counted
    run.markRunning('cpu');
    expect(Date.parse(run.record.runningSince!)).toBeGreaterThan(Date.parse(run.record.started!) + 300);
    await new Promise((r) => setTimeout(r, 120));
    run.markFinished('completed');
    expect(run.record.runSeconds!).toBeGreaterThanOrEqual(first + 0.1);
    expect(run.record.runSeconds!).toBeLessThan(first + 0.3);
  });
});

describe('one writer per run', () => {
  /** Start a process that owns run `id` until killed. */
  async function holdInAnotherProcess(dir: string, id: string) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'testdata/hold-run.ts'), dir, id], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    return child;
  }

  it('refuses to resume a run another live process owns, and takes it over once that process is killed', async () => {
    const dir = tmpProject();
    const project = Project.open(dir);
    const run = project.createRun('lm-pretrain', {}, { seed: 0 });
    run.markFinished('interrupted');
    const child = await holdInAnotherProcess(dir, run.id);
    try {
      const again = Project.open(dir).run(run.id);
      expect(again.status).toBe('running');
      expect(() => again.acquire()).toThrow(new RegExp(`run ${run.id} is running in process ${child.pid}; wait for it to finish`));
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    // The lock the killed process left is stale: it no longer blocks.
    const after = Project.open(dir).run(run.id);
    expect(after.status).toBe('interrupted');
    expect(() => after.acquire()).not.toThrow();
    after.markFinished('interrupted');
    expect(fs.existsSync(path.join(after.dir, 'run.lock'))).toBe(false);
  }, 30_000);

  it('a lock whose pid now belongs to another process (pid reuse) is stale', () => {
    const project = Project.open(tmpProject());
    const run = project.createRun('lm-pretrain', {}, { seed: 0 });
    run.markFinished('interrupted');
    // pid 1 is alive, but it did not write this lock: its start time differs.
    fs.writeFileSync(path.join(run.dir, 'run.lock'), JSON.stringify({ pid: 1, start: '1' }));
    run.update({ status: 'running', pid: 1 });
    const reread = project.run(run.id);
    if (fs.existsSync('/proc/1/stat')) {
      expect(reread.status).toBe('interrupted');
      expect(() => reread.acquire()).not.toThrow();
    }
  });

  it('removes the temp files of a killed writer when a run is taken over', async () => {
    const dir = tmpProject();
    const id = await killWriterAfter(dir, 400);
    const run = Project.open(dir).run(id);
    fs.mkdirSync(path.join(run.checkpointsDir, '.tmp-5-abcdef'), { recursive: true });
    fs.writeFileSync(path.join(run.dir, '.run.json.999.0badf00d.tmp'), '{');
    fs.mkdirSync(path.join(run.dir, 'artifacts'), { recursive: true });
    fs.writeFileSync(path.join(run.dir, 'artifacts', '.plot.png.12.ab12.tmp'), 'x');
    fs.writeFileSync(path.join(run.dir, 'artifacts', 'keep.png'), 'x');
    run.acquire();
    const leftovers = [run.dir, run.checkpointsDir, path.join(run.dir, 'artifacts')].flatMap((d) => fs.readdirSync(d).filter((f) => f.includes('tmp')));
    expect(leftovers).toEqual([]);
    expect(fs.existsSync(path.join(run.dir, 'artifacts', 'keep.png'))).toBe(true);
    expect(run.readMetrics().length).toBeGreaterThan(10);
  }, 30_000);
});

describe('a damaged run.json', () => {
  it('lists the other runs and shows that one as damaged, quoting none of the file', () => {
    const project = Project.open(tmpProject());
    const good = project.createRun('lm-pretrain', {}, { seed: 0 });
    good.markFinished('completed');
    const bad = project.createRun('lm-pretrain', {}, { seed: 1 });
    bad.markFinished('completed');
    fs.writeFileSync(path.join(bad.dir, 'run.json'), 'secret-bytes {');
    const folder = project.createRun('lm-pretrain', {}, { seed: 2 });
    fs.rmSync(path.join(folder.dir, 'run.json'));
    fs.mkdirSync(path.join(folder.dir, 'run.json')); // unreadable: a folder where the file should be
    const runs = Project.open(project.dir).listRuns();
    expect(runs.map((r) => [r.id, r.status])).toEqual(
      [
        [good.id, 'completed'],
        [bad.id, 'damaged'],
        [folder.id, 'damaged'],
      ].sort((a, b) => a[0].localeCompare(b[0])),
    );
    const damaged = runs.find((r) => r.id === bad.id)!;
    expect(damaged.record.error?.message).toMatch(/run record .*run\.json is not valid JSON/);
    expect(damaged.record.error?.message).not.toContain('secret');
    // Nothing rewrites it.
    expect(() => damaged.update({ tags: ['x'] })).toThrow(/damaged/);
    expect(fs.readFileSync(path.join(bad.dir, 'run.json'), 'utf8')).toBe('secret-bytes {');
  });
});
