import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { attention, crossEntropy, gelu, layerNorm, rmsNorm } from './ops.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** Central finite-difference check of d/dx sum(f(x) * r) against tfjs's gradient. */
function gradCheck(f: (x: tf.Tensor) => tf.Tensor, shape: number[], seed: number): number {
  const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
  const r = tf.randomNormal(f(x).shape, 0, 1, 'float32', seed + 1);
  const objective = (t: tf.Tensor) => tf.sum(tf.mul(f(t), r));
  const analytic = tf.grad(objective)(x).dataSync();
  const xs = x.dataSync().slice();
  const eps = 1e-2;
  let worst = 0;
  for (let i = 0; i < xs.length; i++) {
    const plus = xs.slice();
    plus[i] += eps;
    const minus = xs.slice();
    minus[i] -= eps;
    const fp = objective(tf.tensor(plus, shape)).dataSync()[0];
    const fm = objective(tf.tensor(minus, shape)).dataSync()[0];
    const numeric = (fp - fm) / (2 * eps);
    worst = Math.max(worst, Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric)));
  }
  return worst;
}

describe('norms', () => {
  it('LayerNorm of [1, 2, 3] is [-1.2247, 0, 1.2247] (hand-computed)', () => {
    const y = layerNorm(tf.tensor2d([[1, 2, 3]]), null, null, 0).dataSync();
    const s = Math.sqrt(2 / 3);
    expect(Array.from(y)).toEqual([expect.closeTo(-1 / s, 5), expect.closeTo(0, 6), expect.closeTo(1 / s, 5)]);
  });

  it('LayerNorm applies gamma and beta after normalizing', () => {
    const y = layerNorm(tf.tensor2d([[1, 3]]), tf.tensor1d([2, 3]), tf.tensor1d([10, 20]), 0).dataSync();
    expect(Array.from(y)).toEqual([expect.closeTo(8, 5), expect.closeTo(23, 5)]);
  });

  it('RMSNorm of [3, 4] divides by sqrt(12.5) (hand-computed)', () => {
    const y = rmsNorm(tf.tensor2d([[3, 4]]), tf.tensor1d([1, 2]), 0).dataSync();
    const rms = Math.sqrt(12.5);
    expect(Array.from(y)).toEqual([expect.closeTo(3 / rms, 5), expect.closeTo(8 / rms, 5)]);
  });

  it('LayerNorm and RMSNorm gradients match finite differences', () => {
    expect(gradCheck((x) => layerNorm(x, tf.tensor1d([1.5, 0.5, 1, 2, -1]), tf.tensor1d([0, 1, 0, 0, 2]), 1e-5), [3, 5], 1)).toBeLessThan(2e-2);
    expect(gradCheck((x) => rmsNorm(x, tf.tensor1d([1.5, 0.5, 1, 2, -1]), 1e-6), [3, 5], 2)).toBeLessThan(2e-2);
  });
});

describe('attention', () => {
  it('the first query attends only to the first key under the causal mask', () => {
    const q = tf.randomNormal([1, 2, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const k = tf.randomNormal([1, 2, 4, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const v = tf.randomNormal([1, 2, 4, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const out = attention(q, k, v, true);
    const first = tf.slice(out, [0, 0, 0, 0], [1, 2, 1, 3]).dataSync();
    const v0 = tf.slice(v, [0, 0, 0, 0], [1, 2, 1, 3]).dataSync();
    first.forEach((x, i) => expect(x).toBeCloseTo(v0[i], 5));
  });

  it('matches softmax(q k^T / sqrt(d)) v computed by hand for one head', () => {
    const q = tf.tensor4d([
      [
        [
          [1, 0],
          [0, 1],
        ],
      ],
    ]);
    const k = tf.tensor4d([
      [
        [
          [1, 0],
          [1, 1],
        ],
      ],
    ]);
    const v = tf.tensor4d([
      [
        [
          [1, 2],
          [3, 4],
        ],
      ],
    ]);
    const out = attention(q, k, v, false).dataSync();
    // Row 0: scores [1, 1]/sqrt2 -> equal weights -> [2, 3]. Row 1: scores [0, 1]/sqrt2.
    const w1 = 1 / (1 + Math.exp(1 / Math.SQRT2));
    expect(Array.from(out)).toEqual([
      expect.closeTo(2, 5),
      expect.closeTo(3, 5),
      expect.closeTo(w1 * 1 + (1 - w1) * 3, 5),
      expect.closeTo(w1 * 2 + (1 - w1) * 4, 5),
    ]);
  });

  it('gradients through causal attention match finite differences', () => {
    const k = tf.randomNormal([1, 2, 3, 4], 0, 1, 'float32', 7) as tf.Tensor4D;
    const v = tf.randomNormal([1, 2, 3, 4], 0, 1, 'float32', 8) as tf.Tensor4D;
    expect(gradCheck((q) => attention(q as tf.Tensor4D, k, v, true), [1, 2, 3, 4], 9)).toBeLessThan(2e-2);
    const q = tf.randomNormal([1, 2, 3, 4], 0, 1, 'float32', 10) as tf.Tensor4D;
    expect(gradCheck((kk) => attention(q, kk as tf.Tensor4D, v, true), [1, 2, 3, 4], 11)).toBeLessThan(2e-2);
  });
});

describe('activations and loss', () => {
  it('GELU tanh and erf forms agree to 1e-3 and give 0.8413 at 1', () => {
    const x = tf.linspace(-4, 4, 33);
    const a = gelu(x, 'tanh').dataSync();
    const b = gelu(x, 'erf').dataSync();
    a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-3));
    expect(gelu(tf.scalar(1), 'erf').dataSync()[0]).toBeCloseTo(0.841345, 5);
  });

  it('cross-entropy equals -log softmax at the target (hand-computed)', () => {
    const logits = tf.tensor3d([
      [
        [1, 2, 3],
        [0, 0, 0],
      ],
    ]);
    const y = tf.tensor2d([[2, 1]], [1, 2], 'int32');
    const expected = (-(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
    expect(crossEntropy(logits, y).dataSync()[0]).toBeCloseTo(expected, 5);
  });
});
