/**
 * Config pieces shared by every job that trains or evaluates a causal LM: the model shape, the
 * text data and the optimizer/schedule. Each field has a default and a one-line description
 * (shown in the renderer's forms and in `normlab run --help-config`).
 */
import { z } from 'zod';
import { deepNormConstants, NORM_VARIANTS } from '../models/llama.js';
import { pathField } from '../jobs/paths.js';
import { SIZE_LIMITS } from '../jobs/registry.js';
import { checkLmAccum, lmAccumFields } from './accumulate.js';

/** One line on the llama norm variants (engine/models/llama.ts), shown in the config forms. */
export const NORM_VARIANT_HELP =
  "llama norm placement: pre, post, mix (first mix_k blocks post), deepnorm (post with scaled residual), pre-scaled-init, lns (norm outputs × 1/√l), lns-scaled-init (lns + scaled init, the paper's caveat)";

export const lmModelSchema = z
  .object({
    arch: z.enum(['llama', 'gpt2']).default('llama').describe('llama: RMSNorm, RoPE, SwiGLU; gpt2: LayerNorm, learned positions, GELU'),
    layers: z.number().int().min(1).max(96).default(4).describe('number of blocks L'),
    d_model: z.number().int().min(8).max(SIZE_LIMITS.width).default(128).describe('model width'),
    heads: z.number().int().min(1).max(SIZE_LIMITS.heads).default(4).describe('attention heads (d_model must divide by it)'),
    ffn: z.number().int().min(1).max(SIZE_LIMITS.ffn).optional().describe('MLP hidden width (default: 4 d_model for gpt2, 8/3 d_model for llama)'),
    norm: z.enum(NORM_VARIANTS).default('pre').describe(NORM_VARIANT_HELP),
    deepnorm: z
      .enum(['official', 'deepnet'])
      .default('official')
      .describe(
        "deepnorm's constants: official = the LNS paper's code (residual a = sqrt 8 fixed, init gain (8L)^(1/4)); deepnet = DeepNet's decoder rule (a = (2L)^(1/4), gain (8L)^(-1/4))",
      ),
    norm_type: z.enum(['rmsnorm', 'layernorm']).default('rmsnorm').describe('llama norm type'),
    mix_k: z.number().int().min(0).default(0).describe('mix: number of leading Post-LN blocks'),
    bias: z.boolean().default(true).describe('gpt2: biases in linears and norms'),
    tie_embeddings: z.boolean().optional().describe('share the input embedding with the head (default: gpt2 yes, llama no)'),
    init_from: pathField(z.string().optional().describe('a model folder to start from instead of random init')),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.d_model % m.heads !== 0) ctx.addIssue({ code: 'custom', path: ['heads'], message: `heads ${m.heads} must divide d_model ${m.d_model}` });
    if (m.norm === 'mix' && m.mix_k > m.layers)
      ctx.addIssue({ code: 'custom', path: ['mix_k'], message: `mix_k ${m.mix_k} exceeds the number of layers ${m.layers}` });
  });
export type LMModelConfig = z.infer<typeof lmModelSchema>;

export const textDataSchema = z
  .object({
    source: z.enum(['moby-dick', 'sotu', 'file', 'tokens']).default('moby-dick').describe('embedded corpus, a text file, or a .bin token file'),
    path: pathField(z.string().optional().describe('file for source file or tokens')),
    tokenizer: z
      .enum(['byte', 'gpt2'])
      .optional()
      .describe(
        "byte-level or GPT-2 BPE (default: a model folder's own tokenizer.json, else byte for 256-id and GPT-2 for 50257-id models; byte when training from scratch)",
      ),
    dtype: z.enum(['uint16', 'uint32']).default('uint16').describe('source tokens: flat little-endian uint16 (nanoGPT) or uint32 ids'),
    val_fraction: z.number().gt(0).lt(1).default(0.1).describe('last fraction of the tokens held out for validation'),
  })
  .strict()
  .superRefine((d, ctx) => {
    if ((d.source === 'file' || d.source === 'tokens') && !d.path) ctx.addIssue({ code: 'custom', path: ['path'], message: `source ${d.source} needs a path` });
  });
export type TextDataConfig = z.infer<typeof textDataSchema>;

/** The final evaluation's default budget: 2^20 tokens, the whole validation split of most data sets NormLab embeds. */
export const FINAL_EVAL_TOKENS = 1 << 20;

/** The budget of a run's final evaluation (engine/data/batches.ts finalEvalWindows). */
export const finalEvalTokensField = z
  .union([z.literal('all'), z.number().int().min(2)])
  .default(FINAL_EVAL_TOKENS)
  .describe(
    "validation tokens of the final evaluation (the summary's numbers and intervals), in whole windows from the start of the split; 'all' = the whole split",
  );

export const trainSchema = z
  .object({
    steps: z.number().int().min(1).default(200).describe('optimizer steps'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(16).describe('sequences per micro-batch (per step without grad_accum)'),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).default(128).describe('tokens per sequence (also the context length)'),
    ...lmAccumFields,
    lr: z.number().positive().default(1e-3).describe('peak learning rate'),
    min_lr_ratio: z.number().min(0).max(1).default(0.1).describe('cosine floor as a fraction of lr'),
    warmup: z.number().int().min(0).optional().describe('linear warmup steps (default: 20, at most a tenth of the steps)'),
    schedule: z.enum(['cosine', 'constant']).default('cosine'),
    weight_decay: z.number().min(0).default(0).describe('AdamW decoupled weight decay (matrices only)'),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.95),
    clip: z.number().min(0).default(1).describe('gradient global-norm clip (0 = off)'),
    eval_every: z.number().int().min(1).default(50).describe('steps between validation evaluations'),
    eval_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation windows of seq tokens at each evaluation during training'),
    final_eval_tokens: finalEvalTokensField,
    log_every: z.number().int().min(1).default(5),
    checkpoint_every: z.number().int().min(1).default(100),
    layer_grad_norms: z.boolean().default(true).describe('log each block’s gradient norm'),
    workers: z
      .number()
      .int()
      .min(0)
      .max(64)
      .default(0)
      .describe(
        'data-parallel replicas splitting each batch (the main thread + workers-1 worker threads); 1 = one thread; 0 = auto: one per core, at most 2, on wasm/cpu when the step (≥ 2 GFLOP) and the run are big enough to pay; results match 1 to float rounding',
      ),
  })
  .strict()
  .refine((t) => lmWarmup(t) < t.steps, { path: ['warmup'], message: 'warmup must be shorter than steps' })
  .refine((t) => t.workers <= t.batch, { path: ['workers'], message: 'workers must not exceed batch (each replica needs at least one row)' })
  .superRefine(checkLmAccum);
export type TrainConfig = z.infer<typeof trainSchema>;

/** The warmup a train config gets: its own, else `dflt` steps but at most a tenth of the run (so `train: {steps: 20}` alone works). */
export function lmWarmup(t: { warmup?: number; steps: number }, dflt = 20): number {
  return t.warmup ?? Math.min(dflt, Math.floor(t.steps / 10));
}

/** The HF-style config object for a fresh LM of this shape. */
export function hfConfigFor(m: LMModelConfig, vocabSize: number, seq: number): Record<string, unknown> {
  if (m.arch === 'gpt2') {
    return {
      vocab_size: vocabSize,
      n_positions: seq,
      n_embd: m.d_model,
      n_layer: m.layers,
      n_head: m.heads,
      normlab_bias: m.bias,
      tie_word_embeddings: m.tie_embeddings ?? true,
    };
  }
  return {
    vocab_size: vocabSize,
    hidden_size: m.d_model,
    intermediate_size: m.ffn ?? Math.round((8 / 3) * m.d_model),
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    max_position_embeddings: seq,
    tie_word_embeddings: m.tie_embeddings ?? false,
    normlab_norm_variant: m.norm,
    normlab_norm_type: m.norm_type,
    normlab_mix_k: m.mix_k,
    ...(m.norm === 'deepnorm'
      ? (({ alpha, beta }) => ({ normlab_deepnorm_alpha: alpha, normlab_deepnorm_beta: beta }))(deepNormConstants(m.deepnorm, m.layers))
      : {}),
  };
}
