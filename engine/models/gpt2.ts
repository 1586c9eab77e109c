/**
 * GPT-2 (Radford et al. 2019), read top-down like nanoGPT's model.py: config → attention →
 * MLP → block → model → checkpoint import/export. Tensor names are Hugging Face
 * GPT2LMHeadModel's, so a model saved here loads in PyTorch and the public GPT-2 checkpoints
 * (as safetensors) load here. HF stores GPT-2's linear weights as Conv1D, (in, out), which is
 * also NormLab's internal orientation: no transposes on import.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { attention, attentionProbs, crossEntropy, layerNorm, linear, packedSelfAttention } from '../nn/ops.js';
import { activate, activationName, type ActivationName } from './activations.js';
import { checkModelLimits, MODEL_LIMITS, type LMShape } from './memory.js';
import { normalInit, ParamSet, paramSeed } from '../nn/params.js';
import { takeTensor, type CausalLM, type CheckpointSource, type Dropout, type ForwardHooks, type NormSite } from './lm.js';

export interface GPT2Config {
  vocab_size: number; // 50257 for GPT-2's BPE, 256 for bytes
  n_positions: number; // context length
  n_embd: number; // model width C
  n_layer: number; // blocks L
  n_head: number; // heads; C must divide by it
  layer_norm_epsilon: number; // 1e-5 like GPT-2
  activation_function: ActivationName; // gelu_new = tanh approximation (GPT-2); any of HF's ACT2FN names in ./activations.ts
  n_inner: number | null; // MLP hidden width; null = 4 n_embd
  scale_attn_weights: boolean; // scores / sqrt(head size) (true like GPT-2)
  scale_attn_by_inverse_layer_idx: boolean; // scores of block i further / (i + 1) (Mistral's GPT-2 "stanford-crfm" runs)
  /** HF computes the scores in float32 with the scale applied before the matmul; in NormLab's float32 math it is the same. */
  reorder_and_upcast_attn: boolean;
  tie_word_embeddings: boolean; // true like GPT-2: lm_head shares wte
  /** NormLab key: biases in linears and norms (true like GPT-2; false like the bench twin). */
  normlab_bias: boolean;
  /**
   * NormLab key, set on LN-free models (LayerNorm removal, docs/methods.md, "LayerNorm removal"): the frozen sigma_avg of
   * every LN site, keyed by `lnSiteKey` (`h.{i}.ln_1_qk`, `h.{i}.ln_1_v`, `h.{i}.ln_2`, `ln_f`).
   * Each norm is then the fixed affine map (x - mean(x)) / sigma * gamma + beta.
   */
  normlab_ln_sigmas?: Record<string, number>;
}

export const GPT2_DEFAULTS: GPT2Config = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  n_inner: null,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  reorder_and_upcast_attn: false,
  tie_word_embeddings: true,
  normlab_bias: true,
};

/** The shape of a GPT-2 for the memory estimate (engine/models/memory.ts). */
export function gpt2Shape(c: GPT2Config): LMShape {
  return {
    vocab: c.vocab_size,
    width: c.n_embd,
    layers: c.n_layer,
    heads: c.n_head,
    ffn: gpt2Inner(c),
    positions: c.n_positions,
    attnMatrices: 4,
    ffnMatrices: 2,
    untiedHead: !c.tie_word_embeddings,
    scoreTensors: 1,
  };
}

/** The MLP's hidden width: n_inner, or 4 n_embd when it is null. */
export function gpt2Inner(c: GPT2Config): number {
  return c.n_inner ?? 4 * c.n_embd;
}

/** Read a GPT-2 config.json (HF keys; missing keys take GPT-2's defaults). */
export function gpt2ConfigFromJson(json: Record<string, unknown>): GPT2Config {
  const cfg = { ...GPT2_DEFAULTS } as Record<string, unknown>;
  for (const key of Object.keys(GPT2_DEFAULTS)) if (json[key] !== undefined) cfg[key] = json[key];
  const c = cfg as unknown as GPT2Config;
  for (const key of ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) fail('config', `config.json: ${key} must be a positive integer, got ${c[key]}`);
  }
  checkModelLimits('config.json', {
    n_layer: { value: c.n_layer, max: MODEL_LIMITS.layers },
    n_embd: { value: c.n_embd, max: MODEL_LIMITS.width },
    n_head: { value: c.n_head, max: MODEL_LIMITS.heads },
    vocab_size: { value: c.vocab_size, max: MODEL_LIMITS.vocab },
    n_positions: { value: c.n_positions, max: MODEL_LIMITS.positions },
  });
  if (c.n_embd % c.n_head !== 0) fail('config', `config.json: n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  if (typeof c.layer_norm_epsilon !== 'number' || !Number.isFinite(c.layer_norm_epsilon) || c.layer_norm_epsilon < 0)
    fail('config', `config.json: layer_norm_epsilon must be a finite number >= 0, got ${JSON.stringify(c.layer_norm_epsilon)}`);
  c.activation_function = activationName(c.activation_function, 'config.json: activation_function');
  if (c.n_inner !== null && (!Number.isInteger(c.n_inner) || c.n_inner <= 0 || c.n_inner > 8 * MODEL_LIMITS.width))
    fail('config', `config.json: n_inner must be null or a positive integer up to ${8 * MODEL_LIMITS.width}, got ${JSON.stringify(c.n_inner)}`);
  for (const key of ['scale_attn_weights', 'scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn'] as const)
    if (typeof c[key] !== 'boolean') fail('config', `config.json: ${key} must be true or false, got ${JSON.stringify(c[key])}`);
  if (json.normlab_ln_sigmas !== undefined && json.normlab_ln_sigmas !== null) c.normlab_ln_sigmas = lnSigmasFromJson(json.normlab_ln_sigmas, c.n_layer);
  return c;
}

/** The key of an LN site in `normlab_ln_sigmas`: `h.{i}.ln_1_qk`, `h.{i}.ln_1_v`, `h.{i}.ln_2` or `ln_f`. */
export function lnSiteKey(site: NormSite): string {
  return site.which === 'ln_f' ? 'ln_f' : `h.${site.layer}.${site.which}`;
}

function lnSigmasFromJson(v: unknown, L: number): Record<string, number> {
  if (typeof v !== 'object' || Array.isArray(v)) fail('config', 'config.json: normlab_ln_sigmas must be an object of site -> sigma');
  const sigmas = v as Record<string, unknown>;
  const keys = ['ln_f', ...Array.from({ length: L }, (_, i) => ['ln_1_qk', 'ln_1_v', 'ln_2'].map((w) => `h.${i}.${w}`)).flat()];
  const out: Record<string, number> = {};
  for (const k of keys) {
    const s = sigmas[k];
    if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0)
      fail('config', `config.json: normlab_ln_sigmas.${k} must be a positive number, got ${JSON.stringify(s)}`);
    out[k] = s;
  }
  return out;
}

/** Dropout at `rate` with the next seed of the run (identity when off or at rate 0). */
function dropout(x: tf.Tensor, rate: number, d: Dropout | undefined): tf.Tensor {
  return d && rate > 0 ? tf.dropout(x, rate, undefined, d.seed()) : x;
}

/** An LN-free model's norm: centring, then a fixed scale 1/sigma (no data-dependent division). */
function fixedNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor | null, sigma: number): tf.Tensor {
  const y = tf.mul(tf.sub(x, tf.mean(x, -1, true)), tf.div(gamma, sigma));
  return beta ? tf.add(y, beta) : y;
}

export class GPT2 implements CausalLM {
  readonly arch = 'gpt2' as const;
  readonly params = new ParamSet();

  constructor(
    readonly config: GPT2Config,
    seed = 0,
  ) {
    const { vocab_size: V, n_positions: P, n_embd: C, n_layer: L, normlab_bias: bias } = config;
    const F = gpt2Inner(config);
    const p = (name: string, shape: number[], std: number) => this.params.add(name, normalInit(shape, std, paramSeed(seed, name)));
    const ones = (name: string, n: number) => this.params.add(name, tf.ones([n]));
    const zeros = (name: string, n: number) => this.params.add(name, tf.zeros([n]));
    p('transformer.wte.weight', [V, C], 0.02);
    p('transformer.wpe.weight', [P, C], 0.01);
    for (let i = 0; i < L; i++) {
      const h = `transformer.h.${i}`;
      ones(`${h}.ln_1.weight`, C);
      ones(`${h}.ln_2.weight`, C);
      p(`${h}.attn.c_attn.weight`, [C, 3 * C], 0.02);
      p(`${h}.mlp.c_fc.weight`, [C, F], 0.02);
      // GPT-2's scaled init of the residual projections: std 0.02 / sqrt(2L) (Radford et al. 2019).
      p(`${h}.attn.c_proj.weight`, [C, C], 0.02 / Math.sqrt(2 * L));
      p(`${h}.mlp.c_proj.weight`, [F, C], 0.02 / Math.sqrt(2 * L));
      if (bias) {
        zeros(`${h}.ln_1.bias`, C);
        zeros(`${h}.ln_2.bias`, C);
        zeros(`${h}.attn.c_attn.bias`, 3 * C);
        zeros(`${h}.attn.c_proj.bias`, C);
        zeros(`${h}.mlp.c_fc.bias`, F);
        zeros(`${h}.mlp.c_proj.bias`, C);
      }
    }
    ones('transformer.ln_f.weight', C);
    if (bias) zeros('transformer.ln_f.bias', C);
    if (!config.tie_word_embeddings) p('lm_head.weight', [V, C], 0.02);
  }

  get nLayers(): number {
    return this.config.n_layer;
  }
  get vocabSize(): number {
    return this.config.vocab_size;
  }
  get maxSeq(): number {
    return this.config.n_positions;
  }

  private w(name: string): tf.Variable {
    return this.params.get(name);
  }
  private b(name: string): tf.Variable | undefined {
    return this.params.vars.get(name);
  }

  private norm(site: NormSite, prefix: string, x: tf.Tensor, hooks?: ForwardHooks): tf.Tensor {
    const sigma = this.config.normlab_ln_sigmas?.[lnSiteKey(site)];
    const real = () =>
      sigma === undefined
        ? layerNorm(x, this.w(`${prefix}.weight`), this.b(`${prefix}.bias`) ?? null, this.config.layer_norm_epsilon)
        : fixedNorm(x, this.w(`${prefix}.weight`), this.b(`${prefix}.bias`) ?? null, sigma);
    return hooks?.norm ? hooks.norm(site, x, real) : real();
  }

  /**
   * The factor on block i's attention scores beyond 1/sqrt(head size): sqrt(head size) undoes that
   * scale when scale_attn_weights is off, 1/(i + 1) with scale_attn_by_inverse_layer_idx.
   */
  private extraScoreScale(i: number, hs: number): number {
    const c = this.config;
    return (c.scale_attn_weights ? 1 : Math.sqrt(hs)) / (c.scale_attn_by_inverse_layer_idx ? i + 1 : 1);
  }

  /** Causal self-attention of block i; xQK feeds queries and keys, xV feeds values. */
  private attention(i: number, xQK: tf.Tensor3D, xV: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T, C] = xQK.shape;
    const H = this.config.n_head;
    const hs = C / H;
    const h = `transformer.h.${i}.attn`;
    const Wqkv = this.w(`${h}.c_attn.weight`);
    const bqkv = this.b(`${h}.c_attn.bias`);
    const cProj = (y: tf.Tensor) => linear(y, this.w(`${h}.c_proj.weight`), this.b(`${h}.c_proj.bias`)) as tf.Tensor3D;
    const drop = hooks?.dropout;
    const attnDrop = drop && drop.attn > 0 ? drop : undefined;
    const scale = this.extraScoreScale(i, hs);
    if (xQK === xV && !hooks?.headOutputs && !attnDrop && scale === 1) return cProj(packedSelfAttention(linear(xQK, Wqkv, bqkv) as tf.Tensor3D, H, true));
    let q: tf.Tensor, k: tf.Tensor, v: tf.Tensor;
    if (xQK === xV) {
      const qkv = linear(xQK, Wqkv, bqkv); // (B, T, C) -> (B, T, 3C)
      [q, k, v] = tf.split(qkv, 3, -1);
    } else {
      // ln_1 split into its Q/K and V paths: the same weights, applied to two inputs.
      const [Wqk, Wv] = tf.split(Wqkv, [2 * C, C], 1);
      const [bqk, bv] = bqkv ? tf.split(bqkv, [2 * C, C], 0) : [undefined, undefined];
      [q, k] = tf.split(linear(xQK, Wqk, bqk), 2, -1);
      v = linear(xV, Wv, bv);
    }
    if (scale !== 1) q = tf.mul(q, scale); // scaling q scales q·k
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, hs]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, C) -> (B, H, T, hs)
    const z = attnDrop
      ? (tf.matMul(dropout(attentionProbs(heads(q), heads(k), true), attnDrop.attn, attnDrop), heads(v)) as tf.Tensor4D) // probs (B, H, T, T) @ v
      : attention(heads(q), heads(k), heads(v), true); // (B, H, T, hs)
    hooks?.headOutputs?.(i, z);
    return cProj(tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B, T, C])); // (B, H, T, hs) -> (B, T, C)
  }

  private mlp(i: number, x: tf.Tensor): tf.Tensor {
    const h = `transformer.h.${i}.mlp`;
    const a = activate(this.config.activation_function, linear(x, this.w(`${h}.c_fc.weight`), this.b(`${h}.c_fc.bias`))); // (B, T, F)
    return linear(a, this.w(`${h}.c_proj.weight`), this.b(`${h}.c_proj.bias`)); // (B, T, C)
  }

  /** Pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x)) (each sublayer output through resid dropout when training). */
  private block(i: number, x: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const pre = `transformer.h.${i}`;
    let xQK: tf.Tensor3D, xV: tf.Tensor3D;
    if (hooks?.norm || this.config.normlab_ln_sigmas) {
      xQK = this.norm({ layer: i, which: 'ln_1_qk' }, `${pre}.ln_1`, x, hooks) as tf.Tensor3D;
      xV = this.norm({ layer: i, which: 'ln_1_v' }, `${pre}.ln_1`, x, hooks) as tf.Tensor3D;
    } else {
      xQK = xV = this.norm({ layer: i, which: 'ln_1' }, `${pre}.ln_1`, x) as tf.Tensor3D;
    }
    const a = this.attention(i, xQK, xV, hooks);
    hooks?.attnOutput?.(i, a);
    const d = hooks?.dropout;
    const h = tf.add(x, dropout(a, d?.resid ?? 0, d)) as tf.Tensor3D;
    const m = this.mlp(i, this.norm({ layer: i, which: 'ln_2' }, `${pre}.ln_2`, h, hooks));
    return tf.add(h, dropout(m, d?.resid ?? 0, d)) as tf.Tensor3D;
  }

  forward(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    return this.logits(this.hidden(idx, hooks));
  }

  hidden(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T] = idx.shape;
    if (T > this.config.n_positions) fail('shape', `sequence length ${T} exceeds n_positions ${this.config.n_positions}`);
    const C = this.config.n_embd;
    const tok = tf.reshape(tf.gather(this.w('transformer.wte.weight'), tf.reshape(idx, [-1])), [B, T, C]); // (B, T, C)
    const pos = tf.slice(this.w('transformer.wpe.weight'), [0, 0], [T, C]); // (T, C)
    let x = dropout(tf.add(tok, pos), hooks?.dropout?.embd ?? 0, hooks?.dropout) as tf.Tensor3D;
    hooks?.residual?.(-1, x);
    for (let i = 0; i < this.config.n_layer; i++) {
      if (!hooks?.skipLayers?.has(i)) {
        const input = x;
        x = hooks?.scopeBlocks ? tf.tidy(() => this.block(i, input, hooks)) : this.block(i, input, hooks);
      }
      hooks?.residual?.(i, x);
    }
    return this.norm({ layer: -1, which: 'ln_f' }, 'transformer.ln_f', x, hooks) as tf.Tensor3D;
  }

  /** The unembedding: x (B, T, C) -> logits (B, T, V), with wte when tied. */
  logits(x: tf.Tensor3D): tf.Tensor3D {
    const [B, T, C] = x.shape;
    const head = this.config.tie_word_embeddings ? this.w('transformer.wte.weight') : this.w('lm_head.weight'); // (V, C)
    const y = tf.matMul(tf.reshape(x, [B * T, C]), head, false, true); // (BT, C) @ (C, V)
    return tf.reshape(y, [B, T, this.config.vocab_size]);
  }

  /** Mean next-token cross-entropy (nats) of x predicting y, both int32 (B, T). */
  loss(x: tf.Tensor2D, y: tf.Tensor2D, hooks?: ForwardHooks): tf.Scalar {
    return crossEntropy(this.forward(x, hooks), y);
  }

  hfConfig(): Record<string, unknown> {
    return { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', ...this.config, n_ctx: this.config.n_positions };
  }

  checkpointTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params.vars) out.set(name, tf.clone(v));
    return out;
  }

  loadCheckpointTensors(tensors: CheckpointSource): void {
    for (const name of this.params.vars.keys()) {
      // The public GPT-2 safetensors (saved from GPT2Model) name tensors without `transformer.`.
      let { t, owned } = takeTensor(tensors, name);
      if (!t) ({ t, owned } = takeTensor(tensors, name.replace(/^transformer\./, '')));
      if (!t) fail('model', `checkpoint has no tensor ${name} (is it a GPT-2 checkpoint with n_layer ${this.config.n_layer}?)`);
      try {
        this.params.assign(name, t);
      } finally {
        if (owned) t.dispose();
      }
    }
  }

  dispose(): void {
    this.params.dispose();
  }
}
