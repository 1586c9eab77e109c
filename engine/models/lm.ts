/**
 * What every causal language model in NormLab offers: a forward pass from token ids to logits,
 * its parameters under Hugging Face tensor names, and hooks that diagnostics and methods use to
 * look inside (residual stream per layer, skipped layers, replaced norms, attention outputs).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParamSet } from '../nn/params.js';

/** Where a norm sits; GPT-2's ln_1 is split into the paths that feed Q/K and V. */
export type NormSite = { layer: number; which: 'ln_1' | 'ln_1_qk' | 'ln_1_v' | 'ln_2' } | { layer: -1; which: 'ln_f' };

export interface Dropout {
  attn: number;
  resid: number;
  embd: number;
  seed: () => number;
}

export interface ForwardHooks {
  /** Called with the residual stream after the embeddings (layer -1) and after each block. */
  residual?: (layer: number, x: tf.Tensor3D) => void;
  /** Blocks to skip entirely (layer pruning): x passes through unchanged. */
  skipLayers?: ReadonlySet<number>;
  /**
   * Replace a norm: given its site, input and the real norm (as a thunk), return the output.
   * GPT-2 computes ln_1 once for Q, K and V unless this hook is set, then asks for ln_1_qk and
   * ln_1_v separately (LN removal removes them at different steps).
   */
  norm?: (site: NormSite, x: tf.Tensor, real: () => tf.Tensor) => tf.Tensor;
  /**
   * Run each block in its own tf.tidy, so a block's intermediates are freed before the next block
   * runs (evaluating GPT-2 small at T = 1024 needs it). Hooks must then tf.keep what they hold.
   */
  scopeBlocks?: boolean;
  /** Called with each block's per-head attention output z (B, H, T, hs) before the out-projection. */
  headOutputs?: (layer: number, z: tf.Tensor4D) => void;
  /** Called with each block's attention sublayer output (B, T, C), c_proj and its bias applied. */
  attnOutput?: (layer: number, y: tf.Tensor3D) => void;
  /**
   * Training-time dropout (GPT-2; HF GPT2Config's names): `attn` on the attention probabilities
   * (attn_pdrop), `resid` on each sublayer's output (resid_pdrop), `embd` on the summed embeddings
   * (embd_pdrop). `seed()` gives each dropout call its own seed, so the masks depend only on the
   * run's seed. Absent means off: evaluation never sets it.
   */
  dropout?: Dropout;
}

/**
 * Checkpoint tensors by name: a Map the caller keeps owning, or a loader that makes each tensor on
 * demand and hands it over (the model disposes it), so a large checkpoint is never held twice.
 */
export type CheckpointSource = Map<string, tf.Tensor> | ((name: string) => tf.Tensor | undefined);

/** Take tensor `name` from a source; `owned` says the caller must dispose it after use. */
export function takeTensor(src: CheckpointSource, name: string): { t: tf.Tensor | undefined; owned: boolean } {
  return typeof src === 'function' ? { t: src(name), owned: true } : { t: src.get(name), owned: false };
}

/** Assign checkpoint tensor t to parameter `name`, transposing an HF (out, in) linear weight to NormLab's (in, out). */
export function assignCheckpointTensor(params: ParamSet, name: string, t: tf.Tensor, transpose: boolean): void {
  if (!transpose) return params.assign(name, t);
  const tt = tf.transpose(t);
  try {
    params.assign(name, tt);
  } finally {
    tt.dispose();
  }
}

export interface CausalLM {
  /** gpt2 and llama: NormLab's own trainable models; hf: a Hugging Face family read by the shared decoder. */
  readonly arch: 'gpt2' | 'llama' | 'hf';
  readonly nLayers: number;
  readonly vocabSize: number;
  readonly maxSeq: number;
  readonly params: ParamSet;
  /** idx int32 (B, T) -> logits (B, T, V); the same as logits(hidden(idx)). */
  forward(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D;
  /** idx int32 (B, T) -> the final-normed hidden states (B, T, C) the head reads. */
  hidden(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D;
  /** The unembedding: hidden (B, T, C) -> logits (B, T, V). */
  logits(x: tf.Tensor3D): tf.Tensor3D;
  /** The HF-style config.json (with NormLab's extra keys). */
  hfConfig(): Record<string, unknown>;
  /** Parameters in checkpoint layout (HF names and orientation), as tensors the caller disposes. */
  checkpointTensors(): Map<string, tf.Tensor>;
  /** Load parameters from checkpoint layout; errors name the tensor that does not fit. */
  loadCheckpointTensors(tensors: CheckpointSource): void;
  dispose(): void;
}
