/**
 * Tiny random Hugging Face checkpoints of a few families (`normlab make-tiny-hf FAMILY DIR`), for
 * examples and tests that must run offline: config.json and model.safetensors in the exact HF layout
 * (tensor names and shapes as transformers' state_dict, the same layouts as the PyTorch twin
 * engine/models/hf_families_torch.py writes), byte-level vocabulary (256 ids, so Moby Dick goes
 * through the byte tokenizer), weights drawn from a seeded normal. The weights are random, not
 * trained: a depth study on them shows the pipeline and the figures, not a finding about the family.
 */
import { fail } from '../core/errors.js';
import { Rng } from '../data/rng.js';
import { saveModelDir } from '../io/model-dir.js';
import type { HostTensor } from '../io/safetensors.js';

export const TINY_FAMILIES = ['llama', 'qwen2', 'gemma2', 'gpt_neox', 'gpt2'] as const;
export type TinyFamily = (typeof TINY_FAMILIES)[number];

export interface TinyOptions {
  layers: number;
  width: number;
  seed: number;
}

type Kind = 'emb' | 'pos' | 'lin' | 'bias' | 'norm' | 'norm1p' | 'head';

function configOf(family: TinyFamily, o: TinyOptions): Record<string, unknown> {
  const C = o.width;
  const common = { vocab_size: 256, max_position_embeddings: 128, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32' };
  const heads = Math.max(1, Math.floor(C / 16));
  switch (family) {
    case 'llama':
      return {
        ...common,
        model_type: 'llama',
        architectures: ['LlamaForCausalLM'],
        hidden_size: C,
        intermediate_size: Math.round((8 * C) / 3),
        num_hidden_layers: o.layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        hidden_act: 'silu',
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        tie_word_embeddings: false,
      };
    case 'qwen2':
      return {
        ...common,
        model_type: 'qwen2',
        architectures: ['Qwen2ForCausalLM'],
        hidden_size: C,
        intermediate_size: 2 * C,
        num_hidden_layers: o.layers,
        num_attention_heads: heads,
        num_key_value_heads: Math.max(1, heads / 2),
        hidden_act: 'silu',
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        use_sliding_window: false,
        tie_word_embeddings: false,
      };
    case 'gemma2':
      return {
        ...common,
        model_type: 'gemma2',
        architectures: ['Gemma2ForCausalLM'],
        hidden_size: C,
        intermediate_size: 2 * C,
        num_hidden_layers: o.layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: 16,
        hidden_activation: 'gelu_pytorch_tanh',
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        query_pre_attn_scalar: 16,
        sliding_window: 16,
        attn_logit_softcapping: 50,
        final_logit_softcapping: 30,
        tie_word_embeddings: true,
      };
    case 'gpt_neox':
      return {
        ...common,
        model_type: 'gpt_neox',
        architectures: ['GPTNeoXForCausalLM'],
        hidden_size: C,
        intermediate_size: 4 * C,
        num_hidden_layers: o.layers,
        num_attention_heads: heads,
        hidden_act: 'gelu',
        rotary_pct: 0.25,
        rotary_emb_base: 10000,
        layer_norm_eps: 1e-5,
        use_parallel_residual: true,
        tie_word_embeddings: false,
      };
    case 'gpt2':
      return {
        model_type: 'gpt2',
        architectures: ['GPT2LMHeadModel'],
        vocab_size: 256,
        n_positions: 128,
        n_embd: C,
        n_layer: o.layers,
        n_head: heads,
        activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5,
        bos_token_id: 1,
        eos_token_id: 2,
        torch_dtype: 'float32',
      };
  }
}

/** [name, shape, kind] in state_dict order (hf_families_torch.py `state_dict_spec`). */
function tensorSpec(cfg: Record<string, unknown>): [string, number[], Kind][] {
  const n = (k: string) => cfg[k] as number;
  const out: [string, number[], Kind][] = [];
  const V = n('vocab_size');
  if (cfg.model_type === 'gpt2') {
    const C = n('n_embd');
    out.push(['transformer.wte.weight', [V, C], 'emb'], ['transformer.wpe.weight', [n('n_positions'), C], 'pos']);
    for (let i = 0; i < n('n_layer'); i++) {
      const h = `transformer.h.${i}`;
      out.push([`${h}.ln_1.weight`, [C], 'norm'], [`${h}.ln_1.bias`, [C], 'bias']);
      out.push([`${h}.attn.c_attn.weight`, [C, 3 * C], 'lin'], [`${h}.attn.c_attn.bias`, [3 * C], 'bias']);
      out.push([`${h}.attn.c_proj.weight`, [C, C], 'lin'], [`${h}.attn.c_proj.bias`, [C], 'bias']);
      out.push([`${h}.ln_2.weight`, [C], 'norm'], [`${h}.ln_2.bias`, [C], 'bias']);
      out.push([`${h}.mlp.c_fc.weight`, [C, 4 * C], 'lin'], [`${h}.mlp.c_fc.bias`, [4 * C], 'bias']);
      out.push([`${h}.mlp.c_proj.weight`, [4 * C, C], 'lin'], [`${h}.mlp.c_proj.bias`, [C], 'bias']);
    }
    out.push(['transformer.ln_f.weight', [C], 'norm'], ['transformer.ln_f.bias', [C], 'bias']);
    return out;
  }
  const C = n('hidden_size');
  const I = n('intermediate_size');
  const L = n('num_hidden_layers');
  if (cfg.model_type === 'gpt_neox') {
    out.push(['gpt_neox.embed_in.weight', [V, C], 'emb']);
    for (let i = 0; i < L; i++) {
      const h = `gpt_neox.layers.${i}`;
      for (const nm of ['input_layernorm', 'post_attention_layernorm']) out.push([`${h}.${nm}.weight`, [C], 'norm'], [`${h}.${nm}.bias`, [C], 'bias']);
      for (const [nm, a, b] of [
        ['attention.query_key_value', C, 3 * C],
        ['attention.dense', C, C],
        ['mlp.dense_h_to_4h', C, I],
        ['mlp.dense_4h_to_h', I, C],
      ] as const)
        out.push([`${h}.${nm}.weight`, [b, a], 'lin'], [`${h}.${nm}.bias`, [b], 'bias']);
    }
    out.push(['gpt_neox.final_layer_norm.weight', [C], 'norm'], ['gpt_neox.final_layer_norm.bias', [C], 'bias'], ['embed_out.weight', [V, C], 'head']);
    return out;
  }
  const H = n('num_attention_heads');
  const KV = n('num_key_value_heads');
  const D = (cfg.head_dim as number | undefined) ?? C / H;
  const gemma = cfg.model_type === 'gemma2';
  const nk: Kind = gemma ? 'norm1p' : 'norm';
  const qkvBias = cfg.model_type === 'qwen2';
  out.push(['model.embed_tokens.weight', [V, C], 'emb']);
  for (let i = 0; i < L; i++) {
    const h = `model.layers.${i}`;
    for (const [nm, rows] of [
      ['q_proj', H * D],
      ['k_proj', KV * D],
      ['v_proj', KV * D],
    ] as const) {
      out.push([`${h}.self_attn.${nm}.weight`, [rows, C], 'lin']);
      if (qkvBias) out.push([`${h}.self_attn.${nm}.bias`, [rows], 'bias']);
    }
    out.push([`${h}.self_attn.o_proj.weight`, [C, H * D], 'lin']);
    out.push([`${h}.mlp.gate_proj.weight`, [I, C], 'lin'], [`${h}.mlp.up_proj.weight`, [I, C], 'lin'], [`${h}.mlp.down_proj.weight`, [C, I], 'lin']);
    const norms = gemma
      ? ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']
      : ['input_layernorm', 'post_attention_layernorm'];
    for (const nm of norms) out.push([`${h}.${nm}.weight`, [C], nk]);
  }
  out.push(['model.norm.weight', [C], nk]);
  if (!gemma) out.push(['lm_head.weight', [V, C], 'head']);
  return out;
}

/** Write a tiny random checkpoint of `family` to `dir`; returns its config. */
export async function makeTinyHF(family: string, dir: string, o: TinyOptions): Promise<Record<string, unknown>> {
  if (!(TINY_FAMILIES as readonly string[]).includes(family)) fail('config', `make-tiny-hf knows ${TINY_FAMILIES.join(', ')}, not "${family}"`);
  if (!Number.isInteger(o.layers) || o.layers < 1) fail('config', `--layers must be a positive integer, got ${o.layers}`);
  if (!Number.isInteger(o.width) || o.width < 16 || o.width % 16 !== 0) fail('config', `--width must be a multiple of 16, got ${o.width}`);
  const cfg = configOf(family as TinyFamily, o);
  const spec = tensorSpec(cfg);
  const tied = !spec.some(([, , k]) => k === 'head');
  const C = o.width;
  // As the twin's `make`: residual-preserving scales; a tied head keeps logits O(2).
  const std: Record<Kind, number> = { lin: 0.25, bias: 0.1, pos: 0.3, head: 0.2, emb: tied ? 2 / Math.sqrt(C) : 0.5, norm: 0.2, norm1p: 0.2 };
  const rng = new Rng(`make-tiny-hf:${family}:${o.seed}`);
  const tensors = new Map<string, HostTensor>();
  for (const [name, shape, kind] of spec) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (kind === 'norm' ? 1 : 0) + std[kind] * rng.normal();
    tensors.set(name, { dtype: 'F32', shape, data });
  }
  await saveModelDir(dir, cfg, tensors);
  return cfg;
}
