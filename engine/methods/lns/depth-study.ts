/**
 * `depth-study`: the depth diagnostics of several pretrained models side by side, the figure that
 * opens "The Curse of Depth in Large Language Models" (Sun et al. 2025, fig. 1) and the
 * layer-pruning analyses built on it, on any folders NormLab opens (HF checkpoints of every family
 * engine/models/families.ts reads, exported NormLab runs).
 *
 * Each model is one child `lns-diagnostics` run (its artifacts/diagnostics.json exactly as that job
 * writes it), so the study runs through the executors (in this process, `parallel: N` processes, a
 * Slurm array) and a resumed study reruns only the children that did not complete. Per model:
 *  - ΔP(ℓ) = CE without block ℓ − CE of the full model (nats, NOT the paper's MMLU accuracy), with a
 *    paired 95% t-interval over the evaluation windows (diagnostics.ts `pairedInterval`);
 *  - the angular distance d(ℓ, n) between x_ℓ and x_{ℓ+n} (last token) and Gromov et al.'s best
 *    start ℓ*(n) = argmin_ℓ d(ℓ, n) for each block size n;
 *  - Block Influence BI(ℓ) = 1 − cos(x_{ℓ−1}, x_ℓ), averaged over every token (ShortGPT);
 *  - the residual-stream variance of x_0..x_L;
 *  - the deep half (blocks ℓ > L/2) vs the shallow half mean ΔP, each with its paired interval.
 * The figures put the models on relative depth ℓ/L, one colour per model in every figure (the
 * plot palette indexed by the model's place in `models`), the heatmaps on one colour scale.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { readJsonSync, writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { executorSchema } from '../../jobs/executor.js';
import { pathField } from '../../jobs/paths.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { evalMemoryBytes, STREAMING_MODES } from '../../models/index.js';
import { linePlot, writePlot } from '../../plot/index.js';
import { textDataSchema } from '../../train/lm-config.js';
import {
  angularHeatmapPng,
  bestBlockStarts,
  blocksDropInterval,
  VARIANCE_AXIS,
  VARIANCE_DEFINITIONS,
  VARIANCE_HELP,
  type Diagnostics,
  type Interval,
  pruneKeyResult,
} from './diagnostics.js';
import { diagnosticsUse } from './eval-use.js';
import { sideBySide } from './study.js';

export const depthStudySchema = z
  .object({
    method: z.literal('depth-study'),
    ...baseConfig,
    models: z
      .array(pathField(z.string().min(1).describe('a model folder (config.json + safetensors, an HF checkpoint or an exported NormLab run)')))
      .min(1)
      .describe('the model folders to compare, one child lns-diagnostics run each; their order fixes each model’s colour'),
    labels: z.array(z.string().min(1)).optional().describe('names in tables and legends, one per model (default: the folder names)'),
    data: textDataSchema
      .optional()
      .describe('validation text for every model (default Moby Dick); without data.tokenizer each model uses its own tokenizer.json'),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).optional().describe("tokens per validation window (default: each model's context, at most 1024)"),
    sequences: z
      .number()
      .int()
      .min(1)
      .max(SIZE_LIMITS.count)
      .default(32)
      .describe('validation sequences for the variance, angular distance and Block Influence'),
    pruning_windows: z
      .number()
      .int()
      .min(2)
      .max(SIZE_LIMITS.count)
      .default(32)
      .describe('validation windows for the layer-pruning losses (the ΔP intervals are over these windows: at least 2)'),
    grad_windows: z.number().int().min(0).max(SIZE_LIMITS.count).default(8).describe('windows for the checkpoint gradient (0: skip it)'),
    max_n: z.number().int().min(1).optional().describe('largest layer gap n of the angular distance (default: each model’s depth)'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(8).describe('sequences per forward pass'),
    streaming: z.enum(STREAMING_MODES).default('auto').describe('evaluate block by block (always), whole (never) or by size (auto)'),
    variance: z.enum(VARIANCE_DEFINITIONS).default('elements').describe(VARIANCE_HELP),
    executor: executorSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.labels && c.labels.length !== c.models.length)
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `${c.labels.length} labels for ${c.models.length} models: give one per model` });
    const labels = modelLabels(c);
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['labels'], message: `two models are both "${dup}": give labels` });
  });
export type DepthStudyConfig = z.infer<typeof depthStudySchema>;

/** Each model's name: its label, else its folder's name. */
export function modelLabels(c: Pick<DepthStudyConfig, 'models' | 'labels'>): string[] {
  return c.models.map((m, i) => c.labels?.[i] ?? path.basename(path.resolve(m)));
}

/** The lns-diagnostics config of one model: the study's data and budget. */
export function depthChildConfig(c: DepthStudyConfig, model: string, label: string): Record<string, unknown> {
  return {
    method: 'lns-diagnostics',
    name: label,
    seed: c.seed,
    tags: ['depth-study', label],
    model: path.resolve(model),
    ...(c.data ? { data: c.data } : {}),
    ...(c.seq ? { seq: c.seq } : {}),
    sequences: c.sequences,
    pruning_windows: c.pruning_windows,
    grad_windows: c.grad_windows,
    ...(c.max_n ? { max_n: c.max_n } : {}),
    batch: c.batch,
    streaming: c.streaming,
    variance: c.variance,
  };
}

/** A model whose in-memory diagnostics need more than this runs in its own process under `executor: local`. */
const OWN_PROCESS_ABOVE_BYTES = 2 ** 30;

/**
 * Is the model large enough to run in its own process (so the memory it grew, a wasm heap that
 * never shrinks, is returned before the next model)? An unreadable config is not: its child says why.
 */
export function isLargeModel(c: DepthStudyConfig, model: string): boolean {
  try {
    const hf = readJsonSync(path.join(model, 'config.json'), 'model config') as Record<string, unknown>;
    const layers = Number(hf.num_hidden_layers ?? hf.n_layer);
    const use = diagnosticsUse({ seq: c.seq, batch: c.batch, sequences: c.sequences, pruningWindows: c.pruning_windows, layers });
    return evalMemoryBytes(hf, use).bytes > OWN_PROCESS_ABOVE_BYTES;
  } catch {
    return false;
  }
}

/** One model's row of the deep-vs-shallow table. */
export interface HalfRow {
  model: string;
  layers: number;
  base_loss: number;
  shallow: Interval;
  deep: Interval;
  run_id: string;
}

/** What the study keeps of one model (depth_study.json). */
export interface ModelSummary {
  label: string;
  run_id: string;
  model: string;
  layers: number;
  base_loss: number;
  /** Blocks ℓ = 1..L: ΔP(ℓ) and its paired 95% interval. */
  drop_loss: number[];
  drop_loss_lo: number[];
  drop_loss_hi: number[];
  block_influence: number[];
  /** x_0..x_L. */
  variance: number[];
  angular: Diagnostics['angular'];
  /** Gromov's ℓ*(n) for n = 1..max_n: 0-based blocks ℓ*..ℓ*+n−1 are the best block of n to remove. */
  best_block: { n: number; l: number; d: number }[];
  shallow_half: Interval;
  deep_half: Interval;
}

/** A model's summary from its child's diagnostics. */
export function summarizeModel(label: string, runId: string, model: string, d: Diagnostics): ModelSummary {
  const L = d.layers;
  const h = Math.floor(L / 2);
  const blocks = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  if (!Array.isArray(d.block_influence) || !Array.isArray(d.pruning.window_base_loss))
    fail('state', `${label}: diagnostics.json has no block_influence or per-window losses (written by an older NormLab): rerun its child`);
  return {
    label,
    run_id: runId,
    model,
    layers: L,
    base_loss: d.pruning.base_loss,
    drop_loss: d.pruning.drop_loss,
    drop_loss_lo: d.pruning.drop_loss_lo,
    drop_loss_hi: d.pruning.drop_loss_hi,
    block_influence: d.block_influence,
    variance: d.variance,
    angular: d.angular,
    best_block: bestBlockStarts(d.angular.d),
    shallow_half: blocksDropInterval(d.pruning, blocks(0, h)),
    deep_half: blocksDropInterval(d.pruning, blocks(h, L)),
  };
}

const csvCell = (v: string | number | null) => (v === null ? '' : typeof v === 'string' && /[,"\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
const csv = (rows: (string | number | null)[][]) => rows.map((r) => r.map(csvCell).join(',')).join('\n') + '\n';

/**
 * Write the study's tables and figures into `dir`; returns the file names. `variants` names every
 * model of the config in order, completed or not: each model's colour is its place there.
 */
export async function writeDepthStudy(dir: string, models: ModelSummary[], variance: DepthStudyConfig['variance'], variants: string[]): Promise<string[]> {
  const files: string[] = [];
  const put = async (name: string, data: string | Uint8Array) => {
    if (name.endsWith('.png')) await writePlot(path.join(dir, name), data as Uint8Array);
    else await writeFileAtomic(path.join(dir, name), data);
    files.push(name);
  };
  await writeJsonAtomic(path.join(dir, 'depth_study.json'), { models });
  files.push('depth_study.json');
  const rel = (m: ModelSummary) => m.drop_loss.map((_, i) => (i + 1) / m.layers);

  await put(
    'prune_drop.csv',
    csv([
      ['model', 'block', 'relative_depth', 'drop_loss', 'ci95_lo', 'ci95_hi'],
      ...models.flatMap((m) => m.drop_loss.map((v, i) => [m.label, i + 1, (i + 1) / m.layers, v, m.drop_loss_lo[i], m.drop_loss_hi[i]])),
    ]),
  );
  await put(
    'prune_drop.png',
    await linePlot({
      title: 'CE increase when one block is removed (95% paired CI)',
      xLabel: 'relative depth ℓ / L of the removed block',
      yLabel: 'cross-entropy increase ΔP (nats)',
      series: models.map((m) => ({ name: m.label, x: rel(m), y: m.drop_loss, band: { lo: m.drop_loss_lo, hi: m.drop_loss_hi } })),
      variants,
      points: true,
      width: 640,
      height: 400,
    }),
  );

  await put(
    'block_influence.csv',
    csv([
      ['model', 'block', 'relative_depth', 'block_influence'],
      ...models.flatMap((m) => m.block_influence.map((v, i) => [m.label, i + 1, (i + 1) / m.layers, v])),
    ]),
  );
  await put(
    'block_influence.png',
    await linePlot({
      title: 'Block Influence BI(ℓ) = 1 − cos(x_ℓ−1, x_ℓ), all tokens',
      xLabel: 'relative depth ℓ / L',
      yLabel: 'Block Influence',
      series: models.map((m) => ({ name: m.label, x: rel(m), y: m.block_influence })),
      variants,
      points: true,
    }),
  );
  await put(
    'layer_variance.csv',
    csv([['model', 'layer', 'relative_depth', 'variance'], ...models.flatMap((m) => m.variance.map((v, l) => [m.label, l, l / m.layers, v]))]),
  );
  await put(
    'layer_variance.png',
    await linePlot({
      title: 'Residual-stream variance by relative depth',
      xLabel: 'relative depth ℓ / L (0 = embeddings)',
      yLabel: `${VARIANCE_AXIS[variance]} (log scale)`,
      series: models.map((m) => ({ name: m.label, x: m.variance.map((_, l) => l / m.layers), y: m.variance })),
      variants,
      logY: true,
      points: true,
    }),
  );

  await put(
    'angular_distance.csv',
    csv([['model', 'n', 'l', 'angular_distance'], ...models.flatMap((m) => m.angular.d.flatMap((row, i) => row.map((v, l) => [m.label, i + 1, l, v])))]),
  );
  const all = models.flatMap((m) => m.angular.d.flat().filter((v): v is number => v !== null));
  const domain: [number, number] = [0, Math.max(1e-6, ...all)];
  const heatmaps = await Promise.all(
    models.map((m) => angularHeatmapPng({ angular: m.angular } as Diagnostics, `Angular distance d(ℓ, ℓ+n), ${m.label}`, domain)),
  );
  await put('angular_distance.png', sideBySide(heatmaps));
  await put(
    'best_block.csv',
    csv([
      ['model', 'n', 'best_start_l', 'removed_blocks_0based', 'angular_distance'],
      ...models.flatMap((m) => m.best_block.map((b) => [m.label, b.n, b.l, `${b.l}..${b.l + b.n - 1}`, b.d])),
    ]),
  );
  await put(
    'half_summary.csv',
    csv([
      [
        'model',
        'layers',
        'full_model_loss',
        'shallow_half_mean_drop',
        'shallow_ci95_lo',
        'shallow_ci95_hi',
        'deep_half_mean_drop',
        'deep_ci95_lo',
        'deep_ci95_hi',
        'windows',
      ],
      ...models.map((m) => [
        m.label,
        m.layers,
        m.base_loss,
        m.shallow_half.mean,
        m.shallow_half.lo,
        m.shallow_half.hi,
        m.deep_half.mean,
        m.deep_half.lo,
        m.deep_half.hi,
        m.deep_half.n,
      ]),
    ]),
  );
  return files;
}

registerJobKind({
  name: 'depth-study',
  title: 'Depth study across models',
  description: 'Layer-pruning drop, angular distance, Block Influence and variance of several pretrained models, side by side on relative depth.',
  schema: depthStudySchema,
  resumable: false,
  parent: true,
  async run(ctx, cfg) {
    const started = Date.now();
    const labels = modelLabels(cfg);
    ctx.log(`depth-study: ${cfg.models.length} models (${cfg.executor.kind} executor)`);
    ctx.progress({ step: 0, total: cfg.models.length, phase: 'models', message: `diagnosing ${cfg.models.length} models` });
    const outcomes = await ctx.runChildren(
      cfg.models.map((m, i) => ({
        key: labels[i],
        name: `${cfg.name ?? 'depth-study'} ${labels[i]}`,
        config: depthChildConfig(cfg, m, labels[i]),
        ownProcess: isLargeModel(cfg, m),
      })),
    );
    const missing = outcomes.filter((o) => !o.summary).map((o) => ({ model: o.key, run_id: o.runId, status: o.status, error: o.error?.message ?? null }));
    const models: ModelSummary[] = [];
    for (const [i, o] of outcomes.entries()) {
      if (!o.summary) continue;
      const run = ctx.project.run(o.runId);
      const d = readJsonSync(path.join(run.artifactsDir, 'diagnostics.json'), `${o.key} diagnostics`) as Diagnostics;
      models.push(summarizeModel(o.key, o.runId, path.resolve(cfg.models[i]), d));
    }
    if (models.length === 0)
      fail('state', `no model of the study completed (${missing.map((m) => `${m.model}: ${m.status}`).join(', ')}); normlab resume ${ctx.run.id} reruns them`);
    ctx.progress({ step: cfg.models.length, total: cfg.models.length, phase: 'compare', message: 'writing the figures' });
    const artifacts = await writeDepthStudy(ctx.run.artifactsDir, models, cfg.variance, labels);
    return {
      key_result: pruneKeyResult(`deep-half ΔCE, ${models[0].label}`, models[0].deep_half),
      metric: 'validation cross-entropy (nats); ΔP = CE without the block − CE of the full model',
      models: models.map((m) => ({
        model: m.label,
        folder: m.model,
        run_id: m.run_id,
        layers: m.layers,
        full_model_loss: m.base_loss,
        shallow_half_mean_drop: m.shallow_half.mean,
        shallow_half_ci95: [m.shallow_half.lo, m.shallow_half.hi],
        deep_half_mean_drop: m.deep_half.mean,
        deep_half_ci95: [m.deep_half.lo, m.deep_half.hi],
        best_block_start: m.best_block.map((b) => b.l),
      })),
      missing_children: missing,
      wall_seconds: Math.round((Date.now() - started) / 1000),
      artifacts,
    };
  },
});
