/**
 * LayerNorm Scaling (LNS) and the depth diagnostics of "The Curse of Depth in Large Language
 * Models" (Sun et al. 2025). The norm variants themselves live in engine/models/llama.ts
 * (`normlab_norm_variant`); this folder adds:
 *  - `lns-diagnostics`: per-layer variance, angular-distance heatmap, layer-pruning drop and
 *    per-layer gradient norms of any LM checkpoint (a run's, or a model folder of any family
 *    engine/models/families.ts reads; one too large for float32 in memory block by block);
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
import { lmShapeOf, loadLM, openLM, STREAMING_MODES } from '../../models/index.js';
import { assertFits, lmMemoryBytes } from '../../models/memory.js';
import type { CausalLM } from '../../models/lm.js';
import { textDataSchema, type TextDataConfig } from '../../train/lm-config.js';
import { loadLMData } from '../../train/lm-data.js';
import { addAfterTraining } from '../../train/lm-pretrain.js';
import { defaultStreamBudget, streamedDiagnostics } from './streamed-diagnostics.js';
import {
  VARIANCE_DEFINITIONS,
  VARIANCE_HELP,
  assembleDiagnostics,
  checkpointGradNorms,
  computeDiagnostics,
  diagnosticsSummary,
  gradHistoryFromMetrics,
  summarizeGradHistory,
  writeDiagnostics,
  pruneKeyResult,
  blocksDropInterval,
  deepHalfBlocks,
} from './diagnostics.js';
import { autoDiagnosticsOptions } from './auto.js';
import { diagnosticsUse, diagnosticsWindow } from './eval-use.js';
import { lnsPresets } from './presets.js';
import './study.js';
import './depth-study.js';
import './prune.js';
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
      .describe("tokens per validation window (default: the run's train.seq, else the model context, at most 1024)"),
    sequences: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation sequences averaged for the variance and angular distance'),
    pruning_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation windows for the layer-pruning losses'),
    max_n: z.number().int().min(1).optional().describe('largest layer gap n of the angular-distance heatmap (default: the depth L)'),
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(8).describe('sequences per forward pass'),
    grad_windows: z
      .number()
      .int()
      .min(0)
      .max(SIZE_LIMITS.count)
      .default(8)
      .describe('windows for the checkpoint gradient when there is no training history (0: skip it)'),
    streaming: z
      .enum(STREAMING_MODES)
      .default('auto')
      .describe(
        'evaluate block by block (always), whole in memory (never), or by size (auto: float32 weights over 1 GiB or an in-memory evaluation over half the backend); the gradient needs in-memory',
      ),
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
    let askedSeq = cfg.seq;
    let metrics: Record<string, unknown>[] | null = null;
    if (cfg.run) {
      const src = ctx.project.run(cfg.run);
      const ckpt = src.latestCheckpoint();
      if (!ckpt) fail('not-found', `run ${src.id} has no checkpoint to diagnose`);
      modelDir = ckpt.dir;
      const rc = src.record.config as { data?: unknown; train?: { seq?: number } };
      if (!data && rc.data) data = textDataSchema.parse(rc.data);
      askedSeq ??= rc.train?.seq;
      metrics = src.readMetrics();
    } else modelDir = path.resolve(cfg.model!);

    // Check the depth before loading the weights or touching data.
    const hf = readJsonSync(path.join(modelDir, 'config.json'), 'model config') as Record<string, unknown>;
    const L = Number(hf.num_hidden_layers ?? hf.n_layer);
    if (cfg.max_n !== undefined && Number.isFinite(L) && cfg.max_n > L)
      fail('config', `max_n ${cfg.max_n} is beyond the model's depth: the angular distance needs n <= ${L}`);

    const opened = await openLM(modelDir, {
      streaming: cfg.streaming,
      use: diagnosticsUse({ seq: askedSeq, batch: cfg.batch, sequences: cfg.sequences, pruningWindows: cfg.pruning_windows, layers: L }),
      onProgress: (read, total) => ctx.progress({ step: read, total, phase: 'load', message: `${(read / 2 ** 30).toFixed(2)} GiB read` }),
    });
    const model = opened.model;
    try {
      data ??= textDataSchema.parse({});
      const seq = diagnosticsWindow(askedSeq, model.maxSeq);
      const { val } = await loadLMData(data, seq, { vocab: model.vocabSize, dir: modelDir, log: (line) => ctx.log(line) });
      const windows = evalWindows(val, seq, Math.max(cfg.sequences, cfg.pruning_windows, cfg.grad_windows));
      const history = metrics ? gradHistoryFromMetrics(metrics, model.nLayers) : null;
      let grads = history ? summarizeGradHistory(history) : null;
      if (!grads && cfg.grad_windows > 0) {
        // The gradient holds the whole model, its gradients and a batch's activations: say what that needs.
        const need = lmMemoryBytes(lmShapeOf(hf), { batch: Math.min(cfg.grad_windows, windows.count), seq, training: true });
        const what = `the checkpoint gradient of ${path.basename(modelDir)} (grad_windows ${cfg.grad_windows}; grad_windows: 0 skips it)`;
        assertFits(need, what);
        // A streamed model's gradient runs on the whole model, loaded for it alone when it fits.
        const whole = opened.kind === 'memory' ? opened.model : await loadLM(modelDir);
        try {
          grads = { source: 'checkpoint' as const, per_layer: await checkpointGradNorms(whole, windows, cfg.grad_windows) };
        } finally {
          if (whole !== opened.model) whole.dispose();
        }
      }
      const dopts = { sequences: cfg.sequences, pruningWindows: cfg.pruning_windows, maxN: cfg.max_n, batch: cfg.batch, variance: cfg.variance };
      let d;
      if (opened.kind === 'streamed') {
        const sm = opened.model;
        const { stats, pruning } = await streamedDiagnostics(sm, windows, cfg.sequences, cfg.pruning_windows, {
          batch: cfg.batch,
          budgetBytes: defaultStreamBudget(sm),
          tick: () => ctx.tick(),
          onBlock: (b, L, pass, passes) =>
            ctx.progress({ step: pass * L + b + 1, total: passes * L, phase: 'diagnostics', message: `block ${b + 1}/${L}, pass ${pass + 1}/${passes}` }),
        });
        d = assembleDiagnostics(sm.nLayers, stats, pruning, dopts, grads);
      } else d = await computeDiagnostics(opened.model, windows, dopts, grads, () => ctx.tick());
      const files = await writeDiagnostics(ctx.run.artifactsDir, d, cfg.name ?? path.basename(cfg.run ?? modelDir));
      return {
        key_result: pruneKeyResult('deep-half prune ΔCE', blocksDropInterval(d.pruning, deepHalfBlocks(d.layers))),
        model: modelDir,
        val_loss: d.pruning.base_loss,
        val_ppl: d.pruning.base_ppl,
        ...diagnosticsSummary(d),
        artifacts: files,
      };
    } finally {
      await opened.dispose();
    }
  },
});
