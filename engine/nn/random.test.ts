import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { normalInit } from './params.js';
import { seededNormal, seededUniform, tfjsSeed } from './random.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const values = async (t: tf.Tensor) => {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
};

describe('seeded random tensors', () => {
  it('seed 0 draws the same numbers every time (tfjs alone draws from Math.random for seed 0)', async () => {
    for (const draw of [() => seededNormal([64], 0, 1, 0), () => seededUniform([64], 0, 1, 0), () => normalInit([8, 8], 1, 0)]) {
      const [a, b] = [await values(draw()), await values(draw())];
      expect(b).toEqual(a);
      expect(new Set(a).size).toBe(64); // real samples, not a constant
    }
  });

  it('seed 0 and seed 1 give different streams; other seeds reach tfjs unchanged', async () => {
    expect(await values(seededNormal([16], 0, 1, 0))).not.toEqual(await values(seededNormal([16], 0, 1, 1)));
    expect(await values(seededNormal([16], 2, 3, 7))).toEqual(await values(tf.randomNormal([16], 2, 3, 'float32', 7)));
  });

  it('rejects a seed that is not an integer ≥ 0', () => {
    for (const bad of [-1, 0.5, NaN, 2 ** 60]) expect(() => tfjsSeed(bad)).toThrow(/random seed must be an integer ≥ 0/);
  });
});
