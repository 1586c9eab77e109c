import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { loadModelDir, openModelDir, saveModelDir } from './model-dir.js';
import { readSafetensors, writeSafetensors } from './safetensors-file.js';
import { f32ToBf16, type HostTensor } from './safetensors.js';

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

/** A folder with config.json and two shards; shard 2 also holds a tensor the index does not list. */
async function shardedDir(): Promise<{ dir: string; indexPath: string; index: { weight_map: Record<string, string> } }> {
  const dir = tempDir('model');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { 'transformer.wte.weight': tensors['transformer.wte.weight'] });
  await writeSafetensors(
    path.join(dir, 'model-00002-of-00002.safetensors'),
    {
      'transformer.h.0.ln_1.weight': { dtype: 'BF16', shape: [2], data: new Float32Array([1, -0.5]) },
      'transformer.h.0.ln_1.bias': { dtype: 'F16', shape: [2], data: new Float32Array([0.25, 2]) },
      unlisted: { dtype: 'F32', shape: [1], data: new Float32Array([9]) },
    },
    { shard: '2' },
  );
  const index = {
    weight_map: {
      'transformer.h.0.ln_1.weight': 'model-00002-of-00002.safetensors',
      'transformer.h.0.ln_1.bias': 'model-00002-of-00002.safetensors',
      'transformer.wte.weight': 'model-00001-of-00002.safetensors',
    } as Record<string, string>,
  };
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(indexPath, JSON.stringify(index));
  return { dir, indexPath, index };
}

/** Open file descriptors of this process (Linux), to check that failures close what they opened. */
function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('openModelDir', () => {
  it('returns config.json before touching the weights: a garbage weights file fails only when weights are used', async () => {
    const dir = tempDir('model');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'qwen2' }));
    const weights = path.join(dir, 'model.safetensors');
    fs.writeFileSync(weights, 'not safetensors at all, just garbage bytes');
    const model = await openModelDir(dir);
    expect(model.config).toEqual({ model_type: 'qwen2' });
    const err = await errorOf(model.read('model.embed_tokens.weight'));
    expect(err.code).toBe('io');
    expect(err.message).toContain(`${weights} is truncated or not safetensors`);
    expect((await errorOf(model.weights())).message).toBe(err.message);
    await model.close();
  });

  it('opens a folder with no weights at all, and says so when they are asked for', async () => {
    const dir = tempDir('model');
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'pickle');
    const model = await openModelDir(dir);
    expect((await errorOf(model.weights())).message).toContain('has pytorch_model.bin but no model.safetensors');
  });

  it('lists a single file lazily, reads one tensor at a time with progress, and fails after close', async () => {
    const dir = tempDir('model');
    await saveModelDir(dir, config, tensors);
    const progress: [number, number][] = [];
    const model = await openModelDir(dir, { onProgress: (read, total) => progress.push([read, total]) });
    const w = await model.weights();
    expect(w.names).toEqual(['transformer.h.0.ln_1.weight', 'transformer.wte.weight']);
    expect(w.totalBytes).toBe(40);
    expect(w.metadata).toEqual({ format: 'pt' });
    expect(w.info('transformer.wte.weight')).toEqual({ dtype: 'F32', shape: [4, 2], file: path.join(dir, 'model.safetensors'), byteLength: 32 });
    expect(progress).toEqual([]);
    expect(await model.read('transformer.wte.weight')).toEqual(tensors['transformer.wte.weight']);
    expect(progress).toEqual([[32, 40]]);
    const raw = await model.readRaw('transformer.h.0.ln_1.weight');
    expect(Array.from(new Float32Array(raw.bytes.buffer))).toEqual([1, 1]);
    expect(progress).toEqual([
      [32, 40],
      [40, 40],
    ]);
    expect((await errorOf(model.read('nope'))).message).toBe(`model folder ${dir} has no weight "nope"`);
    await model.close();
    await model.close();
    const err = await errorOf(model.read('transformer.wte.weight'));
    expect(err.code).toBe('state');
    expect(err.message).toBe(`model folder ${dir} is closed`);
  });

  it('reads sharded weights lazily; the index is authoritative', async () => {
    const { dir } = await shardedDir();
    const model = await openModelDir(dir);
    try {
      const w = await model.weights();
      expect(w.names).toEqual(['transformer.wte.weight', 'transformer.h.0.ln_1.bias', 'transformer.h.0.ln_1.weight']);
      expect(w.totalBytes).toBe(32 + 4 + 4);
      expect(w.metadata).toEqual({ shard: '2' });
      expect(w.info('transformer.h.0.ln_1.weight')).toEqual({
        dtype: 'BF16',
        shape: [2],
        file: path.join(dir, 'model-00002-of-00002.safetensors'),
        byteLength: 4,
      });
      expect((await errorOf(model.read('unlisted'))).message).toBe(`model folder ${dir} has no weight "unlisted"`);
      expect(await model.read('transformer.h.0.ln_1.weight')).toEqual({ dtype: 'BF16', shape: [2], data: new Float32Array([1, -0.5]) });
      const raw = await model.readRaw('transformer.h.0.ln_1.weight');
      expect(Array.from(new Uint16Array(raw.bytes.buffer))).toEqual([f32ToBf16(1), f32ToBf16(-0.5)]);
      expect((await model.read('transformer.h.0.ln_1.bias')).data).toEqual(new Float32Array([0.25, 2]));
    } finally {
      await model.close();
    }
    const loaded = await loadModelDir(dir);
    expect([...loaded.tensors.keys()]).toEqual(['transformer.wte.weight', 'transformer.h.0.ln_1.bias', 'transformer.h.0.ln_1.weight']);
  });

  it('names what is wrong with a sharded folder, and closes the shards it opened', async () => {
    const { dir, indexPath, index } = await shardedDir();
    const errorWith = async (weightMap: unknown): Promise<string> => {
      fs.writeFileSync(indexPath, JSON.stringify({ weight_map: weightMap }));
      const model = await openModelDir(dir);
      const before = process.platform === 'linux' ? openFds() : 0;
      const err = await errorOf(model.weights());
      if (process.platform === 'linux') expect(openFds()).toBe(before);
      expect(err.code).toBe('io');
      await model.close();
      return err.message;
    };
    expect(await errorWith({ ...index.weight_map, extra: 'model-00002-of-00002.safetensors' })).toBe(
      `${indexPath} says "extra" is in model-00002-of-00002.safetensors, but that file has no such tensor`,
    );
    expect(await errorWith({ ...index.weight_map, extra: 'model-00003-of-00003.safetensors' })).toBe(
      `${indexPath} lists shard model-00003-of-00003.safetensors, which is missing from ${dir}`,
    );
    expect(await errorWith({ x: '../model.safetensors' })).toBe(`${indexPath}: weight_map entry "x" names an invalid shard file "../model.safetensors"`);
    expect(await errorWith({ x: 3 })).toBe(`${indexPath}: weight_map entry "x" names an invalid shard file 3`);
    expect(await errorWith([1])).toBe(`${indexPath} has no "weight_map" object`);
    fs.truncateSync(path.join(dir, 'model-00002-of-00002.safetensors'), 100);
    expect(await errorWith(index.weight_map)).toMatch(/model-00002-of-00002\.safetensors/);
  });
});
