/**
 * LLaMA-style causal LM (Touvron et al. 2023): RMSNorm, rotary positions (RoPE), SwiGLU MLP,
 * no biases, untied head. Tensor names are Hugging Face LlamaForCausalLM's; HF stores linear
 * weights (out, in), NormLab (in, out), so import and export transpose each linear once.
 *
 * The norm placement is a config switch (`normlab_norm_variant`), the subject of
 * "The Curse of Depth in Large Language Models" (Sun et al. 2025; docs/methods.md,
 * "LayerNorm Scaling"):
 *   pre:  h = x + Attn(Norm(x));            y = h + FFN(Norm(h))
 *   post: h = Norm(x + Attn(x));            y = Norm(h + FFN(h))
 *   mix:  the first k blocks post, the rest pre (Mix-LN)
 *   deepnorm: post with the residual scaled, h = Norm(a x + Attn(x)), y = Norm(a h + FFN(h))
 *         (DeepNet, Wang et al. 2022); v/o/gate/up/down drawn Xavier-normal with gain b, q/k
 *         with gain 1. a = `normlab_deepnorm_alpha`, b = `normlab_deepnorm_beta`.
 *   pre-scaled-init: pre, with out-proj and down-proj initialized at std/sqrt(2L)
 *   lns:  pre, with both block norms' outputs multiplied by 1/sqrt(l), l = 1..L (LayerNorm
 *         Scaling, eq. 4 of the paper); the final norm is not scaled.
 *   lns-scaled-init: lns with pre-scaled-init's initialization (the paper's caveat: the two
 *         do not combine well; kept to show it).
 * Every variant keeps the final norm `model.norm` before the head.
 * Tensor names stay HF's in every variant: the first norm of block i (Norm before attention in
 * pre, after the attention residual add in post) is `input_layernorm`, the second
 * `post_attention_layernorm`. (The paper's public code names its Post-LN norms
 * `post_attention_layernorm` / `post_feedforward_layernorm`; the computation is the same.)
 * Initialization is the official code's (lmsdss/LayerNorm-Scaling `_init_weights`): every
 * matrix, the embeddings included, at N(0, `initializer_range` = 0.02), except where a variant
 * above says otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { checkModelLimits, MODEL_LIMITS, type LMShape } from './memory.js';
import { attention, crossEntropy, layerNorm, linear, rmsNorm, rope, swiglu } from '../nn/ops.js';
import { normalInit, ParamSet, paramSeed } from '../nn/params.js';
import { assignCheckpointTensor, takeTensor, type CausalLM, type CheckpointSource, type ForwardHooks, type NormSite } from './lm.js';

export const NORM_VARIANTS = ['pre', 'post', 'mix', 'deepnorm', 'pre-scaled-init', 'lns', 'lns-scaled-init'] as const;
export type NormVariant = (typeof NORM_VARIANTS)[number];

export interface LlamaConfig {
  vocab_size: number;
  hidden_size: number; // model width C
  intermediate_size: number; // SwiGLU hidden width
  num_hidden_layers: number; // L
  num_attention_heads: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  initializer_range: number; // init std, 0.02
  tie_word_embeddings: boolean; // false like LLaMA
  normlab_norm_variant: NormVariant;
  normlab_norm_type: 'rmsnorm' | 'layernorm';
  normlab_mix_k: number; // mix: number of leading Post-LN blocks
  normlab_deepnorm_alpha: number; // deepnorm: residual multiplier a
  normlab_deepnorm_beta: number; // deepnorm: Xavier gain b of v/o/gate/up/down at init
}

/**
 * DeepNorm's constants for an L-block decoder. `official`: the LNS paper's code (`deeppost` in
 * lmsdss/LayerNorm-Scaling modeling_llama.py): a = 2.8284271247461903 (= sqrt 8, fixed, which is
 * DeepNet's (2L)^(1/4) at L = 32) and gain b = (8L)^(1/4). `deepnet`: DeepNet's decoder-only
 * rule (Wang et al. 2022), a = (2L)^(1/4), b = (8L)^(-1/4). They differ in the sign of b's exponent.
 */
export function deepNormConstants(rule: 'official' | 'deepnet', L: number): { alpha: number; beta: number } {
  return rule === 'official' ? { alpha: 2.8284271247461903, beta: (8 * L) ** 0.25 } : { alpha: (2 * L) ** 0.25, beta: (8 * L) ** -0.25 };
}

export const LLAMA_DEFAULTS: LlamaConfig = {
  vocab_size: 32000,
  hidden_size: 768,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  initializer_range: 0.02,
  tie_word_embeddings: false,
  normlab_norm_variant: 'pre',
  normlab_norm_type: 'rmsnorm',
  normlab_mix_k: 0,
  normlab_deepnorm_alpha: deepNormConstants('official', 12).alpha,
  normlab_deepnorm_beta: deepNormConstants('official', 12).beta,
};

/** The shape of a LLaMA for the memory estimate (engine/models/memory.ts); RoPE has no position table. */
export function llamaShape(c: LlamaConfig): LMShape {
  return {
    vocab: c.vocab_size,
    width: c.hidden_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    ffn: c.intermediate_size,
    positions: 0,
    attnMatrices: 4,
    ffnMatrices: 3,
    untiedHead: !c.tie_word_embeddings,
    scoreTensors: 1,
  };
}

/** Read a LLaMA config.json (HF keys plus NormLab's `normlab_*` keys), checking it. */
export function llamaConfigFromJson(json: Record<string, unknown>): LlamaConfig {
  const cfg = { ...LLAMA_DEFAULTS } as Record<string, unknown>;
  for (const key of Object.keys(LLAMA_DEFAULTS)) if (json[key] !== undefined) cfg[key] = json[key];
  const c = cfg as unknown as LlamaConfig;
  // A deepnorm config.json without its constants gets the official code's for its depth.
  if (json.normlab_deepnorm_beta === undefined) c.normlab_deepnorm_beta = deepNormConstants('official', Number(c.num_hidden_layers)).beta;
  for (const key of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) fail('config', `${key} must be a positive integer, got ${c[key]}`);
  }
  checkModelLimits('config.json', {
    num_hidden_layers: { value: c.num_hidden_layers, max: MODEL_LIMITS.layers },
    hidden_size: { value: c.hidden_size, max: MODEL_LIMITS.width },
    intermediate_size: { value: c.intermediate_size, max: 4 * MODEL_LIMITS.width },
    num_attention_heads: { value: c.num_attention_heads, max: MODEL_LIMITS.heads },
    vocab_size: { value: c.vocab_size, max: MODEL_LIMITS.vocab },
    max_position_embeddings: { value: c.max_position_embeddings, max: MODEL_LIMITS.positions },
  });
  if (typeof c.rms_norm_eps !== 'number' || !Number.isFinite(c.rms_norm_eps) || c.rms_norm_eps < 0)
    fail('config', `config.json: rms_norm_eps must be a finite number >= 0, got ${JSON.stringify(c.rms_norm_eps)}`);
  if (c.hidden_size % c.num_attention_heads !== 0)
    fail('config', `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) fail('config', `head size ${c.hidden_size / c.num_attention_heads} must be even for rotary positions`);
  if (!NORM_VARIANTS.includes(c.normlab_norm_variant))
    fail('config', `unknown norm variant "${c.normlab_norm_variant}": expected one of ${NORM_VARIANTS.join(', ')}`);
  if (c.normlab_norm_type !== 'rmsnorm' && c.normlab_norm_type !== 'layernorm')
    fail('config', `unknown norm type "${c.normlab_norm_type}": expected rmsnorm or layernorm`);
  if (c.normlab_norm_variant === 'mix' && (!Number.isInteger(c.normlab_mix_k) || c.normlab_mix_k < 0 || c.normlab_mix_k > c.num_hidden_layers)) {
    fail('config', `mix: k = ${c.normlab_mix_k} must be an integer between 0 and the number of layers (${c.num_hidden_layers})`);
  }
  for (const key of ['normlab_deepnorm_alpha', 'normlab_deepnorm_beta'] as const)
    if (!(typeof c[key] === 'number' && c[key] > 0)) fail('config', `${key} must be a positive number, got ${JSON.stringify(c[key])}`);
  // NormLab's own LLaMA computes none of these; a config that sets them is a Hugging Face model
  // (read by engine/models/decoder.ts) that should not carry normlab_* keys.
  const kv = json.num_key_value_heads;
  if (kv !== undefined && kv !== c.num_attention_heads)
    fail(
      'config',
      `config.json: grouped-query attention (num_key_value_heads ${kv}) is not computed by NormLab's norm-variant LLaMA; drop the normlab_* keys to read it as a Hugging Face llama`,
    );
  const unsupported: [string, boolean][] = [
    ['rope_scaling', json.rope_scaling !== undefined && json.rope_scaling !== null],
    ['attention_bias', json.attention_bias === true],
    ['mlp_bias', json.mlp_bias === true],
    ['head_dim', json.head_dim !== undefined && json.head_dim !== null && json.head_dim !== c.hidden_size / c.num_attention_heads],
    ['hidden_act', json.hidden_act !== undefined && json.hidden_act !== 'silu'],
  ];
  for (const [key, set] of unsupported)
    if (set)
      fail(
        'config',
        `config.json: ${key} ${JSON.stringify(json[key])} is not computed by NormLab's norm-variant LLaMA; drop the normlab_* keys to read it as a Hugging Face llama`,
      );
  return c;
}

/** The HF linear layers of block i, each stored (in, out) here and (out, in) on disk. */
const BLOCK_LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

export class Llama implements CausalLM {
  readonly arch = 'llama' as const;
  readonly params = new ParamSet();
  private readonly rope: { cos: tf.Tensor2D; sin: tf.Tensor2D };

  constructor(
    readonly config: LlamaConfig,
    seed = 0,
  ) {
    const { vocab_size: V, hidden_size: C, intermediate_size: F, num_hidden_layers: L, initializer_range: std } = config;
    const p = (name: string, shape: number[], s: number) => this.params.add(name, normalInit(shape, s, paramSeed(seed, name)));
    const norm = (name: string) => {
      this.params.add(`${name}.weight`, tf.ones([C]));
      if (config.normlab_norm_type === 'layernorm') this.params.add(`${name}.bias`, tf.zeros([C]));
    };
    const v = config.normlab_norm_variant;
    // Scaled init: std/sqrt(2L) on the residual out-projections.
    const residualStd = v === 'pre-scaled-init' || v === 'lns-scaled-init' ? std / Math.sqrt(2 * L) : std;
    // DeepNorm: Xavier-normal, std = gain sqrt(2/(fan_in + fan_out)); gain 1 on q/k, b elsewhere.
    const xavier = (fanIn: number, fanOut: number, gain: number) => gain * Math.sqrt(2 / (fanIn + fanOut));
    const deep = v === 'deepnorm';
    const b = config.normlab_deepnorm_beta;
    p('model.embed_tokens.weight', [V, C], std);
    for (let i = 0; i < L; i++) {
      const h = `model.layers.${i}`;
      norm(`${h}.input_layernorm`);
      norm(`${h}.post_attention_layernorm`);
      for (const n of ['q_proj', 'k_proj']) p(`${h}.self_attn.${n}.weight`, [C, C], deep ? xavier(C, C, 1) : std);
      p(`${h}.self_attn.v_proj.weight`, [C, C], deep ? xavier(C, C, b) : std);
      p(`${h}.self_attn.o_proj.weight`, [C, C], deep ? xavier(C, C, b) : residualStd);
      p(`${h}.mlp.gate_proj.weight`, [C, F], deep ? xavier(C, F, b) : std);
      p(`${h}.mlp.up_proj.weight`, [C, F], deep ? xavier(C, F, b) : std);
      p(`${h}.mlp.down_proj.weight`, [F, C], deep ? xavier(F, C, b) : residualStd);
    }
    norm('model.norm');
    if (!config.tie_word_embeddings) p('lm_head.weight', [V, C], std);
    this.rope = tf.tidy(() => ropeTables(config.max_position_embeddings, C / config.num_attention_heads, config.rope_theta));
    for (const t of Object.values(this.rope)) tf.keep(t);
  }

  get nLayers(): number {
    return this.config.num_hidden_layers;
  }
  get vocabSize(): number {
    return this.config.vocab_size;
  }
  get maxSeq(): number {
    return this.config.max_position_embeddings;
  }

  private w(name: string): tf.Variable {
    return this.params.get(name);
  }

  /** Is block i (0-based) Post-LN under this config? */
  isPostLN(i: number): boolean {
    const v = this.config.normlab_norm_variant;
    return v === 'post' || v === 'deepnorm' || (v === 'mix' && i < this.config.normlab_mix_k);
  }

  /** The factor multiplying block i's norm outputs: 1/sqrt(i+1) under LNS (eq. 4), else 1. */
  normScale(i: number): number {
    const v = this.config.normlab_norm_variant;
    return v === 'lns' || v === 'lns-scaled-init' ? 1 / Math.sqrt(i + 1) : 1;
  }

  /** The factor multiplying the residual stream in a Post-LN block: DeepNorm's a, else 1. */
  residualScale(): number {
    return this.config.normlab_norm_variant === 'deepnorm' ? this.config.normlab_deepnorm_alpha : 1;
  }

  private norm(site: NormSite, prefix: string, x: tf.Tensor, hooks?: ForwardHooks): tf.Tensor {
    const real = () =>
      this.config.normlab_norm_type === 'rmsnorm'
        ? rmsNorm(x, this.w(`${prefix}.weight`), this.config.rms_norm_eps)
        : layerNorm(x, this.w(`${prefix}.weight`), this.w(`${prefix}.bias`), this.config.rms_norm_eps);
    return hooks?.norm ? hooks.norm(site, x, real) : real();
  }

  private attention(i: number, x: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T, C] = x.shape;
    const H = this.config.num_attention_heads;
    const hs = C / H;
    const h = `model.layers.${i}.self_attn`;
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, hs]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, C) -> (B, H, T, hs)
    const q = this.applyRope(heads(linear(x, this.w(`${h}.q_proj.weight`))), T);
    const k = this.applyRope(heads(linear(x, this.w(`${h}.k_proj.weight`))), T);
    const v = heads(linear(x, this.w(`${h}.v_proj.weight`)));
    const z = attention(q, k, v, true); // (B, H, T, hs)
    hooks?.headOutputs?.(i, z);
    const y = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B, T, C]); // (B, H, T, hs) -> (B, T, C)
    return linear(y, this.w(`${h}.o_proj.weight`)) as tf.Tensor3D;
  }

  /** RoPE in HF's rotate-half form on (B, H, T, hs). */
  private applyRope(x: tf.Tensor4D, T: number): tf.Tensor4D {
    const hs = x.shape[3];
    return rope(x, tf.slice(this.rope.cos, [0, 0], [T, hs]), tf.slice(this.rope.sin, [0, 0], [T, hs])) as tf.Tensor4D;
  }

  /** SwiGLU (Shazeer 2020): down(silu(gate(x)) * up(x)). */
  private mlp(i: number, x: tf.Tensor): tf.Tensor {
    const h = `model.layers.${i}.mlp`;
    const a = swiglu(linear(x, this.w(`${h}.gate_proj.weight`)), linear(x, this.w(`${h}.up_proj.weight`)));
    return linear(a, this.w(`${h}.down_proj.weight`));
  }

  private block(i: number, x: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const pre = `model.layers.${i}`;
    const n1 = (t: tf.Tensor) => this.norm({ layer: i, which: 'ln_1' }, `${pre}.input_layernorm`, t, hooks);
    const n2 = (t: tf.Tensor) => this.norm({ layer: i, which: 'ln_2' }, `${pre}.post_attention_layernorm`, t, hooks);
    if (this.isPostLN(i)) {
      const a = this.residualScale();
      const res = (t: tf.Tensor) => (a === 1 ? t : tf.mul(t, a));
      const h = n1(tf.add(res(x), this.attention(i, x, hooks))) as tf.Tensor3D; // norm after the residual add
      return n2(tf.add(res(h), this.mlp(i, h))) as tf.Tensor3D;
    }
    const s = this.normScale(i);
    const scaled = (t: tf.Tensor) => (s === 1 ? t : tf.mul(t, s));
    const h = tf.add(x, this.attention(i, scaled(n1(x)) as tf.Tensor3D, hooks)) as tf.Tensor3D;
    return tf.add(h, this.mlp(i, scaled(n2(h)))) as tf.Tensor3D;
  }

  forward(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    return this.logits(this.hidden(idx, hooks));
  }

  hidden(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T] = idx.shape;
    if (T > this.config.max_position_embeddings) fail('shape', `sequence length ${T} exceeds max_position_embeddings ${this.config.max_position_embeddings}`);
    const C = this.config.hidden_size;
    let x = tf.reshape(tf.gather(this.w('model.embed_tokens.weight'), tf.reshape(idx, [-1])), [B, T, C]) as tf.Tensor3D; // (B, T, C)
    hooks?.residual?.(-1, x);
    for (let i = 0; i < this.config.num_hidden_layers; i++) {
      if (!hooks?.skipLayers?.has(i)) {
        const input = x;
        x = hooks?.scopeBlocks ? tf.tidy(() => this.block(i, input, hooks)) : this.block(i, input, hooks);
      }
      hooks?.residual?.(i, x);
    }
    return this.norm({ layer: -1, which: 'ln_f' }, 'model.norm', x, hooks) as tf.Tensor3D;
  }

  /** The unembedding: x (B, T, C) -> logits (B, T, V), with the embedding when tied. */
  logits(x: tf.Tensor3D): tf.Tensor3D {
    const [B, T, C] = x.shape;
    const head = this.config.tie_word_embeddings ? this.w('model.embed_tokens.weight') : this.w('lm_head.weight'); // (V, C)
    const logits = tf.matMul(tf.reshape(x, [B * T, C]), head, false, true); // (BT, C) @ (C, V)
    return tf.reshape(logits, [B, T, this.config.vocab_size]);
  }

  loss(x: tf.Tensor2D, y: tf.Tensor2D, hooks?: ForwardHooks): tf.Scalar {
    return crossEntropy(this.forward(x, hooks), y);
  }

  hfConfig(): Record<string, unknown> {
    const { normlab_deepnorm_alpha, normlab_deepnorm_beta, ...rest } = this.config;
    return {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_act: 'silu',
      num_key_value_heads: this.config.num_attention_heads,
      attention_bias: false,
      ...rest,
      // DeepNorm's constants only where they mean something.
      ...(this.config.normlab_norm_variant === 'deepnorm' ? { normlab_deepnorm_alpha, normlab_deepnorm_beta } : {}),
    };
  }

  private isLinear(name: string): boolean {
    return BLOCK_LINEARS.some((l) => name.endsWith(`${l}.weight`));
  }

  checkpointTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params.vars) out.set(name, this.isLinear(name) ? tf.transpose(v) : tf.clone(v)); // (in, out) -> HF (out, in)
    return out;
  }

  loadCheckpointTensors(tensors: CheckpointSource): void {
    for (const name of this.params.vars.keys()) {
      const { t, owned } = takeTensor(tensors, name);
      if (!t)
        fail('model', `checkpoint has no tensor ${name} (does it match num_hidden_layers ${this.nLayers} and norm type ${this.config.normlab_norm_type}?)`);
      try {
        assignCheckpointTensor(this.params, name, t, this.isLinear(name));
      } finally {
        if (owned) t.dispose();
      }
    }
  }

  dispose(): void {
    this.params.dispose();
    for (const t of Object.values(this.rope)) t.dispose();
  }
}

/** cos/sin tables (P, hs) with HF's layout cat(freqs, freqs). */
function ropeTables(P: number, hs: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = hs / 2;
  const cos = new Float32Array(P * hs);
  const sin = new Float32Array(P * hs);
  for (let t = 0; t < P; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t / theta ** ((2 * j) / hs);
      for (const c of [j, j + half]) {
        cos[t * hs + c] = Math.cos(angle);
        sin[t * hs + c] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor2d(cos, [P, hs]), sin: tf.tensor2d(sin, [P, hs]) };
}
