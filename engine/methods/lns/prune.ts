/**
 * `prune`: remove whole blocks from a model folder and write the result as a loadable Hugging Face
 * folder of the same family into the run's artifacts/pruned/, then evaluate it against the
 * original on the same validation windows.
 *
 * Which blocks (0-based):
 *  - `layers: [...]`, an explicit list;
 *  - `rule: { gromov: n }`: Gromov et al. ("The Unreasonable Ineffectiveness of the Deeper Layers",
 *    2024): the n consecutive blocks l*..l*+n-1 with l* = argmin_l d(x_l, x_{l+n}), d the angular
 *    distance of the last token's residual stream averaged over `sequences` windows (diagnostics.ts);
 *  - `rule: { lowest_bi: n }`: ShortGPT (Men et al. 2024): the n blocks of lowest Block Influence
 *    BI(l) = 1 - cos(x_{l-1}, x_l) over every token of those windows.
 *
 * The folder: config.json with num_hidden_layers (n_layer for GPT-2) reduced and every per-layer
 * list (a config list of length L, e.g. `layer_types`) cut to the kept blocks; gemma2 without
 * `layer_types` gets them written out first (its default alternates by index), and qwen2/qwen3's
 * `max_window_layers` becomes the number of kept blocks below it, so every kept block keeps its
 * attention window. Tensors `…layers.{i}.…` / `…h.{i}.…` are renumbered 0..L'-1 and written with
 * their stored bytes (dtype unchanged), in as many shards as the original had holding a kept tensor
 * (one model.safetensors when it had one). Every other file of the folder but weights in other
 * formats (tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json,
 * …) is copied.
 *
 * The pruned folder is a NEW model: index-dependent math follows the new indices (GPT-2's
 * scale_attn_by_inverse_layer_idx divides by the new l+1, NormLab LNS's 1/sqrt(l) factors too), so
 * its CE is measured, not predicted by the skip-ΔP of the diagnostics (where every block keeps its
 * index). The evaluation reports both models' CE and the paired 95% t-interval of the per-window
 * difference (pruned − original).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { evalWindows, type EvalWindows } from '../../data/batches.js';
import { readJsonSync, writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from '../../io/model-dir.js';
import { openSafetensors } from '../../io/safetensors-file.js';
import type { SafetensorsDtype } from '../../io/safetensors.js';
import { pathField } from '../../jobs/paths.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { openLM, STREAMING_MODES, type OpenedLM } from '../../models/index.js';
import { textDataSchema } from '../../train/lm-config.js';
import { loadLMData } from '../../train/lm-data.js';
import { lmEvalWindowLosses } from '../../train/lm-step.js';
import { angularDistanceMatrix, bestBlockStarts, pairedInterval, pruneKeyResult, residualStats, type ResidualStats } from './diagnostics.js';
import { defaultStreamBudget, streamedResidualStats, streamedWindowLosses } from './streamed-diagnostics.js';
import { diagnosticsUse, diagnosticsWindow } from './eval-use.js';

const ruleSchema = z.union([
  z.object({ gromov: z.number().int().min(1).describe('Gromov et al.: remove the best block of n consecutive layers by angular distance') }).strict(),
  z.object({ lowest_bi: z.number().int().min(1).describe('ShortGPT: remove the n layers of lowest Block Influence') }).strict(),
]);

export const pruneSchema = z
  .object({
    method: z.literal('prune'),
    ...baseConfig,
    model: pathField(z.string().min(1).describe('the model folder to prune (config.json + safetensors)')),
    layers: z.array(z.number().int().min(0)).min(1).optional().describe('0-based block indices to remove'),
    rule: ruleSchema.optional().describe('or a rule: {gromov: n} or {lowest_bi: n}'),
    data: textDataSchema.optional().describe("validation text (default Moby Dick; the model folder's tokenizer.json without data.tokenizer)"),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).optional().describe("tokens per window (default: the model's context, at most 1024)"),
    sequences: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('windows for the angular distance / Block Influence of a rule'),
    eval_windows: z.number().int().min(2).max(SIZE_LIMITS.count).default(32).describe('windows on which the pruned and original models are compared'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(8).describe('sequences per forward pass'),
    streaming: z.enum(STREAMING_MODES).default('auto').describe('evaluate block by block (always), whole (never) or by size (auto)'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.layers === !c.rule) ctx.addIssue({ code: 'custom', path: ['layers'], message: 'give exactly one of layers (0-based block indices) or rule' });
    if (c.layers && new Set(c.layers).size !== c.layers.length) ctx.addIssue({ code: 'custom', path: ['layers'], message: 'a block is listed twice' });
  });
export type PruneConfig = z.infer<typeof pruneSchema>;

/** The model's depth from its config.json (num_hidden_layers, else GPT-2's n_layer). */
export function depthOf(cfg: Record<string, unknown>, where: string): { key: 'num_hidden_layers' | 'n_layer'; L: number } {
  const key = cfg.num_hidden_layers !== undefined ? 'num_hidden_layers' : 'n_layer';
  const L = Number(cfg[key]);
  if (!Number.isInteger(L) || L < 1) fail('config', `${where}: no num_hidden_layers or n_layer`);
  return { key, L };
}

/** The 0-based blocks a rule removes, from the residual statistics. */
export function blocksOfRule(rule: NonNullable<PruneConfig['rule']>, stats: ResidualStats, L: number): number[] {
  if ('gromov' in rule) {
    const n = rule.gromov;
    if (n >= L) fail('config', `gromov ${n} would remove every block of a ${L}-block model: choose 1..${L - 1}`);
    const d = angularDistanceMatrix(stats, n);
    const best = bestBlockStarts(d.map((r) => r.map((v) => (Number.isFinite(v) ? v : null))))[n - 1];
    return Array.from({ length: n }, (_, k) => best.l + k);
  }
  const n = rule.lowest_bi;
  if (n >= L) fail('config', `lowest_bi ${n} would remove every block of a ${L}-block model: choose 1..${L - 1}`);
  const order = stats.blockInfluence.map((bi, l) => ({ bi, l })).sort((a, b) => a.bi - b.bi || a.l - b.l);
  return order
    .slice(0, n)
    .map((o) => o.l)
    .sort((a, b) => a - b);
}

/** config.json of the pruned model: depth reduced, per-layer lists cut (see the header). */
export function prunedConfig(cfg: Record<string, unknown>, removed: readonly number[], where: string): Record<string, unknown> {
  const { key, L } = depthOf(cfg, where);
  const kept = Array.from({ length: L }, (_, l) => l).filter((l) => !removed.includes(l));
  const out: Record<string, unknown> = { ...cfg, [key]: kept.length };
  if (cfg.model_type === 'gemma2' && !Array.isArray(cfg.layer_types))
    out.layer_types = Array.from({ length: L }, (_, l) => (l % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  if ((cfg.model_type === 'qwen2' || cfg.model_type === 'qwen3') && (typeof cfg.max_window_layers === 'number' || cfg.use_sliding_window === true)) {
    const first = typeof cfg.max_window_layers === 'number' ? cfg.max_window_layers : 28; // HF's default
    out.max_window_layers = kept.filter((l) => l < first).length;
  }
  for (const [k, v] of Object.entries(out)) if (Array.isArray(v) && v.length === L && k !== 'architectures') out[k] = kept.map((l) => v[l]);
  return out;
}

const LAYER_NAME = /^(.*?\.(?:layers|h))\.(\d+)\.(.+)$/;

/** The tensor's new name, or null if its block is removed; `newIndex` maps kept blocks to 0..L'-1. */
function renamed(name: string, newIndex: Map<number, number>, L: number): string | null {
  const m = LAYER_NAME.exec(name);
  if (!m) return name;
  const l = Number(m[2]);
  if (l >= L) fail('config', `tensor ${name} names block ${l} of a ${L}-block model`);
  const to = newIndex.get(l);
  return to === undefined ? null : `${m[1]}.${to}.${m[3]}`;
}

/** Write a safetensors file of raw stored tensors, streamed: header, then each tensor's bytes. */
async function writeRawSafetensors(
  file: string,
  tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; bytes: () => Promise<Uint8Array>; length: number }[],
  metadata: Record<string, string>,
): Promise<number> {
  const header: Record<string, unknown> = Object.keys(metadata).length ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.length] };
    offset += t.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.write(head);
    await fh.write(Buffer.from(json));
    for (const t of tensors) await fh.write(await t.bytes());
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  return offset;
}

/** Weight files in formats other than safetensors: the unpruned model, not copied. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|h5|msgpack|gguf|onnx)$/i;

/**
 * Write the pruned copy of model folder `src` to `out` (see the header); returns the shard files.
 * `removed` are 0-based block indices, at least one block kept.
 */
export async function writePrunedFolder(src: string, out: string, removed: readonly number[]): Promise<string[]> {
  const where = path.join(src, CONFIG_FILE);
  const cfg = readJsonSync(where, 'model config') as Record<string, unknown>;
  const { L } = depthOf(cfg, where);
  const bad = removed.find((l) => l >= L);
  if (bad !== undefined) fail('config', `block ${bad} does not exist: ${path.basename(src)} has blocks 0..${L - 1}`);
  if (removed.length >= L) fail('config', `removing ${removed.length} of ${L} blocks leaves none`);
  const kept = Array.from({ length: L }, (_, l) => l).filter((l) => !removed.includes(l));
  const newIndex = new Map(kept.map((l, i) => [l, i]));
  fs.mkdirSync(out, { recursive: true });

  const indexPath = path.join(src, WEIGHTS_INDEX_FILE);
  const sharded = fs.existsSync(indexPath);
  const shards = sharded
    ? [...new Set(Object.values((readJsonSync(indexPath, 'weights index') as { weight_map: Record<string, string> }).weight_map))]
    : [WEIGHTS_FILE];
  const plans: { file: string; tensors: Parameters<typeof writeRawSafetensors>[1]; metadata: Record<string, string>; close: () => Promise<void> }[] = [];
  try {
    for (const shard of shards) {
      const st = await openSafetensors(path.join(src, shard));
      const tensors = st.names.flatMap((name) => {
        const to = renamed(name, newIndex, L);
        if (to === null) return [];
        const info = st.info(name);
        return [{ name: to, dtype: info.dtype, shape: info.shape, length: info.byteLength, bytes: async () => (await st.readTensorRaw(name)).bytes }];
      });
      plans.push({ file: shard, tensors, metadata: st.metadata, close: () => st.close() });
    }
    const nonEmpty = plans.filter((p) => p.tensors.length > 0);
    const files: string[] = [];
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (const [i, p] of nonEmpty.entries()) {
      const name = sharded ? `model-${String(i + 1).padStart(5, '0')}-of-${String(nonEmpty.length).padStart(5, '0')}.safetensors` : WEIGHTS_FILE;
      total += await writeRawSafetensors(path.join(out, name), p.tensors, p.metadata);
      for (const t of p.tensors) weightMap[t.name] = name;
      files.push(name);
    }
    if (sharded) await writeJsonAtomic(path.join(out, WEIGHTS_INDEX_FILE), { metadata: { total_size: total }, weight_map: weightMap });
    await writeFileAtomic(path.join(out, CONFIG_FILE), JSON.stringify(prunedConfig(cfg, removed, where), null, 2) + '\n');
    for (const f of fs.readdirSync(src)) {
      const from = path.join(src, f);
      if (f === CONFIG_FILE || f === WEIGHTS_INDEX_FILE || f.endsWith('.safetensors') || OTHER_WEIGHTS.test(f) || !fs.statSync(from).isFile()) continue;
      fs.copyFileSync(from, path.join(out, f));
    }
    return files;
  } finally {
    for (const p of plans) await p.close();
  }
}

/** Each window's CE of an opened model (in memory or streamed). */
async function windowLosses(opened: OpenedLM, windows: EvalWindows, batch: number): Promise<number[]> {
  if (opened.kind === 'memory') return Array.from(await lmEvalWindowLosses(opened.model, windows, batch));
  return streamedWindowLosses(opened.model, windows, { batch, budgetBytes: defaultStreamBudget(opened.model) });
}

const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;

registerJobKind({
  name: 'prune',
  title: 'Prune layers',
  description: 'Remove blocks (an explicit list, Gromov’s best block of n, or the n lowest-BI blocks), write a loadable HF folder, and evaluate it.',
  schema: pruneSchema,
  resumable: false,
  async run(ctx, cfg) {
    const src = path.resolve(cfg.model);
    const where = path.join(src, CONFIG_FILE);
    const hf = readJsonSync(where, 'model config') as Record<string, unknown>;
    const { L } = depthOf(hf, where);
    const use = diagnosticsUse({ seq: cfg.seq, batch: cfg.batch, sequences: cfg.sequences, pruningWindows: cfg.eval_windows, layers: L });
    const opened = await openLM(src, { streaming: cfg.streaming, use });
    let removed: number[];
    let windows: EvalWindows;
    let base: number[];
    try {
      const model = opened.model;
      const seq = diagnosticsWindow(cfg.seq, model.maxSeq);
      const { val } = await loadLMData(cfg.data ?? textDataSchema.parse({}), seq, { vocab: model.vocabSize, dir: src, log: (l) => ctx.log(l) });
      windows = evalWindows(val, seq, Math.max(cfg.eval_windows, cfg.sequences));
      if (cfg.rule) {
        ctx.progress({ step: 0, total: 3, phase: 'rule', message: 'angular distance and Block Influence' });
        const stats =
          opened.kind === 'memory'
            ? await residualStats(opened.model, windows, cfg.sequences, cfg.batch)
            : await streamedResidualStats(opened.model, windows, cfg.sequences, { batch: cfg.batch, budgetBytes: defaultStreamBudget(opened.model) });
        removed = blocksOfRule(cfg.rule, stats, L);
      } else removed = [...cfg.layers!].sort((a, b) => a - b);
      ctx.log(`removing blocks ${removed.join(', ')} of ${L}`);
      windows = { ...windows, count: Math.min(windows.count, cfg.eval_windows) };
      ctx.progress({ step: 1, total: 3, phase: 'original', message: 'evaluating the original' });
      base = await windowLosses(opened, windows, cfg.batch);
    } finally {
      await opened.dispose();
    }
    const out = path.join(ctx.run.artifactsDir, 'pruned');
    const shards = await writePrunedFolder(src, out, removed);
    ctx.progress({ step: 2, total: 3, phase: 'pruned', message: 'evaluating the pruned model' });
    const pruned = await openLM(out, { streaming: cfg.streaming, use });
    let after: number[];
    try {
      after = await windowLosses(pruned, windows, cfg.batch);
    } finally {
      await pruned.dispose();
    }
    const diff = pairedInterval(after.map((v, w) => v - base[w]));
    const evaluation = {
      windows: windows.count,
      seq: windows.seq,
      original_loss: mean(base),
      pruned_loss: mean(after),
      delta_loss: diff.mean,
      delta_loss_ci95: [diff.lo, diff.hi],
      window_original_loss: base,
      window_pruned_loss: after,
    };
    await writeJsonAtomic(path.join(ctx.run.artifactsDir, 'prune_eval.json'), evaluation);
    return {
      key_result: pruneKeyResult('pruned − original CE', diff),
      model: src,
      rule: cfg.rule ?? 'explicit',
      removed_layers: removed,
      layers_before: L,
      layers_after: L - removed.length,
      pruned_dir: out,
      shards,
      original_loss: evaluation.original_loss,
      pruned_loss: evaluation.pruned_loss,
      delta_loss: diff.mean,
      delta_loss_ci95: [diff.lo, diff.hi],
      windows: windows.count,
      note: 'the pruned folder is a new model (blocks renumbered): its CE is measured, not the skip-ΔP of the diagnostics',
      artifacts: ['pruned', 'prune_eval.json'],
    };
  },
});
