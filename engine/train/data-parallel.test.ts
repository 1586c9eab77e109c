import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import '../jobs/all.js';
import { JobQueue } from '../jobs/queue.js';
import { GPT2, GPT2_DEFAULTS } from '../models/gpt2.js';
import { AdamW } from '../nn/optim.js';
import { Project } from '../store/runs.js';
import { nativeThreads, setNativeKernels } from '../backend/native.js';
import { availableCores, DataParallelPool, killOneWorkerForTest, liveDataParallelWorkers, resolveWorkers, shardRows } from './data-parallel.js';
import { lmTrainStep, readStep, type LMBatch } from './lm-step.js';

beforeAll(async () => {
  await initBackend('wasm');
});

afterEach(() => {
  expect(liveDataParallelWorkers()).toBe(0);
});

const cfg = { ...GPT2_DEFAULTS, vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 2, tie_word_embeddings: false };

function batch(step: number, rows: number, seq: number): LMBatch {
  const x = new Int32Array(rows * seq);
  const y = new Int32Array(rows * seq);
  for (let i = 0; i < x.length; i++) {
    x[i] = (i * 7 + step * 13 + ((i * i) % 11)) % 64;
    y[i] = (x[i] * 5 + 3) % 64;
  }
  return { x, y, batch: rows, seq };
}

function relErr(a: Float32Array | number[], b: Float32Array | number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function newQueue(): JobQueue {
  return new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'dp-'))), 'wasm');
}

const tinyRun = (steps: number, workers: number, checkpointEvery = 100) => ({
  method: 'lm-pretrain',
  seed: 3,
  model: { arch: 'gpt2', layers: 2, d_model: 32, heads: 2 },
  train: { steps, batch: 4, seq: 16, warmup: 1, lr: 3e-3, eval_every: 100, eval_windows: 2, checkpoint_every: checkpointEvery, log_every: 1, workers },
});

describe('data-parallel LM training', () => {
  it('shards rows as evenly as possible and picks replicas only where they can pay', () => {
    expect(shardRows(16, 2)).toEqual([8, 8]);
    expect(shardRows(5, 2)).toEqual([3, 2]);
    expect(shardRows(7, 3)).toEqual([3, 2, 2]);
    expect(resolveWorkers(1, 'wasm', 16, 128, 1e6, 200)).toBe(1);
    expect(resolveWorkers(3, 'wasm', 2, 128, 1e6, 200)).toBe(2);
    expect(resolveWorkers(0, 'tensorflow', 16, 128, 1e6, 200)).toBe(1); // native backends use every core already
    expect(resolveWorkers(0, 'wasm', 16, 16, 1e4, 200)).toBe(1); // a toy step: per-op overhead would dominate
    expect(resolveWorkers(0, 'wasm', 16, 128, 1e6, 2)).toBe(1); // too short a run to pay for starting a worker
    expect(resolveWorkers(0, 'cpu', 16, 128, 1e6, 200)).toBe(Math.min(2, availableCores()));
    // On the wasm kernels alone a large step takes a replica per core; the multi-threaded native
    // kernels use the cores themselves.
    setNativeKernels(false);
    try {
      expect(resolveWorkers(0, 'wasm', 16, 128, 1e6, 200)).toBe(Math.min(2, availableCores()));
    } finally {
      setNativeKernels(true);
    }
    if (nativeThreads() > 1) expect(resolveWorkers(0, 'wasm', 16, 128, 1e6, 200)).toBe(1);
  });

  it('a workers count above the batch is a one-line config error before the run starts', () => {
    const q = newQueue();
    expect(() => q.enqueue({ ...tinyRun(4, 5) })).toThrow(/train\.workers: workers must not exceed batch/);
    expect(q.project.listRuns()).toHaveLength(0);
  });

  it('2 replicas give the same losses, gradient norms and parameters as one process (uneven shards, clipping on)', async () => {
    const a = new GPT2(cfg, 5);
    const b = new GPT2(cfg, 5);
    const optA = new AdamW(a.params, { weightDecay: 0.1, beta2: 0.95 });
    const optB = new AdamW(b.params, { weightDecay: 0.1, beta2: 0.95 });
    const pool = await DataParallelPool.start(b, 2, 'wasm');
    try {
      let before = -1;
      for (let s = 0; s < 4; s++) {
        const bt = batch(s, 5, 16); // 5 rows: shards of 3 and 2, weighted 3/5 and 2/5
        const opts = { clip: 0.5, layerGradNorms: true };
        const ra = await readStep(lmTrainStep(a, optA, bt, 2e-3, opts));
        const rb = await readStep(await pool.step(optB, bt, 2e-3, opts));
        expect(Math.abs(rb.loss - ra.loss) / ra.loss).toBeLessThan(1e-5);
        expect(Math.abs(rb.gradNorm - ra.gradNorm) / ra.gradNorm).toBeLessThan(1e-4);
        expect(ra.gradNorm).toBeGreaterThan(0.5); // clipping is exercised
        expect(relErr(rb.layerGradNorms!, ra.layerGradNorms!)).toBeLessThan(1e-4);
        if (s === 1) before = tf.memory().numTensors;
      }
      expect(tf.memory().numTensors).toBe(before); // the step leaks no tensors (steps 2 and 3 ran since)
      for (const [name, va] of a.params.vars) {
        const e = relErr(va.dataSync() as Float32Array, b.params.get(name).dataSync() as Float32Array);
        expect(e, name).toBeLessThan(1e-4);
      }
    } finally {
      await pool.close();
      optA.dispose();
      optB.dispose();
      a.dispose();
      b.dispose();
    }
  });

  it('with gradient accumulation each replica accumulates its shard of every micro-batch: 2 replicas × 2 micro-batches equal one unaccumulated step', async () => {
    const a = new GPT2(cfg, 6);
    const b = new GPT2(cfg, 6);
    const optA = new AdamW(a.params, { beta2: 0.95 });
    const optB = new AdamW(b.params, { beta2: 0.95 });
    const pool = await DataParallelPool.start(b, 2, 'wasm');
    try {
      for (let s = 0; s < 2; s++) {
        const bt = batch(s, 10, 16); // 2 micro-batches of 5 rows, each sharded 3 + 2
        const ra = await readStep(lmTrainStep(a, optA, bt, 2e-3, { clip: 0.5 }));
        const rb = await readStep(await pool.step(optB, bt, 2e-3, { clip: 0.5, microBatches: 2 }));
        expect(Math.abs(rb.loss - ra.loss) / ra.loss).toBeLessThan(1e-5);
        expect(Math.abs(rb.gradNorm - ra.gradNorm) / ra.gradNorm).toBeLessThan(1e-4);
      }
      // AdamW divides by sqrt(v): entries with tiny gradients amplify float32 summation-order noise
      // (measured 1.0e-4 on this machine's OpenBLAS, on the code before and after accumulation).
      for (const [name, va] of a.params.vars)
        expect(relErr((await va.data()) as Float32Array, (await b.params.get(name).data()) as Float32Array), name).toBeLessThan(3e-4);
    } finally {
      await pool.close();
      optA.dispose();
      optB.dispose();
      a.dispose();
      b.dispose();
    }
  });

  it('a worker that throws or dies fails the step with one line, and close() leaves no thread', async () => {
    const m = new GPT2(cfg, 1);
    const opt = new AdamW(m.params);
    try {
      for (const how of ['crash', 'kill'] as const) {
        const pool = await DataParallelPool.start(m, 2, 'wasm');
        if (how === 'crash') pool.crashWorker(1);
        else await pool.killWorker(1);
        const err = await pool.step(opt, batch(0, 4, 16), 1e-3).then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err?.message).toMatch(how === 'crash' ? /^data-parallel worker 1 crashed: crash requested/ : /^data-parallel worker 1 exited unexpectedly/);
        expect(err?.message).not.toContain('\n');
        await pool.close();
      }
    } finally {
      opt.dispose();
      m.dispose();
    }
  });

  it('a worker that stops answering fails the step with one line after the timeout, and is stopped', async () => {
    const m = new GPT2(cfg, 1);
    const opt = new AdamW(m.params);
    const pool = await DataParallelPool.start(m, 2, 'wasm', { minTimeoutMs: 1500 });
    try {
      await pool.step(opt, batch(0, 4, 16), 1e-3); // answered in time
      pool.hangWorker(1);
      const t0 = performance.now();
      const err = await pool.step(opt, batch(1, 4, 16), 1e-3).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe('data-parallel worker 1 did not answer within 2 s and was stopped');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
      await expect(pool.step(opt, batch(2, 4, 16), 1e-3)).rejects.toThrow(/did not answer/); // the pool stays failed
    } finally {
      await pool.close();
      opt.dispose();
      m.dispose();
    }
    expect(liveDataParallelWorkers()).toBe(0);
  });

  it('lm-pretrain with workers 2 trains like workers 1; a killed worker fails the run with one line; cancel stops every worker; resume continues exactly', async () => {
    const q = newQueue();
    const one = q.enqueue(tinyRun(4, 1));
    const two = q.enqueue(tinyRun(4, 2));
    await q.wait(one.id);
    await q.wait(two.id);
    const losses = (id: string) =>
      q.project
        .run(id)
        .readMetrics()
        .filter((r) => typeof r.loss === 'number')
        .map((r) => r.loss as number);
    expect(q.project.run(two.id).status).toBe('completed');
    expect(q.project.run(two.id).readSummary()!.data_parallel_replicas).toBe(2);
    const l1 = losses(one.id);
    expect(l1).toHaveLength(4);
    expect(relErr(losses(two.id), l1)).toBeLessThan(1e-4);
    expect(q.project.run(two.id).readSummary()!.final_val_loss as number).toBeCloseTo(q.project.run(one.id).readSummary()!.final_val_loss as number, 4);

    const killed = q.enqueue(tinyRun(50, 2));
    const off1 = q.on((e) => {
      if (e.event === 'progress' && e.runId === killed.id && e.step === 2) void killOneWorkerForTest();
    });
    await q.wait(killed.id);
    off1();
    const k = q.project.run(killed.id);
    expect(k.status).toBe('failed');
    expect(k.record.error?.message).toMatch(/data-parallel worker 1 exited unexpectedly/);
    expect(k.record.error?.message).not.toContain('\n');
    expect(liveDataParallelWorkers()).toBe(0);

    const straight = q.enqueue(tinyRun(8, 2, 4));
    await q.wait(straight.id);
    const cancelled = q.enqueue(tinyRun(8, 2, 4));
    let workersWhileRunning = -1;
    const off2 = q.on((e) => {
      if (e.event === 'progress' && e.runId === cancelled.id && e.step === 6) {
        workersWhileRunning = liveDataParallelWorkers();
        q.cancel(cancelled.id);
      }
    });
    await q.wait(cancelled.id);
    off2();
    expect(workersWhileRunning).toBe(1);
    expect(q.project.run(cancelled.id).status).toBe('cancelled');
    expect(liveDataParallelWorkers()).toBe(0);
    // The main thread's model and optimizer are the checkpoint: a resume on fresh workers ends
    // exactly where the uninterrupted run ends.
    q.resume(cancelled.id);
    await q.wait(cancelled.id);
    const resumed = q.project.run(cancelled.id);
    expect(resumed.status).toBe('completed');
    expect(resumed.record.resumes).toEqual([6]); // a cancel checkpoints the step it reached
    expect(resumed.readSummary()!.final_val_loss).toBe(q.project.run(straight.id).readSummary()!.final_val_loss);
  });
});
