/**
 * Every Hugging Face family against an independent float64 PyTorch reference
 * (engine/models/hf_families_torch.py, written from transformers' modeling code): tiny random
 * checkpoints in the exact HF layout, f32 and bf16 (the bf16 ones in 2 shards), each evaluated by
 * NormLab in memory and block by block. CE and the four depth diagnostics within 1e-4.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { evalWindows } from '../data/batches.js';
import { loadTokenFile } from '../data/text.js';
import { angularDistanceMatrix, checkpointGradNorms, layerPruning, residualStats } from '../methods/lns/diagnostics.js';
import { streamedDiagnostics, streamedEvalLoss } from '../methods/lns/streamed-diagnostics.js';
import { hasTorch, PYTHON } from '../testing/torch.js';
import { lmEvalLoss } from '../train/lm-step.js';
import { execFileSync } from 'node:child_process';
import { openLM } from './index.js';

const TWIN = path.join(import.meta.dirname, 'hf_families_torch.py');
const requireTorch = process.env.CI === 'true' || process.env.NORMLAB_REQUIRE_TORCH === '1';
const TOL = 1e-4;

interface TwinResult {
  loss: number;
  variance: number[];
  token_variance: number[];
  angular: (number | null)[][];
  pruning: { base_loss: number; drop_loss: number[] };
  grad_norms: number[];
}
type Suite = Record<string, { dir: string; tokens: string; result: TwinResult }>;

/** Run the twin's suite once: every variant × dtype made, scored and diagnosed by PyTorch. */
function runSuite(root: string, args: string[]): Suite {
  const out = execFileSync(PYTHON, [TWIN, 'suite', root, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1)!) as Suite;
}

function close(label: string, a: number, b: number, tol = TOL): void {
  const scale = Math.max(1, Math.abs(b));
  if (!(Math.abs(a - b) <= tol * scale)) expect.fail(`${label}: NormLab ${a}, PyTorch ${b} (|Δ| ${Math.abs(a - b).toExponential(2)})`);
}

function closeAll(label: string, a: ArrayLike<number | null>, b: ArrayLike<number | null>): void {
  expect(a.length, `${label} length`).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (b[i] === null || a[i] === null) expect(a[i] === null || !Number.isFinite(a[i]!), `${label}[${i}]`).toBe(b[i] === null);
    else close(`${label}[${i}]`, a[i]!, b[i]!);
  }
}

const SEQ = 16;
const OPTS = { sequences: 4, pruningWindows: 4, gradWindows: 2, batch: 3 };

async function compare(key: string, entry: Suite[string], seq: number): Promise<void> {
  const ids = await loadTokenFile(entry.tokens, undefined, 'uint32');
  const windows = evalWindows(ids, seq, Number.MAX_SAFE_INTEGER);
  const t = entry.result;
  const inMemory = await openLM(entry.dir, { streaming: 'never' });
  try {
    if (inMemory.kind !== 'memory') throw new Error('expected an in-memory model');
    const m = inMemory.model;
    close(`${key} loss`, await lmEvalLoss(m, windows, 2), t.loss);
    const stats = await residualStats(m, windows, OPTS.sequences, OPTS.batch);
    closeAll(`${key} variance`, stats.variance, t.variance);
    closeAll(`${key} token variance`, stats.tokenVariance, t.token_variance);
    angularDistanceMatrix(stats, m.nLayers).forEach((row, n) => closeAll(`${key} angular n=${n + 1}`, row, t.angular[n]));
    const pruning = await layerPruning(m, { ...windows, count: OPTS.pruningWindows }, OPTS.batch);
    close(`${key} prune base`, pruning.base_loss, t.pruning.base_loss);
    closeAll(`${key} prune drop`, pruning.drop_loss, t.pruning.drop_loss);
    closeAll(`${key} grad norms`, await checkpointGradNorms(m, windows, OPTS.gradWindows), t.grad_norms);
  } finally {
    await inMemory.dispose();
  }
  const streamed = await openLM(entry.dir, { streaming: 'always' });
  try {
    if (streamed.kind !== 'streamed') throw new Error('expected a streamed model');
    const opts = { batch: OPTS.batch, budgetBytes: 3 * seq * streamed.model.spec.width * 4 * 2 };
    close(`${key} streamed loss`, await streamedEvalLoss(streamed.model, windows, opts), t.loss);
    const d = await streamedDiagnostics(streamed.model, windows, OPTS.sequences, OPTS.pruningWindows, opts);
    closeAll(`${key} streamed variance`, d.stats.variance, t.variance);
    angularDistanceMatrix(d.stats, streamed.model.nLayers).forEach((row, n) => closeAll(`${key} streamed angular n=${n + 1}`, row, t.angular[n]));
    closeAll(`${key} streamed prune drop`, d.pruning.drop_loss, t.pruning.drop_loss);
  } finally {
    await streamed.dispose();
  }
}

describe.skipIf(!hasTorch && !requireTorch)('Hugging Face families against PyTorch', () => {
  let suite: Suite;
  let dynamic: Suite;
  beforeAll(async () => {
    await initBackend('wasm');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-families-'));
    suite = runSuite(root, ['--seq', String(SEQ), '--windows', '6']);
    // Dynamic NTK only differs past max_position_embeddings (16): windows of 24.
    dynamic = runSuite(path.join(root, 'dynamic'), ['--variants', 'llama-dynamic', '--seq', '24', '--windows', '5']);
  }, 120_000);

  it('covers every family and field of the issue', () => {
    const variants = new Set(Object.keys(suite).map((k) => k.replace(/-(f32|bf16)$/, '')));
    for (const v of [
      'llama',
      'llama-gqa',
      'llama-linear',
      'llama-dynamic',
      'llama-yarn',
      'llama-bias',
      'mistral',
      'qwen2',
      'qwen3',
      'gemma',
      'gemma2',
      'olmo2',
    ])
      expect(variants.has(v), v).toBe(true);
    for (const v of ['gpt-neox', 'gpt-neox-serial', 'gpt2-fields', 'gpt2-upcast', 'gpt2-quick', 'deepseek']) expect(variants.has(v), v).toBe(true);
  });

  for (const dtype of ['f32', 'bf16']) {
    it(`every variant in ${dtype}: CE and the four diagnostics within 1e-4, in memory and streamed`, async () => {
      for (const [key, entry] of Object.entries(suite)) if (key.endsWith(`-${dtype}`)) await compare(key, entry, SEQ);
    }, 120_000);
  }

  it('a Qwen2 relabelled llama (its q/k/v biases unused) is refused, not evaluated without them', async () => {
    const src = suite['qwen2-f32'].dir;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-relabel-'));
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
    for (const streaming of ['never', 'always'] as const)
      await expect(openLM(dir, { streaming })).rejects.toThrow(
        /holds \d+ weights a llama of its config.json does not use \(model.layers.0.self_attn.k_proj.bias, model.layers.0.self_attn.q_proj.bias/,
      );
  });

  it('dynamic NTK past the context: windows of 24 on a 16-position model', async () => {
    for (const [key, entry] of Object.entries(dynamic)) await compare(key, entry, 24);
  }, 60_000);
});
