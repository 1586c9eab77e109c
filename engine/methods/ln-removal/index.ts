/**
 * LayerNorm removal from GPT-2 by fine-tuning ("Transformers Don't Need LayerNorm at Inference
 * Time", 2025; docs/methods.md, "LayerNorm removal"). Job kinds:
 *
 * - `ln-removal`: takes a GPT-2 (a HF-format folder, an lm-pretrain run, or a tiny one pretrained
 *   here as a child run), fine-tunes a `vanilla` control with LN kept and an LN-removal model with
 *   the same steps, data order and seed, and reports the validation CE of original / vanilla /
 *   LN-free with the gap. The LN-free model is the run's checkpoint (NormLab form, loads with
 *   `loadLM` and `eval-lm`); `normlab export RUN --format hf-ln-free` writes the paper's HF form.
 *   DLA vs DE per head before and after removal is part of the run.
 * - `dla`: the same DLA/DE check on any GPT-2 model folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { evalWindows, TokenBatcher, type EvalWindows } from '../../data/batches.js';
import { readJson, writeFileAtomic } from '../../io/atomic.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import type { JobContext } from '../../jobs/context.js';
import { completedSummary } from '../../jobs/context.js';
import { executorSchema } from '../../jobs/executor.js';
import { baseConfig, registerJobKind } from '../../jobs/registry.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import { archOf, loadLM, saveModel } from '../../models/index.js';
import type { ForwardHooks } from '../../models/lm.js';
import { crossEntropy } from '../../nn/ops.js';
import { AdamW } from '../../nn/optim.js';
import { learningRate } from '../../nn/schedule.js';
import { linePlot, scatterWithRules, writePlot } from '../../plot/index.js';
import type { Run } from '../../store/runs.js';
import { lmModelSchema, textDataSchema, trainSchema } from '../../train/lm-config.js';
import { loadLMData } from '../../train/lm-data.js';
import { lmTrainStep, readStep } from '../../train/lm-step.js';
import { headDla, type DlaResult } from './dla.js';
import { toHfLnFree } from './export.js';
import { auxStdLoss, FakeLNSet, removalSchedule, type RemovalEvent } from './fake-ln.js';

const tinyGpt2 = lmModelSchema.parse({ arch: 'gpt2', layers: 4, d_model: 128, heads: 4 });

export const sourceSchema = z
  .object({
    kind: z
      .enum(['pretrain', 'folder', 'run'])
      .default('pretrain')
      .describe('pretrain a GPT-2 here (child lm-pretrain run), load a HF-format model folder, or take an lm-pretrain run'),
    path: z.string().optional().describe('folder: the model folder (config.json + model.safetensors); run: the run id'),
    model: lmModelSchema.default(tinyGpt2).describe('pretrain: the GPT-2 shape (arch must be gpt2)'),
    train: trainSchema.default(trainSchema.parse({ steps: 300, lr: 2e-3, warmup: 20 })).describe('pretrain: the optimizer settings'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.kind !== 'pretrain' && !s.path) ctx.addIssue({ code: 'custom', path: ['path'], message: `source kind ${s.kind} needs a path` });
    if (s.kind === 'pretrain' && s.model.arch !== 'gpt2')
      ctx.addIssue({ code: 'custom', path: ['model', 'arch'], message: 'LN removal needs a GPT-2 model: set model.arch to gpt2' });
  });

/** Defaults follow the paper's GPT-2 small recipe (300 steps, LR 6e-4 -> 3e-4, warmup 25, wd 0.01). */
export const finetuneSchema = z
  .object({
    steps: z.number().int().min(1).default(300).describe('fine-tuning steps (the same for the vanilla control and LN removal)'),
    batch: z.number().int().min(1).default(16).describe('sequences per step'),
    seq: z.number().int().min(2).default(128).describe('tokens per sequence'),
    lr: z.number().positive().default(6e-4).describe('peak learning rate'),
    min_lr: z.number().min(0).default(3e-4).describe('floor of the cosine schedule'),
    warmup: z.number().int().min(0).default(25).describe('linear warmup steps'),
    weight_decay: z.number().min(0).default(0.01).describe('AdamW decoupled weight decay (matrices)'),
    clip: z.number().min(0).default(1).describe('gradient global-norm clip (0 = off)'),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eval_every: z.number().int().min(1).default(50).describe('steps between validation evaluations'),
    eval_windows: z.number().int().min(1).default(32).describe('validation windows of seq tokens'),
  })
  .strict()
  .refine((f) => f.warmup < f.steps, { path: ['warmup'], message: 'warmup must be shorter than steps' })
  .refine((f) => f.min_lr <= f.lr, { path: ['min_lr'], message: 'min_lr must not exceed lr' });

export const removalSchema = z
  .object({
    start: z.number().int().min(1).default(20).describe('step of the first removal (ln_2 of block 0)'),
    gap_ln2: z.number().int().min(1).default(2).describe('steps between ln_2 removals'),
    gap_ln1qk: z.number().int().min(1).default(2).describe('steps between ln_1 Q/K-path removals'),
    gap_ln1v: z.number().int().min(1).default(3).describe('steps between ln_1 V-path removals (ln_f follows one gap after the last)'),
    gap_special: z.number().int().min(1).default(2).describe('special tokens: steps from ln_f to the EOT event and from there to the BOS event'),
    momentum: z.number().min(0).lt(1).default(0.9).describe('EMA momentum of sigma_avg while an LN is real'),
    aux_weight: z.number().min(0).default(0.1).describe('weight w of the std-uniformity loss at the input of ln_f (0 = off)'),
    special_tokens: z.boolean().default(false).describe('position 0 and EOT tokens keep their own sigma until two final events'),
    eot_token: z.number().int().min(0).nullable().default(null).describe('EOT token id for special_tokens (default: 50256 with the gpt2 tokenizer)'),
    ln1_sigma: z.enum(['shared', 'separate']).default('shared').describe("ln_1's Q/K and V paths: one sigma (authors' code) or one frozen per path"),
    control_aux: z.boolean().default(false).describe('also add the auxiliary loss to the vanilla control'),
  })
  .strict();

export const dlaSchema = z
  .object({
    enabled: z.boolean().default(true).describe('DLA vs direct effect per head, before and after removal'),
    prompts: z.number().int().min(1).default(8).describe('validation windows used as prompts'),
    seq: z.number().int().min(2).default(64).describe('tokens per prompt (every position is scored)'),
  })
  .strict();

export const lnRemovalSchema = z
  .object({
    method: z.literal('ln-removal'),
    ...baseConfig,
    mode: z.enum(['both', 'remove', 'vanilla']).default('both').describe('run the vanilla control, the LN removal, or both'),
    source: sourceSchema.default(sourceSchema.parse({})),
    data: textDataSchema.default(textDataSchema.parse({})),
    finetune: finetuneSchema.default(finetuneSchema.parse({})),
    removal: removalSchema.default(removalSchema.parse({})),
    dla: dlaSchema.default(dlaSchema.parse({})),
    executor: executorSchema,
  })
  .strict();
export type LNRemovalConfig = z.infer<typeof lnRemovalSchema>;

/** What the source is, known before any training. */
interface SourceInfo {
  nLayers: number;
  vocab: number;
  maxSeq: number;
  /** The model folder (null while a pretraining child run has to make it). */
  dir: string | null;
}

/** Check that a model folder holds a GPT-2 that still has its LayerNorms; returns its shape. */
async function inspectGpt2Folder(dir: string): Promise<{ nLayers: number; vocab: number; maxSeq: number }> {
  const cfgPath = path.join(dir, 'config.json');
  if (!fs.existsSync(cfgPath)) fail('io', `model folder ${dir} has no config.json`);
  const json = (await readJson(cfgPath, 'config.json')) as Record<string, unknown>;
  const arch = archOf(json, cfgPath);
  if (arch !== 'gpt2') fail('model', `${dir} holds a ${arch} model; LN removal needs a GPT-2 (GPT2LMHeadModel) checkpoint`);
  if (json.normlab_ln_sigmas) fail('model', `${dir} is already LN-free (its config.json has normlab_ln_sigmas)`);
  if (typeof json.layer_norm_epsilon === 'number' && json.layer_norm_epsilon >= 1) {
    fail('model', `${dir} has layer_norm_epsilon ${json.layer_norm_epsilon}: it is an exported LN-free model, not one with LayerNorm`);
  }
  const c = gpt2ConfigFromJson(json);
  return { nLayers: c.n_layer, vocab: c.vocab_size, maxSeq: c.n_positions };
}

async function resolveSource(ctx: JobContext, cfg: LNRemovalConfig): Promise<SourceInfo> {
  const s = cfg.source;
  if (s.kind === 'pretrain') {
    const vocab = cfg.data.tokenizer === 'gpt2' ? 50257 : 256;
    return { nLayers: s.model.layers, vocab, maxSeq: s.train.seq, dir: null };
  }
  let dir = s.path!;
  if (s.kind === 'run') {
    const run = ctx.project.run(s.path!);
    const ckpt = run.latestCheckpoint();
    if (!ckpt) fail('not-found', `run ${run.id} has no checkpoint to start from`);
    dir = ckpt.dir;
  }
  return { ...(await inspectGpt2Folder(dir)), dir };
}

/** Mean CE over fixed windows; `prepare` runs before each batch (marks special tokens). */
async function evalCE(model: GPT2, val: EvalWindows, batch: number, hooks?: ForwardHooks, prepare?: (x: Int32Array, B: number) => void): Promise<number> {
  let total = 0;
  for (let i = 0; i < val.count; i += batch) {
    const B = Math.min(batch, val.count - i);
    const xs = val.x.subarray(i * val.seq, (i + B) * val.seq);
    const ys = val.y.subarray(i * val.seq, (i + B) * val.seq);
    prepare?.(xs, B);
    const l = tf.tidy(() => crossEntropy(model.forward(tf.tensor2d(xs, [B, val.seq], 'int32'), hooks), tf.tensor2d(ys, [B, val.seq], 'int32')));
    total += (await l.data())[0] * B;
    l.dispose();
  }
  return total / val.count;
}

async function loadGpt2(dir: string): Promise<GPT2> {
  const m = await loadLM(dir);
  if (!(m instanceof GPT2)) {
    m.dispose();
    return fail('model', `${dir} is not a GPT-2 model`);
  }
  return m;
}

interface FinetuneResult {
  steps: number[];
  ce: number[];
  valSteps: number[];
  val: number[];
  finalVal: number;
  model: GPT2;
  fake: FakeLNSet | null;
}

/**
 * Fine-tune a fresh copy of the base model. `remove`: LN sites become FakeLN on the schedule,
 * with the auxiliary loss. The data order depends only on the seed, so both modes see the same
 * batches.
 */
async function finetune(
  ctx: JobContext,
  cfg: LNRemovalConfig,
  baseDir: string,
  mode: 'vanilla' | 'remove',
  train: Uint16Array,
  val: EvalWindows,
  schedule: RemovalEvent[],
  eotToken: number | null,
  progress: { done: number; total: number },
): Promise<FinetuneResult> {
  const f = cfg.finetune;
  const r = cfg.removal;
  const model = await loadGpt2(baseDir);
  const opt = new AdamW(model.params, { beta1: f.beta1, beta2: f.beta2, weightDecay: f.weight_decay });
  const batcher = new TokenBatcher(train, f.batch, f.seq, cfg.seed);
  const sched = { kind: 'cosine' as const, lr: f.lr, warmup: f.warmup, minLr: f.min_lr, total: f.steps };
  const eps = model.config.layer_norm_epsilon;
  const fake =
    mode === 'remove' || r.control_aux
      ? new FakeLNSet(model.params, model.nLayers, { momentum: r.momentum, eps, ln1Sigma: r.ln1_sigma, special: r.special_tokens }, eotToken)
      : null;
  const prefix = mode === 'remove' ? 'ln_free' : 'vanilla';
  const out: FinetuneResult = { steps: [], ce: [], valSteps: [], val: [], finalVal: NaN, model, fake };
  const evalBatch = f.batch;
  const evalHooks = mode === 'remove' ? fake!.hooks(false) : undefined;
  const prepare = mode === 'remove' ? (x: Int32Array, B: number) => fake!.setTokens(x, B, f.seq) : undefined;
  try {
    for (let step = 0; step < f.steps; step++) {
      if (mode === 'remove') {
        for (const e of schedule.filter((ev) => ev.step === step)) {
          fake!.apply(e);
          ctx.metric({ step, removed: e.layer >= 0 ? `h.${e.layer}.${e.kind}` : e.kind });
        }
      }
      const lr = learningRate(sched, step);
      const batch = batcher.next();
      fake?.setTokens(batch.x, f.batch, f.seq);
      const auxLoss: tf.Scalar[] = []; // kept past the step's tidy, read with the loss
      const useAux = fake !== null && r.aux_weight > 0;
      const stepOut = lmTrainStep(model, opt, { ...batch, batch: f.batch, seq: f.seq }, lr, {
        clip: f.clip,
        hooks: fake ? fake.hooks(mode === 'remove') : undefined,
        extraLoss: useAux
          ? () => {
              const a = auxStdLoss(fake!.lnfInput!, r.aux_weight, eps, r.special_tokens ? fake!.special : null);
              auxLoss.push(tf.keep(a));
              return a;
            }
          : undefined,
      });
      // Every step is logged here (the CE curve), so every step is read.
      const [res, aux] = await Promise.all([readStep(stepOut), auxLoss.length ? auxLoss[0].data().then((d) => d[0]) : 0]);
      tf.dispose(auxLoss);
      if (mode === 'remove') await fake!.commit();
      else fake?.discard();
      if (!Number.isFinite(res.loss)) fail('state', `${mode} fine-tuning diverged at step ${step + 1} (loss ${res.loss}); lower finetune.lr`);
      const ce = res.loss - aux;
      out.steps.push(step + 1);
      out.ce.push(ce);
      ctx.metric({ step: step + 1, [`${prefix}_ce`]: ce, [`${prefix}_aux`]: aux, [`${prefix}_lr`]: lr, [`${prefix}_grad_norm`]: res.gradNorm });
      if ((step + 1) % f.eval_every === 0 || step + 1 === f.steps) {
        const v = await evalCE(model, val, evalBatch, evalHooks, prepare);
        out.valSteps.push(step + 1);
        out.val.push(v);
        ctx.metric({ step: step + 1, [`${prefix}_val_ce`]: v });
      }
      progress.done += 1;
      ctx.progress({ step: progress.done, total: progress.total, phase: mode === 'remove' ? 'ln-removal' : 'vanilla', message: `CE ${ce.toFixed(3)}` });
      await ctx.tick();
    }
  } catch (err) {
    opt.dispose();
    fake?.dispose();
    model.dispose();
    throw err;
  }
  opt.dispose();
  out.finalVal = out.val[out.val.length - 1];
  return out;
}

/** The LN-free GPT-2: the fine-tuned weights with every norm fixed at its frozen sigma. */
function lnFreeModel(trained: GPT2, sigmas: Record<string, number>): GPT2 {
  const m = new GPT2(gpt2ConfigFromJson({ ...trained.hfConfig(), normlab_ln_sigmas: sigmas }));
  const tensors = trained.checkpointTensors();
  try {
    m.loadCheckpointTensors(tensors);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return m;
}

function dlaPrompts(val: Uint16Array, d: LNRemovalConfig['dla']): EvalWindows {
  return evalWindows(val, d.seq, d.prompts);
}

async function writeCsv(file: string, header: string[], rows: (string | number)[][]): Promise<void> {
  await writeFileAtomic(file, [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
}

async function dlaArtifacts(ctx: JobContext, results: { label: string; r: DlaResult }[]): Promise<void> {
  const dir = ctx.run.artifactsDir;
  const header = ['layer', 'head', ...results.flatMap(({ label }) => [`${label}_mean_abs_dla`, `${label}_mean_abs_de`, `${label}_nmae_pct`])];
  const rows = results[0].r.heads.map((h, i) => [h.layer, h.head, ...results.flatMap(({ r }) => [r.heads[i].dla_abs, r.heads[i].de_abs, r.heads[i].nmae])]);
  await writeCsv(path.join(dir, 'dla_per_head.csv'), header, rows);
  // The scatter's points (an even subsample) as data, so the workbench draws it interactively.
  const points = results.map(({ label, r }) => {
    const n = Math.min(r.dla.length, 1500);
    const pick = (a: ArrayLike<number>) => Array.from({ length: n }, (_, i) => a[Math.floor((i * a.length) / n)]);
    return { label, nmae_pct: r.nmae, de: pick(r.de), dla: pick(r.dla) };
  });
  await writeFileAtomic(path.join(dir, 'dla_points.json'), JSON.stringify({ points }));
  for (const { label, r } of results) {
    const n = Math.min(r.dla.length, 4000);
    const stride = r.dla.length / n;
    const x = Float64Array.from({ length: n }, (_, i) => r.de[Math.floor(i * stride)]);
    const y = Float64Array.from({ length: n }, (_, i) => r.dla[Math.floor(i * stride)]);
    const png = await scatterWithRules({
      title: `Per-head DLA vs direct effect, ${label} (NMAE ${r.nmae.toPrecision(3)} %)`,
      xLabel: 'direct effect (logit of the next token, zero-ablated direct path)',
      yLabel: 'direct logit attribution',
      x,
      y,
      rules: [],
      pointsLabel: 'head × token',
      scale: 2,
    });
    await writePlot(path.join(dir, `dla_${label.replace(/[^\w-]+/g, '_')}.png`), png);
  }
}

/** One fine-tuning arm's curves: training CE per step and validation CE at its evaluations. */
type ArmCurves = Pick<FinetuneResult, 'steps' | 'ce' | 'valSteps' | 'val' | 'finalVal'>;

/** The arm curves of a finished arm run, from its metric lines (`vanilla_*` or `ln_free_*`). */
function armCurves(run: Run, mode: 'vanilla' | 'remove'): ArmCurves {
  const prefix = mode === 'remove' ? 'ln_free' : 'vanilla';
  const out: ArmCurves = { steps: [], ce: [], valSteps: [], val: [], finalVal: NaN };
  for (const m of run.readMetrics()) {
    if (typeof m.step !== 'number') continue;
    const ce = m[`${prefix}_ce`];
    const val = m[`${prefix}_val_ce`];
    if (typeof ce === 'number') {
      out.steps.push(m.step);
      out.ce.push(ce);
    }
    if (typeof val === 'number') {
      out.valSteps.push(m.step);
      out.val.push(val);
    }
  }
  out.finalVal = out.val[out.val.length - 1];
  return out;
}

/** ce_table.csv and loss_curves.png (both arms' training and validation CE, removal steps as rules). */
async function writeCeTableAndCurves(
  dir: string,
  o: { originalCE: number; vanilla: ArmCurves | null; removal: ArmCurves | null; lnFreeCE: number | null; schedule: RemovalEvent[] },
): Promise<void> {
  const { originalCE, vanilla, removal, lnFreeCE, schedule } = o;
  const vanillaCE = vanilla?.finalVal ?? null;
  const table: (string | number)[][] = [['original', originalCE, 0, '']];
  if (vanillaCE !== null) table.push(['vanilla fine-tune', vanillaCE, vanillaCE - originalCE, 0]);
  if (lnFreeCE !== null) table.push(['LN-free', lnFreeCE, lnFreeCE - originalCE, vanillaCE !== null ? lnFreeCE - vanillaCE : '']);
  await writeCsv(path.join(dir, 'ce_table.csv'), ['model', 'val_ce', 'minus_original', 'minus_vanilla'], table);
  const series = [];
  const smooth = (ys: number[]) => {
    const out: number[] = [];
    let s = ys[0];
    for (const y of ys) out.push((s = 0.8 * s + 0.2 * y));
    return out;
  };
  if (vanilla) series.push({ name: 'vanilla, train (EMA)', x: vanilla.steps, y: smooth(vanilla.ce) });
  if (removal) series.push({ name: 'LN removal, train (EMA)', x: removal.steps, y: smooth(removal.ce) });
  if (vanilla) series.push({ name: 'vanilla, val', x: [0, ...vanilla.valSteps], y: [originalCE, ...vanilla.val] });
  if (removal) series.push({ name: 'LN removal, val', x: [0, ...removal.valSteps], y: [originalCE, ...removal.val] });
  const firsts = new Map<string, number>();
  for (const e of schedule) if (!firsts.has(e.kind)) firsts.set(e.kind, e.step);
  const names: Record<string, string> = { ln_2: 'ln_2', ln_1_qk: 'ln_1 QK', ln_1_v: 'ln_1 V', ln_f: 'ln_f', eot: 'EOT', bos: 'BOS' };
  // Labelled rules (the first removal of each group) first: the plot staggers labels by index.
  const marks = removal
    ? [
        ...schedule.filter((e) => firsts.get(e.kind) === e.step).map((e) => ({ x: e.step, label: names[e.kind] })),
        ...schedule.filter((e) => firsts.get(e.kind) !== e.step).map((e) => ({ x: e.step })),
      ]
    : [];
  const png = await linePlot({
    title: `LN removal fine-tuning (original val CE ${originalCE.toFixed(3)})`,
    xLabel: 'fine-tuning step (rules: one LN site removed)',
    yLabel: 'cross-entropy (nats/token)',
    series,
    marks,
    scale: 2,
  });
  await writePlot(path.join(dir, 'loss_curves.png'), png);
}

/**
 * `mode: both`: the vanilla control and the LN removal as two child runs (`mode: vanilla` and
 * `mode: remove` on the same base model folder, so the same seed gives both the same batches),
 * then this run's CE table, overlaid curves, DLA and LN-free model from theirs.
 */
async function runArms(
  ctx: JobContext,
  cfg: LNRemovalConfig,
  baseDir: string,
  pretrain: Record<string, unknown> | null,
  schedule: RemovalEvent[],
): Promise<Record<string, unknown>> {
  const { executor: _executor, name: _name, tags: _tags, ...shared } = cfg;
  const arm = (mode: 'vanilla' | 'remove') => ({ ...shared, mode, source: { kind: 'folder', path: baseDir } });
  const label = cfg.name ?? 'ln-removal';
  const [v, r] = await ctx.runChildren([
    { key: 'vanilla', name: `${label} vanilla`, config: arm('vanilla') },
    { key: 'remove', name: `${label} removal`, config: arm('remove') },
  ]);
  const vs = completedSummary(v, `${label} vanilla arm`);
  const rs = completedSummary(r, `${label} removal arm`);
  const removalRun = ctx.project.run(r.runId);
  const vanillaRun = ctx.project.run(v.runId);
  // The arms' curves become this run's too (as when the arms ran inside it): the vanilla arm's
  // lines, then the removal arm's (its removal events included), without the repeated original CE.
  if (ctx.run.readMetrics().length === 0) {
    for (const { time: _time, ...m } of vanillaRun.readMetrics()) if (typeof m.step === 'number') ctx.metric(m as { step: number });
    for (const { time: _time, ...m } of removalRun.readMetrics())
      if (typeof m.step === 'number' && m.original_val_ce === undefined) ctx.metric(m as { step: number });
  }
  const dir = ctx.run.artifactsDir;
  const originalCE = rs.original_val_ce as number;
  const vanillaCE = vs.vanilla_val_ce as number;
  const lnFreeCE = rs.ln_free_val_ce as number;
  await writeCeTableAndCurves(dir, {
    originalCE,
    vanilla: armCurves(vanillaRun, 'vanilla'),
    removal: armCurves(removalRun, 'remove'),
    lnFreeCE,
    schedule,
  });
  for (const f of removalRun.artifacts()) if (f.startsWith('dla')) fs.copyFileSync(path.join(removalRun.artifactsDir, f), path.join(dir, f));
  // The LN-free model is this run's checkpoint too, so its exports work on the study run.
  const lnFree = removalRun.latestCheckpoint();
  if (!lnFree) fail('state', `removal arm ${r.runId} left no LN-free model`);
  await ctx.run.saveCheckpoint(cfg.finetune.steps, async (out) => fs.cpSync(lnFree.dir, out, { recursive: true }));
  return {
    key_result: { label: 'LN-free − vanilla CE', value: lnFreeCE - vanillaCE },
    original_val_ce: originalCE,
    vanilla_val_ce: vanillaCE,
    ln_free_val_ce: lnFreeCE,
    ln_free_val_ce_during_training: rs.ln_free_val_ce_during_training,
    gap_vs_vanilla: lnFreeCE - vanillaCE,
    gap_vs_original: lnFreeCE - originalCE,
    dla_nmae_pct_original: rs.dla_nmae_pct_original,
    dla_nmae_pct_ln_free: rs.dla_nmae_pct_ln_free,
    sigmas: rs.sigmas,
    schedule: rs.schedule,
    steps: cfg.finetune.steps,
    val_tokens: rs.val_tokens,
    pretrain,
    arms: { vanilla: v.runId, remove: r.runId },
    base_model: path.relative(ctx.run.dir, baseDir),
    checkpoint: path.relative(ctx.run.dir, ctx.run.latestCheckpoint()!.dir),
    backend: ctx.backend.name,
  };
}

registerJobKind({
  name: 'ln-removal',
  title: 'Remove LayerNorm from GPT-2',
  description: 'Fine-tune a GPT-2 while replacing every LayerNorm by a fixed scalar (FakeLN), with a vanilla control; exports the LN-free model.',
  schema: lnRemovalSchema,
  resumable: false,
  parent: true,
  async run(ctx, cfg) {
    const f = cfg.finetune;
    const r = cfg.removal;
    // Everything that can be checked is checked before any training.
    const src = await resolveSource(ctx, cfg);
    const schedule = removalSchedule(src.nLayers, {
      start: r.start,
      gapLn2: r.gap_ln2,
      gapLn1qk: r.gap_ln1qk,
      gapLn1v: r.gap_ln1v,
      gapSpecial: r.gap_special,
      special: r.special_tokens,
    });
    const last = schedule[schedule.length - 1];
    if (cfg.mode !== 'vanilla' && last.step >= f.steps) {
      fail(
        'config',
        `the removal schedule for ${src.nLayers} blocks ends at step ${last.step} (${last.kind}) but finetune.steps is ${f.steps}: raise steps above ${last.step} or shorten the gaps`,
      );
    }
    if (f.seq > src.maxSeq) fail('config', `finetune.seq ${f.seq} exceeds the model's context ${src.maxSeq}`);
    if (cfg.dla.enabled && cfg.dla.seq > src.maxSeq) fail('config', `dla.seq ${cfg.dla.seq} exceeds the model's context ${src.maxSeq}`);
    const data = await loadLMData(cfg.data, Math.max(f.seq, cfg.dla.seq), src.vocab); // ids beyond the vocabulary fail here
    const eotToken = r.eot_token ?? (cfg.data.tokenizer === 'gpt2' ? 50256 : null);
    if (src.dir) (await loadGpt2(src.dir)).dispose(); // tensor names and shapes

    let baseDir = src.dir;
    let pretrain: Record<string, unknown> | null = null;
    if (!baseDir) {
      ctx.log('pretraining the GPT-2 to remove LayerNorm from (child lm-pretrain run)');
      const child = await ctx.runChild(
        { method: 'lm-pretrain', seed: cfg.seed, model: cfg.source.model, data: cfg.data, train: cfg.source.train },
        `${cfg.name ?? 'ln-removal'}-pretrain`,
      );
      const childRun = ctx.project.run(child.runId);
      const ckpt = childRun.latestCheckpoint();
      if (!ckpt) fail('state', `pretraining run ${child.runId} left no checkpoint`);
      baseDir = ckpt.dir;
      pretrain = { run: child.runId, val_loss: child.summary.final_val_loss };
    }
    // Both arms: each its own child run, through the executor (in parallel or on Slurm if asked).
    if (cfg.mode === 'both') return runArms(ctx, cfg, baseDir, pretrain, schedule);

    const val = evalWindows(data.val, f.seq, f.eval_windows);
    const prompts = dlaPrompts(data.val, cfg.dla);
    const original = await loadGpt2(baseDir);
    const originalCE = await evalCE(original, val, f.batch);
    ctx.metric({ step: 0, original_val_ce: originalCE });
    ctx.log(`original validation CE ${originalCE.toFixed(4)}`);
    const dlaBefore = cfg.dla.enabled ? await headDla(original, prompts.x, prompts.y, prompts.count, prompts.seq) : null;
    original.dispose();

    const progress = { done: 0, total: f.steps };
    let vanilla: FinetuneResult | null = null;
    let removal: FinetuneResult | null = null;
    let lnFree: GPT2 | null = null;
    try {
      if (cfg.mode !== 'remove') {
        vanilla = await finetune(ctx, cfg, baseDir, 'vanilla', data.train, val, schedule, eotToken, progress);
        vanilla.fake?.dispose();
        vanilla.model.dispose();
      }
      let lnFreeCE: number | null = null;
      let hookCE: number | null = null;
      let sigmas: Record<string, number> | null = null;
      let dlaAfter: DlaResult | null = null;
      if (cfg.mode !== 'vanilla') {
        removal = await finetune(ctx, cfg, baseDir, 'remove', data.train, val, schedule, eotToken, progress);
        hookCE = removal.finalVal;
        sigmas = removal.fake!.frozenSigmas();
        lnFree = lnFreeModel(removal.model, sigmas);
        removal.fake!.dispose();
        removal.model.dispose();
        // The reported number: the stand-alone LN-free model (no hooks), as eval-lm would see it.
        lnFreeCE = await evalCE(lnFree, val, f.batch);
        if (dlaBefore) dlaAfter = await headDla(lnFree, prompts.x, prompts.y, prompts.count, prompts.seq);
        const m = lnFree;
        await ctx.run.saveCheckpoint(f.steps, async (dir) =>
          saveModel(m, dir, { normlab_ln_removal: { original_val_ce: originalCE, ln_free_val_ce: lnFreeCE } }),
        );
      }

      // Artifacts: CE table, loss curves with removal steps, DLA.
      const dir = ctx.run.artifactsDir;
      const vanillaCE = vanilla?.finalVal ?? null;
      await writeCeTableAndCurves(dir, { originalCE, vanilla, removal, lnFreeCE, schedule });
      if (dlaBefore && dlaAfter)
        await dlaArtifacts(ctx, [
          { label: 'original', r: dlaBefore },
          { label: 'LN-free', r: dlaAfter },
        ]);
      else if (dlaBefore) await dlaArtifacts(ctx, [{ label: 'original', r: dlaBefore }]);

      const summary: Record<string, unknown> = {
        key_result:
          lnFreeCE !== null
            ? { label: vanillaCE !== null ? 'LN-free − vanilla CE' : 'LN-free val CE', value: vanillaCE !== null ? lnFreeCE - vanillaCE : lnFreeCE }
            : { label: 'vanilla val CE', value: vanillaCE },
        original_val_ce: originalCE,
        vanilla_val_ce: vanillaCE,
        ln_free_val_ce: lnFreeCE,
        ln_free_val_ce_during_training: hookCE,
        gap_vs_vanilla: lnFreeCE !== null && vanillaCE !== null ? lnFreeCE - vanillaCE : null,
        gap_vs_original: lnFreeCE !== null ? lnFreeCE - originalCE : null,
        dla_nmae_pct_original: dlaBefore?.nmae ?? null,
        dla_nmae_pct_ln_free: dlaAfter?.nmae ?? null,
        sigmas,
        schedule: schedule.map((e) => ({ step: e.step, site: e.layer >= 0 ? `h.${e.layer}.${e.kind}` : e.kind })),
        steps: f.steps,
        val_tokens: val.count * val.seq,
        pretrain,
        base_model: path.relative(ctx.run.dir, baseDir),
        checkpoint: lnFreeCE !== null ? path.relative(ctx.run.dir, ctx.run.latestCheckpoint()!.dir) : null,
        backend: ctx.backend.name,
      };
      return summary;
    } finally {
      lnFree?.dispose();
    }
  },
  exporters: {
    /** NormLab's LN-free model folder (norms fixed via normlab_ln_sigmas). */
    'ln-free': async (run: Run, out: string) => {
      const ckpt = run.latestCheckpoint();
      if (!ckpt) fail('not-found', `run ${run.id} has no LN-free model to export (did the removal finish?)`);
      for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(ckpt.dir, f), path.join(out, f));
    },
    /** The paper's HF form: plain GPT2LMHeadModel, eps 1e12, gamma * 1e6 / sigma. */
    'hf-ln-free': async (run: Run, out: string) => {
      const ckpt = run.latestCheckpoint();
      if (!ckpt) fail('not-found', `run ${run.id} has no LN-free model to export (did the removal finish?)`);
      const { config, tensors } = await loadModelDir(ckpt.dir);
      const hf = toHfLnFree(config, tensors);
      await saveModelDir(out, hf.config, hf.tensors);
    },
  },
});

export const dlaJobSchema = z
  .object({
    method: z.literal('dla'),
    ...baseConfig,
    model: z.string().min(1).describe('a GPT-2 model folder (with LN, NormLab LN-free, or the HF LN-free form)'),
    data: textDataSchema.default(textDataSchema.parse({})),
    prompts: z.number().int().min(1).default(8).describe('validation windows used as prompts'),
    seq: z.number().int().min(2).default(64).describe('tokens per prompt'),
  })
  .strict();

registerJobKind({
  name: 'dla',
  title: 'Direct logit attribution vs direct effect',
  description: 'Per-head DLA and direct effect of a GPT-2 on validation prompts, with the NMAE between them.',
  schema: dlaJobSchema,
  resumable: false,
  async run(ctx, cfg) {
    const info = await (async () => {
      const json = (await readJson(path.join(cfg.model, 'config.json'), 'config.json').catch(() =>
        fail('io', `model folder ${cfg.model} has no readable config.json`),
      )) as Record<string, unknown>;
      if (archOf(json, cfg.model) !== 'gpt2') fail('model', `${cfg.model} is not a GPT-2 model: DLA here is for GPT-2`);
      return gpt2ConfigFromJson(json);
    })();
    if (cfg.seq > info.n_positions) fail('config', `seq ${cfg.seq} exceeds the model's context ${info.n_positions}`);
    const data = await loadLMData(cfg.data, cfg.seq, info.vocab_size);
    const model = await loadGpt2(cfg.model);
    try {
      const prompts = evalWindows(data.val, cfg.seq, cfg.prompts);
      const r = await headDla(model, prompts.x, prompts.y, prompts.count, prompts.seq);
      await dlaArtifacts(ctx, [{ label: 'model', r }]);
      const top = [...r.heads].sort((a, b) => b.de_abs - a.de_abs).slice(0, 5);
      return {
        key_result: { label: 'DLA NMAE %', value: r.nmae },
        nmae_pct: r.nmae,
        tokens: r.tokens,
        ln_free: Boolean(info.normlab_ln_sigmas) || info.layer_norm_epsilon >= 1,
        top_heads_by_direct_effect: top,
      };
    } finally {
      model.dispose();
    }
  },
});
