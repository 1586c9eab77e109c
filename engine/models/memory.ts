/**
 * How much memory a model needs, checked before anything is allocated: a config.json with
 * `n_layer: 100000` or a `d_model` of 1e9 is one line saying what it needs, not a minutes-long hang
 * or a typed-array crash. The estimate is float32 parameters (x4 when training: weights, gradients
 * and AdamW's two moments) plus one batch's activations (the residual stream and per-layer
 * intermediates, attention scores and the logits); it is a floor, not a promise.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { currentBackend } from '../backend/backend.js';
import { fail } from '../core/errors.js';

/** The largest sizes a config.json may give (beyond any model NormLab can build or load). */
export const MODEL_LIMITS = { layers: 1024, width: 65_536, heads: 1024, vocab: 1 << 20, positions: 1 << 17 } as const;

/** Check the size keys of a config.json against MODEL_LIMITS: `config.json: n_layer 100000 exceeds 1024`. */
export function checkModelLimits(where: string, sizes: Record<string, { value: number; max: number }>): void {
  for (const [key, { value, max }] of Object.entries(sizes)) if (value > max) fail('config', `${where}: ${key} ${value} exceeds the limit of ${max}`);
}

export interface LMShape {
  vocab: number;
  width: number;
  layers: number;
  heads: number;
  /** MLP hidden width. */
  ffn: number;
  positions: number;
  /** Weight matrices per block of size width x width (GPT-2 4: qkv + out; LLaMA 4: q, k, v, o). */
  attnMatrices: number;
  /** Weight matrices per block of size width x ffn (GPT-2 2; LLaMA's SwiGLU 3). */
  ffnMatrices: number;
  /** The head has its own (vocab x width) matrix. */
  untiedHead: boolean;
  /**
   * Score-sized (batch, heads, seq, seq) tensors one block's attention holds at once: 1 through
   * the fused attention kernel, 4 unfused (scores, scaled, masked, softmax), 7 soft-capped (÷cap,
   * tanh and ×cap besides).
   */
  scoreTensors: number;
}

/** Parameters of one block (norms and biases included as a few vectors). */
function blockParameterCount(s: LMShape): number {
  return s.attnMatrices * s.width * s.width + s.ffnMatrices * s.width * s.ffn + 8 * s.width + 2 * s.ffn;
}

/** Parameters of a causal LM of this shape (norms and biases included as a few vectors per block). */
export function lmParameterCount(s: LMShape): number {
  return s.vocab * s.width * (s.untiedHead ? 2 : 1) + s.positions * s.width + s.layers * blockParameterCount(s);
}

/** Floats of one block's intermediates on a batch (the residual-sized ones and the attention scores). */
function blockActivations(s: LMShape, run: { batch: number; seq: number }): number {
  return run.batch * run.seq * (10 * s.width + 2 * s.ffn) + s.scoreTensors * run.batch * s.heads * run.seq * run.seq;
}

/** Most logits (floats) an evaluation materializes at once: the head runs over chunks of positions. */
export const LOGITS_BUDGET = 16_000_000;

/**
 * Bytes for the parameters (x4 when training) and the activations of one batch of `batch` x `seq`:
 * every block's intermediates when training, one block's and one chunk of logits when evaluating
 * (blocks run in their own scope, the head over chunks), plus `streams` residual streams (batch,
 * seq, width) kept across the blocks (the depth diagnostics keep x_0..x_L).
 */
export function lmMemoryBytes(s: LMShape, run: { batch: number; seq: number; training: boolean; streams?: number }): number {
  const tokens = run.batch * run.seq;
  const perLayer = blockActivations(s, run);
  const kept = (run.streams ?? 0) * tokens * s.width;
  const logits = run.training ? 2 * tokens * s.vocab : evalLogits(s, tokens);
  const activations = s.layers * perLayer * (run.training ? 1 : 0) + 2 * perLayer + logits + kept;
  return 4 * (lmParameterCount(s) * (run.training ? 4 : 1) + activations);
}

/** Floats of an evaluation's chunk of logits, soft-capped (the head runs over chunks of positions). */
function evalLogits(s: LMShape, tokens: number): number {
  return 3 * Math.min(tokens * s.vocab, LOGITS_BUDGET);
}

/**
 * Bytes on the backend of an evaluation block by block (./streamed.ts): one block's float32
 * weights, one batch's intermediates and a chunk of logits (the streams and the stored
 * embedding live on the host).
 */
export function lmStreamedBytes(s: LMShape, run: { batch: number; seq: number }): number {
  return 4 * (blockParameterCount(s) + 2 * blockActivations(s, run) + evalLogits(s, run.batch * run.seq));
}

/**
 * What the current backend can hold: wasm's 32-bit heap is 4 GiB at most; cpu and tensorflow, the
 * machine's RAM. For webgpu the GPU's own memory is not known here, so RAM is the bound used.
 */
export function backendCapacityBytes(): { bytes: number; what: string } {
  const backend = currentBackend()?.name ?? tf.getBackend();
  if (backend === 'wasm') return { bytes: Math.min(4 * 2 ** 30, os.totalmem()), what: 'the wasm backend (a 4 GiB heap at most)' };
  return { bytes: os.totalmem(), what: `this machine's ${gib(os.totalmem())} of memory` };
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

/** Fail with one line unless `bytes` fits the backend: `the model needs 310.2 GiB (...); <remedy>`. */
export function assertFits(bytes: number, what: string, remedy = 'make it smaller'): void {
  const cap = backendCapacityBytes();
  if (!(bytes <= cap.bytes)) fail('config', `${what} needs about ${gib(bytes)}, more than ${cap.what}; ${remedy}`);
}
