/**
 * Hugging Face decoder families as small adapters over the shared decoder (./decoder.ts): each reads
 * its config.json, with transformers' defaults for keys a file leaves out, into a `DecoderSpec`.
 * A config that asks for math NormLab does not compute (a mixture of experts, quantized weights, an
 * unknown activation or rope type, sliding windows where the family has none) is refused here with
 * one line naming the key, before a single weight is read.
 *
 * | model_type | norm, placement | attention | MLP | other |
 * |---|---|---|---|---|
 * | llama (Llama 1-3.2, DeepSeek-LLM) | RMSNorm, pre | GQA, head_dim, attention_bias | gated, mlp_bias | rope_scaling linear/dynamic/yarn/llama3 |
 * | mistral | RMSNorm, pre | GQA, sliding_window | gated | |
 * | qwen2 | RMSNorm, pre | GQA, q/k/v bias, windows from max_window_layers | gated | |
 * | qwen3 | RMSNorm, pre | GQA, per-head q/k RMSNorm | gated | |
 * | gemma | RMSNorm x(1+w), pre | GQA | GeGLU | embeddings × √d, tied |
 * | gemma2 | RMSNorm x(1+w), sandwich | scaling, score soft-cap, alternating windows | GeGLU | logit soft-cap |
 * | olmo2 | RMSNorm, after each sublayer | q/k RMSNorm over the projection | gated | |
 * | gpt_neox (Pythia) | LayerNorm + bias, parallel or pre | fused per-head qkv, biases, partial rotary | plain | untied embed_out |
 */
import { fail } from '../core/errors.js';
import { activationName } from './activations.js';
import type { DecoderNames, DecoderSpec, NormPlacement } from './decoder.js';
import { gpt2ConfigFromJson, gpt2Inner } from './gpt2.js';
import { checkModelLimits, MODEL_LIMITS, type LMShape } from './memory.js';
import { ropeScalingFromConfig } from './rotary.js';

export const DECODER_FAMILIES = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'olmo2', 'gpt_neox'] as const;
export type DecoderFamily = (typeof DECODER_FAMILIES)[number];

/** Keys that switch on math no family here computes, refused wherever they are set. */
const REFUSED_KEYS: Record<string, string> = {
  quantization_config: 'quantized weights',
  num_experts: 'a mixture of experts',
  num_local_experts: 'a mixture of experts',
  n_routed_experts: 'a mixture of experts',
  moe_intermediate_size: 'a mixture of experts',
  kv_lora_rank: 'multi-head latent attention',
  q_lora_rank: 'multi-head latent attention',
};

type Json = Record<string, unknown>;

/** A reader of one config.json that names the key in every error. */
class ConfigReader {
  constructor(
    private readonly json: Json,
    readonly where: string,
  ) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  raw(key: string): unknown {
    return this.json[key];
  }

  int(key: string, dflt?: number): number {
    const v = this.has(key) ? this.json[key] : dflt;
    if (!Number.isInteger(v) || (v as number) <= 0)
      return fail('config', `${this.where}: ${key} must be a positive integer, got ${JSON.stringify(this.json[key])}`);
    return v as number;
  }

  num(key: string, dflt?: number): number {
    const v = this.has(key) ? this.json[key] : dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail('config', `${this.where}: ${key} must be a number, got ${JSON.stringify(this.json[key])}`);
    return v;
  }

  /** A number, or null where the key is absent/null and the default is null. */
  numOrNull(key: string, dflt: number | null): number | null {
    if (!this.has(key)) return dflt;
    return this.num(key);
  }

  bool(key: string, dflt: boolean): boolean {
    if (!this.has(key)) return dflt;
    const v = this.json[key];
    if (typeof v !== 'boolean') return fail('config', `${this.where}: ${key} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  fail(message: string): never {
    return fail('config', `${this.where}: ${message}`);
  }
}

const LLAMA_NAMES: DecoderNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm',
  head: 'lm_head.weight',
  n1: 'model.layers.{i}.input_layernorm',
  n2: 'model.layers.{i}.post_attention_layernorm',
  q: 'model.layers.{i}.self_attn.q_proj',
  k: 'model.layers.{i}.self_attn.k_proj',
  v: 'model.layers.{i}.self_attn.v_proj',
  o: 'model.layers.{i}.self_attn.o_proj',
  qNorm: 'model.layers.{i}.self_attn.q_norm',
  kNorm: 'model.layers.{i}.self_attn.k_norm',
  gate: 'model.layers.{i}.mlp.gate_proj',
  up: 'model.layers.{i}.mlp.up_proj',
  down: 'model.layers.{i}.mlp.down_proj',
};

const GEMMA2_NAMES: DecoderNames = {
  ...LLAMA_NAMES,
  n1Post: 'model.layers.{i}.post_attention_layernorm',
  n2: 'model.layers.{i}.pre_feedforward_layernorm',
  n2Post: 'model.layers.{i}.post_feedforward_layernorm',
};

const OLMO2_NAMES: DecoderNames = {
  ...LLAMA_NAMES,
  n1: 'model.layers.{i}.post_attention_layernorm',
  n2: 'model.layers.{i}.post_feedforward_layernorm',
};

const NEOX_NAMES: DecoderNames = {
  embed: 'gpt_neox.embed_in.weight',
  finalNorm: 'gpt_neox.final_layer_norm',
  head: 'embed_out.weight',
  n1: 'gpt_neox.layers.{i}.input_layernorm',
  n2: 'gpt_neox.layers.{i}.post_attention_layernorm',
  qkv: 'gpt_neox.layers.{i}.attention.query_key_value',
  o: 'gpt_neox.layers.{i}.attention.dense',
  up: 'gpt_neox.layers.{i}.mlp.dense_h_to_4h',
  down: 'gpt_neox.layers.{i}.mlp.dense_4h_to_h',
};

/** The shape and rules every family shares: sizes, GQA, head_dim, rope, limits. */
function common(c: ConfigReader, family: DecoderFamily, defaults: { headDim?: number; eps: number; tied: boolean; theta?: number }) {
  const width = c.int('hidden_size');
  const heads = c.int('num_attention_heads');
  const kvHeads = c.int('num_key_value_heads', heads);
  const layers = c.int('num_hidden_layers');
  const vocab = c.int('vocab_size');
  const ffn = c.int('intermediate_size');
  const maxSeq = c.int('max_position_embeddings');
  const headDim = c.int('head_dim', defaults.headDim ?? Math.floor(width / heads));
  checkModelLimits(c.where, {
    num_hidden_layers: { value: layers, max: MODEL_LIMITS.layers },
    hidden_size: { value: width, max: MODEL_LIMITS.width },
    intermediate_size: { value: ffn, max: 8 * MODEL_LIMITS.width },
    num_attention_heads: { value: heads, max: MODEL_LIMITS.heads },
    vocab_size: { value: vocab, max: MODEL_LIMITS.vocab },
    max_position_embeddings: { value: maxSeq, max: MODEL_LIMITS.positions },
  });
  if (heads % kvHeads !== 0) c.fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (!c.has('head_dim') && defaults.headDim === undefined && width % heads !== 0)
    c.fail(`hidden_size ${width} is not divisible by num_attention_heads ${heads} and there is no head_dim`);
  const partial = c.num('partial_rotary_factor', 1);
  const dims = Math.floor(headDim * partial);
  if (dims % 2 !== 0 || dims <= 0) c.fail(`rotary dimensions ${dims} (head_dim ${headDim} × partial_rotary_factor ${partial}) must be a positive even number`);
  const eps = c.num(family === 'gpt_neox' ? 'layer_norm_eps' : 'rms_norm_eps', defaults.eps);
  const scaling = ropeScalingFromConfig(c.raw('rope_scaling'), maxSeq);
  return {
    family,
    vocab,
    width,
    layers,
    heads,
    kvHeads,
    headDim,
    ffn,
    // Dynamic NTK scaling exists to run past max_position_embeddings: up to factor times it.
    maxSeq: scaling.type === 'dynamic' ? Math.floor(maxSeq * scaling.factor) : maxSeq,
    eps,
    tied: c.bool('tie_word_embeddings', defaults.tied),
    rotary: { dims, base: c.num('rope_theta', defaults.theta ?? 10000), scaling },
  };
}

/** A spec for a Llama-layout family: pre-norm RMSNorm, gated MLP. */
function llamaLike(
  base: ReturnType<typeof common>,
  over: Partial<DecoderSpec> & { qkvBias?: boolean; oBias?: boolean; windows?: (number | null)[]; act: DecoderSpec['mlp']['act']; mlpBias?: boolean },
): DecoderSpec {
  const { eps, ...shape } = base;
  return {
    ...shape,
    norm: { kind: 'rms', eps, bias: false },
    placement: 'pre',
    attention: {
      qkvBias: over.qkvBias ?? false,
      oBias: over.oBias ?? false,
      qkNorm: 'none',
      scale: 1 / Math.sqrt(base.headDim),
      softcap: null,
      windows: over.windows ?? Array<null>(base.layers).fill(null),
    },
    mlp: { gated: true, act: over.act, bias: over.mlpBias ?? false },
    embedScale: 1,
    logitSoftcap: null,
    names: LLAMA_NAMES,
    linearLayout: 'out-in',
    ...over,
  };
}

/** Sliding windows per block from HF's `layer_types` ("sliding_attention" / "full_attention"). */
function windowsFromLayerTypes(c: ConfigReader, layers: number, window: number): (number | null)[] | null {
  const types = c.raw('layer_types');
  if (types === undefined || types === null) return null;
  if (!Array.isArray(types) || types.length !== layers) c.fail(`layer_types must list one type per layer (${layers})`);
  return types.map((t, i) => {
    if (t === 'sliding_attention') return window;
    if (t === 'full_attention') return null;
    return c.fail(`layer_types[${i}] "${String(t)}" is not sliding_attention or full_attention`);
  });
}

const ADAPTERS: Record<DecoderFamily, (c: ConfigReader) => DecoderSpec> = {
  llama(c) {
    const base = common(c, 'llama', { eps: 1e-6, tied: false });
    const bias = c.bool('attention_bias', false);
    return llamaLike(base, {
      qkvBias: bias,
      oBias: bias,
      act: activationName(c.raw('hidden_act') ?? 'silu', 'hidden_act'),
      mlpBias: c.bool('mlp_bias', false),
    });
  },
  mistral(c) {
    const base = common(c, 'mistral', { eps: 1e-6, tied: false });
    const window = c.numOrNull('sliding_window', null);
    return llamaLike(base, { act: activationName(c.raw('hidden_act') ?? 'silu', 'hidden_act'), windows: Array<number | null>(base.layers).fill(window) });
  },
  qwen2(c) {
    const base = common(c, 'qwen2', { eps: 1e-6, tied: false });
    return llamaLike(base, { qkvBias: true, act: activationName(c.raw('hidden_act') ?? 'silu', 'hidden_act'), windows: qwenWindows(c, base.layers) });
  },
  qwen3(c) {
    const base = common(c, 'qwen3', { eps: 1e-6, tied: false, headDim: 128 });
    const bias = c.bool('attention_bias', false);
    const spec = llamaLike(base, {
      qkvBias: bias,
      oBias: bias,
      act: activationName(c.raw('hidden_act') ?? 'silu', 'hidden_act'),
      windows: qwenWindows(c, base.layers),
    });
    return { ...spec, attention: { ...spec.attention, qkNorm: 'head' } };
  },
  gemma(c) {
    const base = common(c, 'gemma', { eps: 1e-6, tied: true, headDim: 256 });
    const bias = c.bool('attention_bias', false);
    const spec = llamaLike(base, { qkvBias: bias, oBias: bias, act: gemmaActivation(c) });
    return { ...spec, norm: { ...spec.norm, kind: 'rms-plus-one' }, embedScale: Math.fround(Math.sqrt(base.width)) };
  },
  gemma2(c) {
    const base = common(c, 'gemma2', { eps: 1e-6, tied: true, headDim: 256 });
    const bias = c.bool('attention_bias', false);
    const window = c.int('sliding_window', 4096);
    const windows = windowsFromLayerTypes(c, base.layers, window) ?? Array.from({ length: base.layers }, (_, i) => (i % 2 === 0 ? window : null));
    const spec = llamaLike(base, { qkvBias: bias, oBias: bias, act: gemmaActivation(c), windows });
    return {
      ...spec,
      norm: { ...spec.norm, kind: 'rms-plus-one' },
      placement: 'sandwich',
      names: GEMMA2_NAMES,
      embedScale: Math.fround(Math.sqrt(base.width)),
      attention: { ...spec.attention, scale: c.num('query_pre_attn_scalar', 224) ** -0.5, softcap: c.numOrNull('attn_logit_softcapping', 50) },
      logitSoftcap: c.numOrNull('final_logit_softcapping', 30),
    };
  },
  olmo2(c) {
    const base = common(c, 'olmo2', { eps: 1e-5, tied: false });
    const bias = c.bool('attention_bias', false);
    const spec = llamaLike(base, { qkvBias: bias, oBias: bias, act: activationName(c.raw('hidden_act') ?? 'silu', 'hidden_act') });
    return { ...spec, placement: 'post', names: OLMO2_NAMES, attention: { ...spec.attention, qkNorm: 'full' } };
  },
  gpt_neox(c) {
    const width = c.int('hidden_size');
    const heads = c.int('num_attention_heads');
    if (width % heads !== 0) c.fail(`hidden_size ${width} is not divisible by num_attention_heads ${heads}`);
    if (c.has('num_key_value_heads') && c.raw('num_key_value_heads') !== heads)
      c.fail('num_key_value_heads is not used by gpt_neox and must equal num_attention_heads');
    const headDim = width / heads;
    const pct = c.num('rotary_pct', c.has('partial_rotary_factor') ? c.num('partial_rotary_factor') : 0.25);
    const dims = Math.floor(headDim * pct);
    if (dims % 2 !== 0 || dims <= 0) c.fail(`rotary dimensions ${dims} (head size ${headDim} × rotary_pct ${pct}) must be a positive even number`);
    const base = common(c, 'gpt_neox', { eps: 1e-5, tied: false, headDim, theta: c.num('rotary_emb_base', c.has('rope_theta') ? c.num('rope_theta') : 10000) });
    const { eps, ...shape } = base;
    const bias = c.bool('attention_bias', true);
    const placement: NormPlacement = c.bool('use_parallel_residual', true) ? 'parallel' : 'pre';
    return {
      ...shape,
      rotary: { ...base.rotary, dims },
      norm: { kind: 'layer', eps, bias: true },
      placement,
      attention: {
        qkvBias: bias,
        oBias: bias,
        qkNorm: 'none',
        scale: 1 / Math.sqrt(headDim),
        softcap: null,
        windows: Array<null>(base.layers).fill(null),
        qkvLayout: 'per-head',
      },
      mlp: { gated: false, act: activationName(c.raw('hidden_act') ?? 'gelu', 'hidden_act'), bias: true },
      embedScale: 1,
      logitSoftcap: null,
      names: NEOX_NAMES,
      linearLayout: 'out-in',
      ignoredTensors: /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/,
    };
  },
};

/**
 * GPT-2 as the shared decoder, for evaluating checkpoints too large for memory block by block
 * (./streamed.ts); in memory GPT-2 is ./gpt2.ts, which LN removal trains. The fields and defaults
 * are gpt2ConfigFromJson's (it checks the config first).
 */
function gpt2Spec(json: Json, where: string): DecoderSpec {
  const c = gpt2ConfigFromJson(json);
  if (c.normlab_ln_sigmas) fail('config', `${where}: an LN-free GPT-2 (normlab_ln_sigmas) is evaluated in memory, not block by block`);
  const hs = c.n_embd / c.n_head;
  const bias = c.normlab_bias;
  const h = 'transformer.h.{i}';
  return {
    family: 'gpt2',
    vocab: c.vocab_size,
    width: c.n_embd,
    layers: c.n_layer,
    heads: c.n_head,
    kvHeads: c.n_head,
    headDim: hs,
    ffn: gpt2Inner(c),
    maxSeq: c.n_positions,
    norm: { kind: 'layer', eps: c.layer_norm_epsilon, bias },
    placement: 'pre',
    attention: {
      qkvBias: bias,
      oBias: bias,
      qkNorm: 'none',
      scale: c.scale_attn_weights ? 1 / Math.sqrt(hs) : 1,
      scaleByInverseLayer: c.scale_attn_by_inverse_layer_idx,
      softcap: null,
      windows: Array<null>(c.n_layer).fill(null),
      qkvLayout: 'blocks',
    },
    mlp: { gated: false, act: c.activation_function, bias },
    rotary: null,
    embedScale: 1,
    logitSoftcap: null,
    tied: c.tie_word_embeddings,
    linearLayout: 'in-out',
    optionalPrefix: 'transformer.',
    names: {
      embed: 'transformer.wte.weight',
      positions: 'transformer.wpe.weight',
      finalNorm: 'transformer.ln_f',
      head: 'lm_head.weight',
      n1: `${h}.ln_1`,
      n2: `${h}.ln_2`,
      qkv: `${h}.attn.c_attn`,
      o: `${h}.attn.c_proj`,
      up: `${h}.mlp.c_fc`,
      down: `${h}.mlp.c_proj`,
    },
  };
}

/** Qwen2/Qwen3: with use_sliding_window, blocks from max_window_layers on attend within sliding_window. */
function qwenWindows(c: ConfigReader, layers: number): (number | null)[] {
  const window = c.bool('use_sliding_window', false) ? c.int('sliding_window', 4096) : null;
  if (window === null) return Array<null>(layers).fill(null);
  const fromTypes = windowsFromLayerTypes(c, layers, window);
  if (fromTypes) return fromTypes;
  const first = c.has('max_window_layers') ? c.num('max_window_layers') : 28;
  return Array.from({ length: layers }, (_, i) => (i >= first ? window : null));
}

/** Gemma's GeGLU activation: `hidden_activation` (transformers ignores the older `hidden_act` and uses the tanh GELU). */
function gemmaActivation(c: ConfigReader): DecoderSpec['mlp']['act'] {
  return activationName(c.raw('hidden_activation') ?? 'gelu_pytorch_tanh', 'hidden_activation');
}

/** Is this model_type one of the shared decoder's families? */
export function isDecoderFamily(t: unknown): t is DecoderFamily {
  return typeof t === 'string' && (DECODER_FAMILIES as readonly string[]).includes(t);
}

/** Read a config.json of a decoder family into its spec; one line naming the key for anything refused. */
export function decoderSpecFromConfig(json: Json, where = 'config.json'): DecoderSpec {
  const family = json.model_type;
  if (family === 'gpt2') return gpt2Spec(json, where);
  if (!isDecoderFamily(family)) return fail('model', `${where}: model_type "${String(family)}" is not a decoder family NormLab reads`);
  for (const [key, what] of Object.entries(REFUSED_KEYS)) {
    const v = json[key];
    if (v !== undefined && v !== null && v !== 0 && v !== false) fail('config', `${where}: ${key} asks for ${what}, which NormLab does not compute`);
  }
  return ADAPTERS[family](new ConfigReader(json, where));
}

/** The decoder's shape for the memory estimate (engine/models/memory.ts). */
export function decoderShape(s: DecoderSpec): LMShape {
  return {
    vocab: s.vocab,
    width: s.width,
    layers: s.layers,
    heads: s.heads,
    ffn: s.ffn,
    positions: s.names.positions ? s.maxSeq : 0,
    attnMatrices: (2 * s.heads * s.headDim + 2 * s.kvHeads * s.headDim) / s.width,
    ffnMatrices: s.mlp.gated ? 3 : 2,
    untiedHead: !s.tied,
    // decoder.ts `scores`: soft-capped or windowed scores are computed unfused.
    scoreTensors: s.attention.softcap !== null ? 7 : s.attention.windows.some((w) => w !== null) ? 4 : 1,
  };
}
