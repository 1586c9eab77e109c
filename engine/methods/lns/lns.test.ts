import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectConfigError } from '../../testing/helpers.js';
import { initBackend } from '../../backend/backend.js';
import { evalWindows } from '../../data/batches.js';
import { resolveConfig } from '../../jobs/config.js';
import '../../jobs/all.js';
import { JobQueue } from '../../jobs/queue.js';
import { Llama, llamaConfigFromJson } from '../../models/llama.js';
import { Project } from '../../store/runs.js';
import { childConfig, type LnsStudyConfig } from './study.js';
import { lmEvalLoss } from '../../train/lm-step.js';
import {
  angularDistance,
  angularDistanceMatrix,
  deepHalfMean,
  gradHistoryFromMetrics,
  layerPruning,
  percentile,
  residualStats,
  rowNormalizedAngular,
  type Diagnostics,
} from './diagnostics.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const llama = (layers: number, variant: 'pre' | 'lns' = 'pre') =>
  new Llama(
    llamaConfigFromJson({
      vocab_size: 50,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: layers,
      num_attention_heads: 2,
      max_position_embeddings: 12,
      initializer_range: 0.2,
      normlab_norm_variant: variant,
    }),
    4,
  );
const tokens = Uint16Array.from({ length: 12 * 6 + 1 }, (_, i) => (i * 17 + 3) % 50);
const windows = () => evalWindows(tokens, 12, 6);

describe('angular distance', () => {
  it('is 0 to itself, 1 to its negation, 1/2 to an orthogonal vector, whatever the lengths', () => {
    const a = [0.3, -1.2, 2.5, 0.7];
    expect(angularDistance(a, a)).toBe(0);
    expect(
      angularDistance(
        a,
        a.map((v) => 5 * v),
      ),
    ).toBeCloseTo(0, 6);
    expect(
      angularDistance(
        a,
        a.map((v) => -v),
      ),
    ).toBe(1);
    expect(angularDistance([1, 0, 0], [0, 2, 0])).toBeCloseTo(0.5, 12);
    expect(angularDistance([1, 0], [1, 1])).toBeCloseTo(0.25, 12);
  });

  it('the (l, n) matrix averages over samples and is empty beyond the depth; n > L is a config error', () => {
    // Two samples, width 2, layers x_0..x_2 (L = 2).
    const lastToken = [Float32Array.from([1, 0, 0, 1]), Float32Array.from([0, 1, 0, 1]), Float32Array.from([-1, 0, 0, -1])];
    const d = angularDistanceMatrix({ variance: [1, 1, 1], tokenVariance: [1, 1, 1], lastToken, blockInfluence: [], samples: 2, width: 2 }, 2);
    expect(d[0][0]).toBeCloseTo((0.5 + 0) / 2, 12); // x_0 -> x_1: sample 0 orthogonal, sample 1 identical
    expect(d[0][1]).toBeCloseTo((0.5 + 1) / 2, 12); // x_1 -> x_2
    expect(d[1][0]).toBeCloseTo(1, 12); // x_0 -> x_2: both opposite
    expect(Number.isNaN(d[1][1])).toBe(true); // x_1 -> x_3 does not exist
    expectConfigError(
      () => angularDistanceMatrix({ variance: [1, 1, 1], tokenVariance: [1, 1, 1], lastToken, blockInfluence: [], samples: 2, width: 2 }, 3),
      /n = 3 is beyond the model's depth: choose 1\.\.2/,
    );
  });
});

describe('the official heatmap normalization', () => {
  it('percentile interpolates linearly like numpy; each n row is clipped to its 1-99 percentiles and min-max normalized', () => {
    expect(percentile([5, 1, 3], 1)).toBeCloseTo(1.04, 12); // rank 0.02 between 1 and 3
    expect(percentile([5, 1, 3, NaN], 99)).toBeCloseTo(4.96, 12);
    expect(percentile([2], 50)).toBe(2);
    const r = rowNormalizedAngular([
      [5, 1, 3, NaN],
      [0.2, 0.2, NaN, NaN],
    ]);
    // Row 1: clipped to [1.04, 4.96] -> [4.96, 1.04, 3], min-max -> [1, 0, (3 - 1.04) / 3.92].
    expect(r[0][0]).toBeCloseTo(1, 12);
    expect(r[0][1]).toBeCloseTo(0, 12);
    expect(r[0][2]).toBeCloseTo(1.96 / 3.92, 12);
    expect(Number.isNaN(r[0][3])).toBe(true);
    // A constant row is 0 where it exists, as in the script.
    expect(r[1].slice(0, 2)).toEqual([0, 0]);
    expect(Number.isNaN(r[1][2])).toBe(true);
  });
});

describe('residual statistics and layer pruning', () => {
  it('x_0 is the embedding output: its element variance, per-token feature variance and last-token rows match the embedding table', async () => {
    const m = llama(2);
    const w = windows();
    const s = await residualStats(m, w, 4, 3);
    const E = m.params.get('model.embed_tokens.weight').dataSync();
    const C = 16;
    let sum = 0;
    let sq = 0;
    let tokenVar = 0; // Σ over tokens of the variance of that token's C features
    for (let i = 0; i < 4 * 12; i++) {
      let ts = 0;
      let tq = 0;
      for (let c = 0; c < C; c++) {
        const v = E[w.x[i] * C + c];
        sum += v;
        sq += v * v;
        ts += v;
        tq += v * v;
      }
      tokenVar += tq / C - (ts / C) ** 2;
    }
    const n = 4 * 12 * C;
    expect(s.variance[0]).toBeCloseTo(sq / n - (sum / n) ** 2, 6);
    expect(s.tokenVariance[0]).toBeCloseTo(tokenVar / (4 * 12), 6);
    expect(s.tokenVariance).toHaveLength(3);
    expect(s.samples).toBe(4);
    expect(s.variance).toHaveLength(3);
    for (let k = 0; k < 4; k++) {
      const tok = w.x[k * 12 + 11];
      expect(Array.from(s.lastToken[0].subarray(k * C, (k + 1) * C))).toEqual(Array.from(E.subarray(tok * C, (tok + 1) * C)));
    }
    m.dispose();
  });

  it('pruning block l removes exactly that block: the 3-block model without block 2 is the 2-block model of blocks 1 and 3', async () => {
    const full = llama(3);
    const cut = llama(2);
    for (const name of cut.params.vars.keys()) {
      const src = name.replace('model.layers.1.', 'model.layers.2.');
      cut.params.assign(name, full.params.get(src));
    }
    const idx = tf.tensor2d(Array.from(tokens.subarray(0, 24)), [2, 12], 'int32');
    const a = tf.tidy(() => full.forward(idx, { skipLayers: new Set([1]) }).dataSync());
    const b = tf.tidy(() => cut.forward(idx).dataSync());
    expect(Array.from(a)).toEqual(Array.from(b));
    idx.dispose();
    const w = windows();
    const p = await layerPruning(full, w, 4);
    const base = await lmEvalLoss(full, w, 4);
    const cutLoss = await lmEvalLoss(cut, w, 4);
    expect(p.base_loss).toBeCloseTo(base, 6); // per-window sums, added in another order
    expect(p.drop_loss).toHaveLength(3);
    expect(p.drop_loss[1]).toBeCloseTo(cutLoss - base, 6);
    expect(p.drop_ppl[1]).toBeCloseTo(Math.exp(cutLoss) - Math.exp(base), 4);
    expect(deepHalfMean([1, 2, 3, 4, 5])).toBe(4); // blocks 3..5 of 5
    full.dispose();
    cut.dispose();
  });

  it("pruning a block of an LNS model keeps every other block's own 1/sqrt(l), not a renumbered one", async () => {
    const lns = llama(3, 'lns');
    const pre = llama(3, 'pre'); // the same weights (same seed, same init under both variants)
    const w = windows();
    // Pre-LN with a norm hook multiplying block i's two norm outputs by s(i) computes LNS by hand.
    const scaledBy = (s: (i: number) => number, skip: number) => ({
      skipLayers: new Set([skip]),
      norm: (site: { layer: number; which: string }, _x: tf.Tensor, real: () => tf.Tensor) => (site.which === 'ln_f' ? real() : tf.mul(real(), s(site.layer))),
    });
    const own = (i: number) => 1 / Math.sqrt(i + 1);
    const p = await layerPruning(lns, w, 4);
    for (let l = 0; l < 3; l++) {
      const byHand = await lmEvalLoss(pre, w, 4, scaledBy(own, l));
      expect(p.drop_loss[l] + p.base_loss).toBeCloseTo(byHand, 5);
    }
    // Renumbering the remaining blocks (block 3 would get 1/sqrt 2) gives another loss.
    const renumbered = await lmEvalLoss(
      pre,
      w,
      4,
      scaledBy((i) => 1 / Math.sqrt(i < 1 ? i + 1 : i), 1),
    );
    expect(Math.abs(p.drop_loss[1] + p.base_loss - renumbered)).toBeGreaterThan(1e-4);
    lns.dispose();
    pre.dispose();
  });

  it('gradient history keeps one row per step (the last, after a resume) and ignores other lines', () => {
    const h = gradHistoryFromMetrics(
      [
        { step: 0, val_loss: 3 },
        { step: 5, layer_grad_norms: [1, 2] },
        { step: 10, layer_grad_norms: [3, 4] },
        { step: 5, layer_grad_norms: [5, 6] },
        { step: 15, layer_grad_norms: [1] },
      ],
      2,
    )!;
    expect(h.steps).toEqual([5, 10]);
    expect(h.norms).toEqual([
      [5, 6],
      [3, 4],
    ]);
    expect(gradHistoryFromMetrics([{ step: 1, loss: 2 }], 2)).toBeNull();
  });
});

describe('bad input is a one-line config error before any training', () => {
  it('lns-study: unknown variant, mix_k > L, mix without k, angular n beyond the depth', () => {
    expectConfigError(() => resolveConfig({ method: 'lns-study', variants: [{ norm: 'pre' }, { norm: 'sandwich' }] }), /variants\.1\.norm/);
    expectConfigError(
      () => resolveConfig({ method: 'lns-study', model: { layers: 6 }, variants: [{ norm: 'mix', mix_k: 7 }] }),
      /variants\.0\.mix_k: mix_k 7 exceeds the number of layers 6/,
    );
    expectConfigError(() => resolveConfig({ method: 'lns-study', variants: [{ norm: 'mix' }] }), /mix needs mix_k/);
    expectConfigError(
      () => resolveConfig({ method: 'lns-study', model: { layers: 6 }, diagnostics: { max_n: 7 } }),
      /diagnostics\.max_n: angular-distance n = 7 is beyond the depth 6/,
    );
    expectConfigError(() => resolveConfig({ method: 'lns-study', variants: [{ norm: 'pre' }, { norm: 'pre' }] }), /two variants are both "pre"/);
    expectConfigError(() => resolveConfig({ method: 'lm-pretrain', model: { norm: 'sandwich' } }), /model\.norm/);
    expectConfigError(() => resolveConfig({ method: 'lm-pretrain', model: { layers: 2, norm: 'mix', mix_k: 3 } }), /mix_k 3 exceeds the number of layers 2/);
    // The new variants reach the child runs, deepnorm with its rule.
    const dn = resolveConfig({
      method: 'lns-study',
      variants: [{ norm: 'deepnorm', deepnorm: 'deepnet' }, { norm: 'lns-scaled-init' }],
    }) as unknown as LnsStudyConfig;
    expect(childConfig(dn, dn.variants[0]).model).toMatchObject({ norm: 'deepnorm', deepnorm: 'deepnet' });
    expect(childConfig(dn, dn.variants[1]).model).toMatchObject({ norm: 'lns-scaled-init' });
    expect(resolveConfig(childConfig(dn, dn.variants[0]))).toMatchObject({ model: { norm: 'deepnorm', deepnorm: 'deepnet' } });
    // A partial train section keeps the study's defaults for the rest.
    const c = resolveConfig({ method: 'lns-study', train: { steps: 40, warmup: 4 } }) as unknown as {
      train: { steps: number; seq: number };
      model: { layers: number };
    };
    expect([c.train.steps, c.train.seq, c.model.layers]).toEqual([40, 64, 12]);
  });

  it('lns-diagnostics: run and model both or neither; n beyond the depth fails before any computation', async () => {
    expectConfigError(() => resolveConfig({ method: 'lns-diagnostics' }), /exactly one of run .* or model/);
    expectConfigError(() => resolveConfig({ method: 'lns-diagnostics', run: 'x', model: 'y' }), /exactly one of run/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lns-diag-'));
    const m = llama(2);
    const { saveModel } = await import('../../models/index.js');
    await saveModel(m, path.join(dir, 'model'));
    m.dispose();
    const q = new JobQueue(Project.open(dir), 'wasm');
    const run = q.enqueue({ method: 'lns-diagnostics', model: path.join(dir, 'model'), max_n: 3 });
    await q.wait(run.id);
    const done = q.project.run(run.id);
    expect(done.status).toBe('failed');
    expect(done.record.error).toEqual({
      code: 'config',
      message: expect.stringMatching(/max_n 3 is beyond the model's depth: the angular distance needs n <= 2/),
    });
    expect(done.artifacts()).toEqual([]);
  });
});

describe('lns-study and the end-of-run diagnostics', () => {
  it('a tiny study trains pre and lns alike and lists per variant loss, ppl, variance and the deep-half pruning drop', async () => {
    const q = new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'lns-study-'))), 'wasm');
    const run = q.enqueue({
      method: 'lns-study',
      seed: 2,
      model: { layers: 4, d_model: 16, heads: 2 },
      train: { steps: 8, batch: 4, seq: 16, warmup: 2, eval_every: 4, eval_windows: 4, log_every: 2, checkpoint_every: 8 },
      diagnostics: { sequences: 5, pruning_windows: 3, max_n: 3, variance: 'per-token' },
    });
    await q.wait(run.id);
    const done = q.project.run(run.id);
    expect(done.record.error).toBeNull();
    const s = done.readSummary() as { key_result: { label: string; value: number }; variants: Record<string, unknown>[] };
    expect(s.variants.map((v) => v.variant)).toEqual(['pre', 'lns']);
    for (const v of s.variants) {
      expect(v.final_val_ppl as number).toBeCloseTo(Math.exp(v.final_val_loss as number), 6);
      expect(v.layer_variance).toHaveLength(5);
      expect(v.prune_drop_loss).toHaveLength(4);
      const drops = v.prune_drop_loss as number[];
      expect(v.deep_half_prune_drop_mean as number).toBeCloseTo((drops[2] + drops[3]) / 2, 9);
      expect(v.layer_grad_norm_mean).toHaveLength(4);
    }
    // The key result: val loss lns − pre, paired over the validation windows both variants scored.
    const kr = s.key_result as { label: string; value: number; ci95: [number, number]; verdict: string; interval: string };
    expect(kr.label).toBe('val loss lns − pre');
    expect(kr.interval).toMatch(/^paired t over all [\d,]+ validation windows of \d+ tokens \(the whole split\)$/);
    expect(kr.value).toBeCloseTo((s.variants[1].final_val_loss as number) - (s.variants[0].final_val_loss as number), 5);
    expect(kr.ci95[0]).toBeLessThanOrEqual(kr.value);
    expect(kr.ci95[1]).toBeGreaterThanOrEqual(kr.value);
    expect(s.variants[1].val_loss_minus_first_verdict).toBe(kr.verdict);
    for (const f of [
      'ppl_table.csv',
      'ppl_table.json',
      'loss_curves.png',
      'layer_variance.png',
      'layer_pruning.png',
      'layer_grad_norms.png',
      'angular_distance.png',
      'angular_distance_row_normalized.png',
      'diagnostics.json',
    ]) {
      expect(done.artifacts()).toContain(f);
    }
    expect(fs.readFileSync(path.join(done.artifactsDir, 'ppl_table.csv'), 'utf8').split('\n')[0]).toMatch(
      /^variant,norm,norm_type,mix_k,final_val_loss,final_val_ppl,val_loss_minus_first,val_loss_minus_first_ci95_lo,val_loss_minus_first_ci95_hi,val_loss_minus_first_verdict,deep_half_prune_drop_mean/,
    );
    // The children: same seed, data and schedule; only the norm differs; their own diagnostics used the study's sizes.
    const children = q.project.listRuns().filter((r) => r.record.parent === run.id);
    expect(children).toHaveLength(2);
    const cfgs = children.map((c) => c.record.config as { seed: number; model: { norm: string }; train: unknown; data: unknown });
    expect(cfgs.map((c) => c.model.norm).sort()).toEqual(['lns', 'pre']);
    expect(cfgs[0].train).toEqual(cfgs[1].train);
    expect(cfgs[0].data).toEqual(cfgs[1].data);
    expect(cfgs[0].seed).toBe(2);
    for (const c of children) {
      const d = JSON.parse(fs.readFileSync(path.join(c.artifactsDir, 'diagnostics.json'), 'utf8')) as Diagnostics;
      expect(d.angular.samples).toBe(5); // the study's sizes, not the end-of-run defaults (8)
      expect(d.angular.n).toEqual([1, 2, 3]);
      expect(d.variance_definition).toBe('per-token');
      expect(d.variance).toEqual(d.variance_per_token);
      expect(
        d.angular.d_row_normalized
          .flat()
          .filter((v) => v !== null)
          .every((v) => v! >= 0 && v! <= 1),
      ).toBe(true);
      expect(d.grad_norms!.source).toBe('training');
      for (const f of [
        'layer_variance.png',
        'angular_distance.png',
        'angular_distance_row_normalized.png',
        'layer_pruning.png',
        'layer_grad_norms.png',
        'layer_grad_norms.csv',
      ])
        expect(c.artifacts()).toContain(f);
    }

    // lns-diagnostics on one of those runs: its checkpoint, data and gradient history.
    const diag = q.enqueue({ method: 'lns-diagnostics', run: children[0].id, sequences: 3, pruning_windows: 2 });
    await q.wait(diag.id);
    const dd = q.project.run(diag.id);
    expect(dd.record.error).toBeNull();
    const ds = dd.readSummary()!;
    expect(ds.layer_variance).toHaveLength(5);
    expect((ds.key_result as { value: number }).value).toBeCloseTo(ds.deep_half_prune_drop_mean as number, 12);
    expect(JSON.parse(fs.readFileSync(path.join(dd.artifactsDir, 'diagnostics.json'), 'utf8')).grad_norms.source).toBe('training');
    // ... and on a bare model folder: the gradient is taken at the checkpoint.
    const diag2 = q.enqueue({ method: 'lns-diagnostics', model: children[0].latestCheckpoint()!.dir, sequences: 3, pruning_windows: 2 });
    await q.wait(diag2.id);
    const d2 = JSON.parse(fs.readFileSync(path.join(q.project.run(diag2.id).artifactsDir, 'diagnostics.json'), 'utf8')) as Diagnostics;
    expect(d2.grad_norms!.source).toBe('checkpoint');
    expect(d2.grad_norms!.per_layer.every((g) => g > 0)).toBe(true);
  });
});
