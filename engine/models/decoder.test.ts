import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { lmEvalLoss } from '../train/lm-step.js';
import { Decoder, windowMask } from './decoder.js';
import { decoderSpecFromConfig } from './families.js';
import { archOf, createLM, loadLM, saveModel } from './index.js';
import { rotaryFrequencies } from './rotary.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-decoder-'));

const tinyLlama = {
  model_type: 'llama',
  vocab_size: 50,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 16,
  rms_norm_eps: 1e-6,
};

function windows(seq: number, count: number, vocab: number) {
  const x = Int32Array.from({ length: seq * count }, (_, i) => (i * 7 + 3) % vocab);
  const y = Int32Array.from({ length: seq * count }, (_, i) => (i * 7 + 10) % vocab);
  return { x, y, count, seq };
}

describe('shared decoder', () => {
  it('reads a Hugging Face llama exactly as NormLab’s own Pre-LN LLaMA computes it', async () => {
    const dir = tmp();
    const own = createLM('llama', { ...tinyLlama, normlab_norm_variant: 'pre' }, 3);
    await saveModel(own, dir);
    const ownLoss = await lmEvalLoss(own, windows(12, 3, 50), 2);
    own.dispose();
    // The same folder without NormLab's keys is a plain HF llama: the shared decoder reads it.
    const cfgPath = path.join(dir, 'config.json');
    const json = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    for (const k of Object.keys(json)) if (k.startsWith('normlab_')) delete json[k];
    fs.writeFileSync(cfgPath, JSON.stringify(json));
    const hf = await loadLM(dir);
    expect(hf.arch).toBe('hf');
    const hfLoss = await lmEvalLoss(hf, windows(12, 3, 50), 2);
    hf.dispose();
    expect(Math.abs(hfLoss - ownLoss)).toBeLessThan(1e-5);
  });

  it('routes config.json by model_type and NormLab’s keys', () => {
    expect(archOf({ model_type: 'gpt2' }, 'c')).toBe('gpt2');
    expect(archOf({ model_type: 'llama', normlab_norm_variant: 'lns' }, 'c')).toBe('llama');
    for (const t of ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'olmo2', 'gpt_neox']) expect(archOf({ model_type: t }, 'c')).toBe('hf');
    expect(() => archOf({ model_type: 'deepseek_v3' }, 'c')).toThrow(/model_type "deepseek_v3" is not a causal LM NormLab knows/);
  });

  it('refuses a config before reading any weight, naming the key', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'model.safetensors'), 'not a safetensors file');
    const write = (json: Record<string, unknown>) => fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
    write({ ...tinyLlama, model_type: 'deepseek_v2' });
    await expect(loadLM(dir)).rejects.toThrow(/model_type "deepseek_v2"/);
    write({ ...tinyLlama, num_local_experts: 8 });
    await expect(loadLM(dir)).rejects.toThrow(/num_local_experts asks for a mixture of experts/);
    write({ ...tinyLlama, rope_scaling: { rope_type: 'longrope', factor: 2 } });
    await expect(loadLM(dir)).rejects.toThrow(/rope_scaling type "longrope" is not supported/);
    write({ ...tinyLlama, hidden_act: 'relu6' });
    await expect(loadLM(dir)).rejects.toThrow(/hidden_act: activation "relu6"/);
    write({ ...tinyLlama, num_key_value_heads: 3 });
    await expect(loadLM(dir)).rejects.toThrow(/num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
    // NormLab's own LLaMA refuses what it does not compute instead of ignoring it.
    write({ ...tinyLlama, normlab_norm_variant: 'pre', attention_bias: true });
    await expect(loadLM(dir)).rejects.toThrow(/attention_bias true is not computed by NormLab's norm-variant LLaMA/);
  });

  it('builds each family’s spec from its config', () => {
    const gemma2 = decoderSpecFromConfig({ ...tinyLlama, model_type: 'gemma2', head_dim: 8, sliding_window: 4, query_pre_attn_scalar: 16 });
    expect(gemma2.placement).toBe('sandwich');
    expect(gemma2.attention.windows).toEqual([4, null]);
    expect(gemma2.attention.scale).toBeCloseTo(0.25, 12);
    expect(gemma2.embedScale).toBeCloseTo(4, 6);
    expect(gemma2.tied).toBe(true);
    const neox = decoderSpecFromConfig({ ...tinyLlama, model_type: 'gpt_neox', rotary_pct: 0.5 });
    expect(neox.placement).toBe('parallel');
    expect(neox.rotary?.dims).toBe(2);
    expect(decoderSpecFromConfig({ ...tinyLlama, model_type: 'gpt_neox', use_parallel_residual: false, rotary_pct: 0.5 }).placement).toBe('pre');
    const qwen2 = decoderSpecFromConfig({ ...tinyLlama, model_type: 'qwen2', use_sliding_window: true, sliding_window: 3, max_window_layers: 1 });
    expect(qwen2.attention.windows).toEqual([null, 3]);
    expect(qwen2.attention.qkvBias && !qwen2.attention.oBias).toBe(true);
  });

  it('a sliding window of w lets query i see keys i - w + 1 .. i', () => {
    const m = windowMask(6, 3).arraySync();
    expect(m[5].map((v) => (v === 0 ? 1 : 0))).toEqual([0, 0, 0, 1, 1, 1]);
    expect(m[1].map((v) => (v === 0 ? 1 : 0))).toEqual([1, 1, 0, 0, 0, 0]);
    expect(
      windowMask(4, null)
        .arraySync()[3]
        .every((v) => v === 0),
    ).toBe(true);
  });

  it('rope scaling: linear divides every frequency, llama3 only the long wavelengths, dynamic only past the context', () => {
    const base = { dims: 8, base: 10000 };
    const plain = rotaryFrequencies({ ...base, scaling: { type: 'default' } }, 4).invFreq;
    const lin = rotaryFrequencies({ ...base, scaling: { type: 'linear', factor: 4 } }, 4).invFreq;
    lin.forEach((f, j) => expect(f).toBeCloseTo(plain[j] / 4, 15));
    const l3 = rotaryFrequencies({ ...base, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } }, 4).invFreq;
    // wavelength 2π/θ: θ_0 = 1 (6.3 < 64/4 kept), θ_3 = 1e-3 (6283 > 64 divided by 8).
    expect(l3[0]).toBe(plain[0]);
    expect(l3[3]).toBeCloseTo(plain[3] / 8, 15);
    const dyn = (T: number) => rotaryFrequencies({ ...base, scaling: { type: 'dynamic', factor: 2, maxPositions: 16 } }, T).invFreq;
    expect(Array.from(dyn(16))).toEqual(Array.from(plain));
    expect(dyn(32)[1]).toBeLessThan(plain[1]);
  });

  it('an hf model loads its checkpoint tensors and writes them back in HF orientation', async () => {
    const spec = decoderSpecFromConfig({ ...tinyLlama, model_type: 'qwen2', num_key_value_heads: 2 });
    const m = new Decoder(spec, { ...tinyLlama, model_type: 'qwen2', num_key_value_heads: 2 });
    const k = m.checkpointTensors().get('model.layers.0.self_attn.k_proj.weight')!;
    expect(k.shape).toEqual([8, 16]); // (out = kv heads × head size, in)
    const bias = m.checkpointTensors().get('model.layers.1.self_attn.q_proj.bias')!;
    expect(bias.shape).toEqual([16]);
    tf.dispose([k, bias]);
    m.dispose();
  });
});
