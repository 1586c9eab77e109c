/**
 * The LayerNorm Scaling paper's pretraining recipes as presets (docs/methods.md, "LayerNorm
 * Scaling"), for `lm-pretrain` (one LNS model) and `lns-study` (the same shape, each variant).
 *
 * Source: Sun et al., "The Curse of Depth in Large Language Models" (2025), §5 and its model
 * table (LLaMA 130M/250M/350M/1B), and the official lmsdss/LayerNorm-Scaling run scripts
 * `run_130m.sh`, `run_250m.sh`, `run_350m.sh`, `run_1b.sh` with `configs/llama_<size>.json`:
 * Adam (torch defaults β = (0.9, 0.999), ε 1e-8), weight decay 0, grad clipping 0 (off),
 * lr 1e-3 (130M, 250M) or 5e-4 (350M, 1B), linear warmup then cosine to 0.1× (`min_lr_ratio`
 * 0.1), sequence length 256 (`max_length`), 512 sequences per update (`total_batch_size`),
 * rms_norm_eps 1e-6.
 *
 * Where paper and code differ: the paper says 10% warmup; `run_1b.sh` warms up 1,000 of its
 * 100,000 steps (1%). The presets follow the paper (10%); set `train.warmup: 1000` for the script.
 * The paper trains on C4 with the T5 tokenizer (vocabulary 32,000); NormLab's data sources are
 * its own (`data.*` is not part of the presets).
 */
import type { Preset } from '../../jobs/presets.js';

interface PaperShape {
  size: '130m' | '250m' | '350m' | '1b';
  layers: number;
  d_model: number;
  ffn: number;
  heads: number;
  lr: number;
  steps: number;
}

/** The paper's model table and the official scripts' step counts. */
const SHAPES: PaperShape[] = [
  { size: '130m', layers: 12, d_model: 768, ffn: 2048, heads: 12, lr: 1e-3, steps: 20_000 }, // run_130m.sh, configs/llama_130m.json
  { size: '250m', layers: 24, d_model: 768, ffn: 2560, heads: 16, lr: 1e-3, steps: 40_000 }, // run_250m.sh, configs/llama_250m.json
  { size: '350m', layers: 24, d_model: 1024, ffn: 2736, heads: 16, lr: 5e-4, steps: 60_000 }, // run_350m.sh, configs/llama_350m.json
  { size: '1b', layers: 24, d_model: 2048, ffn: 5461, heads: 32, lr: 5e-4, steps: 100_000 }, // run_1b.sh (warmup 1000 there), configs/llama_1b.json
];

/**
 * 512 sequences of 256 tokens per optimizer step (the scripts' total_batch_size × max_length),
 * reached by gradient accumulation: micro-batches of MICRO_BATCH sequences, grad_accum derived
 * from tokens_per_step (override `train.batch` with a power of two to fit memory).
 */
const SEQ = 256;
const SEQUENCES_PER_STEP = 512;
const MICRO_BATCH = 16;

/** The optimizer and schedule shared by every size. */
function paperTrain(s: PaperShape): Record<string, unknown> {
  return {
    steps: s.steps,
    warmup: s.steps / 10,
    lr: s.lr,
    schedule: 'cosine',
    min_lr_ratio: 0.1,
    weight_decay: 0,
    beta1: 0.9,
    beta2: 0.999,
    clip: 0,
    seq: SEQ,
    batch: MICRO_BATCH,
    tokens_per_step: SEQUENCES_PER_STEP * SEQ,
    eval_every: 1000,
    checkpoint_every: 1000,
  };
}

const source = (s: PaperShape) =>
  `Sun et al. 2025, "The Curse of Depth in LLMs", §5 and its model table (LLaMA-${s.size.toUpperCase()}); lmsdss/LayerNorm-Scaling run_${s.size}.sh + configs/llama_${s.size}.json`;

const describe = (s: PaperShape, what: string) =>
  `${what} LLaMA-${s.size.toUpperCase()} (${s.layers} layers, d ${s.d_model}, FFN ${s.ffn}, ${s.heads} heads), Adam β2 0.999, no weight decay, no clipping, lr ${s.lr}, 10% warmup, cosine to 0.1×, ${SEQUENCES_PER_STEP}×${SEQ} tokens per step, ${s.steps.toLocaleString('en')} steps`;

export const lnsPresets: Preset[] = [
  ...SHAPES.map((s): Preset => ({
    name: `lns-paper-${s.size}`,
    method: 'lm-pretrain',
    description: describe(s, 'LNS'),
    source: source(s),
    config: {
      model: { arch: 'llama', layers: s.layers, d_model: s.d_model, heads: s.heads, ffn: s.ffn, norm: 'lns', norm_type: 'rmsnorm', tie_embeddings: false },
      train: paperTrain(s),
    },
  })),
  ...SHAPES.map((s): Preset => ({
    name: `lns-paper-${s.size}`,
    method: 'lns-study',
    description: describe(s, 'each variant as'),
    source: source(s),
    config: {
      model: { layers: s.layers, d_model: s.d_model, heads: s.heads, ffn: s.ffn, norm_type: 'rmsnorm' },
      train: paperTrain(s),
    },
  })),
];
