/**
 * The threaded wasm build in Node (opt-in with NORMLAB_WASM_THREADS): it starts with the asked
 * thread count, computes the same matmuls as the cpu backend, and does not keep the process alive
 * (vitest's fork would time out if it did).
 */
import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';

describe('wasm with 2 threads', () => {
  it('starts 2 threads and matches the cpu backend on large and batched matmuls', async () => {
    process.env.NORMLAB_WASM_THREADS = '2';
    const a = Float32Array.from({ length: 4 * 96 * 80 }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: 4 * 80 * 72 }, (_, i) => Math.cos(i * 0.7));
    const run = () =>
      [
        tf.matMul(tf.tensor(a, [4 * 96, 80]), tf.reshape(tf.slice(tf.tensor(b, [4, 80, 72]), [0, 0, 0], [1, 80, 72]), [80, 72])),
        tf.matMul(tf.tensor(a, [4, 80, 96]), tf.tensor(b, [4, 72, 80]), true, true),
      ].map((t) => Float32Array.from(t.dataSync()));
    await initBackend('cpu');
    const want = tf.tidy(run);
    const info = await initBackend('wasm');
    expect(info.detail).toMatch(/2 wasm threads/);
    const got = tf.tidy(run);
    for (let k = 0; k < want.length; k++) {
      let worst = 0;
      for (let i = 0; i < want[k].length; i++) worst = Math.max(worst, Math.abs(got[k][i] - want[k][i]));
      expect(worst).toBeLessThan(1e-3);
    }
  });
});
