/**
 * Model sizes are checked before anything is allocated: out-of-range config.json keys and job
 * config fields are one-line errors naming the key, a model too large for the backend says how
 * much it needs, and the estimate counts exactly the parameters the models allocate.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { evalLM } from '../cli/eval-lm.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors-file.js';
import '../jobs/all.js';
import { resolveConfig } from '../jobs/config.js';
import { JobQueue } from '../jobs/queue.js';
import { Project } from '../store/runs.js';
import { errorOf, errorOfSync, expectConfigError, tempDir } from '../testing/helpers.js';
import { gpt2Shape, gpt2ConfigFromJson } from './gpt2.js';
import { createLM, saveModel } from './index.js';
import { llamaConfigFromJson, llamaShape } from './llama.js';
import { lmParameterCount } from './memory.js';
import { vitConfigFromJson } from './vit.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const tinyGpt2 = { model_type: 'gpt2', vocab_size: 256, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 };
const tinyLlama = {
  model_type: 'llama',
  vocab_size: 256,
  hidden_size: 16,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 16,
};

describe('model size checks', () => {
  it('estimates the parameters a GPT-2 and a LLaMA allocate, over by at most a few vectors per block', () => {
    for (const [arch, json, shape] of [
      ['gpt2', tinyGpt2, gpt2Shape(gpt2ConfigFromJson(tinyGpt2))],
      ['gpt2', { ...tinyGpt2, tie_word_embeddings: false, normlab_bias: true }, gpt2Shape(gpt2ConfigFromJson({ ...tinyGpt2, tie_word_embeddings: false }))],
      ['llama', tinyLlama, llamaShape(llamaConfigFromJson(tinyLlama))],
    ] as const) {
      const model = createLM(arch, json, 0);
      // The estimate's 8 vectors of width per block are an upper bound for norms and biases.
      const exact = model.params.count();
      expect(lmParameterCount(shape)).toBeGreaterThanOrEqual(exact);
      expect(lmParameterCount(shape) - exact).toBeLessThanOrEqual(shape.layers * (8 * shape.width + 2 * shape.ffn));
      model.dispose();
    }
  });

  it('rejects config.json sizes beyond the limits at once, naming the key', () => {
    const t0 = Date.now();
    expectConfigError(() => createLM('gpt2', { ...tinyGpt2, n_layer: 100000 }, 0), /^config\.json: n_layer 100000 exceeds the limit of 1024$/);
    expectConfigError(() => createLM('gpt2', { ...tinyGpt2, n_embd: 1e9, n_head: 1 }, 0), /n_embd 1000000000 exceeds/);
    expectConfigError(() => createLM('llama', { ...tinyLlama, num_hidden_layers: 100000 }, 0), /num_hidden_layers 100000 exceeds/);
    expectConfigError(() => vitConfigFromJson({ depth: 100000 }), /ViT config: depth 100000 exceeds/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('says how much a model needs when the backend cannot hold it, before allocating', () => {
    const err = errorOfSync(() => createLM('gpt2', { ...tinyGpt2, vocab_size: 50257, n_layer: 1000, n_embd: 4096, n_head: 32, n_positions: 1024 }, 0));
    expect(err.code).toBe('config');
    expect(err.message).toMatch(/^a gpt2 of 1000 layers, width 4096 \(201\.6B parameters\) evaluating needs about 75\d\.\d GiB, more than the wasm backend/);
  });

  it('bounds the size fields of job configs', () => {
    expectConfigError(() => resolveConfig({ method: 'lm-pretrain', model: { d_model: 1e9 } }), /model\.d_model: Too big: expected number to be <=16384/);
    expectConfigError(() => resolveConfig({ method: 'lm-pretrain', train: { batch: 1e9 } }), /train\.batch: Too big/);
    expectConfigError(() => resolveConfig({ method: 'vit-train', model: { mlp_ratio: 1e9 } }), /model\.mlp_ratio: Too big/);
  });

  it('rejects an unknown activation_function and a negative epsilon in a config.json', () => {
    expectConfigError(
      () => gpt2ConfigFromJson({ ...tinyGpt2, activation_function: 'relu6' }),
      /activation_function: activation "relu6" is not one NormLab computes/,
    );
    expectConfigError(() => gpt2ConfigFromJson({ ...tinyGpt2, layer_norm_epsilon: -1 }), /layer_norm_epsilon must be a finite number >= 0, got -1/);
    expectConfigError(() => llamaConfigFromJson({ ...tinyLlama, rms_norm_eps: -1e-6 }), /rms_norm_eps must be a finite number >= 0/);
  });
});

describe('a non-finite loss', () => {
  async function savedModel(edit: (name: string, data: Float32Array) => void): Promise<string> {
    const dir = tempDir('nan');
    const model = createLM('gpt2', tinyGpt2, 0);
    await saveModel(model, path.join(dir, 'm'));
    model.dispose();
    const file = path.join(dir, 'm', 'model.safetensors');
    const st = await readSafetensors(file);
    const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of st.tensors) {
      const data = Float32Array.from(t.data as Float32Array);
      edit(name, data);
      out[name] = { dtype: 'F32', shape: t.shape, data };
    }
    await writeSafetensors(file, out);
    fs.writeFileSync(path.join(dir, 'text.txt'), 'the quick brown fox jumps over the lazy dog '.repeat(4));
    return dir;
  }

  it('is an error of eval-lm naming the weight that holds NaN', async () => {
    const dir = await savedModel((_, d) => d.fill(NaN));
    const err = await errorOf(evalLM({ model: path.join(dir, 'm'), text: path.join(dir, 'text.txt') }));
    expect(err.code).toBe('model');
    expect(err.message).toMatch(/the loss of .* is NaN: weight [\w.]+ holds NaN \(at index 0\)/);
  });

  it('with finite weights names an overflow of the forward pass', async () => {
    const dir = await savedModel((name, d) => name.endsWith('wte.weight') && d.fill(3e38));
    const err = await errorOf(evalLM({ model: path.join(dir, 'm'), text: path.join(dir, 'text.txt') }));
    expect(err.message).toMatch(/is (NaN|Infinity): every weight is finite, so the forward pass overflowed/);
  });

  it('is an error of training from NaN weights that names them', async () => {
    const dir = await savedModel((name, d) => name.includes('h.1.mlp.c_fc.weight') && d.fill(NaN));
    const queue = new JobQueue(Project.open(path.join(dir, 'project')), 'wasm');
    const run = queue.enqueue({
      method: 'lm-pretrain',
      model: { arch: 'gpt2', layers: 2, d_model: 16, heads: 2, init_from: path.join(dir, 'm') },
      data: { source: 'file', path: path.join(dir, 'text.txt') },
      train: { steps: 2, batch: 2, seq: 8, warmup: 1, eval_windows: 2 },
    });
    await queue.wait(run.id);
    const record = queue.project.run(run.id).record;
    expect(record.status).toBe('failed');
    expect(record.error).toMatchObject({
      code: 'model',
      message: expect.stringMatching(/^the initial validation loss is NaN: weight transformer\.h\.1\.mlp\.c_fc\.weight holds NaN/),
    });
  });
});
