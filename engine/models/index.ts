/**
 * Building, saving and loading causal LMs by architecture. A model directory is `config.json`
 * (HF keys; `model_type` picks the architecture) + `model.safetensors` (or HF's sharded form).
 * NormLab's own trainable models are `gpt2` and `llama` with NormLab's `normlab_norm_variant`; every
 * other decoder a Hugging Face config names (./families.ts) is read by the shared decoder
 * (./decoder.ts). The config is checked before a single weight is read.
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as path from 'node:path';
import type { StreamingMode } from '../core/choices.js';
import { fail } from '../core/errors.js';
import { openModelDir, saveModelDir, type ModelDirReader } from '../io/model-dir.js';
import type { HostTensor } from '../io/safetensors.js';
import { fromTf, toTf } from '../io/tensors.js';
import { Decoder } from './decoder.js';
import { DECODER_FAMILIES, decoderShape, decoderSpecFromConfig, isDecoderFamily } from './families.js';
import { GPT2, gpt2ConfigFromJson, gpt2Shape } from './gpt2.js';
import { Llama, llamaConfigFromJson, llamaShape } from './llama.js';
import { assertFits, backendCapacityBytes, lmMemoryBytes, lmParameterCount, lmStreamedBytes, type LMShape } from './memory.js';
import type { CausalLM } from './lm.js';
import { StreamedDecoder } from './streamed.js';
import { checkAllUsed } from './used.js';

/** gpt2, llama: NormLab's trainable models; hf: a Hugging Face decoder family read by the shared decoder. */
export type LMArch = 'gpt2' | 'llama' | 'hf';

/** How a new model will be used, for the memory check before it is allocated. */
export interface LMUse {
  batch: number;
  seq: number;
  training: boolean;
}

/**
 * A model from an HF-style config object: for gpt2 and llama randomly initialized, for hf all
 * zeros until its checkpoint is loaded. Before allocating, its memory for `use` (default:
 * evaluating one window of its context) is checked against the backend.
 */
export function createLM(arch: LMArch, config: Record<string, unknown>, seed: number, use?: LMUse): CausalLM {
  if (arch !== 'gpt2' && arch !== 'llama' && arch !== 'hf') fail('config', `unknown model architecture "${arch as string}": expected gpt2 or llama`);
  const gpt2 = arch === 'gpt2' ? gpt2ConfigFromJson(config) : null;
  const llama = arch === 'llama' ? llamaConfigFromJson(config) : null;
  const spec = arch === 'hf' ? decoderSpecFromConfig(config) : null;
  const shape: LMShape = gpt2 ? gpt2Shape(gpt2) : llama ? llamaShape(llama) : decoderShape(spec!);
  const context = gpt2 ? gpt2.n_positions : llama ? llama.max_position_embeddings : spec!.maxSeq;
  const u = use ?? { batch: 1, seq: Math.min(context, 1024), training: false };
  const params = lmParameterCount(shape);
  const name = spec ? spec.family : arch;
  assertFits(
    lmMemoryBytes(shape, u),
    `a ${name} of ${shape.layers} layers, width ${shape.width} (${params >= 1e9 ? `${(params / 1e9).toFixed(1)}B` : `${(params / 1e6).toFixed(1)}M`} parameters) ${u.training ? `training on batches of ${u.batch}x${u.seq}` : 'evaluating'}`,
  );
  if (gpt2) return new GPT2(gpt2, seed);
  if (llama) return new Llama(llama, seed);
  return new Decoder(spec!, config);
}

/**
 * The architecture a config.json names: `gpt2`; `llama` with NormLab's norm-variant keys (a model
 * NormLab trained); any decoder family of ./families.ts (Hugging Face's llama included) as `hf`.
 */
export function archOf(config: Record<string, unknown>, where: string): LMArch {
  const t = config.model_type;
  if (t === 'gpt2') return 'gpt2';
  if (t === 'llama' && config.normlab_norm_variant !== undefined) return 'llama';
  if (isDecoderFamily(t)) return 'hf';
  return fail('model', `${where}: model_type "${String(t)}" is not a causal LM NormLab knows (gpt2, ${DECODER_FAMILIES.join(', ')})`);
}

/** The shape (for memory estimates) of the model a config.json describes. */
export function lmShapeOf(config: Record<string, unknown>): LMShape {
  const arch = archOf(config, 'config.json');
  if (arch === 'gpt2') return gpt2Shape(gpt2ConfigFromJson(config));
  if (arch === 'llama') return llamaShape(llamaConfigFromJson(config));
  return decoderShape(decoderSpecFromConfig(config));
}

/** The context (positions) of the model a config.json (at `where`) describes. */
function contextOf(config: Record<string, unknown>, where: string): number {
  const arch = archOf(config, where);
  if (arch === 'gpt2') return gpt2ConfigFromJson(config).n_positions;
  if (arch === 'llama') return llamaConfigFromJson(config).max_position_embeddings;
  return decoderSpecFromConfig(config, where).maxSeq;
}

/** Check a config.json for the architecture it names, reading no weights; one line naming the key otherwise. */
export function checkLMConfig(config: Record<string, unknown>, where: string): LMArch {
  const arch = archOf(config, where);
  if (arch === 'gpt2') gpt2ConfigFromJson(config);
  else if (arch === 'llama') llamaConfigFromJson(config);
  else decoderSpecFromConfig(config, where);
  return arch;
}

/** Load an LM from a model directory (config.json + model.safetensors). */
export async function loadLM(dir: string, onProgress?: (bytesRead: number, totalBytes: number) => void): Promise<CausalLM> {
  const reader = await openModelDir(dir, { onProgress });
  try {
    return await loadFromReader(reader);
  } finally {
    await reader.close();
  }
}

/** The whole model of an open folder: its config checked before any weight is read, then every weight. */
async function loadFromReader(reader: ModelDirReader): Promise<CausalLM> {
  const arch = checkLMConfig(reader.config, path.join(reader.dir, 'config.json'));
  const weights = await reader.weights();
  const tensors = new Map<string, HostTensor>();
  for (const name of weights.names) tensors.set(name, await reader.read(name));
  const model = createLM(arch, reader.config, 0);
  try {
    // One tensor at a time: a GPT-2-small checkpoint is never held twice on the backend.
    const used = new Set<string>();
    model.loadCheckpointTensors((name) => {
      const t = tensors.get(name);
      if (t) used.add(name);
      return t ? toTf(t) : undefined;
    });
    checkAllUsed([...tensors.keys()], used, reader.dir, String(reader.config.model_type));
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

export { STREAMING_MODES, type StreamingMode } from '../core/choices.js';

/** float32 weights above this are evaluated block by block under `auto`. */
const STREAM_ABOVE_BYTES = 2 ** 30;

/**
 * How an opened model will be evaluated, for the memory estimate: sequences per forward pass,
 * tokens per window, and the residual streams kept across the blocks (the depth diagnostics: L + 1).
 */
export interface EvalUse {
  batch: number;
  seq: number;
  streams?: number;
}

/** The use of a model of this context (positions) that openLM estimates. */
export type EvalUseOf = (context: number) => EvalUse;

/** A model folder opened for evaluation: the whole model in memory, or streamed block by block. */
export type OpenedLM =
  { kind: 'memory'; model: CausalLM; dispose: () => Promise<void> } | { kind: 'streamed'; model: StreamedDecoder; dispose: () => Promise<void> };

/**
 * The bytes that evaluating the model of a config.json (at `where`) in memory needs as `use` says
 * (default: one window of its context, at most 1024): its float32 weights, one block's
 * intermediates, a chunk of logits and the kept residual streams (./memory.ts), with that use.
 */
export function evalMemoryBytes(config: Record<string, unknown>, useOf?: EvalUseOf, where = 'config.json'): { bytes: number; use: EvalUse } {
  const context = contextOf(config, where);
  const use = useOf?.(context) ?? { batch: 1, seq: Math.min(context, 1024) };
  return { bytes: lmMemoryBytes(lmShapeOf(config), { ...use, training: false }), use };
}

/**
 * Open a model folder for evaluation. Under `auto` a decoder (any family of ./families.ts, GPT-2
 * included) is streamed (./streamed.ts) when its float32 weights exceed 1 GiB or when evaluating
 * it in memory as `use` says (default: one window of its context, at most 1024) would need more than
 * half of what the backend holds (weights, one block's intermediates, kept streams; ./memory.ts):
 * its weights stay as stored and one block at a time is widened, so a bf16 model needs about its
 * file's size in memory instead of twice it. A model evaluated in memory that would not fit is a
 * one-line error saying what it needs. NormLab's norm-variant LLaMA and LN-free GPT-2s always
 * load whole. `onProgress` sees the bytes read while a whole model loads (a streamed one reads its
 * blocks as it evaluates).
 */
export async function openLM(
  dir: string,
  opts: { streaming?: StreamingMode; use?: EvalUseOf; onProgress?: (bytesRead: number, totalBytes: number) => void } = {},
): Promise<OpenedLM> {
  // Loading progress is a whole model's; a streamed one reads its blocks as it evaluates (which reports that).
  let wholeModel = false;
  const reader = await openModelDir(dir, { onProgress: (read, total) => wholeModel && opts.onProgress?.(read, total) });
  try {
    const where = path.join(dir, 'config.json');
    const arch = checkLMConfig(reader.config, where);
    const streamable = arch === 'hf' || (arch === 'gpt2' && !reader.config.normlab_ln_sigmas);
    const mode = opts.streaming ?? 'auto';
    if (mode === 'always' && !streamable)
      fail('config', `${dir}: NormLab's own ${arch} models with normlab_* keys are evaluated in memory, not block by block`);
    const spec = streamable ? decoderSpecFromConfig(reader.config, where) : null;
    const floatBytes = spec ? 4 * lmParameterCount(decoderShape(spec)) : 0;
    const { bytes: inMemory, use } = evalMemoryBytes(reader.config, opts.use, where);
    const tokens = `batches of ${use.batch} x ${use.seq} tokens`;
    const name = path.basename(path.resolve(dir));
    if (spec && (mode === 'always' || (mode === 'auto' && (floatBytes > STREAM_ABOVE_BYTES || inMemory > backendCapacityBytes().bytes / 2)))) {
      assertFits(lmStreamedBytes(decoderShape(spec), use), `evaluating ${name} block by block (${tokens})`, 'use a smaller batch or seq');
      const model = await StreamedDecoder.open(reader, spec);
      return {
        kind: 'streamed',
        model,
        dispose: async () => {
          model.dispose();
          await reader.close();
        },
      };
    }
    assertFits(
      inMemory,
      `evaluating ${name} in memory (${tokens}${use.streams ? `, ${use.streams} residual streams kept` : ''})`,
      spec ? 'streaming always (or auto) evaluates it block by block' : 'use a smaller batch or seq',
    );
    wholeModel = true;
    const model = await loadFromReader(reader);
    await reader.close();
    return { kind: 'memory', model, dispose: async () => model.dispose() };
  } catch (err) {
    await reader.close();
    throw err;
  }
}
