import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { evalLM } from '../cli/eval-lm.js';
import { hasTorch, runTorchScript } from '../testing/torch.js';
import { GPT2, GPT2_DEFAULTS } from './gpt2.js';
import { loadLM, saveModel } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const tiny = { ...GPT2_DEFAULTS, vocab_size: 40, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 };

describe('GPT-2', () => {
  it('a saved model loads back with identical logits', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-'));
    const a = new GPT2(tiny, 3);
    await saveModel(a, dir);
    const b = await loadLM(dir);
    const idx = tf.tensor2d([[1, 2, 3, 4, 5]], [1, 5], 'int32');
    const la = a.forward(idx).dataSync();
    const lb = b.forward(idx).dataSync();
    expect(Array.from(lb)).toEqual(Array.from(la));
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).model_type).toBe('gpt2');
  });

  it('logits at a position do not depend on later tokens (causality)', () => {
    const m = new GPT2(tiny, 1);
    const a = m.forward(tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32'));
    const b = m.forward(tf.tensor2d([[1, 2, 9, 9]], [1, 4], 'int32'));
    const first = (t: tf.Tensor) => tf.slice(t, [0, 0, 0], [1, 2, 40]).dataSync();
    expect(Array.from(first(b))).toEqual(Array.from(first(a)));
  });

  it('training-time dropout (attn, resid, embd) is seeded, inverted (kept values scaled by 1/(1-p)) and off without the hook', async () => {
    const m = new GPT2(tiny, 2);
    const idx = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const drop = (attn: number, resid: number, embd: number, from = 100) => {
      let s = from;
      return { attn, resid, embd, seed: () => s++ };
    };
    const read = async (t: tf.Tensor) => Array.from(await t.data());
    const plain = await read(m.forward(idx));
    expect(await read(m.forward(idx, { dropout: drop(0, 0, 0) }))).toEqual(plain);
    for (const [a, r, e] of [
      [0.3, 0, 0],
      [0, 0.3, 0],
      [0, 0, 0.3],
    ]) {
      const one = await read(m.forward(idx, { dropout: drop(a, r, e) }));
      expect(await read(m.forward(idx, { dropout: drop(a, r, e) }))).toEqual(one); // same seeds, same masks
      expect(one).not.toEqual(plain);
      expect(await read(m.forward(idx, { dropout: drop(a, r, e, 7) }))).not.toEqual(one);
    }
    // Embedding dropout at 0.5: every element of tok + pos is either 0 or doubled.
    let emb: tf.Tensor | null = null;
    let dropped: tf.Tensor | null = null;
    m.forward(idx, { residual: (l, x) => l === -1 && (emb = x) });
    m.forward(idx, { dropout: drop(0, 0, 0.5), residual: (l, x) => l === -1 && (dropped = x) });
    const [ev, dv] = [await read(emb!), await read(dropped!)];
    let zeros = 0;
    dv.forEach((v, i) => (v === 0 ? zeros++ : expect(v).toBeCloseTo(2 * ev[i], 5)));
    expect(zeros).toBeGreaterThan(dv.length * 0.3);
    expect(zeros).toBeLessThan(dv.length * 0.7);
  });

  it('a checkpoint missing a tensor is a clear model error', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-'));
    await saveModel(new GPT2({ ...tiny, n_layer: 1 }, 0), dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, n_layer: 2 }));
    await expect(loadLM(dir)).rejects.toThrow(/checkpoint has no tensor transformer\.h\.1\./);
  });

  it.skipIf(!hasTorch)('eval-lm on a GPT-2 written by PyTorch gives PyTorch’s loss within 1e-4', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-torch-'));
    const ref = runTorchScript(path.join(__dirname, 'gpt2_torch_check.py'), [dir]);
    const r = await evalLM({ model: dir, tokens: path.join(dir, 'tokens.bin'), seq: ref.seq as number });
    expect(r.tokens).toBe(ref.tokens);
    expect(Math.abs(r.loss - (ref.loss as number))).toBeLessThan(1e-4);
  });
});
