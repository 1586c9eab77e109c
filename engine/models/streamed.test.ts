import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { openModelDir, saveModelDir } from '../io/model-dir.js';
import { fromTf } from '../io/tensors.js';
import { layerPruning, residualStats } from '../methods/lns/diagnostics.js';
import { streamedDiagnostics, streamedEvalLoss } from '../methods/lns/streamed-diagnostics.js';
import { lmEvalLoss } from '../train/lm-step.js';
import { Decoder } from './decoder.js';
import { decoderSpecFromConfig } from './families.js';
import { createLM, loadLM, saveModel } from './index.js';
import { StreamedDecoder } from './streamed.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A Gemma-2 config: sandwich norms, soft-capped scores and logits, a window, √d embedding scale, tied head. */
const gemma2 = {
  model_type: 'gemma2',
  vocab_size: 70,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  max_position_embeddings: 32,
  sliding_window: 3,
  query_pre_attn_scalar: 8,
  attn_logit_softcapping: 5,
  final_logit_softcapping: 3,
};

/** A folder with random weights for `config`, stored as `dtype`. */
async function randomFolder(config: Record<string, unknown>, dtype: 'F32' | 'BF16'): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-streamed-'));
  const m = new Decoder(decoderSpecFromConfig(config), config);
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const tensors: Record<string, Awaited<ReturnType<typeof fromTf>>> = {};
  for (const [name, t] of m.checkpointTensors()) {
    const h = await fromTf(t);
    t.dispose();
    (h.data as Float32Array).set(Float32Array.from({ length: h.data.length }, () => 0.5 * rand()));
    tensors[name] = { ...h, dtype };
  }
  m.dispose();
  await saveModelDir(dir, config, tensors);
  return dir;
}

function windows(seq: number, count: number, vocab: number) {
  const x = Int32Array.from({ length: seq * count }, (_, i) => (i * 31 + 7) % vocab);
  const y = Int32Array.from({ length: seq * count }, (_, i) => (i * 17 + 3) % vocab);
  return { x, y, count, seq };
}

/** Streamed eval loss of a folder. */
async function streamedLoss(dir: string, w: ReturnType<typeof windows>): Promise<number> {
  const reader = await openModelDir(dir);
  const sm = await StreamedDecoder.open(reader, decoderSpecFromConfig(reader.config));
  try {
    return await streamedEvalLoss(sm, w, { batch: 2, budgetBytes: 1 << 20 });
  } finally {
    sm.dispose();
    await reader.close();
  }
}

describe('streamed decoder', () => {
  it('streams GPT-2 (Conv1D weights, learned positions, every score-scale field) as the in-memory GPT-2 computes it', async () => {
    const config = {
      vocab_size: 60,
      n_positions: 16,
      n_embd: 16,
      n_layer: 3,
      n_head: 2,
      n_inner: 40,
      activation_function: 'relu',
      scale_attn_by_inverse_layer_idx: true,
      tie_word_embeddings: false,
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-streamed-gpt2-'));
    const m = createLM('gpt2', config, 5);
    await saveModel(m, dir);
    m.dispose();
    const w = windows(9, 4, 60);
    const gpt2 = await loadLM(dir);
    expect(gpt2.arch).toBe('gpt2');
    const loss = await lmEvalLoss(gpt2, w, 2);
    gpt2.dispose();
    expect(Math.abs((await streamedLoss(dir, w)) - loss)).toBeLessThan(1e-5);
    // The public GPT-2 files name tensors without `transformer.`.
    const file = path.join(dir, 'model.safetensors');
    const reader = await openModelDir(dir);
    const tensors: Record<string, Awaited<ReturnType<typeof reader.read>>> = {};
    for (const name of (await reader.weights()).names) tensors[name.replace(/^transformer\./, '')] = await reader.read(name);
    await reader.close();
    fs.rmSync(file);
    await saveModelDir(dir, reader.config, tensors);
    expect(Math.abs((await streamedLoss(dir, w)) - loss)).toBeLessThan(1e-5);
  });

  for (const dtype of ['F32', 'BF16'] as const) {
    it(`evaluates and diagnoses a ${dtype} gemma2 block by block exactly as in memory`, async () => {
      const dir = await randomFolder(gemma2, dtype);
      const w = windows(10, 5, 70);
      const inMemory = await loadLM(dir);
      const loss = await lmEvalLoss(inMemory, w, 2);
      const stats = await residualStats(inMemory, w, 3, 2);
      const pruning = await layerPruning(inMemory, { ...w, count: 4 }, 2);
      inMemory.dispose();

      const reader = await openModelDir(dir);
      const sm = await StreamedDecoder.open(reader, decoderSpecFromConfig(reader.config));
      try {
        // A budget of 2.5 windows' streams: 2 windows per group, 1 removed block per pass.
        const budget = 2.5 * 10 * 16 * 4 * 2;
        expect(Math.abs((await streamedEvalLoss(sm, w, { batch: 2, budgetBytes: budget })) - loss)).toBeLessThan(1e-5);
        // After one pass (its rotary tables and masks cached), passes free their blocks and intermediates.
        const resident = tf.memory().numTensors;
        const d = await streamedDiagnostics(sm, w, 3, 4, { batch: 2, budgetBytes: budget });
        expect(Math.abs(d.pruning.base_loss - pruning.base_loss)).toBeLessThan(1e-5);
        d.pruning.drop_loss.forEach((v, l) => expect(Math.abs(v - pruning.drop_loss[l])).toBeLessThan(1e-5));
        d.stats.variance.forEach((v, l) => expect(Math.abs(v - stats.variance[l]) / stats.variance[l]).toBeLessThan(1e-5));
        d.stats.tokenVariance.forEach((v, l) => expect(Math.abs(v - stats.tokenVariance[l]) / stats.tokenVariance[l]).toBeLessThan(1e-5));
        d.stats.lastToken.forEach((rows, l) => rows.forEach((v, k) => expect(Math.abs(v - stats.lastToken[l][k])).toBeLessThan(1e-4)));
        // The pruned models differ from the full one: the test would see a wrong stream.
        expect(Math.max(...d.pruning.drop_loss.map(Math.abs))).toBeGreaterThan(1e-3);
        // Every pass frees its blocks and their intermediates: only the resident head and norm stay.
        expect(tf.memory().numTensors).toBe(resident);
      } finally {
        sm.dispose();
        await reader.close();
      }
    });
  }
});
