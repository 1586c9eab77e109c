/**
 * `ptq-study`: DopQ-ViT (TanQ + MOSF, both as NormLab reconstructs them) against RepQ-ViT (log-√2
 * + mean) and a uniform baseline on one ViT (docs/methods.md, "DopQ-ViT"). The ViT is the user's (`model_dir`) or a small MNIST ViT trained once
 * and cached in the project (`<project>/cache/vit-mnist-<hash>/`). Each preset is evaluated at
 * every bit width by a `ptq-preset` child run (./preset-job.ts) through the study's executor
 * (in this process, parallel processes or a Slurm array). Outputs, in the run's artifacts:
 * - `ptq_table.csv` / `ptq_table.json` / `ptq_table.md`: top-1 per preset × bit width (WbAb), with
 *   each preset's post-softmax calibration budget, and a note when the model has no outlier
 *   channels after its LayerNorms (then the mean and median rules tie by construction);
 * - `top1_drop_by_bits.png`: each preset's drop from FP (points) as grouped bars;
 * - `softmax_levels.png`: post-softmax values (FP model, calibration images, all blocks) with the
 *   levels of the uniform, log-√2 and TanQ quantizers calibrated on them at `plot_bits`;
 * - `ln_scales.png`: per-channel post-LN quantization scales of the most spread-out LN site, with
 *   their mean (RepQ-ViT), median (DopQ-ViT) and MAD-rule targets;
 * - `quantized/`: the export of one preset (integer weights + scales), re-loaded and evaluated as
 *   the dequantized reference, which must reproduce the simulated top-1 (done by that preset's
 *   child run, copied here).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { readJsonSync, writeFileAtomicSync, writeJsonAtomicSync } from '../../io/atomic.js';
import type { ChildOutcome, JobContext } from '../../jobs/context.js';
import { executorSchema } from '../../jobs/executor.js';
import { baseConfig } from '../../jobs/registry.js';
import type { ViT } from '../../models/vit.js';
import { barPlot, histogram, histogramWithLevels, scatterWithRules, writePlot } from '../../plot/index.js';
import { captureActs, correctMask, imageBatch, inputNorm, maskFromText, quantizeViT, type LnCalibration, type LnReparam } from './ptq.js';
import { comparison, noiseWarning, pairedAccuracy, verdict, wilson, type KeyResult } from '../../stats/stats.js';
import {
  calibrateSoftmax,
  DEFAULT_SOFTMAX_CANDIDATES,
  MAX_BITS,
  MIN_BITS,
  softmaxCandidatesTried,
  softmaxLevels,
  type SoftmaxQuantizer,
} from './quantizers.js';
import { targetScale } from './reparam.js';
import { loadViT } from './vit-io.js';
import { vitModelSchema, vitTrainOptionsSchema } from './vit-train.js';
import { ptqData, ptqDataSchema } from './data.js';
import { pathField } from '../../jobs/paths.js';
import { runSeeds, seedsField, SINGLE_SEED, type SeedStudy } from '../../jobs/seeds.js';
import { releaseFileLock, takeFileLock } from '../../store/file-lock.js';

/** The quantizer presets: post-softmax quantizer × post-LN treatment. */
/**
 * The quantizer presets: post-softmax quantizer × post-LN treatment. TanQ's exact formula and the
 * MAD-guided rule are not public; their labels say they are NormLab's reconstructions.
 */
const TANQ = "TanQ (NormLab's reconstruction)";
export const PRESETS: Record<string, { softmax: SoftmaxQuantizer; ln: LnReparam; label: string }> = {
  uniform: { softmax: 'uniform', ln: 'none', label: 'uniform baseline' },
  'log-sqrt2': { softmax: 'log-sqrt2', ln: 'none', label: 'log-√2 softmax only' },
  tanq: { softmax: 'tanq', ln: 'none', label: `${TANQ} softmax only` },
  mean: { softmax: 'uniform', ln: 'mean', label: 'mean reparam only' },
  median: { softmax: 'uniform', ln: 'median', label: 'median (MOSF) reparam only' },
  repq: { softmax: 'log-sqrt2', ln: 'mean', label: 'RepQ-ViT (log-√2 + mean)' },
  'repq+tanq': { softmax: 'tanq', ln: 'mean', label: `RepQ-ViT + ${TANQ}` },
  'repq+mosf': { softmax: 'log-sqrt2', ln: 'median', label: 'RepQ-ViT + MOSF' },
  dopq: { softmax: 'tanq', ln: 'median', label: `DopQ-ViT (${TANQ} + median)` },
  'dopq-mad': { softmax: 'tanq', ln: 'mad', label: `DopQ-ViT (${TANQ} + MAD-guided rule, NormLab's reconstruction)` },
};

/** Below this max/median ratio of the per-channel post-LN scales, no site has outlier channels. */
export const OUTLIER_RATIO = 2;
const PRESET_NAMES = Object.keys(PRESETS) as [string, ...string[]];

export const ptqStudySchema = z
  .object({
    method: z.literal('ptq-study'),
    ...baseConfig,
    seeds: seedsField,
    executor: executorSchema,
    model_dir: pathField(z.string().optional().describe('a ViT model folder (timm names) to study; default: train (or reuse) a small MNIST ViT')),
    vit: z
      .object({ model: vitModelSchema.default(vitModelSchema.parse({})), train: vitTrainOptionsSchema.default(vitTrainOptionsSchema.parse({})) })
      .strict()
      .default({ model: vitModelSchema.parse({}), train: vitTrainOptionsSchema.parse({}) })
      .describe('the MNIST ViT trained when model_dir is not given (cached in the project by this config)'),
    data: ptqDataSchema.default(ptqDataSchema.parse({})),
    bits: z
      .array(z.number().int().min(MIN_BITS, `bit widths must be at least ${MIN_BITS}`).max(MAX_BITS, `bit widths must be at most ${MAX_BITS}`))
      .min(1)
      .default([3, 4, 6, 8])
      .describe('bit widths b, each run as WbAb'),
    presets: z
      .array(z.enum(PRESET_NAMES))
      .min(1)
      .default(['uniform', 'log-sqrt2', 'tanq', 'mean', 'median', 'repq', 'repq+tanq', 'repq+mosf', 'dopq'])
      .describe('quantizer presets to compare'),
    plot_bits: z.number().int().min(MIN_BITS).max(MAX_BITS).default(4).describe('bit width of the quantizer levels drawn on the softmax histogram'),
    export_preset: z.enum(PRESET_NAMES).default('dopq').describe('preset whose quantized model is exported and re-evaluated'),
    export_bits: z.number().int().min(MIN_BITS).max(MAX_BITS).default(4).describe('bit width of the export (WbAb)'),
    softmax_candidates: z
      .number()
      .int()
      .min(4)
      .default(DEFAULT_SOFTMAX_CANDIDATES)
      .describe("calibration candidates of the log-√2 and TanQ (NormLab's reconstruction) post-softmax quantizers: the same budget for both"),
  })
  .strict();
export type PtqStudyConfig = z.infer<typeof ptqStudySchema>;

/** A short stable hash of a JSON value (FNV-1a), naming cache folders. */
function hashJson(v: unknown): string {
  const s = JSON.stringify(v);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The child run that trains the MNIST ViT. */
const TRAIN_VIT = 'train MNIST ViT';

/**
 * The user's ViT folder, or the cached MNIST ViT's (trained by a child `vit-train` run the first
 * time); `trained`: by this study (also when a resumed study finds the cache its child filled).
 */
async function studyModel(ctx: JobContext, cfg: PtqStudyConfig): Promise<{ source: string; trained: boolean }> {
  if (cfg.model_dir) return { source: path.resolve(cfg.model_dir), trained: false };
  const trainCfg = { method: 'vit-train', seed: cfg.seed, model: cfg.vit.model, data: { source: 'mnist' }, train: cfg.vit.train };
  const cacheDir = path.join(ctx.project.dir, 'cache', `vit-mnist-${hashJson(trainCfg)}`);
  fs.mkdirSync(path.dirname(cacheDir), { recursive: true });
  const trainedHere = () => ctx.project.children(ctx.run.id).some((c) => c.record.child_key === TRAIN_VIT && c.status === 'completed');
  // Studies in other processes share the cache: one trains and writes it (holding the lock), the others wait for it.
  const lock = `${cacheDir}.lock`;
  for (let waiting = false; ; waiting = true) {
    if (fs.existsSync(path.join(cacheDir, 'config.json'))) {
      const trained = trainedHere();
      if (!trained) ctx.log(`reusing the cached MNIST ViT ${cacheDir}`);
      return { source: cacheDir, trained };
    }
    if (takeFileLock(lock).taken) break;
    if (!waiting) ctx.log(`waiting for another study that trains this MNIST ViT (${lock})`);
    await new Promise((r) => setTimeout(r, CACHE_WAIT_MS));
    await ctx.tick();
  }
  try {
    if (fs.existsSync(path.join(cacheDir, 'config.json'))) return { source: cacheDir, trained: trainedHere() };
    ctx.log('training the MNIST ViT (cached for later studies)');
    const child = await ctx.runChild(trainCfg, TRAIN_VIT);
    const modelDir = String(child.summary.model_dir);
    const tmp = `${cacheDir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.cpSync(modelDir, tmp, { recursive: true });
    fs.rmSync(cacheDir, { recursive: true, force: true }); // a copy a killed writer left without its config.json
    fs.renameSync(tmp, cacheDir);
    return { source: cacheDir, trained: true };
  } finally {
    releaseFileLock(lock);
  }
}

/** How often a study waiting for another one's MNIST ViT looks at the cache again. */
const CACHE_WAIT_MS = 1000;

const pct = (x: number) => (100 * x).toFixed(2);
/** A table cell: a top-1 in percent, or a dash where the preset's child run did not complete. */
const cell = (x: number | undefined) => (x === undefined ? '—' : pct(x));

/**
 * The study: the ViT (trained once, cached), then one `ptq-preset` child run per preset through
 * the executor (each quantizes and evaluates its preset at every bit width; preset-job.ts says
 * why per preset), then the table, plots and export check here, a preset whose child did not
 * complete marked missing.
 */
export async function runPtqStudy(ctx: JobContext, studyCfg: PtqStudyConfig): Promise<Record<string, unknown>> {
  if ((studyCfg.seeds?.length ?? 0) > 1) return runSeeds(ctx, studyCfg, PTQ_SEEDS);
  const cfg = { ...studyCfg, seed: studyCfg.seeds?.[0] ?? studyCfg.seed };
  const started = Date.now();
  const { source, trained } = await studyModel(ctx, cfg);
  const tModel = (Date.now() - started) / 1000;
  const bits = [...new Set(cfg.bits)].sort((a, b) => a - b);
  const cols = bits.map((b) => `W${b}A${b}`);
  // The post-LN scales plotted: the first preset with a per-channel post-LN calibration, at plot_bits.
  const lnPreset = bits.includes(cfg.plot_bits) ? cfg.presets.find((n) => PRESETS[n].ln !== 'none') : undefined;
  // The export preset runs as a child of its own (no table row) when it is not among the presets.
  const childPresets = cfg.presets.includes(cfg.export_preset) ? cfg.presets : [...cfg.presets, cfg.export_preset];
  ctx.progress({ step: 0, total: childPresets.length, phase: 'presets', message: `${childPresets.length} preset child runs × ${bits.length} bit widths` });
  const outcomes = await ctx.runChildren(
    childPresets.map((name) => ({
      key: `preset ${name}`,
      name: `${cfg.name ?? 'ptq-study'} ${name}`,
      config: {
        method: 'ptq-preset',
        seed: cfg.seed,
        model: source,
        data: cfg.data,
        quantizer: name,
        bits: cfg.presets.includes(name) ? bits : [],
        softmax_candidates: cfg.softmax_candidates,
        ...(name === cfg.export_preset ? { export_bits: cfg.export_bits } : {}),
        ...(name === lnPreset ? { ln_calibrations_bits: cfg.plot_bits } : {}),
      },
    })),
  );
  const byPreset = new Map(childPresets.map((name, i) => [name, outcomes[i]]));
  const table: Record<string, Record<string, number>> = {};
  for (const name of cfg.presets) {
    const top = byPreset.get(name)!.summary?.top1 as Record<string, number> | undefined;
    if (top) table[name] = top;
  }
  const missing = outcomes.filter((o) => !o.summary).map((o) => ({ preset: o.key.replace(/^preset /, ''), run_id: o.runId, status: o.status }));
  // One metric line per cell, in the order bit width, then preset.
  let cellIndex = 0;
  for (const b of bits)
    for (const name of cfg.presets) {
      cellIndex++;
      const acc = table[name]?.[`W${b}A${b}`];
      if (acc !== undefined) ctx.metric({ step: cellIndex, preset: name, bits: b, top1: acc });
    }

  const model = await loadViT(source);
  try {
    const { calib, evalSet } = await ptqData(cfg, model);
    ctx.progress({ step: childPresets.length, total: childPresets.length, phase: 'fp' });
    const fpMask = await correctMask(model, evalSet, undefined, 250, () => ctx.tick());
    const fp = fpMask.reduce((s, c) => s + c, 0) / evalSet.n;
    ctx.log(`FP top-1 ${pct(fp)}% on ${evalSet.n} images`);
    const exported = await copyExport(ctx, byPreset.get(cfg.export_preset)!);
    const x = imageBatch(calib.images, 0, calib.n, [calib.height, calib.width, calib.channels], inputNorm(model));
    let lnInfo: Record<string, unknown> = {};
    try {
      await softmaxPlot(ctx, model, x, cfg.plot_bits, cfg.softmax_candidates);
      const fromChild = lnPreset ? byPreset.get(lnPreset)!.summary?.ln_calibrations : null;
      let lnCalibs: LnCalibration[];
      if (lnPreset && typeof fromChild === 'string') {
        const saved = readJsonSync(path.join(ctx.project.run(byPreset.get(lnPreset)!.runId).artifactsDir, fromChild), 'post-LN calibration');
        lnCalibs = (saved as Omit<LnCalibration, 'target'>[]).map((c) => ({ ...c, target: null }));
      } else {
        const q = await quantizeViT(model, x, { wBits: cfg.plot_bits, aBits: cfg.plot_bits, softmax: 'uniform', lnReparam: 'median' });
        lnCalibs = q.lnCalibrations;
        q.dispose();
      }
      lnInfo = await lnScalesPlot(ctx, lnCalibs, cfg.plot_bits);
    } finally {
      x.dispose();
    }

    // Table: rows = presets (FP first), columns = bit widths.
    // The post-softmax calibration budget of each preset (candidates tried per quantizer).
    const budget = (n: string) => softmaxCandidatesTried(PRESETS[n].softmax, cfg.softmax_candidates);
    const rows = [
      { preset: 'fp', label: 'full precision', candidates: '', values: cols.map((): number | undefined => fp) },
      ...cfg.presets.map((n) => ({ preset: n, label: PRESETS[n].label, candidates: String(budget(n)), values: cols.map((c) => table[n]?.[c]) })),
    ];
    const outliers = outlierNote(lnInfo);
    const md = [
      `| preset | softmax calibration candidates | ${cols.join(' | ')} |`,
      `|---|---:|${cols.map(() => '---:').join('|')}|`,
      ...rows.map((r) => `| ${r.label} | ${r.candidates} | ${r.values.map(cell).join(' | ')} |`),
      ...(outliers ? ['', `**Note:** ${outliers}`] : []),
      ...(missing.length
        ? [
            '',
            `Missing (— above; their child runs did not complete, \`normlab resume ${ctx.run.id}\` reruns them): ${missing.map((m) => `${m.preset} (${m.status})`).join(', ')}.`,
          ]
        : []),
    ].join('\n');
    const csv =
      [
        ['preset', 'softmax_candidates', ...cols].join(','),
        ...rows.map((r) => [r.preset, r.candidates, ...r.values.map((v) => (v === undefined ? '' : v.toFixed(4)))].join(',')),
      ].join('\n') + '\n';
    writeFileAtomicSync(path.join(ctx.run.artifactsDir, 'ptq_table.md'), md + '\n');
    writeFileAtomicSync(path.join(ctx.run.artifactsDir, 'ptq_table.csv'), csv);
    writeJsonAtomicSync(path.join(ctx.run.artifactsDir, 'ptq_table.json'), {
      fp,
      eval_images: evalSet.n,
      calib_images: calib.n,
      softmax_candidates: Object.fromEntries(cfg.presets.map((n) => [n, budget(n)])),
      no_outlier_channels: outliers,
      table,
      missing_presets: missing,
    });
    await writePlot(
      path.join(ctx.run.artifactsDir, 'top1_drop_by_bits.png'),
      await barPlot({
        title: `Top-1 lost to post-training quantization (FP ${pct(fp)}%)`,
        xLabel: 'weights / activations bits',
        yLabel: 'top-1 drop from FP (points)',
        groups: rows
          .slice(1)
          .filter((r) => table[r.preset])
          .map((r) => ({ name: r.label, values: cols.map((c, i) => ({ label: c, value: 100 * (fp - (r.values[i] ?? fp)) })) })),
        // A preset's colour is its place in the config, whether or not the presets before it completed.
        variants: cfg.presets.map((n) => PRESETS[n].label),
        width: 760,
        height: 420,
        scale: 2,
      }),
    );

    // Paired comparisons on the same images: exact McNemar and its interval (engine/stats pairedAccuracy).
    const mask = (name: string, c: string) => {
      const t = (byPreset.get(name)?.summary?.correct_by_image as Record<string, string> | undefined)?.[c];
      return t === undefined ? null : maskFromText(t);
    };
    const paired = (a: Uint8Array, b: Uint8Array) => {
      const r = pairedAccuracy(a, b);
      return { diff: r.diff, ci95: r.ci95, mcnemar_p: r.mcnemar.p_exact, discordant: [r.mcnemar.b, r.mcnemar.c], verdict: verdict(r.ci95, 'higher') };
    };
    const vsFp: Record<string, Record<string, unknown>> = {};
    for (const name of cfg.presets)
      for (const c of cols) {
        const m = mask(name, c);
        if (m)
          (vsFp[name] ??= {})[c] = {
            top1: table[name][c],
            ci95: wilson(
              m.reduce((s, v) => s + v, 0),
              m.length,
            ),
            minus_fp: paired(m, fpMask),
          };
      }
    const cmp: Record<string, unknown> = {};
    const warnings: string[] = [];
    for (const c of cols) {
      const [d, r] = [mask('dopq', c), mask('repq', c)];
      if (!d || !r) continue;
      const p = paired(d, r);
      cmp[c] = { dopq: table.dopq[c], repq: table.repq[c], dopq_minus_repq: p.diff, ci95: p.ci95, mcnemar_p: p.mcnemar_p, verdict: p.verdict };
      const w = noiseWarning(`DopQ − RepQ top-1 at ${c}`, p.diff, p.ci95);
      if (w) warnings.push(w);
    }
    if (Object.keys(cmp).length) warnings.push(SINGLE_SEED);
    for (const w of warnings) ctx.log(`warning: ${w}`);
    const exportCell = `W${cfg.export_bits}A${cfg.export_bits}`;
    const [dExport, rExport] = [mask('dopq', exportCell), mask('repq', exportCell)];
    const note = outliers ? '; no outlier channels: mean and median presets tie by construction' : '';
    const keyResult: KeyResult =
      dExport && rExport
        ? (() => {
            const p = paired(dExport, rExport);
            return comparison(
              `DopQ − RepQ ${exportCell} top-1${note}`,
              p.diff,
              p.ci95,
              'higher',
              `exact McNemar (Clopper–Pearson on discordant pairs), ${evalSet.n} images`,
              'fraction',
            );
          })()
        : {
            label: `DopQ (${TANQ} + median) ${exportCell} top-1${note}`,
            value: table.dopq?.[exportCell] ?? fp,
            ci95: wilson(Math.round((table.dopq?.[exportCell] ?? fp) * evalSet.n), evalSet.n),
            interval: `Wilson, ${evalSet.n} images`,
            unit: 'fraction',
          };
    const w8 = table.dopq?.W8A8;
    const seconds = (Date.now() - started) / 1000;
    ctx.log(`\n${md}`);
    return {
      key_result: keyResult,
      warnings,
      top1_vs_fp: vsFp,
      fp_top1_ci95: wilson(
        fpMask.reduce((s, c) => s + c, 0),
        evalSet.n,
      ),
      no_outlier_channels: outliers,
      softmax_candidates: Object.fromEntries(cfg.presets.map((n) => [n, budget(n)])),
      model: source,
      model_trained_now: trained,
      fp_top1: fp,
      eval_images: evalSet.n,
      calib_images: calib.n,
      table,
      table_markdown: md,
      dopq_vs_repq: cmp,
      dopq_beats_repq_at: cols.filter((c) => (cmp[c] as { verdict?: string } | undefined)?.verdict === 'better'),
      ...(w8 !== undefined ? { w8a8_dopq_drop_points: 100 * (fp - w8), w8a8_dopq_within_1_point: 100 * (fp - w8) <= 1 } : {}),
      ln_scales: lnInfo,
      export: exported,
      missing_children: missing,
      runs: Object.fromEntries(childPresets.map((n) => [n, byPreset.get(n)!.runId])),
      seconds: { total: seconds, model: tModel },
    };
  } finally {
    model.dispose();
  }
}

/** The study over seeds (each seed its own ViT and calibration draw): top-1 per preset × bit width, FP as a row. */
const PTQ_SEEDS: SeedStudy = {
  rows: (s) => ({
    fp: { top1: s.fp_top1 as number },
    ...Object.fromEntries(Object.entries((s.table as Record<string, Record<string, number>> | undefined) ?? {}).map(([preset, byBits]) => [preset, byBits])),
  }),
};

/**
 * The export preset's child exported its quantized model and checked its dequantized reference;
 * copy the export into this run's `quantized/` (null when that child did not complete).
 */
async function copyExport(ctx: JobContext, child: ChildOutcome): Promise<Record<string, unknown> | null> {
  const info = child.summary?.export as Record<string, unknown> | null | undefined;
  if (!info) return null;
  const dir = path.join(ctx.run.artifactsDir, 'quantized');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(String(info.dir), dir, { recursive: true });
  ctx.log(`export (child ${child.runId}): dequantized reference top-1 ${pct(Number(info.reference_top1))}% (simulated ${pct(Number(info.simulated_top1))}%)`);
  return { ...info, dir, child_run: child.runId };
}

/** Post-softmax histogram (FP model, calibration images, all blocks) with each quantizer's levels. */
async function softmaxPlot(ctx: JobContext, model: ViT, x: Parameters<typeof captureActs>[1], bits: number, candidates: number): Promise<void> {
  const sites = Array.from({ length: model.config.depth }, (_, i) => `blocks.${i}.attn.probs`);
  const acts = await captureActs(model, x, sites);
  let n = 0;
  for (const a of acts.values()) n += a.length;
  const all = new Float32Array(n);
  let o = 0;
  for (const a of acts.values()) {
    all.set(a, o);
    o += a.length;
  }
  const levels = (['uniform', 'log-sqrt2', 'tanq'] as const).map((k) => {
    const p = calibrateSoftmax(k, all, bits, candidates);
    return { name: { uniform: 'uniform', 'log-sqrt2': 'log-√2 (RepQ-ViT)', tanq: TANQ }[k], points: softmaxLevels(p), params: p };
  });
  // The same 100 bins the PNG draws, so the workbench can draw the histogram itself.
  const hist = histogram(all, 100, 0, 1);
  writeJsonAtomicSync(path.join(ctx.run.artifactsDir, 'softmax_levels.json'), {
    bits,
    values: n,
    histogram: { lo: hist.lo, width: hist.width, counts: hist.counts },
    quantizers: levels.map((l) => ({ name: l.name, params: l.params, levels: l.points })),
  });
  await writePlot(
    path.join(ctx.run.artifactsDir, 'softmax_levels.png'),
    await histogramWithLevels({
      title: `Post-softmax attention probabilities and ${bits}-bit quantizer levels`,
      values: all,
      bins: 100,
      range: [0, 1],
      logY: true,
      xLabel: 'attention probability',
      yLabel: 'count (log scale)',
      levels: levels.map((l) => ({ name: l.name, points: l.points })),
      width: 760,
      height: 440,
      scale: 2,
    }),
  );
}

/** Per-channel post-LN scales of the most spread-out site, with the mean / median / MAD targets. */
async function lnScalesPlot(ctx: JobContext, calibs: LnCalibration[], bits: number): Promise<Record<string, unknown>> {
  const per = calibs.filter((c) => c.scales.length > 1);
  if (per.length === 0) return {};
  const spread = (c: LnCalibration) => Math.max(...c.scales) / Math.max(1e-12, [...c.scales].sort((a, b) => a - b)[Math.floor(c.scales.length / 2)]);
  const pick = per.reduce((a, b) => (spread(b) > spread(a) ? b : a));
  const mean = targetScale(pick.scales, pick.zeros, 'mean').scale;
  const med = targetScale(pick.scales, pick.zeros, 'median').scale;
  const mad = targetScale(pick.scales, pick.zeros, 'mad').scale;
  const all = per.map((c) => ({
    norm: c.norm,
    max_over_median: spread(c),
    mean: targetScale(c.scales, c.zeros, 'mean').scale,
    median: targetScale(c.scales, c.zeros, 'median').scale,
  }));
  writeJsonAtomicSync(path.join(ctx.run.artifactsDir, 'ln_scales.json'), {
    bits,
    plotted: pick.norm,
    scales: pick.scales,
    zeros: pick.zeros,
    mean,
    median: med,
    mad_rule: mad,
    sites: all,
  });
  await writePlot(
    path.join(ctx.run.artifactsDir, 'ln_scales.png'),
    await scatterWithRules({
      title: `Per-channel ${bits}-bit scales after ${pick.norm} (input of ${pick.linear})`,
      xLabel: 'channel',
      yLabel: 'quantization scale',
      pointsLabel: 'channel scale',
      x: pick.scales.map((_, i) => i),
      y: pick.scales,
      rules: [
        { y: mean, label: 'mean (RepQ-ViT)' },
        { y: med, label: 'median (DopQ-ViT MOSF)' },
        { y: mad, label: "MAD-guided rule (NormLab's reconstruction)" },
      ],
      logY: Math.max(...pick.scales) / Math.max(1e-12, Math.min(...pick.scales)) > 20, // log axis only for real outliers
      width: 760,
      height: 420,
      scale: 2,
    }),
  );
  return {
    plotted: pick.norm,
    max_over_median: spread(pick),
    max_over_median_all_sites: Math.max(...all.map((a) => a.max_over_median)),
    mean,
    median: med,
    mad_rule: mad,
    sites: all,
  };
}

/**
 * The study's note when no LN site has outlier channels (max/median of its per-channel scales
 * below OUTLIER_RATIO everywhere): then mean and median nearly coincide and the mean- and
 * median-reparameterized presets tie by construction. null when some site has outliers.
 */
export function outlierNote(lnInfo: Record<string, unknown>): string | null {
  const ratio = lnInfo.max_over_median_all_sites;
  if (typeof ratio !== 'number' || ratio >= OUTLIER_RATIO) return null;
  return `this model has no outlier channels after its LayerNorms (largest max/median of the per-channel scales ${ratio.toFixed(2)} < ${OUTLIER_RATIO}): mean and median targets nearly coincide, so the mean (RepQ-ViT) and median (MOSF) presets tie by construction here`;
}
