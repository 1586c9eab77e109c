/**
 * Building, saving and loading causal LMs by architecture. A model directory is
 * `config.json` (HF keys; `model_type` picks the architecture) + `model.safetensors`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { loadModelDir, saveModelDir } from '../io/model-dir.js';
import { fromTf, toTf } from '../io/tensors.js';
import { GPT2, gpt2ConfigFromJson } from './gpt2.js';
import { Llama, llamaConfigFromJson } from './llama.js';
import type { CausalLM } from './lm.js';

export type LMArch = 'gpt2' | 'llama';

/** A fresh, randomly initialized LM from an HF-style config object. */
export function createLM(arch: LMArch, config: Record<string, unknown>, seed: number): CausalLM {
  if (arch === 'gpt2') return new GPT2(gpt2ConfigFromJson(config), seed);
  if (arch === 'llama') return new Llama(llamaConfigFromJson(config), seed);
  return fail('config', `unknown model architecture "${arch as string}": expected gpt2 or llama`);
}

/** The architecture named by a config.json's model_type. */
export function archOf(config: Record<string, unknown>, where: string): LMArch {
  const t = config.model_type;
  if (t === 'gpt2' || t === 'llama') return t;
  return fail('model', `${where}: model_type "${String(t)}" is not a causal LM NormLab knows (gpt2, llama)`);
}

/** Load an LM from a model directory (config.json + model.safetensors). */
export async function loadLM(dir: string): Promise<CausalLM> {
  const { config, tensors } = await loadModelDir(dir);
  const model = createLM(archOf(config, `${dir}/config.json`), config, 0);
  try {
    // One tensor at a time: a GPT-2-small checkpoint is never held twice on the backend.
    model.loadCheckpointTensors((name) => {
      const t = tensors.get(name);
      return t ? toTf(t) : undefined;
    });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

/** Anything saved as a model folder: its config.json and its tensors in checkpoint layout. */
export interface SavableModel {
  hfConfig(): Record<string, unknown>;
  checkpointTensors(): Map<string, tf.Tensor>;
}

/** Save a model (LM or ViT) as a model folder: config.json (+ extra keys) and model.safetensors. */
export async function saveModel(model: SavableModel, dir: string, extraConfig: Record<string, unknown> = {}): Promise<void> {
  const tensors = model.checkpointTensors();
  try {
    const out: Record<string, Awaited<ReturnType<typeof fromTf>>> = {};
    for (const [name, t] of tensors) out[name] = await fromTf(t);
    await saveModelDir(dir, { ...model.hfConfig(), ...extraConfig }, out);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
