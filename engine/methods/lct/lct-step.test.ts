/**
 * An independent check of one LCT training step on a tiny network: the grid pairs and their
 * distribution, lambda, the diffusion-loss mask and weight, the Cauchy consistency loss, the OT
 * pairing, the stop-gradient target and the EMA, each against values computed here by hand or by
 * PyTorch (torch_check.py), not by the code under test.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { Rng } from '../../data/rng.js';
import { ConsistencyNet } from '../../models/consistency-net.js';
import { hasTorch, PYTHON } from '../../testing/torch.js';
import { EDM, karrasSigmas, scalingC, timestepProbs } from './edm.js';
import {
  createLctTrainStep,
  denoise,
  disposeLctStep,
  drawLctBatch,
  improvementsSchema,
  lctLoss,
  lctOptimizer,
  lctTarget,
  lctTrainSchema,
  type LctBatch,
} from './lct.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const D = 4;
const netConfig = {
  arch: 'mlp' as const,
  latent_shape: [1, 2, 2] as [number, number, number],
  patch: 1,
  width: 8,
  depth: 1,
  heads: 1,
  mlp_ratio: 2,
  norm: 'nsln' as const,
  freq_dim: 8,
};

/** A tiny net with every trainable weight nonzero (adaLN and the output start at 0). */
function tinyNet(seed: number): ConsistencyNet {
  const net = new ConsistencyNet(netConfig, seed);
  let s = seed * 100;
  for (const [name, v] of net.params.vars)
    if (v.trainable)
      net.params.assign(
        name,
        tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', s++))),
      );
  return net;
}

const latentRows = (n: number, seed: number) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * D }, () => rng.normal());
};

/** iCT's grid of N points with the cumulative pair probabilities, built here from edm.ts's pieces. */
function gridOf(N: number) {
  const sigmas = karrasSigmas(N);
  const p = timestepProbs(sigmas, -1.1, 2.0);
  let acc = 0;
  return { sigmas, cdf: Float64Array.from(p, (v) => (acc += v)), p };
}

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

const rowDist2 = (b: LctBatch, i: number, k: number) => {
  let s = 0;
  for (let d = 0; d < D; d++) s += (b.x0[i * D + d] - b.noise[k * D + d]) ** 2;
  return s;
};

/** The first seed whose batch has rows both inside and outside the diffusion-loss range. */
function mixedBatch(N: number, B: number, latents: Float32Array, n: number): LctBatch {
  for (let seed = 1; ; seed++) {
    const b = drawLctBatch(new Rng(seed), latents, n, D, B, gridOf(N), { ot: true, diffusion_loss: true });
    if (b.nDiff > 0 && b.nDiff < B) return b;
  }
}

describe('one LCT training step, checked independently', () => {
  it('draws grid pairs (j, j+1) with their lambda, diffusion mask and weight, and an optimal OT pairing', () => {
    const N = 21;
    const latents = latentRows(10, 4);
    const b = mixedBatch(N, 6, latents, 10);
    const sigmas = karrasSigmas(N);
    const firstDiff = Math.floor(0.75 * N); // 15: the smallest 25% of sigmas
    for (let i = 0; i < b.B; i++) {
      const j = b.j[i];
      expect(j >= 0 && j <= N - 2).toBe(true);
      expect(b.sHi[i]).toBe(Math.fround(sigmas[j]));
      expect(b.sLo[i]).toBe(Math.fround(sigmas[j + 1]));
      expect(b.lambda[i]).toBe(Math.fround(1 / (sigmas[j] - sigmas[j + 1])));
      expect(b.diffMask[i]).toBe(j >= firstDiff ? 1 : 0);
      expect(b.diffW[i]).toBe(j >= firstDiff ? Math.fround(1 / sigmas[j] ** 2 + 1 / 0.25) : 0);
      // Each latent row is one of the data rows.
      const row = Array.from(b.x0.subarray(i * D, (i + 1) * D));
      expect([...Array(10).keys()].some((r) => row.every((v, d) => v === latents[r * D + d]))).toBe(true);
    }
    expect(b.nDiff).toBe(Array.from(b.j).filter((j) => j >= firstDiff).length);
    // OT: pairing latent i with noise row i is the cheapest of all 720 pairings of these rows.
    const cost = (perm: number[]) => perm.reduce((s, k, i) => s + rowDist2(b, i, k), 0);
    const identity = cost([...Array(b.B).keys()]);
    for (const p of permutations(b.B)) expect(identity).toBeLessThanOrEqual(cost(p) + 1e-9);
    // Without OT the same draws keep the noise in drawing order, which is not the optimum here.
    const seedBatch = (ot: boolean) => drawLctBatch(new Rng(3), latents, 10, D, 6, gridOf(N), { ot, diffusion_loss: true });
    const plain = seedBatch(false);
    const coupled = seedBatch(true);
    expect(Array.from(plain.j)).toEqual(Array.from(coupled.j)); // OT permutes the noise only
    expect(Array.from(plain.noise).sort()).toEqual(Array.from(coupled.noise).sort());
  });

  it.skipIf(!hasTorch)("draws j with iCT's lognormal pair probabilities (PyTorch erf) and scores the Cauchy loss as the LCT code writes it", () => {
    const N = 11;
    const sigmas = Array.from(karrasSigmas(N));
    const B = 6000;
    const latents = latentRows(3, 1);
    const big = drawLctBatch(new Rng(11), latents, 3, D, B, gridOf(N), { ot: false, diffusion_loss: true });
    // A small batch on the tiny net for the loss.
    const net = tinyNet(2);
    const b = mixedBatch(41, 8, latentRows(12, 2), 12);
    const c = 0.01;
    const target = lctTarget(net, b);
    const student = tf.tidy(() =>
      denoise(net, tf.add(tf.tensor2d(b.x0, [b.B, D]), tf.mul(tf.tensor2d(b.noise, [b.B, D]), tf.tensor2d(b.sHi, [b.B, 1]))), b.sHi),
    );
    const [sv, tv] = [student.dataSync(), target.dataSync()];
    const m = Array.from({ length: b.B }, (_, i) => Array.from({ length: D }, (_, d) => (sv[i * D + d] - tv[i * D + d]) ** 2).reduce((x, y) => x + y) / D);
    const md = Array.from({ length: b.B }, (_, i) => Array.from({ length: D }, (_, d) => (sv[i * D + d] - b.x0[i * D + d]) ** 2).reduce((x, y) => x + y) / D);
    const ref = JSON.parse(
      execFileSync(PYTHON, [path.join(__dirname, 'torch_check.py')], {
        input: JSON.stringify({
          a: [
            [0, 1],
            [1, 0],
            [2, 2],
          ],
          b: [
            [0, 2],
            [1, 1],
            [3, 0],
          ],
          m,
          c,
          sigmas,
          p_mean: -1.1,
          p_std: 2.0,
        }),
      }).toString(),
    ) as { cauchy: number[]; timestep_probs: number[] };

    ref.timestep_probs.forEach((p, j) => {
      const f = Array.from(big.j).filter((x) => x === j).length / B;
      expect(Math.abs(f - p), `pair ${j}: frequency ${f} vs P ${p}`).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / B) + 1e-3);
    });
    const l = lctLoss(net, b, target, c, true, 5);
    const ctByHand = ref.cauchy.reduce((s, v, i) => s + b.lambda[i] * v, 0) / b.B;
    const diffByHand = md.reduce((s, v, i) => s + (b.diffMask[i] ? b.diffW[i] * v : 0), 0) / b.nDiff;
    expect(l.ct.dataSync()[0] / ctByHand).toBeCloseTo(1, 4);
    expect(l.diff.dataSync()[0] / diffByHand).toBeCloseTo(1, 4);
    expect(l.total.dataSync()[0] / (ctByHand + 5 * diffByHand)).toBeCloseTo(1, 4);
    // Micro-batch shares (rows 0-2 and 3-7, each with its own target rows) add up to the batch's loss.
    const share = (start: number, rows: number) => {
      const tg = lctTarget(net, b, { start, rows });
      const v = lctLoss(net, b, tg, c, true, 5, { start, rows }).total.dataSync()[0];
      tg.dispose();
      return v;
    };
    expect((share(0, 3) + share(3, 5)) / l.total.dataSync()[0]).toBeCloseTo(1, 5);
    for (const t of [target, student, l.total, l.ct, l.diff]) t.dispose();
    net.dispose();
  });

  it('the step descends the loss with the target held fixed (stop-gradient) and moves the EMA by (1 - decay)', () => {
    const net = tinyNet(3);
    const ema = net.cloneParams();
    const train = lctTrainSchema.parse({ steps: 10, batch: 8, optimizer: 'radam', lr: 1, clip: 0, warmup: 0, s0: 40, s1: 40, ema: 0.9, ema_warmup: true });
    const improvements = improvementsSchema.parse({ adaptive_c: false });
    const opt = lctOptimizer(net, train);
    const latents = latentRows(16, 5);
    const before = new Map([...net.params.vars].map(([n, v]) => [n, v.dataSync().slice()] as const));
    // The batch the step will draw: the same generator state, the same call.
    const batch = drawLctBatch(new Rng(9), latents, 16, D, 8, gridOf(41), improvements);
    const c = scalingC(41, D, false, 0);
    const fixedTarget = lctTarget(net, batch);
    const lossAt = (name: string, k: number, h: number, moveTarget: boolean): number =>
      tf.tidy(() => {
        const v = net.params.get(name);
        const orig = v.dataSync().slice();
        const moved = orig.slice();
        moved[k] += h;
        v.assign(tf.tensor(moved, v.shape));
        const target = moveTarget ? lctTarget(net, batch) : fixedTarget;
        const out = lctLoss(net, batch, target, c, true, train.diffusion_weight).total.dataSync()[0];
        v.assign(tf.tensor(orig, v.shape));
        return out;
      });

    // Central differences of the loss at the weights before the step, with the target held
    // fixed and with the target recomputed from the moved weights.
    const name = 'final_layer.linear.weight';
    const h = 1e-3;
    const size = before.get(name)!.length;
    const fdFixed = Array.from({ length: size }, (_, k) => (lossAt(name, k, h, false) - lossAt(name, k, -h, false)) / (2 * h));
    const fdMoving = Array.from({ length: size }, (_, k) => (lossAt(name, k, h, true) - lossAt(name, k, -h, true)) / (2 * h));

    disposeLctStep(createLctTrainStep({ net, ema, opt, latents, n: 16, improvements, train, rng: new Rng(9) })(0));
    // RAdam's first step is p -= lr m_hat = lr g: with lr 1 the applied gradient is before - after.
    const applied = Array.from(before.get(name)!, (v, k) => v - net.params.get(name).dataSync()[k]);
    const k = applied.reduce((best, g, i) => (Math.abs(g) > Math.abs(applied[best]) ? i : best), 0);
    expect(fdFixed[k] / applied[k]).toBeCloseTo(1, 2);
    expect(Math.abs(fdMoving[k] / applied[k] - 1)).toBeGreaterThan(0.2); // differentiating through the target is another gradient

    // EMA at step 0: decay min(0.9, (1 + 0)/(10 + 0)) = 0.1.
    for (const [n, v] of net.params.vars) {
      if (!v.trainable) continue;
      const now = v.dataSync();
      const e = ema.get(n).dataSync();
      before.get(n)!.forEach((b0, i) => expect(e[i]).toBeCloseTo(0.1 * b0 + 0.9 * now[i], 5));
    }
    expect(EDM.sigmaData).toBe(0.5);
    fixedTarget.dispose();
    opt.dispose();
    ema.dispose();
    net.dispose();
  });
});
