/**
 * Every job kind on the webgpu backend (software Vulkan, see ../testing/webgpu.ts) against the
 * same job on wasm from the same seed: the logged losses, evaluations and summaries agree.
 * Shapes are tiny: a software GPU runs at a fraction of a GFLOP/s.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import '../jobs/all.js';
import { JobQueue } from '../jobs/queue.js';
import { Project, type Run } from '../store/runs.js';
import { describeWebgpu } from '../testing/webgpu.js';

type Backend = 'wasm' | 'webgpu';
const BACKENDS: Backend[] = ['wasm', 'webgpu'];

let root: string;
const projects = {} as Record<Backend, Project>;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-webgpu-'));
  for (const b of BACKENDS) projects[b] = Project.open(path.join(root, b));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Run one job to the end on a backend; fails the test with the run's error. */
async function runOn(backend: Backend, config: Record<string, unknown>): Promise<Run> {
  const q = new JobQueue(projects[backend], backend);
  const queued = q.enqueue(config);
  await q.wait(queued.id);
  const run = q.project.run(queued.id);
  expect(run.status, `${config.method} on ${backend}: ${JSON.stringify(run.record.error)}`).toBe('completed');
  expect(run.record.backend).toBe(backend);
  return run;
}

/** Keys whose values depend on the machine or the backend, not on the maths. */
const VOLATILE = /key_result|per_s|seconds|_ms$|^ms|time|backend|dir$|checkpoint|model$|runs?$|^path/;

/** Every number in a metrics/summary value, by its path (`3.loss`, `table.0.fid_1step`). */
function numbers(value: unknown, prefix = '', out = new Map<string, number>()): Map<string, number> {
  if (typeof value === 'number') out.set(prefix, value);
  else if (Array.isArray(value)) value.forEach((v, i) => numbers(v, `${prefix}.${i}`, out));
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) if (!VOLATILE.test(k)) numbers(v, prefix ? `${prefix}.${k}` : k, out);
  return out;
}

/** Relative tolerance by what a number is: exact for counts and top-1; FIDs (fid_1step, fid_floor_training_images) are real numbers. */
function tolerance(key: string, loss: number): number {
  if (/fid/.test(key)) return loss;
  if (/top1|accuracy|step$|count|images|params|\.N$|bits/.test(key)) return 0;
  return loss;
}

/**
 * The wasm and webgpu runs logged the same metrics and summaries, within `loss` (relative) for
 * losses and other real numbers.
 */
function expectAgree(runs: Record<Backend, Run>, only?: RegExp, loss = 1e-3): void {
  const [a, b] = BACKENDS.map((k) => {
    const r = runs[k];
    const all = numbers({ metrics: r.readMetrics().filter((m) => !('event' in m)), summary: r.readSummary() });
    return only ? new Map([...all].filter(([k]) => only.test(k))) : all;
  });
  expect([...b.keys()]).toEqual([...a.keys()]);
  expect(a.size).toBeGreaterThan(0);
  for (const [key, want] of a) {
    const got = b.get(key)!;
    if (!Number.isFinite(want)) {
      expect(Number.isNaN(got) ? NaN : got, key).toBe(want);
      continue;
    }
    const tol = tolerance(key, loss);
    const err = Math.abs(got - want) / Math.max(1, Math.abs(want));
    expect(err, `${key}: wasm ${want}, webgpu ${got}`).toBeLessThanOrEqual(tol);
  }
}

async function both(config: Record<string, unknown> | ((b: Backend) => Record<string, unknown>)): Promise<Record<Backend, Run>> {
  const out = {} as Record<Backend, Run>;
  for (const b of BACKENDS) out[b] = await runOn(b, typeof config === 'function' ? config(b) : config);
  return out;
}

// The final evaluations on 2 windows, not the whole split: software Vulkan runs a forward pass in about 0.1 s.
const lmTrain = { steps: 4, batch: 2, seq: 16, warmup: 1, lr: 1e-2, eval_every: 4, eval_windows: 2, final_eval_tokens: 32, checkpoint_every: 4, log_every: 1 };
const lmRuns = {} as Record<Backend, Run>;

describeWebgpu('every method on webgpu agrees with wasm', () => {
  it('lm-pretrain (LLaMA with LayerNorm Scaling; losses, gradient norms, validation loss)', async () => {
    const runs = await both({ method: 'lm-pretrain', seed: 3, model: { arch: 'llama', layers: 2, d_model: 16, heads: 2, norm: 'lns' }, train: lmTrain });
    expectAgree(runs);
    Object.assign(lmRuns, runs);
  });

  it('lns-diagnostics (variance, angular distance, layer pruning, gradient norms) on that checkpoint', async () => {
    const runs = await both((b) => ({
      method: 'lns-diagnostics',
      model: lmRuns[b].latestCheckpoint()!.dir,
      sequences: 4,
      pruning_windows: 2,
      grad_windows: 2,
      batch: 2,
    }));
    expectAgree(runs);
  });

  it('ln-removal (GPT-2 pretrain, vanilla and LN-free fine-tuning, DLA before and after)', async () => {
    const runs = await both({
      method: 'ln-removal',
      seed: 1,
      source: { kind: 'pretrain', model: { arch: 'gpt2', layers: 1, d_model: 16, heads: 2 }, train: { ...lmTrain, layer_grad_norms: false } },
      finetune: { steps: 6, batch: 2, seq: 16, warmup: 1, eval_every: 6, eval_windows: 2, final_eval_tokens: 32 },
      removal: { start: 1, gap_ln2: 1, gap_ln1qk: 1, gap_ln1v: 1 },
      dla: { prompts: 2, seq: 16 },
    });
    expectAgree(runs, /ce|loss|dla|nmae|sigma|grad_norm/);
  });

  it('dla on a GPT-2 model folder', async () => {
    const gpt2 = await both({
      method: 'lm-pretrain',
      seed: 2,
      model: { arch: 'gpt2', layers: 1, d_model: 16, heads: 2 },
      train: { ...lmTrain, steps: 1, warmup: 0, eval_every: 1, checkpoint_every: 1 },
    });
    const runs = await both((b) => ({ method: 'dla', model: gpt2[b].latestCheckpoint()!.dir, prompts: 2, seq: 16 }));
    expectAgree(runs);
  });

  it('lct-study (autoencoder-train, image-classifier, lct: losses, FID 1-step / 2-step, class histograms)', async () => {
    const runs = await both({
      method: 'lct-study',
      data: { count: 32, ref_count: 16 },
      autoencoder: { hidden: 16, steps: 1, latent_shape: [2, 2, 2] },
      classifier: { hidden: [8, 8], steps: 1 },
      network: { arch: 'mlp', width: 16, depth: 1, mlp_ratio: 2 },
      train: { steps: 2, batch: 8, warmup: 1, sample_every: 2, log_every: 1 },
      eval: { samples: 8, quick_samples: 8, grid: 4 },
      ablation: 'custom',
      // Minibatch OT off: its assignment (Hungarian on a float32 cost matrix) is discontinuous, and
      // on some machines the two backends' rounding flips a near-tie of this tiny batch (first lct
      // loss 25.81 vs 25.69, on the code before and after this change alike); OT has its own tests.
      configurations: [{ name: 'full recipe', cauchy: true, diffusion_loss: true, ot: false, adaptive_c: true, nsln: true }],
    });
    // Every stage within 1e-3 like the other kinds, FIDs and the study's table included: the
    // largest gaps measured were 2.2e-7 (autoencoder loss), 0 (classifier), 1.0e-7 (lct losses,
    // gradient norms), 1.3e-7 (FID 1-step / 2-step and floors): float32 rounding, four orders
    // below the bound. The class histograms are equal.
    expectAgree(runs);
    const stages = ['autoencoder-train', 'image-classifier', 'lct'];
    const children = (b: Backend) => projects[b].listRuns().filter((r) => r.record.parent === runs[b].id);
    for (const b of BACKENDS)
      expect(
        children(b)
          .map((r) => r.record.method)
          .sort(),
        b,
      ).toEqual(stages);
    for (const method of stages) {
      const child = (b: Backend) => children(b).find((r) => r.record.method === method)!;
      expectAgree({ wasm: child('wasm'), webgpu: child('webgpu') });
    }
  }, 300_000);

  it('vit-train, then ptq-vit on the trained model (equal top-1)', async () => {
    const data = { source: 'mnist', train_count: 16, eval_count: 16 };
    const vit = await both({
      method: 'vit-train',
      seed: 4,
      model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2 },
      data,
      train: { epochs: 1, batch: 8, warmup: 1, log_every: 1 },
    });
    expectAgree(vit);
    const ptq = await both((b) => ({
      method: 'ptq-vit',
      model: String(vit[b].readSummary()!.model_dir),
      data: { calib_count: 8, eval_count: 32 },
      export: false,
    }));
    expectAgree(ptq, /top1/);
  }, 300_000);
});
