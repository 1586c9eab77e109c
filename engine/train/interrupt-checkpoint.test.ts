/**
 * SIGTERM (a preemption, a Slurm time limit, scancel) reaching a real `normlab run-child`
 * process mid-training: the trainer saves a checkpoint at the step it reached, the run ends
 * interrupted, and resuming it ends on exactly the weights of an uninterrupted run.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../jobs/config.js';
import { defaultEngineCommand, runChildCommand } from '../jobs/executor.js';
import '../jobs/all.js';
import { JobQueue } from '../jobs/queue.js';
import { Project, releaseLiveRun } from '../store/runs.js';
import { maxRelDiff, runToEnd, tempQueue } from './resume-harness.js';

/** 300 steps of a tiny LLaMA, a periodic checkpoint every 50, every step's loss logged. */
const config = {
  method: 'lm-pretrain',
  seed: 3,
  model: { arch: 'llama', layers: 2, d_model: 32, heads: 2 },
  train: { steps: 300, batch: 4, seq: 32, warmup: 2, lr: 3e-3, eval_every: 1000, eval_windows: 2, checkpoint_every: 50, log_every: 1 },
};

const lastLoggedStep = (run: { readMetrics(): Record<string, unknown>[] }) =>
  Math.max(0, ...run.readMetrics().flatMap((m) => (typeof m.loss === 'number' ? [m.step as number] : [])));

describe('a SIGTERM mid-training', () => {
  it('saves a checkpoint at the last completed step (not the last periodic one), and the resumed run ends bit-identical', async () => {
    const straight = await runToEnd(tempQueue('sigterm-straight-'), config);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sigterm-'));
    const project = Project.open(dir);
    const resolved = resolveConfig(config);
    const run = project.createRun(resolved.method, resolved, { seed: resolved.seed });
    run.update({ pid: null });
    releaseLiveRun(run.id);
    const proc = spawn('/bin/sh', ['-c', `exec ${runChildCommand(defaultEngineCommand(), dir, 'wasm', run.id)}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    // Past the step-50 checkpoint and well before the end.
    for (let i = 0; lastLoggedStep(project.run(run.id)) < 60; i++) {
      if (i > 1200 || proc.exitCode !== null) throw new Error(`the child did not reach step 60: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGTERM');
    expect(await exited, stderr).not.toBe(0); // ended interrupted, not completed
    const stopped = project.run(run.id);
    expect(stopped.status).toBe('interrupted');
    const reached = lastLoggedStep(stopped);
    // Step 60 itself when the signal lands between its metric line and its step boundary.
    expect(reached).toBeGreaterThanOrEqual(60);
    expect(reached).toBeLessThan(300);
    expect(stopped.latestCheckpoint()!.step).toBe(reached);

    const q = new JobQueue(project, 'wasm');
    q.resume(run.id);
    await q.wait(run.id);
    const resumed = project.run(run.id);
    expect(resumed.status).toBe('completed');
    expect(resumed.record.resumes).toEqual([reached]);
    const weights = (r: typeof resumed) => path.join(r.latestCheckpoint()!.dir, 'model.safetensors');
    expect(await maxRelDiff(weights(resumed), weights(straight))).toBe(0);
    expect(resumed.readSummary()!.final_val_loss).toBe(straight.readSummary()!.final_val_loss);
  }, 120_000);
});
