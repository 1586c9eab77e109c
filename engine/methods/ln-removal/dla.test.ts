import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import { cProjHeadRows, headDla, headWrites } from './dla.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const V = 50;
function model(): GPT2 {
  const m = new GPT2(gpt2ConfigFromJson({ vocab_size: V, n_positions: 16, n_embd: 24, n_layer: 2, n_head: 3 }), 11);
  for (const [name, v] of m.params.vars) if (/c_proj|bias|ln_/.test(name)) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', name.length)));
  return m;
}
const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 13 + seed * 7 + 1) % V);

describe('per-head decomposition used by DLA', () => {
  it('head outputs plus the c_proj bias sum to the attention output; a wrong c_proj head split fails the check', async () => {
    const m = model();
    const B = 2;
    const T = 6;
    const H = m.config.n_head;
    const C = m.config.n_embd;
    const zs: tf.Tensor4D[] = [];
    const outs: tf.Tensor3D[] = [];
    tf.tidy(() => {
      m.forward(tf.tensor2d(ids(B * T, 1), [B, T], 'int32'), {
        headOutputs: (_l, z) => zs.push(tf.keep(z)),
        attnOutput: (_l, y) => outs.push(tf.keep(y)),
      });
    });
    // A plausible mistake: heads interleaved along c_proj's input rows instead of contiguous.
    const wrongSplit = (w: tf.Tensor2D, h: number) => tf.transpose(tf.reshape(w, [C / h, h, C]), [1, 0, 2]) as tf.Tensor3D;
    const relErr = async (split: (w: tf.Tensor2D, h: number) => tf.Tensor3D, l: number) => {
      const e = tf.tidy(() => {
        const w = m.params.get(`transformer.h.${l}.attn.c_proj.weight`) as tf.Tensor2D;
        const sum = tf.add(tf.sum(headWrites(zs[l], split(w, H)), 0), m.params.get(`transformer.h.${l}.attn.c_proj.bias`)); // (N, C)
        const want = tf.reshape(outs[l], [B * T, C]);
        return tf.div(tf.max(tf.abs(tf.sub(sum, want))), tf.max(tf.abs(want)));
      });
      const v = (await e.data())[0];
      e.dispose();
      return v;
    };
    for (let l = 0; l < 2; l++) {
      expect(await relErr(cProjHeadRows, l)).toBeLessThan(1e-5);
      expect(await relErr(wrongSplit, l)).toBeGreaterThan(0.05);
    }
    tf.dispose([...zs, ...outs]);
    m.dispose();
  });
});

describe('DLA options', () => {
  it('last-position mode scores the last position of each prompt; the centred unembedding makes DLA and DE sum to zero over the vocabulary', async () => {
    const m = model();
    const T = 5;
    // V copies of one prompt, the last position's target running over the whole vocabulary.
    const x = new Int32Array(V * T);
    const y = new Int32Array(V * T);
    const p = ids(T, 3);
    const q = ids(T, 4);
    for (let b = 0; b < V; b++) {
      x.set(p, b * T);
      y.set(q, b * T);
      y[b * T + T - 1] = b;
    }
    const all = await headDla(m, x, y, V, T);
    const last = await headDla(m, x, y, V, T, { positions: 'last', centerUnembed: false });
    const centred = await headDla(m, x, y, V, T, { positions: 'last', centerUnembed: true });
    const LH = m.config.n_layer * m.config.n_head;
    expect(last.tokens).toBe(V);
    for (let h = 0; h < LH; h++) {
      for (let b = 0; b < V; b++) {
        expect(last.dla[h * V + b]).toBeCloseTo(all.dla[h * V * T + b * T + T - 1], 5);
        expect(last.de[h * V + b]).toBeCloseTo(all.de[h * V * T + b * T + T - 1], 5);
      }
      const sum = (a: Float32Array) => a.subarray(h * V, (h + 1) * V).reduce((s, v) => s + v, 0);
      const scale = centred.heads[h].de_abs * V;
      expect(Math.abs(sum(centred.dla)) / scale).toBeLessThan(1e-4);
      expect(Math.abs(sum(centred.de)) / scale).toBeLessThan(1e-4);
      expect(Math.abs(sum(last.dla)) / scale).toBeGreaterThan(1e-3); // not zero without centring
    }
    m.dispose();
  });
});
