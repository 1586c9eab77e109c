/**
 * `lns-study`: does LayerNorm Scaling make the deep layers useful on this data at this size?
 * Trains each named norm variant of a LLaMA-style model (default: Pre-LN vs LNS) as a child
 * `lm-pretrain` run with the same seed (same initial weights for the shared tensors, same batches),
 * data, tokens and schedule, then writes a comparison into the study's artifacts: a validation
 * perplexity table (CSV/JSON), overlaid loss curves, and the depth diagnostics side by side
 * (variance by layer, angular-distance heatmaps, layer-pruning drops, per-layer gradient norms).
 *
 * The variants run through the study's executor: by default one after another in this process (on
 * a 2-core machine parallel runs would split the same cores the native kernels already use, and
 * sequential runs keep each variant's timing comparable); `parallel: N` or Slurm elsewhere. A
 * variant that did not complete is a `missing` row of the table; `normlab resume` reruns it.
 */
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { comparison, fmt, noiseWarning, pairedDifference, verdict, type KeyResult } from '../../stats/stats.js';
import { writeFileAtomic, writeJsonAtomic, readJsonSync } from '../../io/atomic.js';
import { encodePng } from '../../io/png.js';
import { executorSchema } from '../../jobs/executor.js';
import { metricCurves, runSeeds, seedsField, SINGLE_SEED, type SeedStudy } from '../../jobs/seeds.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { NORM_VARIANTS } from '../../models/llama.js';
import { barPlot, linePlot, writePlot } from '../../plot/index.js';
import { NORM_VARIANT_HELP, lmWarmup, textDataSchema, trainSchema } from '../../train/lm-config.js';
import { angularHeatmapPng, VARIANCE_AXIS, VARIANCE_DEFINITIONS, VARIANCE_HELP, type Diagnostics } from './diagnostics.js';

const variantSchema = z
  .object({
    norm: z.enum(NORM_VARIANTS).describe(NORM_VARIANT_HELP),
    deepnorm: z.enum(['official', 'deepnet']).optional().describe("deepnorm's constants (default official: the LNS paper's code)"),
    mix_k: z.number().int().min(0).optional().describe('mix: number of leading Post-LN blocks (required for mix)'),
    norm_type: z.enum(['rmsnorm', 'layernorm']).optional().describe("norm type (default: the study model's)"),
    label: z.string().min(1).optional().describe('name in tables and legends (default: the variant)'),
  })
  .strict();
export type StudyVariant = z.infer<typeof variantSchema>;

const studyModelSchema = z
  .object({
    layers: z.number().int().min(1).max(96).default(12).describe('number of blocks L (deep and narrow shows the depth effect)'),
    d_model: z.number().int().min(8).max(SIZE_LIMITS.width).default(64).describe('model width'),
    heads: z.number().int().min(1).max(SIZE_LIMITS.heads).default(4).describe('attention heads'),
    ffn: z.number().int().min(1).max(SIZE_LIMITS.ffn).optional().describe('SwiGLU hidden width (default 8/3 d_model)'),
    norm_type: z.enum(['rmsnorm', 'layernorm']).default('rmsnorm').describe('RMSNorm (LLaMA) or LayerNorm'),
  })
  .strict();

/** Study defaults: a deep, narrow LLaMA on byte-level Moby Dick, about 10 minutes on 2 cores (wasm). */
const TRAIN_DEFAULTS = {
  steps: 300,
  batch: 8,
  seq: 64,
  lr: 2e-3,
  eval_every: 50,
  eval_windows: 32,
  log_every: 5,
  checkpoint_every: 300,
};

/** The study's warmup: its own, else 30 steps, at most a tenth of the run. */
function studyWarmup(t: { warmup?: number; steps: number }): number {
  return lmWarmup(t, 30);
}

/** trainSchema with the study's defaults (a partial `train:` keeps the study defaults for the rest). */
const studyTrainSchema = (() => {
  const shape: Record<string, z.ZodType> = {};
  for (const [k, s] of Object.entries(trainSchema.shape)) {
    const d = (TRAIN_DEFAULTS as Record<string, number>)[k];
    shape[k] =
      d === undefined
        ? s
        : (s as z.ZodDefault<z.ZodType>)
            .removeDefault()
            .default(d)
            .describe(s.description ?? k);
  }
  return z
    .object(shape)
    .strict()
    .refine((t) => studyWarmup(t as { warmup?: number; steps: number }) < (t.steps as number), {
      path: ['warmup'],
      message: 'warmup must be shorter than steps',
    });
})();

const studyDiagnosticsSchema = z
  .object({
    sequences: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation sequences for the variance and angular distance'),
    pruning_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(16).describe('validation windows for the layer-pruning losses'),
    max_n: z.number().int().min(1).optional().describe('largest layer gap n of the angular-distance heatmap (default: L)'),
    variance: z.enum(VARIANCE_DEFINITIONS).default('elements').describe(VARIANCE_HELP),
  })
  .strict();

export const lnsStudySchema = z
  .object({
    method: z.literal('lns-study'),
    ...baseConfig,
    seeds: seedsField,
    variants: z
      .array(variantSchema)
      .min(1)
      .default([{ norm: 'pre' }, { norm: 'lns' }])
      .describe('the norm variants to compare, trained alike'),
    model: studyModelSchema.default(studyModelSchema.parse({})),
    data: textDataSchema.default(textDataSchema.parse({ val_fraction: 0.05 })),
    train: studyTrainSchema.default(studyTrainSchema.parse({}) as never),
    diagnostics: studyDiagnosticsSchema.default(studyDiagnosticsSchema.parse({})),
    executor: executorSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    const L = c.model.layers;
    if (c.model.d_model % c.model.heads !== 0)
      ctx.addIssue({ code: 'custom', path: ['model', 'heads'], message: `heads ${c.model.heads} must divide d_model ${c.model.d_model}` });
    else if ((c.model.d_model / c.model.heads) % 2 !== 0)
      ctx.addIssue({ code: 'custom', path: ['model', 'heads'], message: `head size ${c.model.d_model / c.model.heads} must be even for rotary positions` });
    c.variants.forEach((v, i) => {
      if (v.norm === 'mix' && v.mix_k === undefined)
        ctx.addIssue({ code: 'custom', path: ['variants', i, 'mix_k'], message: 'mix needs mix_k, the number of leading Post-LN blocks' });
      if (v.mix_k !== undefined && v.mix_k > L)
        ctx.addIssue({ code: 'custom', path: ['variants', i, 'mix_k'], message: `mix_k ${v.mix_k} exceeds the number of layers ${L}` });
    });
    const labels = c.variants.map(variantLabel);
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['variants'], message: `two variants are both "${dup}": give one a label` });
    if (c.diagnostics.max_n !== undefined && c.diagnostics.max_n > L) {
      ctx.addIssue({ code: 'custom', path: ['diagnostics', 'max_n'], message: `angular-distance n = ${c.diagnostics.max_n} is beyond the depth ${L}` });
    }
  });
export type LnsStudyConfig = z.infer<typeof lnsStudySchema>;

export function variantLabel(v: StudyVariant): string {
  if (v.label) return v.label;
  return `${v.norm}${v.norm === 'mix' ? `-k${v.mix_k}` : ''}${v.norm_type === 'layernorm' ? '-ln' : ''}`;
}

/** The lm-pretrain config of one variant: everything but the norm is the study's. */
export function childConfig(c: LnsStudyConfig, v: StudyVariant): Record<string, unknown> {
  return {
    method: 'lm-pretrain',
    seed: c.seed,
    tags: ['lns-study', variantLabel(v)],
    model: {
      arch: 'llama',
      layers: c.model.layers,
      d_model: c.model.d_model,
      heads: c.model.heads,
      ...(c.model.ffn ? { ffn: c.model.ffn } : {}),
      norm: v.norm,
      norm_type: v.norm_type ?? c.model.norm_type,
      mix_k: v.mix_k ?? 0,
      ...(v.deepnorm ? { deepnorm: v.deepnorm } : {}),
    },
    data: c.data,
    train: { ...c.train, warmup: studyWarmup(c.train as { warmup?: number; steps: number }) },
    diagnostics: {
      sequences: c.diagnostics.sequences,
      pruning_windows: c.diagnostics.pruning_windows,
      ...(c.diagnostics.max_n ? { max_n: c.diagnostics.max_n } : {}),
      variance: c.diagnostics.variance,
    },
  };
}

interface VariantResult {
  label: string;
  variant: StudyVariant;
  runId: string;
  seconds: number;
  summary: Record<string, unknown>;
  diagnostics: Diagnostics;
  trainLoss: { step: number; loss: number }[];
  valLoss: { step: number; loss: number }[];
}

const csvLine = (cells: (string | number)[]) =>
  cells.map((c) => (typeof c === 'string' && /[,"\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : String(c))).join(',');

/** Lay PNG images side by side on white, top-aligned (the depth study uses it too). */
export function sideBySide(pngs: Uint8Array[], gap = 12): Uint8Array {
  const imgs = pngs.map((b) => PNG.sync.read(Buffer.from(b)));
  const width = imgs.reduce((s, im) => s + im.width, 0) + gap * (imgs.length - 1);
  const height = Math.max(...imgs.map((im) => im.height));
  const out = new Uint8Array(width * height * 4).fill(255);
  let x0 = 0;
  for (const im of imgs) {
    for (let y = 0; y < im.height; y++) out.set(im.data.subarray(y * im.width * 4, (y + 1) * im.width * 4), (y * width + x0) * 4);
    x0 += im.width + gap;
  }
  return encodePng(out, width, height);
}

/**
 * Warnings when a result points the other way from the paper (Sun et al. 2025: LNS lowers
 * perplexity below Pre-LN, and removing a deep block costs an LNS model more than a Pre-LN one,
 * i.e. LNS makes the deep layers useful), each saying how this study's setting differs from the
 * paper's (docs/methods.md, "LayerNorm Scaling": LLaMA 130M–1B, 12–32 blocks of width 768–2048, on
 * C4 with the T5 tokenizer, 20k–100k steps of 131,072 tokens).
 */
function paperContrast(cfg: LnsStudyConfig, results: VariantResult[], vsFirst: (ReturnType<typeof pairedDifference> | null)[]): string[] {
  const pre = results.findIndex((r) => r.variant.norm === 'pre');
  const lns = results.findIndex((r) => r.variant.norm === 'lns');
  if (pre < 0 || lns < 0) return [];
  const t = cfg.train as { steps: number; batch: number; seq: number };
  const setting =
    `this study trains ${cfg.model.layers} blocks of width ${cfg.model.d_model} on ${cfg.data.source} (${cfg.data.tokenizer ?? 'byte'} tokens) for ${t.steps} steps of ${t.batch * t.seq} tokens; ` +
    'the paper trains LLaMA 130M–1B (12–32 blocks, width 768–2048) on C4 (T5 tokenizer) for 20k–100k steps of 131,072 tokens (docs/methods.md, LayerNorm Scaling), ' +
    'where the depth effect it corrects grows with depth and training length';
  const out: string[] = [];
  const [dPre, dLns] = [results[pre].diagnostics.deep_half_prune_drop_mean, results[lns].diagnostics.deep_half_prune_drop_mean];
  if (!(dLns > dPre))
    out.push(`unlike the paper, removing a deep-half block costs LNS no more than Pre-LN here (mean ΔCE ${fmt(dLns)} vs ${fmt(dPre)} nats): ${setting}`);
  // LNS − Pre-LN from the paired differences against the first variant.
  const diff =
    pre === 0
      ? vsFirst[lns]
      : lns === 0 && vsFirst[pre]
        ? { ...vsFirst[pre]!, mean: -vsFirst[pre]!.mean, ci95: [-vsFirst[pre]!.ci95[1], -vsFirst[pre]!.ci95[0]] as [number, number] }
        : null;
  if (diff && verdict(diff.ci95, 'lower') === 'worse')
    out.push(
      `unlike the paper, LNS ends with a higher validation loss than Pre-LN (${fmt(diff.mean)} nats, 95% [${fmt(diff.ci95[0])}, ${fmt(diff.ci95[1])}]): ${setting}`,
    );
  return out;
}

/** The study over seeds: each variant's row of the perplexity table, and its validation-loss curve. */
const LNS_SEEDS: SeedStudy = {
  rows: (s) =>
    Object.fromEntries(
      ((s.variants as Record<string, unknown>[] | undefined) ?? []).map((v) => [
        String(v.variant),
        {
          final_val_loss: v.final_val_loss as number,
          final_val_ppl: v.final_val_ppl as number,
          val_loss_minus_first: v.val_loss_minus_first as number | null,
          deep_half_prune_drop_mean: v.deep_half_prune_drop_mean as number,
          shallow_half_prune_drop_mean: v.shallow_half_prune_drop_mean as number,
        },
      ]),
    ),
  curves: (project, _runId, s) =>
    Object.fromEntries(
      ((s.variants as Record<string, unknown>[] | undefined) ?? []).map((v) => {
        const c = metricCurves(project, String(v.run_id), { val: 'val_loss' }).val;
        // without the step-0 evaluation, as the study's own plot
        return [String(v.variant), { step: c.step.slice(1), value: c.value.slice(1) }];
      }),
    ),
  curveAxis: { title: 'Validation loss', yLabel: 'validation cross-entropy (nats)' },
};

registerJobKind({
  name: 'lns-study',
  title: 'LayerNorm Scaling study',
  description: 'Train several norm variants (default Pre-LN vs LNS) alike and compare perplexity and depth diagnostics.',
  schema: lnsStudySchema,
  resumable: false,
  parent: true,
  async run(ctx, studyCfg) {
    if ((studyCfg.seeds?.length ?? 0) > 1) return runSeeds(ctx, studyCfg, LNS_SEEDS);
    const cfg = { ...studyCfg, seed: studyCfg.seeds?.[0] ?? studyCfg.seed };
    const started = Date.now();
    const results: VariantResult[] = [];
    ctx.log(`lns-study: ${cfg.variants.length} variants (${cfg.executor.kind} executor)`);
    ctx.progress({ step: 0, total: cfg.variants.length, phase: 'variants', message: `training ${cfg.variants.length} variants` });
    const outcomes = await ctx.runChildren(
      cfg.variants.map((v) => ({ key: variantLabel(v), name: `${cfg.name ?? 'lns-study'} ${variantLabel(v)}`, config: childConfig(cfg, v) })),
    );
    const missing = outcomes.filter((o) => !o.summary).map((o) => ({ variant: o.key, run_id: o.runId, status: o.status }));
    for (const [i, o] of outcomes.entries()) {
      if (!o.summary) continue;
      const v = cfg.variants[i];
      const label = o.key;
      const run = ctx.project.run(o.runId);
      if (typeof o.summary.lns_diagnostics_error === 'string') fail('internal', `diagnostics of ${label} failed: ${o.summary.lns_diagnostics_error}`);
      const diagnostics = readJsonSync(path.join(run.artifactsDir, 'diagnostics.json'), `${label} diagnostics`) as Diagnostics;
      const metrics = run.readMetrics();
      const byStep = (key: string) => {
        const m = new Map<number, number>();
        for (const r of metrics) if (typeof r.step === 'number' && typeof r[key] === 'number') m.set(r.step, r[key]);
        return [...m].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
      };
      const { started: t0, finished: t1 } = run.record;
      results.push({
        label,
        variant: v,
        runId: o.runId,
        seconds: t0 && t1 ? (Date.parse(t1) - Date.parse(t0)) / 1000 : 0,
        summary: o.summary,
        diagnostics,
        trainLoss: byStep('loss'),
        valLoss: byStep('val_loss'),
      });
    }
    if (results.length === 0)
      fail(
        'state',
        `no variant of the study completed (${missing.map((m) => `${m.variant}: ${m.status}`).join(', ')}); normlab resume ${ctx.run.id} reruns them`,
      );
    ctx.progress({ step: cfg.variants.length, total: cfg.variants.length, phase: 'compare', message: 'writing the comparison' });
    const dir = ctx.run.artifactsDir;
    const L = cfg.model.layers;

    // Each variant against the first, paired over the validation windows both scored (the same
    // windows: same data, seq and final_eval_tokens).
    const windows = (r: VariantResult) => r.summary.final_val_loss_windows as number[];
    const vsFirst = results.map((r, i) => (i === 0 ? null : pairedDifference(windows(r), windows(results[0]))));
    const finalEval = results[0].summary.final_eval as { description: string } | undefined;
    const interval = `paired t over ${finalEval?.description ?? `${windows(results[0]).length} validation windows`}`;
    const warnings = vsFirst.flatMap((d, i) => {
      const w = d && noiseWarning(`val loss ${results[i].label} − ${results[0].label}`, d.mean, d.ci95);
      return w ? [w] : [];
    });
    warnings.push(...paperContrast(cfg, results, vsFirst));
    if (cfg.variants.length > 1) warnings.push(SINGLE_SEED);
    for (const w of warnings) ctx.log(`warning: ${w}`);

    // Perplexity table.
    const rows = results.map((r, i) => ({
      variant: r.label,
      norm: r.variant.norm,
      norm_type: r.variant.norm_type ?? cfg.model.norm_type,
      mix_k: r.variant.mix_k ?? 0,
      final_val_loss: r.summary.final_val_loss as number,
      final_val_ppl: r.summary.final_val_ppl as number,
      val_loss_minus_first: vsFirst[i]?.mean ?? null,
      val_loss_minus_first_ci95_lo: vsFirst[i]?.ci95[0] ?? null,
      val_loss_minus_first_ci95_hi: vsFirst[i]?.ci95[1] ?? null,
      val_loss_minus_first_verdict: vsFirst[i] ? verdict(vsFirst[i].ci95, 'lower') : null,
      deep_half_prune_drop_mean: r.diagnostics.deep_half_prune_drop_mean,
      shallow_half_prune_drop_mean: r.diagnostics.shallow_half_prune_drop_mean,
      variance_last_layer: r.diagnostics.variance[L],
      variance_growth_last: r.diagnostics.variance_growth[L],
      seconds: Math.round(r.seconds),
      run_id: r.runId,
      status: 'completed',
    }));
    // Variants that did not complete stay in the table, marked, with their run to resume.
    const missingRows = missing.map((m) => {
      const v = cfg.variants.find((x) => variantLabel(x) === m.variant)!;
      return {
        variant: m.variant,
        norm: v.norm,
        norm_type: v.norm_type ?? cfg.model.norm_type,
        mix_k: v.mix_k ?? 0,
        run_id: m.run_id,
        status: `missing (${m.status})`,
      };
    });
    await writeJsonAtomic(path.join(dir, 'ppl_table.json'), [...rows, ...missingRows]);
    const cols = Object.keys(rows[0]) as (keyof (typeof rows)[0])[];
    const cell = (r: Record<string, unknown>, c: string) => (r[c] === undefined ? '' : (r[c] as string | number));
    await writeFileAtomic(
      path.join(dir, 'ppl_table.csv'),
      [cols.join(','), ...[...rows, ...missingRows].map((r) => csvLine(cols.map((c) => cell(r, c))))].join('\n') + '\n',
    );
    await writeJsonAtomic(path.join(dir, 'diagnostics.json'), Object.fromEntries(results.map((r) => [r.label, { run_id: r.runId, ...r.diagnostics }])));

    // Loss curves, overlaid: training loss (moving average over 5 logged steps) beside validation loss.
    // Each variant has its colour by its place in the config, in every figure, completed or not.
    const variants = cfg.variants.map(variantLabel);
    const smooth = (ys: number[], k = 5) =>
      ys.map((_, i) => {
        const w = ys.slice(Math.max(0, i - k + 1), i + 1);
        return w.reduce((a, b) => a + b, 0) / w.length;
      });
    const trainPanel = await linePlot({
      title: `Training loss (moving average of 5 logs), L = ${L}, d = ${cfg.model.d_model}`,
      xLabel: 'step',
      yLabel: 'training cross-entropy (nats)',
      series: results.map((r) => ({ name: r.label, x: r.trainLoss.map((p) => p.step), y: smooth(r.trainLoss.map((p) => p.loss)) })),
      variants,
      points: false,
      width: 560,
      height: 400,
    });
    const valPanel = await linePlot({
      title: 'Validation loss',
      xLabel: 'step',
      yLabel: 'validation cross-entropy (nats)',
      series: results.map((r) => ({ name: r.label, x: r.valLoss.slice(1).map((p) => p.step), y: r.valLoss.slice(1).map((p) => p.loss) })),
      variants,
      points: true,
      width: 560,
      height: 400,
    });
    await writePlot(path.join(dir, 'loss_curves.png'), sideBySide([trainPanel, valPanel]));

    // Diagnostics side by side.
    await writePlot(
      path.join(dir, 'layer_variance.png'),
      await linePlot({
        title: 'Residual-stream output variance by layer',
        xLabel: 'layer ℓ (0 = embeddings)',
        yLabel: `${VARIANCE_AXIS[cfg.diagnostics.variance]} (log scale)`,
        series: results.map((r) => ({ name: r.label, x: r.diagnostics.variance.map((_, l) => l), y: r.diagnostics.variance })),
        variants,
        logY: true,
        points: true,
      }),
    );
    await writePlot(
      path.join(dir, 'layer_pruning.png'),
      await barPlot({
        title: 'Validation loss increase when one block is removed',
        xLabel: 'removed block ℓ',
        yLabel: 'ΔCE (nats)',
        groups: results.map((r) => ({ name: r.label, values: r.diagnostics.pruning.drop_loss.map((v, i) => ({ label: String(i + 1), value: v })) })),
        variants,
        width: 720,
      }),
    );
    const withGrads = results.filter((r) => r.diagnostics.grad_norms);
    if (withGrads.length) {
      await writePlot(
        path.join(dir, 'layer_grad_norms.png'),
        await linePlot({
          title: 'Gradient norm per block (mean over training)',
          xLabel: 'block ℓ',
          yLabel: '‖∇θ_ℓ‖ (log scale)',
          series: withGrads.map((r) => ({
            name: r.label,
            x: r.diagnostics.grad_norms!.per_layer.map((_, i) => i + 1),
            y: r.diagnostics.grad_norms!.per_layer,
          })),
          variants,
          logY: true,
          points: true,
        }),
      );
    }
    const all = results.flatMap((r) => r.diagnostics.angular.d.flat().filter((v): v is number => v !== null));
    const domain: [number, number] = [0, Math.max(1e-6, ...all)];
    const heatmaps = await Promise.all(results.map((r) => angularHeatmapPng(r.diagnostics, `Angular distance, ${r.label}`, domain)));
    await writePlot(path.join(dir, 'angular_distance.png'), sideBySide(heatmaps));
    const normalized = await Promise.all(
      results.map((r) => angularHeatmapPng(r.diagnostics, `Angular distance (official normalization), ${r.label}`, undefined, true)),
    );
    await writePlot(path.join(dir, 'angular_distance_row_normalized.png'), sideBySide(normalized));

    const first = rows[0];
    const last = rows[rows.length - 1];
    const d = vsFirst[vsFirst.length - 1];
    return {
      key_result: d
        ? comparison(`val loss ${last.variant} − ${first.variant}`, d.mean, d.ci95, 'lower', interval)
        : (results[0].summary.key_result as KeyResult),
      warnings,
      execution:
        cfg.executor.kind === 'local' && cfg.executor.parallel === 1
          ? 'variants trained one after another, in-process'
          : `variants trained through the ${cfg.executor.kind} executor`,
      missing_children: missing,
      variants: results.map((r, i) => ({
        ...rows[i],
        layer_variance: r.diagnostics.variance,
        prune_drop_loss: r.diagnostics.pruning.drop_loss,
        layer_grad_norm_mean: r.diagnostics.grad_norms?.per_layer ?? null,
      })),
      wall_seconds: Math.round((Date.now() - started) / 1000),
      artifacts: [
        'ppl_table.csv',
        'ppl_table.json',
        'loss_curves.png',
        'layer_variance.png',
        'layer_pruning.png',
        'layer_grad_norms.png',
        'angular_distance.png',
        'angular_distance_row_normalized.png',
        'diagnostics.json',
      ],
    };
  },
});
