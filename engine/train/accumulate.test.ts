import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import '../jobs/all.js';
import { accumulate, lmGradAccum, microBatches } from './accumulate.js';
import { maxRelDiff, metricSeries, runToEnd, tempQueue } from './resume-harness.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('gradient accumulation', () => {
  it('splits rows in order, the last micro-batch shorter', () => {
    expect(microBatches(10, 4).map((m) => [m.start, m.rows])).toEqual([
      [0, 4],
      [4, 4],
      [8, 2],
    ]);
    expect(microBatches(3, 3)).toEqual([{ index: 0, start: 0, rows: 3, total: 3 }]);
  });

  it('tokens_per_step derives grad_accum and must divide by batch × seq', () => {
    expect(lmGradAccum({ batch: 8, seq: 256, grad_accum: 1, tokens_per_step: 512 * 256 })).toBe(64);
    expect(lmGradAccum({ batch: 16, seq: 1024, grad_accum: 1, tokens_per_step: 2 ** 19 })).toBe(32);
    expect(lmGradAccum({ batch: 8, seq: 256, grad_accum: 3 })).toBe(3);
    expect(() => lmGradAccum({ batch: 3, seq: 100, grad_accum: 1, tokens_per_step: 1000 })).toThrow(
      /tokens_per_step 1000 is not a multiple of batch × seq = 3 × 100 = 300/,
    );
    expect(() => lmGradAccum({ batch: 8, seq: 256, grad_accum: 2, tokens_per_step: 8 * 256 * 4 })).toThrow(/grad_accum 2 contradicts/);
  });

  it('the row-weighted sum of micro-batch means is the full batch mean and its gradient (uneven micro-batches)', async () => {
    // A least-squares loss on 7 rows, 3 + 3 + 1 at a time, against one pass over all 7.
    const X = tf.tensor2d(
      Array.from({ length: 21 }, (_, i) => Math.sin(i * 1.7)),
      [7, 3],
    );
    const Y = tf.tensor1d(Array.from({ length: 7 }, (_, i) => Math.cos(i)));
    const w = tf.variable(tf.tensor1d([0.3, -0.2, 0.5]), true, 'acc-test-w');
    const lossOf = (start: number, rows: number) => () =>
      tf.mean(tf.square(tf.sub(tf.sum(tf.mul(tf.slice(X, [start, 0], [rows, 3]), w), 1), tf.slice(Y, [start], [rows])))) as tf.Scalar;
    const gradsOf = (start: number, rows: number) => {
      const { value, grads } = tf.variableGrads(lossOf(start, rows), [w]);
      return { value, grads: new Map([['w', grads[w.name]]]) };
    };
    const full = gradsOf(0, 7);
    const before = tf.memory().numTensors;
    const acc = accumulate(microBatches(7, 3), (mb) => gradsOf(mb.start, mb.rows));
    expect(tf.memory().numTensors).toBe(before + 2); // only the summed loss and gradient remain
    expect((await acc.value.data())[0]).toBeCloseTo((await full.value.data())[0], 6);
    const [ga, gf] = [await acc.grads.get('w')!.data(), await full.grads.get('w')!.data()];
    for (let i = 0; i < 3; i++) expect(ga[i]).toBeCloseTo(gf[i], 6);
    // One micro-batch is the unaccumulated step: its own tensors come back untouched.
    const one = gradsOf(0, 7);
    expect(accumulate(microBatches(7, 7), () => one)).toBe(one);
    tf.dispose([X, Y, w, full.value, acc.value, one.value, ...full.grads.values(), ...acc.grads.values(), ...one.grads.values()]);
  });
});

describe('lm-pretrain with gradient accumulation', () => {
  it('batch 2 × grad_accum 4 and batch 4 × tokens_per_step give the losses and parameters of batch 8', async () => {
    const q = tempQueue('accum-');
    const cfg = (train: Record<string, unknown>) => ({
      method: 'lm-pretrain',
      seed: 4,
      model: { arch: 'llama', layers: 2, d_model: 32, heads: 2 },
      train: { steps: 6, seq: 16, warmup: 1, lr: 3e-3, eval_every: 6, eval_windows: 2, checkpoint_every: 6, log_every: 1, layer_grad_norms: false, ...train },
    });
    const runs = [
      await runToEnd(q, cfg({ batch: 8 })),
      await runToEnd(q, cfg({ batch: 2, grad_accum: 4 })),
      await runToEnd(q, cfg({ batch: 4, tokens_per_step: 8 * 16 })),
    ];
    // Losses, and gradient norms before clipping (AdamW alone would hide a wrongly scaled gradient).
    const losses = runs.map((r) => metricSeries(r, 'loss').map((m) => m.value));
    const norms = runs.map((r) => metricSeries(r, 'grad_norm').map((m) => m.value));
    expect(losses[0]).toHaveLength(6);
    for (const l of losses.slice(1)) l.forEach((v, i) => expect(Math.abs(v - losses[0][i]) / losses[0][i]).toBeLessThan(1e-5));
    for (const n of norms.slice(1)) n.forEach((v, i) => expect(Math.abs(v - norms[0][i]) / norms[0][i]).toBeLessThan(1e-4));
    expect(runs.map((r) => r.readSummary()!.tokens_per_step)).toEqual([128, 128, 128]);
    expect(runs.map((r) => r.readSummary()!.grad_accum)).toEqual([1, 4, 2]);
    const weights = runs.map((r) => path.join(r.latestCheckpoint()!.dir, 'model.safetensors'));
    for (const w of weights.slice(1)) expect(await maxRelDiff(w, weights[0])).toBeLessThan(1e-4);
  });

  it('a tokens_per_step that does not divide is a one-line config error before the run starts', () => {
    const q = tempQueue('accum-');
    expect(() => q.enqueue({ method: 'lm-pretrain', train: { batch: 3, seq: 16, tokens_per_step: 100 } })).toThrow(
      /^config train\.tokens_per_step: tokens_per_step 100 is not a multiple of batch × seq = 3 × 16 = 48$/,
    );
  });
});
