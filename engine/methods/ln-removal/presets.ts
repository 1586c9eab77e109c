/**
 * The official LN-removal recipes as presets for `ln-removal` (docs/methods.md, "LayerNorm
 * removal"): one per GPT-2 size, from `config.py` of submarat/removing-layer-norm (the paper's
 * code, "Transformers Don't Need LayerNorm at Inference Time", 2025).
 *
 * Each size has two official configs: `<size>_aux` (with the auxiliary std-uniformity loss) and
 * `<size>` (without). `ln-removal-gpt2-<size>` follows the `_aux` config (the default here);
 * `ln-removal-gpt2-<size>-no-aux` the plain one. Shared by all (config.py's FinetuneConfig
 * defaults and its HF TrainingArguments): AdamW (β 0.9 / 0.999), weight decay 0.01, clip 1,
 * cosine to `min_lr`, 1024-token sequences, 2^19 tokens per step (`target_batch_tokens`), the
 * schedule ln_2 → ln_1 QK → ln_1 V → ln_f, and HF GPT-2's dropout 0.1 while fine-tuning.
 *
 * The sigma EMA: the official code updates it once per micro-batch of `base_batch_size`
 * sequences with momentum 0.9 (small, medium) or 0.9^(base_batch_size/32) (large, XL), i.e. 0.9
 * per `base_batch_size × 1024` tokens or per 32 × 1024 tokens; `momentum_tokens` says the same
 * independently of NormLab's micro-batch.
 *
 * Not in the presets: the source model (set `source.kind: folder` and `source.path` to the GPT-2
 * of that size) and the data source (the official runs fine-tune on OpenWebText; the presets set
 * only the GPT-2 tokenizer). The released checkpoints of large and XL are steps 600 and 800 of their 1200-step
 * cosine schedules; NormLab trains the whole schedule (set `finetune.steps` to stop earlier, which
 * also shortens the cosine).
 */
import type { Preset } from '../../jobs/presets.js';

interface Recipe {
  size: 'small' | 'medium' | 'large' | 'xl';
  /** config.py's function for the `_aux` and the plain config. */
  official: [string, string];
  steps: number;
  lr: number;
  minLr: number;
  warmup: [number, number];
  start: [number, number];
  gaps: [[number, number, number], [number, number, number]];
  auxWeight: number;
  /** Tokens per which momentum 0.9 applies: base_batch_size × 1024, or 32 × 1024 where config.py scales it. */
  momentumTokens: [number, number];
}

const RECIPES: Recipe[] = [
  {
    size: 'small',
    official: ['make_gpt2_standard_aux', 'make_gpt2_standard'],
    steps: 300,
    lr: 6e-4,
    minLr: 3e-4,
    warmup: [25, 20],
    start: [20, 20],
    gaps: [
      [2, 2, 3],
      [2, 2, 3],
    ],
    auxWeight: 0.1,
    momentumTokens: [32 * 1024, 40 * 1024], // base_batch_size 32 (aux) / 40, momentum 0.9
  },
  {
    size: 'medium',
    official: ['make_gpt2_medium_fasttune_aux', 'make_gpt2_medium_fasttune'],
    steps: 500,
    lr: 6e-4,
    minLr: 3e-4,
    warmup: [10, 10],
    start: [20, 20],
    gaps: [
      [2, 2, 3],
      [2, 2, 3],
    ],
    auxWeight: 0.1,
    momentumTokens: [22 * 1024, 22 * 1024], // base_batch_size 22, momentum 0.9
  },
  {
    size: 'large',
    official: ['make_gpt2_large_aux', 'make_gpt2_large'],
    steps: 1200,
    lr: 3e-4,
    minLr: 4e-5,
    warmup: [15, 15],
    start: [30, 30],
    gaps: [
      [4, 4, 6],
      [4, 4, 6],
    ],
    auxWeight: 0.03,
    momentumTokens: [32 * 1024, 32 * 1024], // 0.9^(28/32) per 28 sequences
  },
  {
    size: 'xl',
    official: ['make_gpt2_xl_aux', 'make_gpt2_xl'],
    steps: 1200,
    lr: 1e-4,
    minLr: 2e-5,
    warmup: [20, 20],
    start: [50, 20], // the plain XL config keeps the small model's fast schedule
    gaps: [
      [4, 4, 6],
      [2, 2, 3],
    ],
    auxWeight: 0.01,
    momentumTokens: [32 * 1024, 32 * 1024], // 0.9^(18/32) per 18 sequences
  },
];

/** 2^19 tokens per optimizer step (config.py's target_batch_tokens), in 1024-token sequences. */
const TOKENS_PER_STEP = 2 ** 19;
const SEQ = 1024;
/** Sequences per micro-batch (grad_accum = 2^19 / (8 × 1024) = 64); any divisor of 512 gives the same steps. */
const MICRO_BATCH = 8;

function preset(r: Recipe, aux: boolean): Preset {
  const i = aux ? 0 : 1;
  const [gapLn2, gapLn1qk, gapLn1v] = r.gaps[i];
  return {
    name: `ln-removal-gpt2-${r.size}${aux ? '' : '-no-aux'}`,
    method: 'ln-removal',
    description: `GPT-2 ${r.size}: ${r.steps} steps, lr ${r.lr} -> ${r.minLr}, removals from step ${r.start[i]} every ${gapLn2}/${gapLn1qk}/${gapLn1v} steps, ${aux ? `aux loss ${r.auxWeight}` : 'no aux loss'}, 2^19 tokens per step, dropout 0.1`,
    source: `submarat/removing-layer-norm config.py ${r.official[i]}() and train.py (Trainer arguments, FakeLayerNorm momentum)`,
    config: {
      // The GPT-2 BPE (EOT 50256): what the GPT-2 checkpoints and the official data use.
      data: { tokenizer: 'gpt2' },
      finetune: {
        steps: r.steps,
        batch: MICRO_BATCH,
        seq: SEQ,
        tokens_per_step: TOKENS_PER_STEP,
        lr: r.lr,
        min_lr: r.minLr,
        warmup: r.warmup[i],
        weight_decay: 0.01,
        clip: 1,
        beta1: 0.9,
        beta2: 0.999,
        dropout: 0.1,
        eval_every: 100,
      },
      removal: {
        start: r.start[i],
        gap_ln2: gapLn2,
        gap_ln1qk: gapLn1qk,
        gap_ln1v: gapLn1v,
        gap_eot: 2,
        gap_bos: 10,
        momentum: 0.9,
        momentum_tokens: r.momentumTokens[i],
        aux_weight: aux ? r.auxWeight : 0,
        schedule_tokens_per_step: TOKENS_PER_STEP,
        ln1_sigma: 'shared',
      },
      // The paper's DLA check (mech_interp/attention_head_attribution): last position, 512-token
      // prompts, TransformerLens with fold_ln and center_unembed.
      dla: { positions: 'last', center_unembed: true, seq: 512 },
    },
  };
}

export const lnRemovalPresets: Preset[] = RECIPES.flatMap((r) => [preset(r, true), preset(r, false)]);
