import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { resolveConfig } from '../../jobs/config.js';
import { readSafetensors } from '../../io/safetensors-file.js';
import { ViT, vitConfigFromJson } from '../../models/vit.js';
import './index.js';
import { loadViT, saveViT, vitFromTensors } from './vit-io.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const tiny = { img_size: 8, patch_size: 4, in_chans: 2, num_classes: 5, embed_dim: 12, depth: 2, num_heads: 3, mlp_ratio: 2 };

beforeAll(async () => {
  await initBackend('wasm');
});

describe('ViT (timm layout)', () => {
  it.skipIf(!hasTorch)('loads a timm-format safetensors ViT made by PyTorch and gives its logits within 1e-4', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-vit-parity-'));
    execFileSync('/usr/bin/python3', [path.join(here, 'torch_check.py'), dir], { encoding: 'utf8' });
    const model = await loadViT(dir);
    const io = await readSafetensors(path.join(dir, 'io.safetensors'));
    const imgs = io.tensors.get('images_nhwc')!;
    const ref = io.tensors.get('logits')!.data as Float32Array;
    const got = tf.tidy(() => model.forward(tf.tensor4d(imgs.data as Float32Array, imgs.shape as [number, number, number, number])).dataSync());
    let maxErr = 0;
    for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - ref[i]));
    expect(ref.length).toBe(5 * 7);
    expect(maxErr).toBeLessThan(1e-4);
    // and it saves back to the same timm tensors
    const out = path.join(dir, 'resaved');
    await saveViT(model, out);
    const a = await readSafetensors(path.join(dir, 'model.safetensors'));
    const b = await readSafetensors(path.join(out, 'model.safetensors'));
    for (const [name, t] of a.tensors) {
      expect(b.tensors.get(name)?.shape, name).toEqual(t.shape);
      expect(Array.from(b.tensors.get(name)!.data)).toEqual(Array.from(t.data));
    }
    model.dispose();
  });

  it('embeds patches exactly like a stride-p convolution with the timm conv weight', () => {
    const model = new ViT(vitConfigFromJson(tiny), 3);
    const ck = model.checkpointTensors();
    const x = tf.randomUniform([2, 8, 8, 2], 0, 1, 'float32', 5) as tf.Tensor4D;
    const conv = tf.tidy(() => {
      const w = tf.transpose(ck.get('patch_embed.proj.weight')!, [2, 3, 1, 0]) as tf.Tensor4D; // (D, C, p, p) -> (p, p, C, D)
      const y = tf.add(tf.conv2d(x, w, 4, 'valid'), model.params.get('patch_embed.proj.bias')); // (B, gh, gw, D)
      return tf.reshape(y, [2, 4, 12]).arraySync();
    });
    const lin = tf.tidy(() =>
      tf
        .add(tf.matMul(tf.reshape(model.patchify(x), [8, 32]), model.params.get('patch_embed.proj.weight')), model.params.get('patch_embed.proj.bias'))
        .reshape([2, 4, 12])
        .arraySync(),
    );
    const a = (conv as number[][][]).flat(2);
    const b = (lin as number[][][]).flat(2);
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 4);
    for (const t of ck.values()) t.dispose();
    x.dispose();
    model.dispose();
  });

  it('rejects a checkpoint whose shapes do not fit the config, naming the tensor and both shapes', () => {
    const model = new ViT(vitConfigFromJson(tiny), 0);
    const tensors = new Map<string, import('../../io/safetensors.js').HostTensor>();
    const ck = model.checkpointTensors();
    for (const [name, t] of ck) tensors.set(name, { dtype: 'F32', shape: [...t.shape], data: t.dataSync() as Float32Array });
    for (const t of ck.values()) t.dispose();
    model.dispose();
    expect(() => vitFromTensors({ ...tiny, embed_dim: 24, num_heads: 3 }, tensors, 'x/config.json')).toThrow(
      /checkpoint tensor patch_embed\.proj\.weight has shape \[12,2,4,4\], the config .*embed_dim 24.* needs \[24,2,4,4\]/,
    );
    expect(() => vitFromTensors({ ...tiny, depth: 3 }, tensors, 'x/config.json')).toThrow(/checkpoint has no tensor blocks\.2\.norm1\.weight/);
    expect(() => vitFromTensors({ ...tiny, model_type: 'gpt2' }, tensors, 'x/config.json')).toThrow(/not a ViT/);
    expect(() => vitConfigFromJson({ ...tiny, img_size: 10 })).toThrow(/img_size 10 is not divisible by patch_size 4/);
  });

  it('rejects zero calibration images and bit widths outside 2-16 before any work starts', () => {
    const base = { method: 'ptq-vit', model: '/some/vit' };
    expect(() => resolveConfig({ ...base, data: { calib_count: 0 } })).toThrow(/calib_count must be at least 1/);
    expect(() => resolveConfig({ ...base, w_bits: 17 })).toThrow(/weight bit width must be at most 16/);
    expect(() => resolveConfig({ ...base, a_bits: 1 })).toThrow(/activation bit width must be at least 2/);
    expect(() => resolveConfig({ method: 'ptq-study', bits: [4, 1] })).toThrow(/bit widths must be at least 2/);
  });
});
