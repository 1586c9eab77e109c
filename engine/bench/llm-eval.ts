/**
 * The bench row `llama_3.2_1b_eval`: evaluating a Llama-3.2-1B-shaped bf16 checkpoint (random
 * weights at N(0, 0.02), 2.47 GB in one safetensors file: GQA 32/8, head_dim 64, tied, llama3
 * rope scaling, vocab 128,256) on 4 windows of 512 uint32 tokens, NormLab's `eval-lm` against the
 * PyTorch twin in float32 (engine/models/hf_families_torch.py `loss --compute float32`), each in
 * its own process, one after the other: end-to-end tokens/s (loading included) and peak RSS of
 * both, and their cross-entropies (the same number to float rounding). The checkpoint is made
 * once by the twin and kept in the system's temporary folder.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appPath, CLI_ENTRY } from '../core/app-paths.js';
import type { BenchRow } from './bench.js';

const VARIANT = 'llama-3.2-1b';
const SEQ = 512;
const WINDOWS = 4;

interface Side {
  loss: number;
  tokens: number;
  seconds: number;
  peak_rss_mib: number;
}

/** Run a command; its last stdout line as JSON, or the reason it failed. */
function lastJson(cmd: string, args: string[]): Record<string, unknown> | string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60 * 60_000, maxBuffer: 16 << 20 });
  if (r.error) return `${path.basename(cmd)} could not start (${r.error.message})`;
  if (r.status !== 0) return `${path.basename(args[0] ?? cmd)} failed: ${(r.stderr || '').trim().split('\n').pop() ?? ''}`;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    return `${path.basename(args[0] ?? cmd)} printed no result`;
  }
}

/** The Llama-3.2-1B-shaped row; `python` runs the twin. */
export function benchLlmEval(python: string, log: (m: string) => void): Omit<BenchRow, 'backend'> {
  const name = 'llama_3.2_1b_eval';
  const twin = appPath('engine', 'models', 'hf_families_torch.py');
  const dir = path.join(os.tmpdir(), 'normlab-bench', VARIANT);
  const model = path.join(dir, 'model');
  const tokens = path.join(dir, 'tokens.u32');
  if (!fs.existsSync(path.join(model, 'config.json'))) {
    log(`${name}: writing the 2.47 GB bf16 checkpoint to ${model} (once)`);
    fs.rmSync(model, { recursive: true, force: true });
    const made = lastJson(python, [twin, 'make', VARIANT, model, '--dtype', 'bf16']);
    if (typeof made === 'string') return { name, value: null, unit: 'tokens/s', note: made };
  }
  if (!fs.existsSync(tokens)) {
    const t = lastJson(python, [twin, 'write-tokens', tokens, String(SEQ * WINDOWS + 1), '128256', '--dtype', 'uint32']);
    if (typeof t === 'string') return { name, value: null, unit: 'tokens/s', note: t };
  }
  log(`${name}: PyTorch float32`);
  const pt = lastJson(python, [twin, 'loss', tokens, String(SEQ), model, '--token-dtype', 'uint32', '--compute', 'float32', '--threads', '2']);
  if (typeof pt === 'string') return { name, value: null, unit: 'tokens/s', note: pt };
  const torchSide: Side = {
    loss: Number(pt.loss),
    tokens: Number(pt.tokens),
    seconds: Number(pt.load_seconds) + Number(pt.eval_seconds),
    peak_rss_mib: Number(pt.peak_rss_mib),
  };
  log(`${name}: NormLab eval-lm (wasm)`);
  const nl = lastJson(process.execPath, [
    CLI_ENTRY,
    '--backend',
    'wasm',
    'eval-lm',
    '--model',
    model,
    '--tokens',
    tokens,
    '--token-dtype',
    'uint32',
    '--seq',
    String(SEQ),
    '--json',
  ]);
  if (typeof nl === 'string') return { name, value: null, unit: 'tokens/s', note: nl };
  const ours = nl as unknown as Side;
  const fileMiB = fs.statSync(path.join(model, 'model.safetensors')).size / 2 ** 20;
  const tps = (s: Side) => s.tokens / s.seconds;
  return {
    name,
    value: tps(ours),
    unit: 'tokens/s',
    detail:
      `PyTorch f32 ${tps(torchSide).toFixed(1)} tokens/s (ratio ${(tps(ours) / tps(torchSide)).toFixed(2)}); peak RSS ${ours.peak_rss_mib} MiB ` +
      `(${(ours.peak_rss_mib / fileMiB).toFixed(2)}x the file) vs PyTorch ${Math.round(torchSide.peak_rss_mib)} MiB; |ΔCE| ${Math.abs(ours.loss - torchSide.loss).toExponential(1)}`,
    data: { normlab: ours, torch: { ...torchSide, threads: pt.threads, torch: pt.torch }, file_mib: fileMiB, seq: SEQ, windows: WINDOWS },
  };
}
