/**
 * ViT model folders (timm names, `config.json` + `model.safetensors`) and the image sets the ptq
 * jobs read: `mnist` (the embedded digits: train split for training and calibration, test split
 * for evaluation) or a folder of PNGs (`dir/<class>/*.png`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import { loadImages, type ImageSet } from '../../data/images.js';
import { loadModelDir } from '../../io/model-dir.js';
import { toTf } from '../../io/tensors.js';
import { saveModel } from '../../models/index.js';
import { ViT, vitConfigFromJson } from '../../models/vit.js';

/** Build a ViT from a config.json object and timm-layout host tensors (errors name the misfit). */
export function vitFromTensors(config: Record<string, unknown>, tensors: Map<string, import('../../io/safetensors.js').HostTensor>, where: string): ViT {
  if (config.model_type !== undefined && config.model_type !== 'vit') {
    fail('model', `${where}: model_type "${String(config.model_type)}" is not a ViT (expected "vit")`);
  }
  const model = new ViT(vitConfigFromJson(config), 0);
  const tfTensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, t] of tensors) tfTensors.set(name, toTf(t));
    model.loadCheckpointTensors(tfTensors);
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    for (const t of tfTensors.values()) t.dispose();
  }
  return model;
}

/** Load a ViT model folder. */
export async function loadViT(dir: string): Promise<ViT> {
  const { config, tensors } = await loadModelDir(dir);
  return vitFromTensors(config, tensors, `${dir}/config.json`);
}

/** Save a ViT as a timm-layout model folder. */
export async function saveViT(model: ViT, dir: string, extraConfig: Record<string, unknown> = {}): Promise<void> {
  await saveModel(model, dir, extraConfig);
}

/** `mnist` or a folder path. `split` picks MNIST's train or test digits (ignored for folders). */
export async function loadImageSource(source: string, split: 'train' | 'test', count: number | undefined, seed: number): Promise<ImageSet> {
  if (!source) fail('config', 'image source is empty: use "mnist" or a folder of PNG images');
  if (source === 'mnist') return loadImages({ kind: 'mnist' }, { split, count, seed });
  return loadImages({ kind: 'folder', path: source }, { count, seed });
}

/** Check an image set fits a model (size, channels, labels within the classes). */
export function checkImagesFit(model: ViT, set: ImageSet, what: string): void {
  const c = model.config;
  if (set.height !== c.img_size || set.width !== c.img_size || set.channels !== c.in_chans) {
    fail('data', `${what} images are ${set.height}×${set.width}×${set.channels}, the model expects ${c.img_size}×${c.img_size}×${c.in_chans}`);
  }
  for (let i = 0; i < set.n; i++) {
    if (set.labels[i] >= c.num_classes) fail('data', `${what}: label ${set.labels[i]} is outside the model's ${c.num_classes} classes`);
  }
}
