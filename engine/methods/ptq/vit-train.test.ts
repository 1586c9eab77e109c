import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import '../../jobs/all.js';
import type { Run } from '../../store/runs.js';
import { interruptedAndResumed, maxRelDiff, metricSeries, runToEnd, straightAndResumed, tempQueue } from '../../train/resume-harness.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** 20 MNIST digits, 8 per step (the last step of an epoch 4), a one-block ViT. */
const config = (train: Record<string, unknown>) => ({
  method: 'vit-train',
  seed: 2,
  model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2, mlp_ratio: 2 },
  data: { source: 'mnist', train_count: 20, eval_count: 20 },
  train: { epochs: 3, warmup: 1, lr: 3e-3, log_every: 1, eval_every: 1, ...train },
});
const weights = (run: { dir: string }) => path.join(run.dir, 'artifacts', 'model', 'model.safetensors');

describe('vit-train', () => {
  it('batch 4 × grad_accum 2 and batch 2 × grad_accum 4 give the losses and weights of batch 8', async () => {
    const q = tempQueue('vit-accum-');
    const runs = [
      await runToEnd(q, config({ batch: 8 })),
      await runToEnd(q, config({ batch: 4, grad_accum: 2 })),
      await runToEnd(q, config({ batch: 2, grad_accum: 4 })),
    ];
    // Losses, and gradient norms before clipping (AdamW alone would hide a wrongly scaled gradient).
    const losses = runs.map((r) => metricSeries(r, 'loss').map((m) => m.value));
    const norms = runs.map((r) => metricSeries(r, 'grad_norm').map((m) => m.value));
    expect(losses[0]).toHaveLength(9); // 3 steps per epoch (8 + 8 + 4 images)
    for (const l of losses.slice(1)) l.forEach((v, i) => expect(Math.abs(v - losses[0][i]) / losses[0][i], `step ${i + 1}`).toBeLessThan(1e-5));
    for (const n of norms.slice(1)) n.forEach((v, i) => expect(Math.abs(v - norms[0][i]) / norms[0][i], `step ${i + 1}`).toBeLessThan(1e-4));
    // 1e-3: the attention key bias has a zero gradient in exact arithmetic (softmax ignores a
    // constant per query), so AdamW's m/√v turns its float noise into full-size steps; every other
    // tensor agrees to ~2e-7.
    for (const r of runs.slice(1)) expect(await maxRelDiff(weights(r), weights(runs[0]))).toBeLessThan(1e-3);
  });

  it('a run killed mid-epoch resumes from the last epoch checkpoint to the uninterrupted result', async () => {
    const q = tempQueue('vit-resume-');
    const { straight, resumed } = await straightAndResumed(q, config({ batch: 4, grad_accum: 2 }), 7); // checkpoint at step 6
    expect(resumed.record.resumes).toEqual([6]);
    expect(metricSeries(resumed, 'loss').map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(metricSeries(resumed, 'loss')).toEqual(metricSeries(straight, 'loss'));
    expect(resumed.readSummary()!.top1).toBe(straight.readSummary()!.top1);
    expect(await maxRelDiff(weights(resumed), weights(straight))).toBe(0);
  });

  it('a run told to stop (SIGTERM) mid-epoch checkpoints the step it reached and resumes from there to the uninterrupted result', async () => {
    const q = tempQueue('vit-interrupt-');
    const straight = await runToEnd(q, config({ batch: 8 }));
    const run = q.enqueue(config({ batch: 8 }));
    const off = q.on((e) => {
      if (e.event === 'progress' && e.runId === run.id && e.step === 5) q.interruptAll(); // step 2 of epoch 2
    });
    await q.wait(run.id);
    off();
    expect(q.project.run(run.id).status).toBe('interrupted');
    expect(q.project.run(run.id).latestCheckpoint()!.step).toBe(5);
    q.resume(run.id);
    await q.wait(run.id);
    const resumed = q.project.run(run.id);
    expect(resumed.record.resumes).toEqual([5]);
    expect(metricSeries(resumed, 'loss')).toEqual(metricSeries(straight, 'loss'));
    expect(resumed.readSummary()!.top1).toBe(straight.readSummary()!.top1);
    expect(await maxRelDiff(weights(resumed), weights(straight))).toBe(0);
  });

  it('a run stopped at its last step or after its final checkpoint, before its summary, resumes there to the uninterrupted summary', async () => {
    const q = tempQueue('vit-final-');
    const cfg = config({ batch: 8 }); // 3 steps per epoch, 9 in all
    const straight = await runToEnd(q, cfg);
    // Everything but the wall time and the run's own model folder.
    const numbers = (run: Run) => {
      const { seconds: _s, model_dir: dir, ...rest } = run.readSummary()!;
      expect(dir).toBe(path.join(run.dir, 'artifacts', 'model'));
      return rest;
    };
    // SIGTERM during the last step (before the last epoch's evaluation): it checkpoints that step.
    const stopped = await interruptedAndResumed(q, cfg, 9, undefined, 'interrupt');
    expect(stopped.record.resumes).toEqual([9]);
    // Killed after the last epoch's checkpoint, before the summary: a "running" record without a live process.
    const killed = await runToEnd(q, cfg);
    killed.update({ status: 'running', pid: null });
    fs.rmSync(path.join(killed.dir, 'summary.json'));
    q.resume(killed.id);
    await q.wait(killed.id);
    const resumed = q.project.run(killed.id);
    expect(resumed.status, resumed.record.error?.message).toBe('completed');
    for (const run of [stopped, resumed]) {
      expect(numbers(run)).toEqual(numbers(straight));
      expect(metricSeries(run, 'val_top1')).toEqual(metricSeries(straight, 'val_top1'));
      expect(await maxRelDiff(weights(run), weights(straight))).toBe(0);
    }
  });
});
