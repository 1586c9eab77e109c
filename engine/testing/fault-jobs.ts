/**
 * Tiny but valid configs of every job kind that writes checkpoints or child runs, for the fault run
 * (engine/testing/fault-run.ts) and the kill-and-resume tests: each runs in seconds on 2 cores.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../core/app-paths.js';

const text = { source: 'moby-dick', tokenizer: 'byte', val_fraction: 0.05 };

/** A 1-block LLaMA, 40 steps, a checkpoint every 10. */
export const tinyLmPretrain = {
  method: 'lm-pretrain',
  seed: 7,
  model: { arch: 'llama', layers: 1, d_model: 16, heads: 2 },
  data: text,
  train: { steps: 40, batch: 2, seq: 16, warmup: 2, eval_every: 20, eval_windows: 2, checkpoint_every: 10, log_every: 1 },
  diagnostics: { sequences: 2, pruning_windows: 2 },
};

/** Two seeds of the tiny LM, each in its own `run-child` process. */
const tinySweep = { method: 'sweep', base: tinyLmPretrain, seeds: [0, 1], executor: { kind: 'local', parallel: 2 } };

/** Both arms of LN removal on a 1-block GPT-2 pretrained here (a child lm-pretrain run), with DLA. */
export const tinyLnRemoval = {
  method: 'ln-removal',
  seed: 0,
  mode: 'both',
  source: {
    kind: 'pretrain',
    model: { arch: 'gpt2', layers: 1, d_model: 16, heads: 2 },
    train: { steps: 10, batch: 2, seq: 16, lr: 0.003, warmup: 1, eval_every: 5, eval_windows: 2, log_every: 5, checkpoint_every: 5, layer_grad_norms: false },
  },
  data: text,
  finetune: { steps: 8, batch: 2, seq: 16, lr: 0.001, min_lr: 0.0005, warmup: 1, eval_every: 4, eval_windows: 2, checkpoint_every: 4 },
  removal: { start: 1, gap_ln2: 1, gap_ln1qk: 1, gap_ln1v: 1, gap_eot: 1, gap_bos: 1 },
  dla: { enabled: true, prompts: 2, seq: 8 },
};

/** The autoencoder, the FID classifier, then baseline and full recipe, each a few steps on 128 MNIST digits. */
const tinyLctStudy = {
  method: 'lct-study',
  seed: 0,
  data: { source: 'mnist', count: 128, ref_count: 64 },
  autoencoder: { steps: 6, batch: 16, hidden: 16, checkpoint_every: 3 },
  classifier: { hidden: [16, 16], steps: 6, batch: 16, checkpoint_every: 3 },
  ablation: 'baseline-vs-full',
  network: { width: 16, depth: 1, heads: 2, mlp_ratio: 2, freq_dim: 16 },
  train: { steps: 6, batch: 8, warmup: 1, log_every: 2, sample_every: 6, checkpoint_every: 3, s0: 2, s1: 4 },
  eval: { samples: 16, quick_samples: 8, grid: 4 },
};

/** A 1-block MNIST ViT (one epoch, cached in the project), three presets at W4A4, the DopQ export. */
export const tinyPtqStudy = {
  method: 'ptq-study',
  seed: 0,
  vit: { model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2, mlp_ratio: 2 }, train: { epochs: 1, batch: 128, warmup: 2, log_every: 5 } },
  data: { source: 'mnist', calib_count: 16, eval_count: 100 },
  bits: [4],
  presets: ['uniform', 'repq', 'dopq'],
  plot_bits: 4,
  export_bits: 4,
};

/** Pre-LN vs LNS, 2 blocks, 10 steps each, with the depth diagnostics. */
const tinyLnsStudy = {
  method: 'lns-study',
  seed: 0,
  variants: [{ norm: 'pre' }, { norm: 'lns' }],
  model: { layers: 2, d_model: 16, heads: 2 },
  data: text,
  train: { steps: 10, batch: 2, seq: 16, lr: 0.003, warmup: 1, eval_every: 5, eval_windows: 2, log_every: 2, checkpoint_every: 5 },
  diagnostics: { sequences: 2, pruning_windows: 2 },
};

/** The depth study of three tiny random HF checkpoints (`normlab make-tiny-hf`), made under `dir`. */
function tinyDepthStudy(dir: string): Record<string, unknown> {
  const families = ['llama', 'gemma2', 'gpt2'];
  for (const family of families) {
    const out = path.join(dir, family);
    if (fs.existsSync(path.join(out, 'config.json'))) continue;
    const r = spawnSync(process.execPath, [CLI_ENTRY, 'make-tiny-hf', family, out, '--layers', '2', '--width', '16'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`make-tiny-hf ${family}: ${r.stderr}`);
  }
  return {
    method: 'depth-study',
    seed: 0,
    models: families.map((f) => path.join(dir, f)),
    data: { source: 'moby-dick', tokenizer: 'byte' },
    seq: 16,
    sequences: 2,
    pruning_windows: 2,
    grad_windows: 0,
  };
}

/** Every job kind the fault run kills, by name, with what makes its tiny config (`scratch`: where depth-study's models go). */
export function faultJobs(scratch: string): Record<string, () => Record<string, unknown>> {
  return {
    'lm-pretrain': () => tinyLmPretrain,
    sweep: () => tinySweep,
    'ln-removal': () => tinyLnRemoval,
    'lct-study': () => tinyLctStudy,
    'ptq-study': () => tinyPtqStudy,
    'lns-study': () => tinyLnsStudy,
    'depth-study': () => tinyDepthStudy(path.join(scratch, 'tiny-hf')),
  };
}
