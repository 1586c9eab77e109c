import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { evalLM } from '../cli/eval-lm.js';
import { writeTokenFile } from '../data/text.js';
import '../jobs/all.js';
import { JobQueue } from '../jobs/queue.js';
import { Project, type Run } from '../store/runs.js';
import { loadLMData } from './lm-data.js';
import { interruptedAndResumed, runToEnd } from './resume-harness.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const tiny = (steps: number, arch: 'llama' | 'gpt2' = 'llama') => ({
  method: 'lm-pretrain',
  seed: 1,
  model: { arch, layers: 2, d_model: 32, heads: 2 },
  train: { steps, batch: 4, seq: 32, warmup: 2, lr: 3e-3, eval_every: 10, eval_windows: 4, checkpoint_every: 10, log_every: 2 },
});

function newQueue(): JobQueue {
  return new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'lm-'))), 'wasm');
}

describe('lm-pretrain', () => {
  for (const arch of ['llama', 'gpt2'] as const) {
    it(`trains a tiny ${arch} on wasm: validation loss falls, files per the run contract`, async () => {
      const q = newQueue();
      const run = q.enqueue(tiny(30, arch));
      await q.wait(run.id);
      const done = q.project.run(run.id);
      expect(done.record.error).toBeNull();
      expect(done.status).toBe('completed');
      expect(done.record.backend).toBe('wasm');
      const s = done.readSummary()!;
      expect(s.final_val_loss as number).toBeLessThan(s.initial_val_loss as number);
      for (const f of ['run.json', 'metrics.jsonl', 'summary.json']) expect(fs.existsSync(path.join(done.dir, f))).toBe(true);
      const ckpt = done.latestCheckpoint()!;
      expect(ckpt.step).toBe(30);
      // The checkpoint folder is a model folder eval-lm can score.
      const tokens = path.join(done.dir, 'val.bin');
      await writeTokenFile(
        tokens,
        Array.from({ length: 200 }, (_, i) => (i * 7) % 256),
      );
      const r = await evalLM({ model: ckpt.dir, tokens, seq: 32 });
      expect(r.tokens).toBe(6 * 32);
      expect(r.loss).toBeGreaterThan(0);
    });
  }

  it('the summary scores the final model on the whole validation split (or the stated budget), with its interval', async () => {
    const q = newQueue();
    const corpus = path.join(q.project.dir, 'corpus.bin');
    await writeTokenFile(
      corpus,
      Array.from({ length: 3000 }, (_, i) => (i * 31 + (i >> 3)) % 200),
    );
    const data = { source: 'tokens', path: corpus, val_fraction: 0.2 };
    const { val } = await loadLMData(data as Parameters<typeof loadLMData>[0], 32, 256);
    const valFile = path.join(q.project.dir, 'val.bin');
    await writeTokenFile(valFile, Array.from(val));
    for (const [budget, windows] of [
      [undefined, Math.floor((val.length - 1) / 32)],
      [100, 3],
    ] as const) {
      const cfg = { ...tiny(10), data, train: { ...tiny(10).train, ...(budget ? { final_eval_tokens: budget } : {}) } };
      const run = q.enqueue(cfg);
      await q.wait(run.id);
      const s = q.project.run(run.id).readSummary()!;
      expect(s.final_eval).toMatchObject({ windows, seq: 32, whole_split: budget === undefined });
      const kr = s.key_result as { interval: string; ci95: number[] };
      expect(kr.interval).toBe(
        budget === undefined
          ? `t over all ${windows} validation windows of 32 tokens (the whole split)`
          : `t over the first 3 validation windows of 32 tokens (96 of ${val.length - 1} tokens)`,
      );
      // Independently: eval-lm on the final checkpoint over the same tokens.
      const firstTokens = path.join(q.project.dir, `first-${windows}.bin`);
      await writeTokenFile(firstTokens, Array.from(val.subarray(0, windows * 32 + 1)));
      const independent = await evalLM({ model: q.project.run(run.id).latestCheckpoint()!.dir, tokens: firstTokens, seq: 32 });
      expect(independent.tokens).toBe(windows * 32);
      expect(s.final_val_loss as number).toBeCloseTo(independent.loss, 5);
      expect(kr.ci95[0]).toBeLessThan(s.final_val_loss as number);
      expect(kr.ci95[1]).toBeGreaterThan(s.final_val_loss as number);
    }
  });

  it('a cancelled run resumed from its checkpoint ends exactly where an uninterrupted run ends', async () => {
    const straight = newQueue();
    const a = straight.enqueue(tiny(20));
    await straight.wait(a.id);
    const expected = straight.project.run(a.id).readSummary()!.final_val_loss as number;

    const q = newQueue();
    const b = q.enqueue(tiny(20));
    const off = q.on((e) => {
      if (e.event === 'progress' && e.runId === b.id && e.step === 13) q.cancel(b.id);
    });
    await q.wait(b.id);
    off();
    expect(q.project.run(b.id).status).toBe('cancelled');
    q.resume(b.id);
    await q.wait(b.id);
    const resumed = q.project.run(b.id);
    expect(resumed.status).toBe('completed');
    expect(resumed.record.resumes).toEqual([13]); // a cancel checkpoints the step it reached (as SIGTERM does)
    expect(resumed.readSummary()!.final_val_loss as number).toBeCloseTo(expected, 5);
    // Metrics read back once per step.
    const steps = resumed
      .readMetrics()
      .filter((m) => typeof m.loss === 'number')
      .map((m) => m.step);
    expect(steps).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
  });

  it('a run stopped after its final checkpoint, before its summary, resumes to the summary of the uninterrupted run', async () => {
    const q = newQueue();
    const config = { ...tiny(20), train: { ...tiny(20).train, eval_every: 8 } }; // the last evaluation before step 20 is at 16
    const expected = (await runToEnd(q, config)).readSummary()!;
    // The run's numbers; tokens_per_s is a timing (the whole run's training tokens over its training seconds).
    const numbers = (run: Run) => {
      const { tokens_per_s: tps, ...rest } = run.readSummary()!;
      return { ...rest, tokens_per_s: typeof tps === 'number' && tps > 0 ? 'measured' : tps };
    };
    expect(expected.tokens_per_s).toBeGreaterThan(0);
    // SIGTERM / Ctrl-C during the last step: its checkpoint is written, then the run ends interrupted.
    const resumed = await interruptedAndResumed(q, config, 20, undefined, 'interrupt');
    expect(resumed.record.resumes).toEqual([20]);
    expect(numbers(resumed)).toEqual({ ...expected, tokens_per_s: 'measured' });
    expect(resumed.readSummary()!.final_val_loss).not.toBe(expected.initial_val_loss);

    // A final checkpoint of an older engine, without the last validation loss and the training time: the
    // resume evaluates the model again, and knows no throughput.
    const ckpt = resumed.latestCheckpoint()!;
    const stateFile = path.join(ckpt.dir, 'trainer.json');
    const { valLoss: _v, trained: _t, ...old } = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    fs.writeFileSync(stateFile, JSON.stringify(old));
    // What a process killed before its summary leaves: a "running" record without a live process, no summary.
    resumed.update({ status: 'running', pid: null });
    fs.rmSync(path.join(resumed.dir, 'summary.json'));
    q.resume(resumed.id);
    await q.wait(resumed.id);
    const again = q.project.run(resumed.id);
    expect(again.status, again.record.error?.message).toBe('completed');
    expect(numbers(again)).toEqual({ ...expected, tokens_per_s: null });
  });

  it("a run killed before its first checkpoint starts over: its metric lines are the uninterrupted run's (the step-0 evaluation once)", async () => {
    const q = newQueue();
    const config = { ...tiny(6), train: { ...tiny(6).train, eval_every: 3, checkpoint_every: 100 } };
    const lines = (run: Run) => run.readMetrics().map(({ time: _t, tokens_per_s: _s, ...m }) => m);
    const straight = await runToEnd(q, config);
    const resumed = await interruptedAndResumed(q, config, 4);
    expect(resumed.record.resumes).toEqual([0]);
    expect(lines(resumed)).toEqual(lines(straight));
  });

  it('the training loop does not leak tensors from step to step', async () => {
    const q = newQueue();
    let atStep5 = -1;
    let atStep25 = -1;
    const run = q.enqueue({ ...tiny(25), train: { ...tiny(25).train, eval_every: 100, checkpoint_every: 100 } });
    q.on((e) => {
      if (e.event === 'progress' && e.step === 5) atStep5 = tf.memory().numTensors;
      if (e.event === 'progress' && e.step === 24) atStep25 = tf.memory().numTensors;
    });
    await q.wait(run.id);
    expect(atStep5).toBeGreaterThan(0);
    expect(atStep25).toBe(atStep5);
  });

  it('bad configs fail with one line naming the field, before any run starts', () => {
    const q = newQueue();
    expect(() => q.enqueue({ method: 'lm-pretrain', train: { steps: 'ten' } })).toThrow(/^config train\.steps: expected number/);
    expect(() => q.enqueue({ method: 'lm-pretain' })).toThrow(/unknown method "lm-pretain": expected one of .*lm-pretrain/);
    expect(() => q.enqueue({ method: 'lm-pretrain', model: { norm: 'sandwich' } })).toThrow(/model\.norm/);
    expect(() => q.enqueue({ method: 'lm-pretrain', model: { norm: 'mix', mix_k: 9, layers: 4 } })).toThrow(/mix_k 9 exceeds the number of layers 4/);
    expect(() => q.enqueue({ method: 'lm-pretrain', surprise: 1 })).toThrow(/surprise/);
    expect(q.project.listRuns()).toHaveLength(0);
  });

  it('a missing data file is refused with a one-line reason before any run is created', () => {
    const q = newQueue();
    expect(() => q.enqueue({ ...tiny(5), data: { source: 'file', path: '/nonexistent/corpus.txt' } })).toThrow(
      /^config data\.path: no such file or folder: \/nonexistent\/corpus\.txt$/,
    );
    expect(q.project.listRuns()).toEqual([]);
  });
});

describe('train config', () => {
  it('train: {steps: 20} alone gets a warmup that fits (at most a tenth of the run); an explicit one is kept and checked', async () => {
    const { lmWarmup, trainSchema } = await import('./lm-config.js');
    const short = trainSchema.parse({ steps: 20 });
    expect(lmWarmup(short)).toBe(2);
    expect(lmWarmup(trainSchema.parse({}))).toBe(20);
    expect(lmWarmup(trainSchema.parse({ steps: 20, warmup: 0 }))).toBe(0);
    expect(() => trainSchema.parse({ steps: 20, warmup: 20 })).toThrow(/warmup must be shorter than steps/);
  });
});
