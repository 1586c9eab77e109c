import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { loadModelDir, saveModelDir } from './model-dir.js';
import { readSafetensors, writeSafetensors } from './safetensors-file.js';
import type { HostTensor } from './safetensors.js';

const tensors: Record<string, HostTensor> = {
  'transformer.wte.weight': { dtype: 'F32', shape: [4, 2], data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]) },
  'transformer.h.0.ln_1.weight': { dtype: 'F32', shape: [2], data: new Float32Array([1, 1]) },
};
const config = { model_type: 'gpt2', n_embd: 2, n_layer: 1, normlab: { norm: 'layernorm' } };

describe('model folders', () => {
  it('saves config.json and model.safetensors and loads them back', async () => {
    const dir = path.join(tempDir('model'), 'nested', 'gpt2-tiny');
    await saveModelDir(dir, config, tensors);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    const loaded = await loadModelDir(dir);
    expect(loaded.config).toEqual(config);
    expect(loaded.metadata).toEqual({ format: 'pt' });
    expect([...loaded.tensors.keys()].sort()).toEqual(Object.keys(tensors).sort());
    expect(loaded.tensors.get('transformer.wte.weight')).toEqual(tensors['transformer.wte.weight']);
  });

  it('reads and writes single safetensors files through the node wrappers', async () => {
    const f = path.join(tempDir('model'), 'w.safetensors');
    await writeSafetensors(f, tensors, { a: 'b' });
    const back = await readSafetensors(f);
    expect(back.metadata).toEqual({ a: 'b' });
    expect(back.tensors.get('transformer.h.0.ln_1.weight')!.shape).toEqual([2]);
    const missing = await errorOf(readSafetensors(path.join(path.dirname(f), 'none.safetensors')));
    expect(missing.message).toContain('not found');
  });

  it('names a truncated model.safetensors', async () => {
    const dir = tempDir('model');
    await saveModelDir(dir, config, tensors);
    const f = path.join(dir, 'model.safetensors');
    fs.truncateSync(f, fs.statSync(f).size - 5);
    const err = await errorOf(loadModelDir(dir));
    expect(err.code).toBe('io');
    expect(err.message).toMatch(/model\.safetensors is truncated: header says 40 bytes of data, file has 35$/);
  });

  it('says the folder is missing', async () => {
    const dir = path.join(tempDir('model'), 'absent');
    const err = await errorOf(loadModelDir(dir));
    expect(err.code).toBe('io');
    expect(err.message).toBe(`model folder not found: ${dir}`);
  });

  it('says a file is not a model folder', async () => {
    const f = path.join(tempDir('model'), 'model.safetensors');
    fs.writeFileSync(f, 'x');
    expect((await errorOf(loadModelDir(f))).message).toContain('is a file');
  });

  it('says config.json is missing, or not a JSON object', async () => {
    const dir = tempDir('model');
    expect((await errorOf(loadModelDir(dir))).message).toBe(`model folder ${dir} has no config.json`);
    fs.writeFileSync(path.join(dir, 'config.json'), '{broken');
    expect((await errorOf(loadModelDir(dir))).message).toContain('is not valid JSON');
    fs.writeFileSync(path.join(dir, 'config.json'), '[1]');
    expect((await errorOf(loadModelDir(dir))).message).toContain('must hold a JSON object');
  });

  it('says the weights are missing, with a conversion hint for PyTorch pickles', async () => {
    const dir = tempDir('model');
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    expect((await errorOf(loadModelDir(dir))).message).toBe(`model folder ${dir} has no model.safetensors`);
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'pickle');
    const err = await errorOf(loadModelDir(dir));
    expect(err.message).toContain('only safetensors is supported');
    expect(err.message).toContain('save_pretrained');
  });

  it('loads sharded weights listed in model.safetensors.index.json', async () => {
    const dir = tempDir('model');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
      'transformer.wte.weight': tensors['transformer.wte.weight'],
    });
    await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
      'transformer.h.0.ln_1.weight': tensors['transformer.h.0.ln_1.weight'],
    });
    const index = {
      metadata: { total_size: 40 },
      weight_map: {
        'transformer.wte.weight': 'model-00001-of-00002.safetensors',
        'transformer.h.0.ln_1.weight': 'model-00002-of-00002.safetensors',
      },
    };
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const loaded = await loadModelDir(dir);
    expect(loaded.tensors.get('transformer.h.0.ln_1.weight')).toEqual(tensors['transformer.h.0.ln_1.weight']);
    expect(loaded.tensors.size).toBe(2);
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    expect((await errorOf(loadModelDir(dir))).message).toContain('lists shard model-00002-of-00002.safetensors, which is missing');
  });
});
