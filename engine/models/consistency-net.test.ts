import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { AdamW } from '../nn/optim.js';
import { layerNorm } from '../nn/ops.js';
import { ConsistencyNet, NORM_EPS, type ConsistencyNetConfig } from './consistency-net.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const base: ConsistencyNetConfig = {
  arch: 'transformer',
  latent_shape: [4, 4, 2],
  patch: 2,
  width: 16,
  depth: 2,
  heads: 2,
  mlp_ratio: 2,
  norm: 'nsln',
  freq_dim: 8,
};

/** Make every parameter nonzero so gradients reach all of them (adaLN and the output start at 0). */
function perturb(net: ConsistencyNet, seed: number): void {
  for (const [name, v] of net.params.vars) {
    if (!v.trainable) continue;
    net.params.assign(
      name,
      tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.1, 'float32', seed++))),
    );
  }
}

describe('ConsistencyNet', () => {
  it('NsLN keeps its scale at exactly 1 through training while its bias learns', () => {
    const net = new ConsistencyNet(base, 1);
    perturb(net, 10);
    const gammas = [...net.params.vars.keys()].filter((n) => /norm\w*\.weight$/.test(n));
    expect(gammas.length).toBe(2 * base.depth + 1);
    for (const g of gammas) expect(net.params.get(g).trainable).toBe(false);
    const beta0 = net.params.get('blocks.0.norm1.bias').dataSync().slice();
    const opt = new AdamW(net.params);
    const vars = net.params.trainable();
    for (let step = 0; step < 3; step++) {
      const { grads } = tf.variableGrads(() => {
        const y = net.forward(tf.randomNormal([3, 32], 0, 1, 'float32', step), Float32Array.of(-300, 10, 500));
        return tf.mean(tf.square(tf.sub(y, 1))) as tf.Scalar;
      }, vars);
      opt.step(new Map(Object.entries(grads).map(([k, g]) => [net.params.nameOf(vars.find((v) => v.name === k)!), g])), 1e-2);
    }
    for (const g of gammas) expect(Array.from(net.params.get(g).dataSync()).every((v) => v === 1)).toBe(true);
    const beta1 = net.params.get('blocks.0.norm1.bias').dataSync();
    expect(Array.from(beta1).some((v, i) => v !== beta0[i])).toBe(true);
    opt.dispose();
    net.dispose();
  });

  it('LN has no affine parameters (as the official DiT); NsLN equals layerNorm(x, null, beta)', () => {
    const ln = new ConsistencyNet({ ...base, norm: 'ln' }, 1);
    expect([...ln.params.vars.keys()].filter((n) => /norm/.test(n))).toEqual([]);
    const ns = new ConsistencyNet(base, 1);
    expect(ns.params.count() - ln.params.count()).toBe((2 * base.depth + 1) * 2 * base.width); // NsLN: gamma (frozen) + beta per norm
    // With NsLN's betas at zero (their init) both nets compute the same function.
    perturb(ln, 3);
    for (const [name, v] of ln.params.vars) ns.params.assign(name, v);
    const xin = tf.randomNormal([2, 32], 0, 1, 'float32', 5);
    const yLn = ln.forward(xin, Float32Array.of(-100, 200)).dataSync();
    const yNs = ns.forward(xin, Float32Array.of(-100, 200)).dataSync();
    yLn.forEach((v, i) => expect(v).toBeCloseTo(yNs[i], 5));
    ln.dispose();
    ns.dispose();
    const x = tf.randomNormal([2, 3, 16]);
    const beta = tf.randomNormal([16]);
    const a = layerNorm(x, null, beta, NORM_EPS).dataSync();
    const b = layerNorm(x, tf.ones([16]), beta, NORM_EPS).dataSync();
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 6));
  });

  it('starts as F = 0 (zero-initialized adaLN and output) and round-trips patches', () => {
    for (const arch of ['transformer', 'mlp'] as const) {
      const net = new ConsistencyNet({ ...base, arch }, 2);
      const x = tf.randomNormal([3, 32]);
      const y = net.forward(x, Float32Array.of(0, 1, 2));
      expect(Array.from(y.dataSync()).every((v) => v === 0)).toBe(true);
      const back = net.unpatchify(net.patchify(x));
      expect(Array.from(back.dataSync())).toEqual(Array.from(x.dataSync()));
      net.dispose();
    }
    // patchify groups 2x2 spatial neighbours (HWC order): token 0 holds pixels (0,0),(0,1),(1,0),(1,1)
    const net = new ConsistencyNet({ ...base, latent_shape: [4, 4, 1], patch: 2 }, 0);
    const t = net.patchify(tf.reshape(tf.range(0, 16), [1, 16]));
    expect(Array.from(t.dataSync().slice(0, 4))).toEqual([0, 1, 4, 5]);
    net.dispose();
  });

  it('rejects a latent shape the network cannot take, before training', () => {
    expect(() => new ConsistencyNet({ ...base, latent_shape: [5, 4, 2], patch: 2 })).toThrow(/latent shape 5x4x2 cannot be cut into 2x2 patches/);
    expect(() => new ConsistencyNet({ ...base, width: 15 })).toThrow(/width 15 is not divisible by heads 2/);
  });
});
