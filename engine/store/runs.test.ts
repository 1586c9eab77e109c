import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
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
