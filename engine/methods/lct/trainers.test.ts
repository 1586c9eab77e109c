import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import '../../jobs/all.js';
import type { JobQueue } from '../../jobs/queue.js';
import type { Run } from '../../store/runs.js';
import { interruptedAndResumed, maxRelDiff, metricSeries, runToEnd, straightAndResumed, tempQueue } from '../../train/resume-harness.js';

let q: JobQueue;
beforeAll(async () => {
  await initBackend('wasm');
  q = tempQueue('lct-trainers-');
});

const data = { source: 'mnist', count: 64, ref_count: 40 };
const autoencoder = (extra: Record<string, unknown>) => ({
  method: 'autoencoder-train',
  seed: 3,
  data,
  hidden: 16,
  latent_shape: [2, 2, 2],
  steps: 6,
  batch: 8,
  checkpoint_every: 2,
  ...extra,
});
const classifier = (extra: Record<string, unknown>) => ({
  method: 'image-classifier',
  seed: 3,
  data,
  hidden: [16, 8],
  steps: 6,
  batch: 8,
  checkpoint_every: 2,
  ...extra,
});
const weights = (run: { latestCheckpoint(): { dir: string } | null }) => path.join(run.latestCheckpoint()!.dir, 'model.safetensors');

/** Relative difference of two numbers. */
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

for (const [kind, make, lossKey] of [
  ['autoencoder-train', autoencoder, 'autoencoder_loss'],
  ['image-classifier', classifier, 'classifier_loss'],
] as const) {
  describe(kind, () => {
    it('batch 4 × grad_accum 2 gives the loss and weights of batch 8', async () => {
      const full = await runToEnd(q, make({}));
      const accum = await runToEnd(q, make({ batch: 4, grad_accum: 2 }));
      expect(rel(metricSeries(accum, lossKey)[0].value, metricSeries(full, lossKey)[0].value)).toBeLessThan(1e-5);
      expect(await maxRelDiff(weights(accum), weights(full))).toBeLessThan(1e-4);
    });

    it('the same config at seed 0 (the default) twice in one process gives the same losses and weights', async () => {
      const [a, b] = [await runToEnd(q, make({ seed: 0 })), await runToEnd(q, make({ seed: 0 }))];
      expect(metricSeries(b, lossKey)).toEqual(metricSeries(a, lossKey));
      expect(await maxRelDiff(weights(b), weights(a))).toBe(0);
    });

    it('a run killed at step 5 resumes from its step-4 checkpoint (told to stop: from step 5) to the uninterrupted result', async () => {
      const { straight, resumed } = await straightAndResumed(q, make({}), 5);
      expect(resumed.record.resumes).toEqual([4]);
      expect(metricSeries(resumed, lossKey)).toEqual(metricSeries(straight, lossKey));
      expect(await maxRelDiff(weights(resumed), weights(straight))).toBe(0);
      const stopped = await interruptedAndResumed(q, make({}), 5, undefined, 'interrupt');
      expect(stopped.record.resumes).toEqual([5]);
      expect(metricSeries(stopped, lossKey)).toEqual(metricSeries(straight, lossKey));
      expect(await maxRelDiff(weights(stopped), weights(straight))).toBe(0);
    });

    it('a run killed after its final checkpoint, before its summary, resumes from that checkpoint without training again', async () => {
      const run = await runToEnd(q, make({}));
      const summary = run.readSummary()!;
      const losses = metricSeries(run, lossKey);
      // What a process killed there leaves: a "running" record without a live process, no summary.
      run.update({ status: 'running', pid: null });
      fs.rmSync(path.join(run.dir, 'summary.json'));
      q.resume(run.id);
      await q.wait(run.id);
      const resumed = q.project.run(run.id);
      expect(resumed.status, resumed.record.error?.message).toBe('completed');
      expect(resumed.record.resumes).toEqual([6]);
      expect(metricSeries(resumed, lossKey)).toEqual(losses);
      expect(resumed.readSummary()).toEqual(summary);
    });
  });
}

describe('lct', () => {
  let dirs: { autoencoder: string; classifier: string };
  beforeAll(async () => {
    const ae = await runToEnd(q, autoencoder({}));
    const clf = await runToEnd(q, classifier({}));
    dirs = { autoencoder: ae.latestCheckpoint()!.dir, classifier: clf.latestCheckpoint()!.dir };
  });
  const lct = (train: Record<string, unknown>) => ({
    method: 'lct',
    seed: 5,
    ...dirs,
    network: { arch: 'mlp', width: 16, depth: 1, mlp_ratio: 2, freq_dim: 8 },
    train: { steps: 6, batch: 8, warmup: 1, s0: 2, s1: 8, log_every: 1, sample_every: 100, checkpoint_every: 2, ...train },
    eval: { samples: 16, quick_samples: 8, grid: 4 },
  });

  it('batch 4 × grad_accum 2 gives the losses, gradient norms and EMA weights of batch 8 (OT over the whole step)', async () => {
    const full = await runToEnd(q, lct({}));
    const accum = await runToEnd(q, lct({ batch: 4, grad_accum: 2 }));
    for (const key of ['loss', 'ct_loss', 'grad_norm']) {
      const [a, b] = [metricSeries(accum, key), metricSeries(full, key)];
      expect(a).toHaveLength(6);
      a.forEach((m, i) => expect(rel(m.value, b[i].value), `${key} step ${m.step}`).toBeLessThan(1e-4));
    }
    expect(await maxRelDiff(weights(accum), weights(full))).toBeLessThan(1e-4);
  });

  it('a run killed at step 5 resumes (weights, EMA, optimizer, RNG) to the uninterrupted FIDs and weights; told to stop, from step 5', async () => {
    const { straight, resumed } = await straightAndResumed(q, lct({}), 5, 'lct');
    expect(resumed.record.resumes).toEqual([4]);
    const stopped = await interruptedAndResumed(q, lct({}), 5, 'lct', 'interrupt');
    expect(stopped.record.resumes).toEqual([5]);
    for (const run of [resumed, stopped]) {
      expect(metricSeries(run, 'loss')).toEqual(metricSeries(straight, 'loss'));
      const [a, b] = [run.readSummary()!, straight.readSummary()!];
      expect(a.fid_1step).toBe(b.fid_1step);
      expect(a.fid_2step).toBe(b.fid_2step);
      expect(await maxRelDiff(weights(run), weights(straight))).toBe(0);
    }
  });

  it('a run stopped after its final checkpoint, before its summary, resumes there to the uninterrupted summary', async () => {
    const cfg = lct({ sample_every: 3 });
    const straight = await runToEnd(q, cfg);
    // SIGTERM / Ctrl-C during the last step: its checkpoint is written, then the run ends interrupted.
    const stopped = await interruptedAndResumed(q, cfg, 6, 'lct', 'interrupt');
    expect(stopped.record.resumes).toEqual([6]);
    // Everything but the training time (a timing: the whole run's, before and after the stop).
    const numbers = (run: Run) => {
      const { train_seconds: seconds, ...rest } = run.readSummary()!;
      expect(seconds).toBeGreaterThanOrEqual(0);
      return rest;
    };
    expect(numbers(stopped)).toEqual(numbers(straight));
    expect((numbers(stopped).quick_fid_1step as unknown[]).length).toBe(1);
    expect(metricSeries(stopped, 'fid_1step')).toEqual(metricSeries(straight, 'fid_1step'));
  });
});
