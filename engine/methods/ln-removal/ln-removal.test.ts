import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { writeTokenFile } from '../../data/text.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import '../../jobs/all.js';
import { JobQueue } from '../../jobs/queue.js';
import { GPT2, gpt2ConfigFromJson, lnSiteKey } from '../../models/gpt2.js';
import { loadLM, saveModel } from '../../models/index.js';
import { layerNorm } from '../../nn/ops.js';
import { Project } from '../../store/runs.js';
import { headDla, nmae } from './dla.js';
import { toHfLnFree } from './export.js';
import { allSites, auxStdLoss, fakeLayerNorm, FakeLNSet, removalSchedule } from './fake-ln.js';
import { scheduleWarnings, tokensPerStep, type LNRemovalConfig } from './index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'torch_check.py');
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

beforeAll(async () => {
  await initBackend('wasm');
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lnr-'));

function tinyGpt2(layers = 2, extra: Record<string, unknown> = {}, seed = 3): GPT2 {
  return new GPT2(gpt2ConfigFromJson({ vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: layers, n_head: 2, ...extra }), seed);
}

/** Give every LN non-trivial gamma/beta so tests do not pass by accident with ones/zeros. */
function randomizeNorms(m: GPT2): void {
  for (const [name, v] of m.params.vars) {
    if (/ln_(1|2|f)\.weight$/.test(name)) v.assign(tf.add(1, tf.randomNormal(v.shape, 0, 0.2, 'float32', 7)));
    if (/ln_(1|2|f)\.bias$/.test(name)) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', 8));
  }
}

const ids = (B: number, T: number, seed = 0) => Int32Array.from({ length: B * T }, (_, i) => (i * 17 + seed * 5 + 3) % 50);

describe('FakeLN', () => {
  it('equals LayerNorm when sigma matches a constant-std input', () => {
    const eps = 1e-5;
    // Rows scaled to the same std s: LN divides each by sqrt(s^2 + eps), a constant.
    const raw = tf.randomNormal([3, 5, 8], 0, 1, 'float32', 1);
    const { mean, variance } = tf.moments(raw, -1, true);
    const s = 2.5;
    const x = tf.mul(tf.div(tf.sub(raw, mean), tf.sqrt(variance)), s);
    const g = tf.randomNormal([8], 1, 0.3, 'float32', 2);
    const b = tf.randomNormal([8], 0, 0.3, 'float32', 3);
    const fake = fakeLayerNorm(x, Math.sqrt(s * s + eps), g, b);
    const real = layerNorm(x, g, b, eps);
    expect(tf.max(tf.abs(tf.sub(fake, real))).dataSync()[0]).toBeLessThan(1e-5);
    // ...and differs from it once a token's std differs from sigma (the division is gone).
    const x2 = tf.mul(
      x,
      tf.tensor3d(
        Float32Array.from({ length: 15 }, (_, i) => (i === 4 ? 3 : 1)),
        [3, 5, 1],
      ),
    );
    const diff = tf.max(tf.abs(tf.sub(fakeLayerNorm(x2, Math.sqrt(s * s + eps), g, b), layerNorm(x2, g, b, eps)))).dataSync()[0];
    expect(diff).toBeGreaterThan(0.5);
  });

  it('tracks sigma_avg as an EMA (momentum 0.9) while real and freezes it on removal', async () => {
    const m = tinyGpt2(1);
    randomizeNorms(m);
    const eps = m.config.layer_norm_epsilon;
    const set = new FakeLNSet(m.params, 1, { momentum: 0.9, eps, ln1Sigma: 'shared', special: false });
    const lnf = { layer: -1, which: 'ln_f' } as const;
    // The input of ln_f is the residual stream after the last block: measure its mean token std by hand.
    const measured = (x: Int32Array) => {
      let res: tf.Tensor | null = null;
      tf.tidy(() => {
        m.forward(tf.tensor2d(x, [2, 8], 'int32'), { residual: (l, r) => l === 0 && (res = tf.keep(tf.clone(r))) });
      });
      const v = tf.tidy(() => tf.mean(tf.sqrt(tf.add(tf.moments(res!, -1).variance, eps))).dataSync()[0]);
      res!.dispose();
      return v;
    };
    const step = async (x: Int32Array) => {
      tf.tidy(() => {
        m.forward(tf.tensor2d(x, [2, 8], 'int32'), set.hooks(true));
      });
      await set.commit();
    };
    const a = ids(2, 8, 1);
    const b = ids(2, 8, 2);
    await step(a);
    expect(set.sigma(lnf)).toBeCloseTo(measured(a), 5);
    await step(b);
    const ema = 0.9 * measured(a) + 0.1 * measured(b);
    expect(set.sigma(lnf)).toBeCloseTo(ema, 5);
    set.apply({ step: 2, kind: 'ln_f', layer: -1 });
    expect(set.isRemoved(lnf)).toBe(true);
    await step(ids(2, 8, 9));
    expect(set.sigma(lnf)).toBeCloseTo(ema, 6); // frozen
    // After removal the model's output is ln_f replaced by FakeLN with the frozen sigma.
    const c = ids(2, 8, 4);
    const diff = tf.tidy(() => {
      let res: tf.Tensor3D | null = null;
      const got = m.forward(tf.tensor2d(c, [2, 8], 'int32'), { ...set.hooks(false), residual: (l, r) => l === 0 && (res = r) });
      const want = m.logits(fakeLayerNorm(res!, ema, m.params.get('transformer.ln_f.weight'), m.params.get('transformer.ln_f.bias')) as tf.Tensor3D);
      return tf.max(tf.abs(tf.sub(got, want))).dataSync()[0];
    });
    expect(diff).toBeLessThan(1e-5);
    // ln_2 and ln_1 are still real: their sigmas keep moving.
    const before = set.sigma({ layer: 0, which: 'ln_2' });
    await step(ids(2, 8, 11));
    expect(set.sigma({ layer: 0, which: 'ln_2' })).not.toBe(before);
    set.dispose();
    m.dispose();
  });

  it('ln_1 paths: shared mode keeps one sigma until the V path goes; separate mode freezes each path', async () => {
    for (const mode of ['shared', 'separate'] as const) {
      const m = tinyGpt2(1);
      const set = new FakeLNSet(m.params, 1, { momentum: 0.5, eps: 1e-5, ln1Sigma: mode, special: false });
      const qk = { layer: 0, which: 'ln_1_qk' } as const;
      const v = { layer: 0, which: 'ln_1_v' } as const;
      const step = async (seed: number) => {
        tf.tidy(() => {
          m.forward(tf.tensor2d(ids(2, 8, seed), [2, 8], 'int32'), set.hooks(true));
        });
        await set.commit();
      };
      await step(1);
      set.apply({ step: 1, kind: 'ln_1_qk', layer: 0 });
      const atQK = set.sigma(qk)!;
      for (const wte of [m.params.get('transformer.wte.weight')]) wte.assign(tf.mul(wte, 3)); // change the input std
      await step(2);
      if (mode === 'shared') {
        expect(set.sigma(qk)).toBe(set.sigma(v));
        expect(set.sigma(qk)).not.toBe(atQK); // still tracked: the V path is real
      } else {
        expect(set.sigma(qk)).toBe(atQK);
        expect(set.sigma(v)).not.toBe(atQK);
      }
      set.apply({ step: 2, kind: 'ln_1_v', layer: 0 });
      const frozen = set.sigma(v);
      await step(3);
      expect(set.sigma(v)).toBe(frozen);
      set.dispose();
      m.dispose();
    }
  });
});

describe('removal schedule', () => {
  it("GPT-2 small with the paper's gaps: ln_2 from step 20, ln_1 QK, ln_1 V, ln_f at 104, EOT at ln_f + 2, BOS at EOT + 10", () => {
    const ev = removalSchedule(12, { start: 20, gapLn2: 2, gapLn1qk: 2, gapLn1v: 3, gapEot: 2, gapBos: 10, special: false });
    expect(ev).toHaveLength(37);
    expect(ev.filter((e) => e.kind === 'ln_2').map((e) => e.step)).toEqual(Array.from({ length: 12 }, (_, i) => 20 + 2 * i));
    expect(ev.filter((e) => e.kind === 'ln_1_qk').map((e) => e.step)).toEqual(Array.from({ length: 12 }, (_, i) => 44 + 2 * i));
    expect(ev.filter((e) => e.kind === 'ln_1_v').map((e) => e.step)).toEqual(Array.from({ length: 12 }, (_, i) => 68 + 3 * i));
    expect(ev.filter((e) => e.kind === 'ln_2').map((e) => e.layer)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(ev[ev.length - 1]).toEqual({ step: 104, kind: 'ln_f', layer: -1 });
    const sp = removalSchedule(12, { start: 20, gapLn2: 2, gapLn1qk: 2, gapLn1v: 3, gapEot: 2, gapBos: 10, special: true });
    expect(sp.slice(-2)).toEqual([
      { step: 106, kind: 'eot', layer: -1 },
      { step: 116, kind: 'bos', layer: -1 },
    ]);
    // Every site is removed exactly once.
    const keys = ev.map((e) => (e.kind === 'ln_f' ? 'ln_f' : `h.${e.layer}.${e.kind}`)).sort();
    expect(keys).toEqual(allSites(12).map(lnSiteKey).sort());
  });
});

describe('auxiliary std-uniformity loss', () => {
  it('is w * mean((s - target)^2) with target the mean std of tokens past position 0, without gradient through the target', () => {
    const x = tf.tensor3d(
      Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5))),
      [2, 3, 4],
    );
    const data = x.arraySync();
    const eps = 1e-5;
    const s = data.map((row) =>
      row.map((tok) => {
        const mu = tok.reduce((a, b) => a + b, 0) / 4;
        return Math.sqrt(tok.reduce((a, b) => a + (b - mu) ** 2, 0) / 4 + eps);
      }),
    );
    const others = s.flatMap((r) => r.slice(1));
    const target = others.reduce((a, b) => a + b, 0) / others.length;
    const want = (0.1 * s.flat().reduce((a, v) => a + (v - target) ** 2, 0)) / 6;
    const pos0 = tf.tensor2d([1, 0, 0, 1, 0, 0], [2, 3]);
    expect(auxStdLoss(x, 0.1, eps, pos0).dataSync()[0]).toBeCloseTo(want, 6);
    // EOT-marked tokens are excluded from the target too.
    const mask = tf.tensor2d([1, 0, 1, 1, 0, 0], [2, 3]);
    const t2 = (s[0][1] + s[1][1] + s[1][2]) / 3;
    const want2 = (0.1 * s.flat().reduce((a, v) => a + (v - t2) ** 2, 0)) / 6;
    expect(auxStdLoss(x, 0.1, eps, mask).dataSync()[0]).toBeCloseTo(want2, 6);
    // Gradient: d/dx of w * mean((s - c)^2) with c held constant.
    const g = tf.grad((v: tf.Tensor) => auxStdLoss(v as tf.Tensor3D, 0.1, eps, pos0))(x);
    const gConst = tf.grad((v: tf.Tensor) => tf.mul(tf.mean(tf.square(tf.sub(tf.sqrt(tf.add(tf.moments(v, -1).variance, eps)), target))), 0.1))(x);
    expect(tf.max(tf.abs(tf.sub(g, gConst))).dataSync()[0]).toBeLessThan(1e-6);
  });
});

/** An LN-free tiny GPT-2 with distinct sigmas per site. */
function lnFreeOf(m: GPT2, sigmas?: Record<string, number>, extra: Record<string, unknown> = {}): GPT2 {
  const s = sigmas ?? Object.fromEntries(allSites(m.nLayers).map((site, i) => [lnSiteKey(site), 0.5 + 0.1 * i]));
  const free = new GPT2(gpt2ConfigFromJson({ ...m.hfConfig(), normlab_ln_sigmas: s, ...extra }));
  const t = m.checkpointTensors();
  free.loadCheckpointTensors(t);
  for (const x of t.values()) x.dispose();
  return free;
}

describe('the LN-free model', () => {
  it('has no data-dependent normalization left: scaling a token\u2019s residual stream no longer cancels', () => {
    // eps 1e-12: LayerNorm's own epsilon would otherwise break exact scale invariance of tiny embeddings.
    const m = tinyGpt2(1, { layer_norm_epsilon: 1e-12 });
    randomizeNorms(m);
    const small = Object.fromEntries(allSites(1).map((site) => [lnSiteKey(site), 0.02])); // about the embeddings' std
    const free = lnFreeOf(m, small);
    const T = 6;
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, T], 'int32');
    // Scale token 0's residual stream (its embedding row and position-0 row) by 3.
    const scaleToken0 = (model: GPT2, k: number) => {
      const wte = model.params.get('transformer.wte.weight');
      const wpe = model.params.get('transformer.wpe.weight');
      const rowMask = (n: number, r: number) => tf.add(1, tf.mul(tf.reshape(tf.oneHot(tf.tensor1d([r], 'int32'), n), [n, 1]), k - 1));
      wte.assign(tf.mul(wte, rowMask(wte.shape[0], 1)));
      wpe.assign(tf.mul(wpe, rowMask(wpe.shape[0], 0)));
    };
    // The head is tied to wte, so token 1's own logit moves with its row: compare the others.
    const notTok1 = tf.tensor1d(Float32Array.from({ length: 50 }, (_, i) => (i === 1 ? 0 : 1)));
    const laterLogits = (model: GPT2) => tf.tidy(() => tf.mul(tf.slice(model.forward(x), [0, 1, 0], [1, T - 1, -1]), notTok1));
    const change = (model: GPT2) => {
      const before = laterLogits(model);
      scaleToken0(model, 3);
      const after = laterLogits(model);
      const d = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0];
      before.dispose();
      after.dispose();
      return d;
    };
    // With LayerNorm: later tokens read token 0 only through ln_1, which cancels the scale.
    expect(change(m)).toBeLessThan(1e-4);
    // LN-free: the QK and V paths see the scaled token.
    expect(change(free)).toBeGreaterThan(1e-2);
    // ln_f: with every block skipped, a token's own logits ignore its scale only with LayerNorm.
    const skip = { skipLayers: new Set([0]) };
    const own = (model: GPT2) => tf.tidy(() => tf.mul(tf.slice(model.forward(x, skip), [0, 0, 0], [1, 1, -1]), notTok1));
    const m2 = tinyGpt2(1, { layer_norm_epsilon: 1e-12 });
    randomizeNorms(m2);
    const free2 = lnFreeOf(m2, small);
    for (const [model, big] of [
      [m2, false],
      [free2, true],
    ] as const) {
      const a = own(model);
      scaleToken0(model, 3);
      const b = own(model);
      const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
      if (big) expect(d).toBeGreaterThan(1e-2);
      else expect(d).toBeLessThan(1e-4);
    }
    for (const mm of [m, free, m2, free2]) mm.dispose();
  });

  it('equals the training-time FakeLN hooks once every site is removed, and round-trips through a model folder', async () => {
    const m = tinyGpt2(2);
    randomizeNorms(m);
    const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'separate', special: false });
    const x = ids(2, 8, 1);
    tf.tidy(() => {
      m.forward(tf.tensor2d(x, [2, 8], 'int32'), set.hooks(true));
    });
    await set.commit();
    for (const e of removalSchedule(2, { start: 1, gapLn2: 1, gapLn1qk: 1, gapLn1v: 1, gapEot: 1, gapBos: 1, special: false })) set.apply(e);
    const free = lnFreeOf(m, set.frozenSigmas());
    const dir = tmp();
    await saveModel(free, dir);
    const loaded = await loadLM(dir);
    const y = ids(2, 8, 5);
    const d = tf.tidy(() => {
      const a = m.forward(tf.tensor2d(y, [2, 8], 'int32'), set.hooks(false));
      const b = free.forward(tf.tensor2d(y, [2, 8], 'int32'));
      const c = loaded.forward(tf.tensor2d(y, [2, 8], 'int32'));
      return [tf.max(tf.abs(tf.sub(a, b))).dataSync()[0], tf.max(tf.abs(tf.sub(b, c))).dataSync()[0]];
    });
    expect(d[0]).toBeLessThan(1e-5);
    expect(d[1]).toBe(0);
    set.dispose();
    for (const mm of [m, free, loaded]) mm.dispose();
  });

  it('HF export (eps 1e12, gamma * 1e6 / sigma, V-path ratio folded into c_attn) gives the same logits as a plain GPT-2', async () => {
    const m = tinyGpt2(2);
    randomizeNorms(m);
    const free = lnFreeOf(m); // ln_1_qk and ln_1_v sigmas differ here
    const dir = tmp();
    await saveModel(free, dir);
    const { config, tensors } = await loadModelDir(dir);
    const hf = toHfLnFree(config, tensors);
    expect(hf.config.layer_norm_epsilon).toBe(1e12);
    expect(hf.config.normlab_ln_sigmas).toBeUndefined();
    const out = tmp();
    await saveModelDir(out, hf.config, hf.tensors);
    const plain = await loadLM(out); // ordinary LayerNorm with eps 1e12
    const y = ids(2, 8, 3);
    const rel = tf.tidy(() => {
      const a = free.forward(tf.tensor2d(y, [2, 8], 'int32'));
      const b = plain.forward(tf.tensor2d(y, [2, 8], 'int32'));
      return tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.max(tf.abs(a))).dataSync()[0];
    });
    expect(rel).toBeLessThan(1e-5);
    free.dispose();
    plain.dispose();
    m.dispose();
  });
});

describe('DLA vs direct effect', () => {
  it('NMAE is float error after removal and clearly non-zero with LayerNorm', async () => {
    const m = tinyGpt2(2);
    randomizeNorms(m);
    const free = lnFreeOf(m);
    const x = ids(3, 10, 2);
    const y = ids(3, 10, 7);
    const before = await headDla(m, x, y, 3, 10);
    const after = await headDla(free, x, y, 3, 10);
    expect(before.heads).toHaveLength(4);
    expect(before.nmae).toBeGreaterThan(0.1);
    expect(after.nmae).toBeLessThan(1e-3);
    expect(nmae([1, 2], [1, 4])).toBeCloseTo((2 / 5) * 100, 10);
    m.dispose();
    free.dispose();
  });
});

function newQueue(): JobQueue {
  return new JobQueue(Project.open(tmp()), 'wasm');
}

async function runJob(
  cfg: Record<string, unknown>,
): Promise<{ error: { code: string; message: string } | null; summary: Record<string, unknown> | null; dir: string }> {
  const q = newQueue();
  const run = q.enqueue(cfg);
  await q.wait(run.id);
  const done = q.project.run(run.id);
  return { error: done.record.error, summary: done.readSummary(), dir: done.dir };
}

describe('ln-removal job', () => {
  const quick = {
    method: 'ln-removal',
    seed: 1,
    source: {
      kind: 'pretrain',
      model: { arch: 'gpt2', layers: 1, d_model: 16, heads: 2 },
      train: { steps: 10, batch: 4, seq: 16, lr: 3e-3, warmup: 2, eval_every: 10, eval_windows: 4, checkpoint_every: 10, layer_grad_norms: false },
    },
    // The final evaluation on the training-time windows (4 × 16 tokens), so the stand-alone LN-free
    // model's CE can be checked against the hooked model's during training.
    finetune: { steps: 10, batch: 4, seq: 16, warmup: 1, eval_every: 5, eval_windows: 4, final_eval_tokens: 64 },
    removal: { start: 1, gap_ln2: 1, gap_ln1qk: 1, gap_ln1v: 1 },
    dla: { prompts: 2, seq: 16 },
  };

  it('runs pretrain -> vanilla -> removal and reports the CE table, the LN-free model and its exports', async () => {
    const r = await runJob(quick);
    expect(r.error).toBeNull();
    const s = r.summary!;
    for (const k of ['original_val_ce', 'vanilla_val_ce', 'ln_free_val_ce']) expect(Number.isFinite(s[k] as number)).toBe(true);
    expect(s.ln_free_val_ce).toBeCloseTo(s.ln_free_val_ce_during_training as number, 5);
    expect(s.final_eval).toMatchObject({ windows: 4, seq: 16, whole_split: false });
    // The two arms are child runs of the study (so an executor can run them side by side).
    const arms = s.arms as { vanilla: string; remove: string };
    const project = Project.open(path.dirname(path.dirname(r.dir)));
    expect(project.children(path.basename(r.dir)).map((c) => c.record.child_key)).toEqual(expect.arrayContaining(['vanilla', 'remove']));
    expect(project.run(arms.vanilla).readSummary()!.vanilla_val_ce).toBe(s.vanilla_val_ce);
    expect(project.run(arms.remove).readSummary()!.ln_free_val_ce).toBe(s.ln_free_val_ce);
    expect(s.dla_nmae_pct_ln_free as number).toBeLessThan(1e-3);
    expect(s.dla_nmae_pct_vanilla as number).toBeGreaterThan(1e-3); // the vanilla model still has LayerNorm
    // Each model's NMAE carries its bootstrap interval over the 2 prompts, in the summary and dla_nmae.csv.
    const nmaeRows = s.dla_nmae as Record<string, { nmae_pct: number; ci95_lo: number; ci95_hi: number; prompts: number }>;
    expect(Object.keys(nmaeRows)).toEqual(['original', 'vanilla', 'ln_free']);
    expect(s.dla_nmae_interval).toBe('percentile bootstrap over 2 prompts (2000 resamples, seed 1)');
    for (const [k, row] of Object.entries(nmaeRows)) {
      expect(row.nmae_pct).toBeCloseTo(s[`dla_nmae_pct_${k}`] as number, 6);
      expect(row.ci95_lo).toBeLessThanOrEqual(row.ci95_hi);
      expect(row.prompts).toBe(2);
    }
    const nmaeCsv = fs
      .readFileSync(path.join(r.dir, 'artifacts', 'dla_nmae.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(nmaeCsv[0]).toBe('model,nmae_pct,ci95_lo,ci95_hi,prompts,tokens,bootstrap_resamples,bootstrap_seed');
    expect(nmaeCsv.slice(1).map((l) => l.split(',')[0])).toEqual(['original', 'vanilla', 'LN-free']);
    expect(Number(nmaeCsv[2].split(',')[2])).toBe(nmaeRows.vanilla.ci95_lo);
    // 4 x 16 tokens per step against the 2^19 the default (official) schedule was tuned for.
    expect(s.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^64 tokens per step is 8192x fewer than the 524288 the removal schedule/),
        expect.stringMatching(/^the base model is not converged/), // 10 steps of pretraining
      ]),
    );
    // The gap carries its paired interval over the validation windows both arms scored.
    const kr = s.key_result as { value: number; ci95: [number, number]; verdict: string; interval: string };
    expect(kr.interval).toMatch(/^paired t over the first 4 validation windows of 16 tokens \(64 of [\d,]+ tokens\)$/);
    expect(kr.ci95[0]).toBeLessThanOrEqual(kr.value);
    expect(kr.value).toBeCloseTo((s.ln_free_val_ce as number) - (s.vanilla_val_ce as number), 5);
    expect(['better', 'worse', 'within noise']).toContain(kr.verdict);
    expect(fs.readFileSync(path.join(r.dir, 'artifacts', 'ce_table.md'), 'utf8')).toMatch(/\*\*Warning:\*\* 64 tokens per step/);
    for (const f of ['loss_curves.png', 'ce_table.csv', 'dla_per_head.csv', 'dla_vanilla.png'])
      expect(fs.existsSync(path.join(r.dir, 'artifacts', f))).toBe(true);
    const { exportRun } = await import('../../cli/main.js');
    const q = newQueue();
    const run = Project.open(path.dirname(path.dirname(r.dir))).run(path.basename(r.dir));
    const outFree = tmp();
    const outHf = tmp();
    await exportRun(run, outFree, 'ln-free');
    await exportRun(run, outHf, 'hf-ln-free');
    expect(JSON.parse(fs.readFileSync(path.join(outFree, 'config.json'), 'utf8')).normlab_ln_sigmas).toBeTruthy();
    expect(JSON.parse(fs.readFileSync(path.join(outHf, 'config.json'), 'utf8')).layer_norm_epsilon).toBe(1e12);
    void q;
    // eval-lm scores both exported forms; they agree (the HF form is the same function).
    const { evalLM } = await import('../../cli/eval-lm.js');
    const bin = path.join(tmp(), 'val.bin');
    await writeTokenFile(
      bin,
      Array.from({ length: 300 }, (_, i) => (i * 31 + 7) % 256),
    );
    const a = await evalLM({ model: outFree, tokens: bin, seq: 16 });
    const b = await evalLM({ model: outHf, tokens: bin, seq: 16 });
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4);
    // The standalone dla job on the exported LN-free folder: DLA = DE.
    const d = await runJob({ method: 'dla', model: outFree, prompts: 2, seq: 16 });
    expect(d.error).toBeNull();
    expect(d.summary!.nmae_pct as number).toBeLessThan(1e-3);
    expect(d.summary!.key_result).toMatchObject({ interval: 'percentile bootstrap over 2 prompts (2000 resamples, seed 0)' });
  });

  it('fine-tunes with dropout (finetune.dropout): seeded, so the same config gives the same curve, and off at evaluation', async () => {
    const m = tinyGpt2(1, { vocab_size: 256 });
    const dir = tmp();
    await saveModel(m, dir);
    m.dispose();
    const cfg = (dropout: number) => ({
      ...quick,
      mode: 'vanilla',
      source: { kind: 'folder', path: dir },
      finetune: { ...quick.finetune, steps: 4, eval_every: 4, dropout },
      dla: { enabled: false },
    });
    const ce = async (dropout: number) => {
      const r = await runJob(cfg(dropout));
      expect(r.error).toBeNull();
      return r.summary!;
    };
    const [a, b, none] = [await ce(0.3), await ce(0.3), await ce(0)];
    expect(a.vanilla_val_ce).toBe(b.vanilla_val_ce);
    expect(a.vanilla_val_ce).not.toBe(none.vanilla_val_ce); // the training steps differed
    expect(a.original_val_ce).toBe(none.original_val_ce); // evaluation has no dropout
  });

  it('rejects bad input before training: not GPT-2, a schedule longer than training, token ids beyond the vocabulary', async () => {
    // A LLaMA folder is not GPT-2 shaped.
    const llamaDir = tmp();
    await saveModelDir(llamaDir, { model_type: 'llama', vocab_size: 256 }, {});
    let r = await runJob({ ...quick, source: { kind: 'folder', path: llamaDir } });
    expect(r.error?.message).toMatch(/llama model; LN removal needs a GPT-2/);
    // A GPT-2 config whose tensors have the wrong shapes.
    const m = tinyGpt2(1);
    const m256 = tinyGpt2(1, { vocab_size: 256 });
    const badDir = tmp();
    await saveModel(m256, badDir, { n_embd: 32, n_head: 2 });
    m256.dispose();
    r = await runJob({ ...quick, source: { kind: 'folder', path: badDir } });
    expect(r.error?.message).toMatch(/has shape .* the model expects/);
    // The schedule does not fit in the fine-tuning steps.
    r = await runJob({ ...quick, finetune: { ...quick.finetune, steps: 4 } });
    expect(r.error?.message).toMatch(/removal schedule for 1 blocks ends at step 4 .* finetune.steps is 4/);
    // Token ids beyond the model's vocabulary (50 here).
    const okDir = tmp();
    await saveModel(m, okDir);
    const bin = path.join(tmp(), 'tokens.bin');
    await writeTokenFile(
      bin,
      Array.from({ length: 400 }, (_, i) => (i === 123 ? 60 : i % 50)),
    );
    r = await runJob({ ...quick, source: { kind: 'folder', path: okDir }, data: { source: 'tokens', path: bin } });
    expect(r.error?.message).toMatch(/the token id at position 123 is outside the model's vocabulary \(50\)/);
    // None of these started a run's training: no metrics were written.
    m.dispose();
  });
});

describe.skipIf(!hasTorch)('PyTorch parity (plain GPT-2 in torch_check.py)', () => {
  const py = (...args: string[]) =>
    JSON.parse(
      execFileSync('/usr/bin/python3', [script, ...args], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .pop()!,
    );

  it('a HF-layout GPT-2 written by PyTorch (public-checkpoint names, attn.bias buffers) loads and gives the same CE', async () => {
    const dir = tmp();
    py('random-gpt2', dir, '--layers', '2', '--embd', '32', '--heads', '4', '--vocab', '64', '--ctx', '16', '--seed', '1', '--no-prefix');
    const m = (await loadLM(dir)) as GPT2;
    const x = ids(2, 16, 1).map((v) => v % 64);
    const y = ids(2, 16, 2).map((v) => v % 64);
    const ours = tf.tidy(() => {
      const logits = m.forward(tf.tensor2d(x, [2, 16], 'int32'));
      const logp = tf.logSoftmax(logits);
      return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor2d(y, [2, 16], 'int32'), 64)), -1))).dataSync()[0];
    });
    const wfile = path.join(dir, 'windows.json');
    fs.writeFileSync(
      wfile,
      JSON.stringify({ x: [Array.from(x.slice(0, 16)), Array.from(x.slice(16))], y: [Array.from(y.slice(0, 16)), Array.from(y.slice(16))] }),
    );
    expect(Math.abs(py('ce', dir, wfile).loss - ours)).toBeLessThan(1e-4);
    m.dispose();
  });

  it('the exported HF LN-free model gives in PyTorch the CE NormLab reports for the LN-free model (within 1e-4)', async () => {
    const dir = tmp();
    py('random-gpt2', dir, '--layers', '2', '--embd', '32', '--heads', '4', '--vocab', '64', '--ctx', '16', '--seed', '2');
    const m = (await loadLM(dir)) as GPT2;
    // Sigmas measured on data, with the V paths' sigma distinct from the QK paths' (exercises the fold).
    const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'separate', special: false });
    const x = ids(2, 16, 1).map((v) => v % 64);
    tf.tidy(() => {
      m.forward(tf.tensor2d(x, [2, 16], 'int32'), set.hooks(true));
    });
    await set.commit();
    for (const e of removalSchedule(2, { start: 1, gapLn2: 1, gapLn1qk: 1, gapLn1v: 1, gapEot: 1, gapBos: 1, special: false })) set.apply(e);
    const sig = set.frozenSigmas();
    for (let i = 0; i < 2; i++) sig[`h.${i}.ln_1_v`] *= 1.3;
    const free = lnFreeOf(m, sig);
    const freeDir = tmp();
    await saveModel(free, freeDir);
    const { config, tensors } = await loadModelDir(freeDir);
    const hf = toHfLnFree(config, tensors);
    const hfDir = tmp();
    await saveModelDir(hfDir, hf.config, hf.tensors);
    const y = ids(2, 16, 2).map((v) => v % 64);
    const ours = tf.tidy(() => {
      const logp = tf.logSoftmax(free.forward(tf.tensor2d(x, [2, 16], 'int32')));
      return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor2d(y, [2, 16], 'int32'), 64)), -1))).dataSync()[0];
    });
    const wfile = path.join(hfDir, 'windows.json');
    fs.writeFileSync(
      wfile,
      JSON.stringify({ x: [Array.from(x.slice(0, 16)), Array.from(x.slice(16))], y: [Array.from(y.slice(0, 16)), Array.from(y.slice(16))] }),
    );
    const torchLoss = py('ce', hfDir, wfile).loss;
    expect(Math.abs(torchLoss - ours)).toBeLessThan(1e-4);
    // And the torch loss of the LN model differs: the removal changed the function.
    expect(Math.abs(py('ce', dir, wfile).loss - torchLoss)).toBeGreaterThan(1e-3);
    set.dispose();
    m.dispose();
    free.dispose();
  });
});

describe('official recipes as presets', () => {
  it('fill in each GPT-2 size from config.py: schedule, lr, aux weight, momentum per tokens, 2^19 tokens per step, dropout', async () => {
    const { resolveConfig } = await import('../../jobs/config.js');
    const get = (name: string) => resolveConfig({ method: 'ln-removal', preset: name }) as unknown as LNRemovalConfig;
    const want: [string, number, number, number, [number, number, number], number, number, number][] = [
      // name, steps, lr, min_lr, gaps, start, aux, momentum_tokens
      ['ln-removal-gpt2-small', 300, 6e-4, 3e-4, [2, 2, 3], 20, 0.1, 32768],
      ['ln-removal-gpt2-medium', 500, 6e-4, 3e-4, [2, 2, 3], 20, 0.1, 22528],
      ['ln-removal-gpt2-large', 1200, 3e-4, 4e-5, [4, 4, 6], 30, 0.03, 32768],
      ['ln-removal-gpt2-xl', 1200, 1e-4, 2e-5, [4, 4, 6], 50, 0.01, 32768],
      ['ln-removal-gpt2-xl-no-aux', 1200, 1e-4, 2e-5, [2, 2, 3], 20, 0, 32768],
    ];
    for (const [name, steps, lr, minLr, gaps, start, aux, mt] of want) {
      const c = get(name);
      expect([c.finetune.steps, c.finetune.lr, c.finetune.min_lr], name).toEqual([steps, lr, minLr]);
      expect([c.removal.gap_ln2, c.removal.gap_ln1qk, c.removal.gap_ln1v, c.removal.start], name).toEqual([...gaps, start]);
      expect([c.removal.aux_weight, c.removal.momentum, c.removal.momentum_tokens], name).toEqual([aux, 0.9, mt]);
      expect(tokensPerStep(c), name).toBe(2 ** 19);
      expect(c.finetune.dropout, name).toBe(0.1);
      expect(scheduleWarnings(c), name).toEqual([]);
      // 0.9^(B/32) per micro-batch of B 1024-token sequences is 0.9 per 32 sequences.
      if (name.includes('large')) expect(0.9 ** ((28 * 1024) / mt)).toBeCloseTo(0.9 ** (28 / 32), 12);
    }
    // The schedule of the largest fits its steps (ln_f at 50 + 48 * 14 = 722 < 1200).
    const xl = get('ln-removal-gpt2-xl');
    const ev = removalSchedule(48, { start: 50, gapLn2: 4, gapLn1qk: 4, gapLn1v: 6, gapEot: 2, gapBos: 10, special: false });
    expect(ev[ev.length - 1].step).toBe(722);
    expect(ev[ev.length - 1].step).toBeLessThan(xl.finetune.steps);
  });
});
