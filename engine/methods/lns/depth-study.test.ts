/**
 * The depth study and pruning against the independent float64 PyTorch twin
 * (engine/models/hf_families_torch.py): ΔP with its per-window losses, d(ℓ, n) and Block Influence
 * of two families in memory and streamed; pruned folders (sharded bf16 llama, gemma2 by Gromov's
 * rule, GPT-2 by lowest BI) that PyTorch loads with NormLab's CE; the study resumed after a child
 * failed reruns only that child.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { evalLM } from '../../cli/eval-lm.js';
import { evalWindows } from '../../data/batches.js';
import { loadTokenFile } from '../../data/text.js';
import '../../jobs/all.js';
import { openLM } from '../../models/index.js';
import { makeTinyHF } from '../../models/tiny-hf.js';
import { hasTorch, PYTHON } from '../../testing/torch.js';
import { runToEnd, tempQueue } from '../../train/resume-harness.js';
import { angularDistanceMatrix, bestBlockStarts, layerPruning, pairedInterval, residualStats } from './diagnostics.js';
import { streamedDiagnostics } from './streamed-diagnostics.js';

const TWIN = path.join(import.meta.dirname, '../../models/hf_families_torch.py');
const requireTorch = process.env.CI === 'true' || process.env.NORMLAB_REQUIRE_TORCH === '1';
const TOL = 1e-4;
const SEQ = 16;

interface Twin {
  loss: number;
  angular: (number | null)[][];
  block_influence: number[];
  pruning: { base_loss: number; drop_loss: number[]; window_base_loss: number[]; window_loss: number[][] };
}

const twin = (args: string[]) =>
  JSON.parse(
    execFileSync(PYTHON, [TWIN, ...args], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1)!,
  ) as unknown;
const check = (tokens: string, dir: string, extra: string[] = []) =>
  twin([
    'check',
    tokens,
    String(SEQ),
    dir,
    '--token-dtype',
    'uint32',
    '--sequences',
    '4',
    '--pruning-windows',
    '5',
    '--grad-windows',
    '1',
    '--window-losses',
    ...extra,
  ]) as Twin;

function close(label: string, a: number, b: number): void {
  if (!(Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)))) expect.fail(`${label}: NormLab ${a}, PyTorch ${b}`);
}
function closeAll(label: string, a: ArrayLike<number | null>, b: ArrayLike<number | null>): void {
  expect(a.length, label).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (b[i] === null) expect(a[i] === null || !Number.isFinite(a[i]!), `${label}[${i}]`).toBe(true);
    else close(`${label}[${i}]`, a[i]!, b[i]!);
  }
}

describe('paired intervals', () => {
  it('mean ± t(0.975, n−1)·s/√n; one window gives a point', () => {
    const i = pairedInterval([1, 2, 3, 4]);
    const half = 3.182446305284263 * (Math.sqrt(5 / 3) / 2); // t(0.975, 3) = 3.1824
    expect(i.mean).toBe(2.5);
    expect(i.lo).toBeCloseTo(2.5 - half, 10);
    expect(i.hi).toBeCloseTo(2.5 + half, 10);
    expect(pairedInterval([0.3])).toEqual({ mean: 0.3, lo: 0.3, hi: 0.3, n: 1 });
  });
  it("Gromov's ℓ*(n) is the argmin over the row, skipping the cells beyond the depth", () => {
    expect(
      bestBlockStarts([
        [0.3, 0.1, 0.2],
        [0.5, 0.4, null],
      ]),
    ).toEqual([
      { n: 1, l: 1, d: 0.1 },
      { n: 2, l: 1, d: 0.4 },
    ]);
  });
});

describe.skipIf(!hasTorch && !requireTorch)('depth study and pruning against PyTorch', () => {
  let root: string;
  let tokens: string;
  const dirs: Record<string, string> = {};
  beforeAll(async () => {
    await initBackend('wasm');
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-depth-'));
    tokens = path.join(root, 'tokens.bin');
    twin(['write-tokens', tokens, String(SEQ * 6 + 1), '256', '--dtype', 'uint32', '--seed', '3']);
    for (const [v, extra] of [
      ['llama', []],
      ['gpt2-fields', []],
      ['gemma2', []],
      ['llama-bf16', ['--dtype', 'bf16', '--shards', '2']],
    ] as const) {
      dirs[v] = path.join(root, v);
      twin(['make', v.replace('-bf16', ''), dirs[v], ...extra]);
    }
  }, 120_000);

  it('ΔP (and each window’s CE), d(ℓ, n) and BI of two families within 1e-4, in memory and streamed', async () => {
    const windows = evalWindows(await loadTokenFile(tokens, undefined, 'uint32'), SEQ, Number.MAX_SAFE_INTEGER);
    for (const key of ['llama', 'gpt2-fields']) {
      const t = check(tokens, dirs[key]);
      const mem = await openLM(dirs[key], { streaming: 'never' });
      if (mem.kind !== 'memory') throw new Error('expected in memory');
      const stats = await residualStats(mem.model, windows, 4, 3);
      closeAll(`${key} BI`, stats.blockInfluence, t.block_influence);
      angularDistanceMatrix(stats, mem.model.nLayers).forEach((row, n) => closeAll(`${key} d n=${n + 1}`, row, t.angular[n]));
      const p = await layerPruning(mem.model, { ...windows, count: 5 }, 3);
      closeAll(`${key} ΔP`, p.drop_loss, t.pruning.drop_loss);
      closeAll(`${key} window base`, p.window_base_loss, t.pruning.window_base_loss);
      p.window_loss.forEach((w, l) => closeAll(`${key} window loss block ${l}`, w, t.pruning.window_loss[l]));
      p.drop_loss.forEach((d, l) => expect(p.drop_loss_lo[l] <= d && d <= p.drop_loss_hi[l]).toBe(true));
      await mem.dispose();
      const st = await openLM(dirs[key], { streaming: 'always' });
      if (st.kind !== 'streamed') throw new Error('expected streamed');
      const d = await streamedDiagnostics(st.model, windows, 4, 5, { batch: 2, budgetBytes: 3 * SEQ * st.model.spec.width * 4 * 2 });
      closeAll(`${key} streamed BI`, d.stats.blockInfluence, t.block_influence);
      closeAll(`${key} streamed ΔP`, d.pruning.drop_loss, t.pruning.drop_loss);
      closeAll(`${key} streamed window base`, d.pruning.window_base_loss, t.pruning.window_base_loss);
      closeAll(`${key} streamed interval lo`, d.pruning.drop_loss_lo, p.drop_loss_lo);
      await st.dispose();
    }
  }, 120_000);

  it('pruned folders load in PyTorch with NormLab’s CE (sharded bf16 by list, gemma2 by Gromov, GPT-2 by lowest BI)', async () => {
    const q = tempQueue('normlab-prune-');
    // Tokenizer files travel with the weights.
    fs.writeFileSync(path.join(dirs['llama-bf16'], 'special_tokens_map.json'), '{"bos_token": "<s>"}\n');
    const data = { source: 'tokens', path: tokens, dtype: 'uint32', tokenizer: 'byte', val_fraction: 0.5 };
    const cases = [
      { key: 'llama-bf16', spec: { layers: [1] } },
      { key: 'gemma2', spec: { rule: { gromov: 1 } } },
      { key: 'gpt2-fields', spec: { rule: { lowest_bi: 1 } } },
    ];
    for (const c of cases) {
      const run = await runToEnd(q, { method: 'prune', model: dirs[c.key], data, seq: SEQ, sequences: 2, eval_windows: 2, batch: 2, ...c.spec });
      expect(run.record.error, c.key).toBeNull();
      const s = run.readSummary()!;
      const out = String(s.pruned_dir);
      const src = JSON.parse(fs.readFileSync(path.join(dirs[c.key], 'config.json'), 'utf8')) as Record<string, unknown>;
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg.num_hidden_layers ?? cfg.n_layer).toBe(Number(src.num_hidden_layers ?? src.n_layer) - 1);
      if (c.key === 'gemma2') expect((cfg.layer_types as string[]).length).toBe(cfg.num_hidden_layers);
      if (c.key === 'llama-bf16') {
        expect(fs.existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(true);
        expect(fs.readFileSync(path.join(out, 'special_tokens_map.json'), 'utf8')).toContain('<s>');
      }
      const ref = check(tokens, out);
      const ours = await evalLM({ model: out, tokens, seq: SEQ, tokenDtype: 'uint32' });
      close(`${c.key} pruned CE`, ours.loss, ref.loss);
      if (c.key !== 'gpt2-fields') {
        // No index-dependent math here: the pruned model is the original with that block skipped.
        const removed = (s.removed_layers as number[]).join(',');
        close(`${c.key} pruned = skipped`, ref.loss, check(tokens, dirs[c.key], ['--skip', removed]).loss);
      }
      expect((s.delta_loss_ci95 as number[])[0]).toBeLessThanOrEqual(s.delta_loss as number);
    }
  }, 180_000);
});

describe('depth-study resume', () => {
  it('a child that failed is the only one rerun', async () => {
    await initBackend('wasm');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-depth-resume-'));
    const a = path.join(root, 'llama');
    const b = path.join(root, 'gpt2');
    await makeTinyHF('llama', a, { layers: 3, width: 16, seed: 1 });
    const q = tempQueue('normlab-depth-q-');
    const cfg = {
      method: 'depth-study',
      models: [a, b],
      data: { source: 'moby-dick', tokenizer: 'byte' },
      seq: 16,
      sequences: 2,
      pruning_windows: 3,
      grad_windows: 0,
    };
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(b, 'config.json'), '{}'); // not a model yet: its child fails
    const study = await runToEnd(q, cfg);
    const first = study.readSummary()!;
    expect((first.missing_children as { model: string }[]).map((m) => m.model)).toEqual(['gpt2']);
    const before = new Map(q.project.children(study.id).map((c) => [c.record.child_key, c.record]));
    expect(before.get('llama')!.status).toBe('completed');

    await makeTinyHF('gpt2', b, { layers: 4, width: 16, seed: 2 });
    q.resume(study.id);
    await q.wait(study.id);
    const done = q.project.run(study.id);
    expect(done.status).toBe('completed');
    expect(done.readSummary()!.missing_children).toEqual([]);
    const after = new Map(q.project.children(study.id).map((c) => [c.record.child_key, c.record]));
    expect(after.get('llama')!.finished).toBe(before.get('llama')!.finished); // not rerun
    expect(after.get('gpt2')!.status).toBe('completed');
    expect(after.get('gpt2')!.finished).not.toBe(before.get('gpt2')!.finished);
    const artifacts = done.artifacts();
    for (const f of ['prune_drop.png', 'prune_drop.csv', 'angular_distance.png', 'block_influence.png', 'layer_variance.png', 'half_summary.csv'])
      expect(artifacts).toContain(f);
    const models = (done.readSummary()!.models as { model: string; layers: number }[]).map((m) => [m.model, m.layers]);
    expect(models).toEqual([
      ['llama', 3],
      ['gpt2', 4],
    ]);
  }, 120_000);
});
