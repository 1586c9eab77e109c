import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { exportRun } from '../../cli/main.js';
import '../../jobs/all.js';
import type { JobQueue } from '../../jobs/queue.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import { saveModel } from '../../models/index.js';
import { interruptedAndResumed, maxRelDiff, metricSeries, runToEnd, tempQueue } from '../../train/resume-harness.js';

let q: JobQueue;
let base: string;
beforeAll(async () => {
  await initBackend('wasm');
  q = tempQueue('lnr-trainer-');
  // A random one-block GPT-2 over bytes to remove LayerNorm from.
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'lnr-base-'));
  const m = new GPT2(gpt2ConfigFromJson({ vocab_size: 256, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 }), 7);
  await saveModel(m, base);
  m.dispose();
});

/** 10 steps; removals at steps 1 (ln_2), 2 (ln_1 QK), 3 (ln_1 V), 4 (ln_f), then 6 (EOT) and 8 (position 0) with special tokens. */
const config = (extra: { mode?: string; finetune?: Record<string, unknown>; removal?: Record<string, unknown>; dla?: Record<string, unknown> }) => ({
  method: 'ln-removal',
  seed: 2,
  mode: extra.mode ?? 'remove',
  source: { kind: 'folder', path: base },
  finetune: { steps: 10, batch: 4, seq: 16, warmup: 1, lr: 3e-3, eval_every: 5, eval_windows: 4, checkpoint_every: 3, ...extra.finetune },
  removal: { start: 1, gap_ln2: 1, gap_ln1qk: 1, gap_ln1v: 1, ...extra.removal },
  dla: { enabled: false, ...extra.dla },
});
const weights = (run: { latestCheckpoint(): { dir: string } | null }) => path.join(run.latestCheckpoint()!.dir, 'model.safetensors');
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('ln-removal gradient accumulation', () => {
  for (const special of [false, true]) {
    it(`batch 2 × grad_accum 2 gives the CE, gradient norms, frozen sigmas and LN-free weights of batch 4${special ? ' (special tokens: their own sigma EMAs)' : ''}`, async () => {
      // The auxiliary loss is off: its target is each micro-batch's own mean std (as in the authors' code), not the batch's.
      const removal = { aux_weight: 0, ...(special ? { special_tokens: true, eot_token: 32, gap_eot: 2, gap_bos: 2 } : {}) };
      const full = await runToEnd(q, config({ removal }));
      const accum = await runToEnd(q, config({ removal, finetune: { batch: 2, grad_accum: 2 } }));
      for (const key of ['ln_free_ce', 'ln_free_grad_norm', 'ln_free_val_ce']) {
        const [a, b] = [metricSeries(accum, key), metricSeries(full, key)];
        expect(a.length).toBeGreaterThan(1);
        a.forEach((m, i) => expect(rel(m.value, b[i].value), `${key} at step ${m.step}`).toBeLessThan(1e-4));
      }
      const [sa, sb] = [accum.readSummary()!.sigmas as Record<string, number>, full.readSummary()!.sigmas as Record<string, number>];
      for (const k of Object.keys(sb)) expect(rel(sa[k], sb[k]), k).toBeLessThan(1e-5);
      expect(await maxRelDiff(weights(accum), weights(full))).toBeLessThan(1e-3);
    });
  }

  it('a tokens_per_step that does not divide is a one-line config error', () => {
    expect(() => q.enqueue(config({ finetune: { tokens_per_step: 100 } }))).toThrow(
      /finetune\.tokens_per_step: tokens_per_step 100 is not a multiple of batch × seq = 4 × 16 = 64/,
    );
  });
});

describe('ln-removal resume', () => {
  it('a vanilla arm or a removal arm killed at step 5 resumes from step 3 (told to stop: from step 5) to the uninterrupted CEs, sigmas and model', async () => {
    for (const [mode, stop] of [
      ['vanilla', 'kill'],
      ['remove', 'kill'],
      ['remove', 'interrupt'],
    ] as const) {
      const cfg = config({ mode, removal: { special_tokens: true, eot_token: 32, gap_eot: 2, gap_bos: 2 } });
      const straight = await runToEnd(q, cfg);
      const resumed = await interruptedAndResumed(q, cfg, 5, undefined, stop);
      expect(resumed.record.resumes).toEqual([stop === 'kill' ? 3 : 5]);
      const [a, b] = [resumed.readSummary()!, straight.readSummary()!];
      for (const k of ['original_val_ce', 'vanilla_val_ce', 'ln_free_val_ce']) expect(a[k], k).toBe(b[k]);
      expect(a.sigmas).toEqual(b.sigmas);
      // The metric lines read back once per step (the killed attempt's steps 4-5 superseded).
      for (const key of ['vanilla_ce', 'ln_free_ce', 'removed'])
        expect(resumed.readMetrics().filter((m) => key in m)).toEqual(
          straight
            .readMetrics()
            .filter((m) => key in m)
            .map((m) => ({ ...m, time: expect.any(Number) })),
        );
      expect(await maxRelDiff(weights(resumed), weights(straight))).toBe(0);
    }
  });

  it('an arm stopped after its final checkpoint, before its summary, resumes there to the uninterrupted summary, LN-free model and exports', async () => {
    for (const mode of ['vanilla', 'remove'] as const) {
      const cfg = config({ mode, dla: { enabled: true, prompts: 2, seq: 16 } });
      const straight = await runToEnd(q, cfg);
      const expected = straight.readSummary()!;
      // SIGTERM / Ctrl-C during the last step: its training checkpoint is written, then the run ends interrupted.
      const interrupted = await interruptedAndResumed(q, cfg, 10, undefined, 'interrupt');
      expect(interrupted.record.resumes).toEqual([10]);
      expect(interrupted.readSummary()).toEqual(expected);
      // Killed after the removal arm's LN-free checkpoint (the end of its run), before its summary: a
      // "running" record without a live process, no summary.
      const killed = await runToEnd(q, cfg);
      killed.update({ status: 'running', pid: null });
      fs.rmSync(path.join(killed.dir, 'summary.json'));
      q.resume(killed.id);
      await q.wait(killed.id);
      const resumed = q.project.run(killed.id);
      expect(resumed.status, resumed.record.error?.message).toBe('completed');
      expect(resumed.record.resumes).toEqual([10]);
      expect(resumed.readSummary()).toEqual(expected);
      for (const run of [interrupted, resumed]) {
        expect(await maxRelDiff(weights(run), weights(straight))).toBe(0);
        const config = JSON.parse(fs.readFileSync(path.join(run.latestCheckpoint()!.dir, 'config.json'), 'utf8'));
        expect(Boolean(config.normlab_ln_sigmas)).toBe(mode === 'remove');
        if (mode === 'remove') {
          const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lnr-export-'));
          await exportRun(run, out, 'hf-ln-free');
          expect(fs.existsSync(path.join(out, 'model.safetensors'))).toBe(true);
        }
      }
    }
  });
});
