import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { hasTorch, PYTHON } from '../testing/torch.js';
import { RAdam } from './optim.js';
import { ParamSet } from './params.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A deterministic gradient for parameter `k`'s element i at step t (no RNG shared with Python). */
const gradAt = (t: number, k: number, i: number) => Math.sin(0.7 * t + 1.3 * i + k) * (1 + 0.5 * Math.cos(t * i));

describe('RAdam', () => {
  it('takes the un-adapted momentum step while rho_t <= 5 and the rectified one after (hand-computed r_t)', () => {
    const ps = new ParamSet();
    const opt = new RAdam(ps, { beta1: 0.9, beta2: 0.999 });
    // rho_inf = 1999; rho_t = 1999 - 2 t 0.999^t / (1 - 0.999^t): 1 at t = 1, just above 5 first at t = 6.
    expect(opt.rectification(1)).toBeNull();
    expect(opt.rectification(5)).toBeNull();
    const rhoInf = 1999;
    const rho6 = rhoInf - (2 * 6 * 0.999 ** 6) / (1 - 0.999 ** 6);
    expect(opt.rectification(6)).toBeCloseTo(Math.sqrt(((rho6 - 4) * (rho6 - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rho6)), 12);
    expect(opt.rectification(100000)).toBeCloseTo(1, 3); // r_t -> 1
    // Step 1 is lr * m_hat = lr * g (bias-corrected first moment of one gradient).
    ps.add('w', tf.tensor1d([1, -2]));
    const one = new RAdam(ps, { weightDecay: 0 });
    const g = tf.tensor1d([0.5, 3]);
    one.step(new Map([['w', g]]), 0.1);
    expect(Array.from(ps.get('w').dataSync())).toEqual([expect.closeTo(0.95, 6), expect.closeTo(-2.3, 6)]);
    g.dispose();
    one.dispose();
    opt.dispose();
    ps.dispose();
  });

  it.skipIf(!hasTorch)('matches torch.optim.RAdam over 12 steps (both branches, L2 weight decay, eps 1e-4, a changing lr) within 1e-5', () => {
    const shapes: Record<string, number[]> = { a: [3, 2], b: [4] };
    const init: Record<string, number[]> = { a: [0.3, -0.1, 0.8, 0.05, -0.6, 0.2], b: [1, -1, 0.5, 0] };
    const steps = 12;
    const lrs = Array.from({ length: steps }, (_, t) => 1e-2 * (1 + 0.1 * t));
    const grads = Array.from({ length: steps }, (_, t) => Object.fromEntries(Object.keys(shapes).map((n, k) => [n, init[n].map((_, i) => gradAt(t, k, i))])));
    const nested = (n: string, flat: number[]) =>
      shapes[n].length === 2 ? Array.from({ length: shapes[n][0] }, (_, r) => flat.slice(r * shapes[n][1], (r + 1) * shapes[n][1])) : flat;
    const input = {
      optimizer: 'radam',
      lr: lrs,
      betas: [0.9, 0.999],
      eps: 1e-4,
      weight_decay: 1e-2,
      params: Object.fromEntries(Object.keys(shapes).map((n) => [n, nested(n, init[n])])),
      grads: grads.map((g) => Object.fromEntries(Object.entries(g).map(([n, v]) => [n, nested(n, v)]))),
    };
    const ref = JSON.parse(
      execFileSync(PYTHON, [path.join(__dirname, 'torch_optim_check.py')], { input: JSON.stringify(input), encoding: 'utf8' })
        .trim()
        .split('\n')
        .at(-1)!,
    ) as { steps: Record<string, number[]>[] };

    const ps = new ParamSet();
    for (const n of Object.keys(shapes)) ps.add(n, tf.tensor(init[n], shapes[n]));
    const opt = new RAdam(ps, { beta1: 0.9, beta2: 0.999, eps: 1e-4, weightDecay: 1e-2, decay: () => true });
    for (let t = 0; t < steps; t++) {
      const g = new Map(Object.keys(shapes).map((n) => [n, tf.tensor(grads[t][n], shapes[n])] as const));
      opt.step(g, lrs[t]);
      for (const x of g.values()) x.dispose();
      for (const n of Object.keys(shapes)) {
        const ours = ps.get(n).dataSync();
        ref.steps[t][n].forEach((v, i) => expect(Math.abs(ours[i] - v), `step ${t + 1} ${n}[${i}]`).toBeLessThan(1e-5));
      }
    }
    // The parameters really moved by more than the tolerance.
    expect(Math.abs(ref.steps[steps - 1].a[0] - init.a[0])).toBeGreaterThan(1e-2);
    opt.dispose();
    ps.dispose();
  });
});
