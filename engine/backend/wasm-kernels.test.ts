/**
 * NormLab's wasm kernels against an independent reference: every case is computed on the `cpu`
 * backend (pure JS, stock kernels) and on `wasm` with NormLab's kernels, and compared.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { nativeKernels, setNativeKernels } from './native.js';
import { fastWasmKernelsEnabled } from './wasm-kernels.js';
import { GPT2, GPT2_DEFAULTS } from '../models/gpt2.js';
import { AdamW } from '../nn/optim.js';
import { lmTrainStep, readStep } from '../train/lm-step.js';
import { compare, expectClose, on, rand, size, withKernelSet } from '../testing/backends.js';

beforeAll(async () => {
  await initBackend('wasm'); // registers NormLab's kernels
  expect(fastWasmKernelsEnabled()).toBe(true);
});

interface MMCase {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
}

/** A matmul case for the given (batch dims, M, K, N) and transposes. */
function mm(aBatch: number[], bBatch: number[], M: number, K: number, N: number, ta: boolean, tb: boolean): MMCase {
  return {
    a: [...aBatch, ...(ta ? [K, M] : [M, K])],
    b: [...bBatch, ...(tb ? [N, K] : [K, N])],
    ta,
    tb,
  };
}

const matmulCases: MMCase[] = [];
const dims: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 2], // tiny: JS path
  [17, 65, 33], // odd sizes on the XNNPACK path
  [65, 17, 129],
  [128, 32, 128], // attention-shaped
  [1, 256, 3],
  [5, 33, 129], // A B^T with B much larger than A: computed as (B A^T)^T
  [2, 64, 1000], // the same, LM-head shaped
];
const batches: [number[], number[]][] = [
  [[], []],
  [[3], [3]],
  [
    [2, 3],
    [2, 3],
  ],
  [[3], []], // batched a, one b (folded into rows)
  [[], [4]], // one a, batched b
  [[1], [5]], // broadcast batch 1
  [[2, 3], [3]], // b broadcast over the leading batch axis
];
for (const [M, K, N] of dims) {
  for (const [ab, bb] of batches) {
    for (const ta of [false, true]) for (const tb of [false, true]) matmulCases.push(mm(ab, bb, M, K, N, ta, tb));
  }
}

/** BatchMatMul has two fast paths: OpenBLAS through the native addon where it loads, else XNNPACK. */
const matmulPaths = nativeKernels() ? ['native (OpenBLAS)', 'wasm (XNNPACK)'] : ['wasm (XNNPACK)'];

for (const matmulPath of matmulPaths)
  describe(`wasm BatchMatMul, ${matmulPath}`, () => {
    beforeAll(() => setNativeKernels(matmulPath.startsWith('native')));
    afterAll(() => setNativeKernels(true));

    it('matches the cpu backend on odd sizes, transposes, batches and broadcast batches', async () => {
      // Build all inputs once; evaluate every case per backend in one pass (fast).
      const inputs = matmulCases.map((c, i) => [rand(size(c.a), 2 * i + 1), rand(size(c.b), 2 * i + 2)]);
      const run = () => matmulCases.map((c, i) => tf.matMul(tf.tensor(inputs[i][0], c.a), tf.tensor(inputs[i][1], c.b), c.ta, c.tb));
      const want = await on('cpu', run);
      const got = await on('wasm', run);
      for (let i = 0; i < matmulCases.length; i++) {
        const c = matmulCases[i];
        try {
          expectClose(got[i], want[i]);
        } catch (err) {
          throw new Error(`case a ${c.a} b ${c.b} ta ${c.ta} tb ${c.tb}: ${(err as Error).message}`);
        }
      }
    });

    it('gives the same gradients as the cpu backend (the transposed matmuls of backward)', async () => {
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const c = mm([2, 3], [2, 3], 33, 17, 65, ta, tb); // (tfjs's gradient does not reduce broadcast batches)
        const av = rand(size(c.a), 7);
        const bv = rand(size(c.b), 8);
        const wv = rand(2 * 3 * 33 * 65, 9);
        await compare(() => {
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, ta, tb), tf.tensor(wv, [2, 3, 33, 65]))));
          return g([tf.tensor(av, c.a), tf.tensor(bv, c.b)]);
        });
      }
    });

    it('broadcasts batches on both sides like explicitly tiled inputs', async () => {
      // The cpu kernel itself mishandles (2, 1) x (1, 3) batches, so tile first for the reference.
      const av = rand(2 * 17 * 65, 21);
      const bv = rand(3 * 65 * 33, 22);
      const want = await on('cpu', () => tf.matMul(tf.tile(tf.tensor(av, [2, 1, 17, 65]), [1, 3, 1, 1]), tf.tile(tf.tensor(bv, [1, 3, 65, 33]), [2, 1, 1, 1])));
      const got = await on('wasm', () => tf.matMul(tf.tensor(av, [2, 1, 17, 65]), tf.tensor(bv, [1, 3, 65, 33])));
      expectClose(got[0], want[0]);
    });

    it('uses the right packing when one tensor is b under two shapes (a reshape shares its data)', async () => {
      const wv = rand(64 * 96, 41);
      const run = () => {
        const w = tf.tensor(wv, [64, 96]);
        return [tf.matMul(tf.ones([8, 64]), w), tf.matMul(tf.ones([8, 96]), tf.reshape(w, [96, 64]))];
      };
      const want = await on('cpu', run);
      const got = await on('wasm', run);
      for (let i = 0; i < 2; i++) expectClose(got[i], want[i]);
    });

    it('rejects mismatched inner sizes', async () => {
      await initBackend('wasm');
      expect(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 5]))).toThrow(/inner shapes/);
    });

    it('handles an empty inner dimension with zeros', async () => {
      const got = await on('wasm', () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])));
      expect(Array.from(got[0])).toEqual(new Array(12).fill(0));
    });
  });

describe('wasm Slice, SplitV, Identity', () => {
  it('slices like the cpu backend for ranks 1-5 and random boxes', async () => {
    const shapes = [[17], [3, 65], [2, 5, 7], [3, 1, 4, 6], [2, 3, 1, 4, 5], [16, 32, 96]];
    const cases: { shape: number[]; begin: number[]; size: number[] }[] = [];
    let seed = 11;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (const shape of shapes) {
      for (let r = 0; r < 6; r++) {
        const begin = shape.map((d) => next(d));
        const sz = shape.map((d, i) => (r === 0 ? d - begin[i] : 1 + next(d - begin[i])));
        cases.push({ shape, begin, size: sz });
      }
      cases.push({ shape, begin: shape.map(() => 0), size: shape.map(() => -1) }); // whole
    }
    const data = cases.map((c, i) => rand(size(c.shape), 100 + i));
    const run = () => cases.map((c, i) => tf.slice(tf.tensor(data[i], c.shape), c.begin, c.size));
    const want = await on('cpu', run);
    const got = await on('wasm', run);
    for (let i = 0; i < cases.length; i++) expectClose(got[i], want[i], 0);
  });

  it('splits like the cpu backend (the qkv split), including uneven sizes', async () => {
    const x = rand(4 * 5 * 12, 3);
    await compare(() => [...tf.split(tf.tensor(x, [4, 5, 12]), 3, -1), ...tf.split(tf.tensor(x, [4, 5, 12]), [1, 3, 1], 1)], 0);
  });

  it('keeps a clone valid after the original is disposed (shared data is reference counted)', async () => {
    await initBackend('wasm');
    const a = tf.tensor([1, 2, 3]);
    const b = tf.clone(a);
    a.dispose();
    const c = tf.add(b, 1);
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(c.dataSync())).toEqual([2, 3, 4]);
    tf.dispose([b, c]);
  });

  it('gathers rows like the cpu backend (axis 0, 2-D indices, int32 tables) and other axes via the stock kernel', async () => {
    const table = rand(13 * 2 * 3, 3);
    const ids = new Int32Array([0, 12, 3, 3, 7, 5]);
    await compare(
      () => [
        tf.gather(tf.tensor(table, [13, 6]), tf.tensor1d(ids, 'int32')),
        tf.gather(tf.tensor(table, [13, 2, 3]), tf.tensor2d(ids, [2, 3], 'int32')),
        tf.cast(
          tf.gather(
            tf.tensor(
              Int32Array.from(table, (v) => Math.round(v * 100)),
              [13, 6],
              'int32',
            ),
            tf.tensor1d(ids, 'int32'),
          ),
          'float32',
        ),
        tf.gather(tf.tensor(table, [13, 6]), tf.tensor1d(new Int32Array([5, 0, 1]), 'int32'), 1),
      ],
      0,
    );
    await initBackend('wasm');
    expect(() => tf.gather(tf.zeros([4, 2]), tf.tensor1d([4], 'int32'))).toThrow(/index value 4 is not in \[0, 3\]/);
  });

  it('sums segments like the cpu backend (the gradient of gather)', async () => {
    const table = rand(13 * 5, 4);
    const ids = new Int32Array([0, 3, 3, 12, 7, 0, 0, 5]);
    await compare(() => {
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.reshape(tf.range(1, 41), [8, 5]))));
      return g(tf.tensor(table, [13, 5]));
    });
  });
});

const tinyGPT = {
  ...GPT2_DEFAULTS,
  vocab_size: 37,
  n_positions: 16,
  n_embd: 24,
  n_layer: 2,
  n_head: 3,
  activation_function: 'gelu' as const,
  tie_word_embeddings: false,
  normlab_bias: false,
};

function tinyBatch(B: number, T: number, seed: number) {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    x[i] = (i * 7 + seed * 13) % tinyGPT.vocab_size;
    y[i] = (i * 11 + seed * 5 + 3) % tinyGPT.vocab_size;
  }
  return { x, y, batch: B, seq: T };
}

async function trainLosses(backend: 'cpu' | 'wasm', steps: number, config = tinyGPT): Promise<number[]> {
  await initBackend(backend);
  const model = new GPT2(config, 1);
  const opt = new AdamW(model.params, { weightDecay: 0.01 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await readStep(lmTrainStep(model, opt, tinyBatch(3, 16, s), 3e-3))).loss);
  opt.dispose();
  model.dispose();
  return losses;
}

describe('training on the fast wasm kernels', () => {
  it('gives the same losses as the cpu backend and as the stock wasm kernels, with and without the native kernels', async () => {
    const cpu = await trainLosses('cpu', 6);
    const fast = await trainLosses('wasm', 6);
    const wasmOnly = await withKernelSet('wasm', () => trainLosses('wasm', 6));
    const stock = await withKernelSet('stock', () => trainLosses('wasm', 6));
    expect(cpu[5]).toBeLessThan(cpu[0]); // it learns
    for (let i = 0; i < cpu.length; i++) {
      expect(Math.abs(fast[i] - cpu[i])).toBeLessThan(2e-4 * Math.max(1, cpu[i]));
      expect(Math.abs(fast[i] - stock[i])).toBeLessThan(2e-4 * Math.max(1, stock[i]));
      expect(Math.abs(wasmOnly[i] - stock[i])).toBeLessThan(2e-4 * Math.max(1, stock[i]));
    }
  });

  it('keeps the tensor count flat over many steps', async () => {
    await initBackend('wasm');
    const model = new GPT2({ ...tinyGPT, normlab_bias: true, tie_word_embeddings: true, activation_function: 'gelu_new' }, 2);
    const opt = new AdamW(model.params, { weightDecay: 0.01 });
    await readStep(lmTrainStep(model, opt, tinyBatch(2, 16, 0), 1e-3));
    const before = tf.memory().numTensors;
    for (let s = 1; s <= 20; s++) await readStep(lmTrainStep(model, opt, tinyBatch(2, 16, s), 1e-3));
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    model.dispose();
  });
});
