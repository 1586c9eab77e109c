/**
 * Building, saving and loading causal LMs by architecture. A model directory is
 * `config.json` (HF keys; `model_type` picks the architecture) + `model.safetensors`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { loadModelDir, saveModelDir } from '../io/model-dir.js';
import { fromTf, toTf } from '../io/tensors.js';
import { GPT2, gpt2ConfigFromJson, gpt2Shape } from './gpt2.js';
import { Llama, llamaConfigFromJson, llamaShape } from './llama.js';
import { assertFits, lmMemoryBytes, lmParameterCount } from './memory.js';
import type { CausalLM } from './lm.js';

export type LMArch = 'gpt2' | 'llama';

/** How a new model will be used, for the memory check before it is allocated. */
export interface LMUse {
  batch: number;
  seq: number;
  training: boolean;
}

/**
 * A fresh, randomly initialized LM from an HF-style config object. Before allocating, its memory
 * for `use` (default: evaluating one window of its context) is checked against the backend.
 */
export function createLM(arch: LMArch, config: Record<string, unknown>, seed: number, use?: LMUse): CausalLM {
  if (arch !== 'gpt2' && arch !== 'llama') fail('config', `unknown model architecture "${arch as string}": expected gpt2 or llama`);
  const gpt2 = arch === 'gpt2' ? gpt2ConfigFromJson(config) : null;
  const llama = arch === 'llama' ? llamaConfigFromJson(config) : null;
  const shape = gpt2 ? gpt2Shape(gpt2) : llamaShape(llama!);
  const context = gpt2 ? gpt2.n_positions : llama!.max_position_embeddings;
  const u = use ?? { batch: 1, seq: Math.min(context, 1024), training: false };
  const params = lmParameterCount(shape);
  assertFits(
    lmMemoryBytes(shape, u),
    `a ${arch} of ${shape.layers} layers, width ${shape.width} (${params >= 1e9 ? `${(params / 1e9).toFixed(1)}B` : `${(params / 1e6).toFixed(1)}M`} parameters) ${u.training ? `training on batches of ${u.batch}x${u.seq}` : 'evaluating'}`,
  );
  return gpt2 ? new GPT2(gpt2, seed) : new Llama(llama!, seed);
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
