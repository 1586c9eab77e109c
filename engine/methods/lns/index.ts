/**
 * LayerNorm Scaling (LNS) and the depth diagnostics of "The Curse of Depth in Large Language
 * Models" (Sun et al. 2025). The norm variants themselves live in engine/models/llama.ts
 * (`normlab_norm_variant`); this folder adds:
 *  - `lns-diagnostics`: per-layer variance, angular-distance heatmap, layer-pruning drop and
 *    per-layer gradient norms of any LM checkpoint (a run's, or a model folder);
 *  - the same diagnostics, automatically, at the end of every `lm-pretrain` run (cheap sizes);
 *  - `lns-study` (study.ts): several norm variants trained alike, compared side by side.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { asNormLabError, fail } from '../../core/errors.js';
import { evalWindows, type TokenStream } from '../../data/batches.js';
import { readJsonSync } from '../../io/atomic.js';
import type { JobContext } from '../../jobs/context.js';
import { registerPresets } from '../../jobs/presets.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { loadLM } from '../../models/index.js';
import type { CausalLM } from '../../models/lm.js';
import { textDataSchema, type TextDataConfig } from '../../train/lm-config.js';
import { loadLMData } from '../../train/lm-data.js';
import { addAfterTraining } from '../../train/lm-pretrain.js';
import {
  VARIANCE_DEFINITIONS,
  VARIANCE_HELP,
  checkpointGradNorms,
  computeDiagnostics,
  diagnosticsSummary,
  gradHistoryFromMetrics,
  summarizeGradHistory,
  writeDiagnostics,
} from './diagnostics.js';
import { autoDiagnosticsOptions } from './auto.js';
import { lnsPresets } from './presets.js';
import './study.js';
import { pathField } from '../../jobs/paths.js';

registerPresets(lnsPresets);

/** The end-of-run hook: diagnostics of the trained model into the run's artifacts. */
addAfterTraining(async (ctx: JobContext, model: CausalLM, data: { val: TokenStream; seq: number }, config) => {
  const opts = autoDiagnosticsOptions(config);
  try {
    ctx.progress({ step: 0, total: 1, phase: 'diagnostics', message: 'depth diagnostics' });
    const windows = evalWindows(data.val, data.seq, Math.max(opts.sequences, opts.pruningWindows));
    const history = gradHistoryFromMetrics(ctx.run.readMetrics(), model.nLayers);
    const d = await computeDiagnostics(model, windows, { ...opts, maxN: opts.maxN ?? model.nLayers }, history ? summarizeGradHistory(history) : null, () =>
      ctx.tick(),
    );
    await writeDiagnostics(ctx.run.artifactsDir, d, runLabel(ctx));
    return { lns_diagnostics: diagnosticsSummary(d) };
  } catch (err) {
    const e = asNormLabError(err);
    if (e.code === 'cancelled') throw err;
    // The training itself succeeded: keep the run, say what went wrong with its diagnostics.
    ctx.log(`depth diagnostics failed: ${e.message}`);
    return { lns_diagnostics_error: e.message };
  }
});

function runLabel(ctx: JobContext): string {
  const c = ctx.run.record.config as { name?: unknown; model?: { norm?: unknown; arch?: unknown } };
  if (typeof c.name === 'string') return c.name;
  return c.model?.arch === 'llama' && typeof c.model.norm === 'string' ? `llama ${c.model.norm}` : String(c.model?.arch ?? 'model');
}

export const lnsDiagnosticsSchema = z
  .object({
    method: z.literal('lns-diagnostics'),
    ...baseConfig,
    run: z.string().min(1).optional().describe('a run id (or unique prefix) whose latest checkpoint, data and gradient history to use'),
    model: pathField(z.string().min(1).optional().describe('or: a model folder (config.json + model.safetensors)')),
    data: textDataSchema
      .optional()
      .describe("validation text (default: the run's data, else Moby Dick); without data.tokenizer it goes through the model folder's own tokenizer.json"),
    seq: z
      .number()
      .int()
      .min(2)
      .max(SIZE_LIMITS.seq)
      .optional()
      .describe("tokens per validation window (default: the run's train.seq, else the model context)"),
    sequences: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation sequences averaged for the variance and angular distance'),
    pruning_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation windows for the layer-pruning losses'),
    max_n: z.number().int().min(1).optional().describe('largest layer gap n of the angular-distance heatmap (default: the depth L)'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(8).describe('sequences per forward pass'),
    grad_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(8).describe('windows for the checkpoint gradient when there is no training history'),
    variance: z.enum(VARIANCE_DEFINITIONS).default('elements').describe(VARIANCE_HELP),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.run === !c.model) ctx.addIssue({ code: 'custom', path: ['run'], message: 'give exactly one of run (a run id) or model (a model folder)' });
  });
export type LnsDiagnosticsConfig = z.infer<typeof lnsDiagnosticsSchema>;

registerJobKind({
  name: 'lns-diagnostics',
  title: 'Depth diagnostics (Curse of Depth)',
  description: 'Per-layer variance, angular distance, layer-pruning drop and gradient norms of an LM checkpoint.',
  schema: lnsDiagnosticsSchema,
  resumable: false,
  async run(ctx, cfg) {
    let modelDir: string;
    let data: TextDataConfig | undefined = cfg.data;
    let seq = cfg.seq;
    let metrics: Record<string, unknown>[] | null = null;
    if (cfg.run) {
      const src = ctx.project.run(cfg.run);
      const ckpt = src.latestCheckpoint();
      if (!ckpt) fail('not-found', `run ${src.id} has no checkpoint to diagnose`);
      modelDir = ckpt.dir;
      const rc = src.record.config as { data?: unknown; train?: { seq?: number } };
      if (!data && rc.data) data = textDataSchema.parse(rc.data);
      seq ??= rc.train?.seq;
      metrics = src.readMetrics();
    } else modelDir = path.resolve(cfg.model!);

    // Check the depth before loading the weights or touching data.
    const hf = readJsonSync(path.join(modelDir, 'config.json'), 'model config') as Record<string, unknown>;
    const L = Number(hf.num_hidden_layers ?? hf.n_layer);
    if (cfg.max_n !== undefined && Number.isFinite(L) && cfg.max_n > L)
      fail('config', `max_n ${cfg.max_n} is beyond the model's depth: the angular distance needs n <= ${L}`);

    const model = await loadLM(modelDir);
    try {
      data ??= textDataSchema.parse({});
      seq = Math.min(seq ?? model.maxSeq, model.maxSeq);
      const { val } = await loadLMData(data, seq, { vocab: model.vocabSize, dir: modelDir, log: (line) => ctx.log(line) });
      const windows = evalWindows(val, seq, Math.max(cfg.sequences, cfg.pruning_windows, cfg.grad_windows));
      const history = metrics ? gradHistoryFromMetrics(metrics, model.nLayers) : null;
      const grads = history
        ? summarizeGradHistory(history)
        : { source: 'checkpoint' as const, per_layer: await checkpointGradNorms(model, windows, cfg.grad_windows) };
      const d = await computeDiagnostics(
        model,
        windows,
        { sequences: cfg.sequences, pruningWindows: cfg.pruning_windows, maxN: cfg.max_n, batch: cfg.batch, variance: cfg.variance },
        grads,
        () => ctx.tick(),
      );
      const files = await writeDiagnostics(ctx.run.artifactsDir, d, cfg.name ?? path.basename(cfg.run ?? modelDir));
      return {
        key_result: { label: 'deep-half prune ΔCE', value: d.deep_half_prune_drop_mean },
        model: modelDir,
        val_loss: d.pruning.base_loss,
        val_ppl: d.pruning.base_ppl,
        ...diagnosticsSummary(d),
        artifacts: files,
      };
    } finally {
      model.dispose();
    }
  },
});
