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
import { faultPoint } from '../../core/fault-points.js';
import { evalWindows, finalEvalWindows, TokenBatcher, type BatcherState, type EvalWindows, type TokenStream } from '../../data/batches.js';
import { readJson, readJsonSync, writeFileAtomic } from '../../io/atomic.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import type { JobContext } from '../../jobs/context.js';
import { registerPresets } from '../../jobs/presets.js';
import { completedSummary } from '../../jobs/context.js';
import { executorSchema } from '../../jobs/executor.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { metricCurves, runSeeds, seedsField, SINGLE_SEED, type SeedStudy } from '../../jobs/seeds.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import { archOf, loadLM, saveModel } from '../../models/index.js';
import type { ForwardHooks } from '../../models/lm.js';
import { crossEntropy } from '../../nn/ops.js';
import { AdamW } from '../../nn/optim.js';
import { learningRate } from '../../nn/schedule.js';
import { linePlot, scatterWithRules, writePlot } from '../../plot/index.js';
import type { Run } from '../../store/runs.js';
import { finalEvalTokensField, lmModelSchema, textDataSchema, trainSchema } from '../../train/lm-config.js';
import { loadLMData } from '../../train/lm-data.js';
import { accumulate, checkLmAccum, lmAccumFields, lmGradAccum } from '../../train/accumulate.js';
import {
  checkpointEveryField,
  endOfStep,
  isCheckpointStep,
  readTrainerState,
  restoreTrainingCheckpoint,
  saveTrainingCheckpoint,
} from '../../train/checkpoint.js';
import { lmApplyGrads, lmLossAndGrads, lmMicroBatch, lmMicroBatches } from '../../train/lm-step.js';
import { headDla, type DlaOptions, type DlaResult } from './dla.js';
import { nmaeInterval, nmaeIntervalText, NMAE_RESAMPLES, type NmaeInterval } from './nmae-interval.js';
import { convergenceWarnings, lnfInputStd, logitRows, stillImprovingWarning, unigramCE, windowCE, type Convergence } from './convergence.js';
import { comparison, noiseWarning, pairedDifference, tInterval, type KeyResult } from '../../stats/stats.js';
import { toHfLnFree } from './export.js';
import { auxStdLoss, FakeLNSet, removalSchedule, type FakeLNState, type RemovalEvent } from './fake-ln.js';
import { pathField } from '../../jobs/paths.js';
import { lnRemovalPresets } from './presets.js';

registerPresets(lnRemovalPresets);

const tinyGpt2 = lmModelSchema.parse({ arch: 'gpt2', layers: 4, d_model: 128, heads: 4 });

export const sourceSchema = z
  .object({
    kind: z
      .enum(['pretrain', 'folder', 'run'])
      .default('pretrain')
      .describe('pretrain a GPT-2 here (child lm-pretrain run), load a HF-format model folder, or take an lm-pretrain run'),
    path: pathField(z.string().optional().describe('folder: the model folder (config.json + model.safetensors); run: the run id'), {
      when: (s) => s.kind === 'folder',
    }),
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
    batch: z.number().int().min(1).max(SIZE_LIMITS.batch).default(16).describe('sequences per micro-batch (per step without grad_accum)'),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).default(128).describe('tokens per sequence'),
    ...lmAccumFields,
    lr: z.number().positive().default(6e-4).describe('peak learning rate'),
    min_lr: z.number().min(0).default(3e-4).describe('floor of the cosine schedule'),
    warmup: z.number().int().min(0).default(25).describe('linear warmup steps'),
    weight_decay: z.number().min(0).default(0.01).describe('AdamW decoupled weight decay (matrices)'),
    clip: z.number().min(0).default(1).describe('gradient global-norm clip (0 = off)'),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eval_every: z.number().int().min(1).default(50).describe('steps between validation evaluations'),
    eval_windows: z.number().int().min(1).max(SIZE_LIMITS.count).default(32).describe('validation windows of seq tokens at each evaluation during fine-tuning'),
    final_eval_tokens: finalEvalTokensField,
    dropout: z
      .number()
      .min(0)
      .lt(1)
      .default(0)
      .describe("dropout on GPT-2's attention probabilities, sublayer outputs and embeddings while fine-tuning (HF GPT-2: 0.1; off at evaluation)"),
    checkpoint_every: checkpointEveryField(50),
  })
  .strict()
  .refine((f) => f.warmup < f.steps, { path: ['warmup'], message: 'warmup must be shorter than steps' })
  .refine((f) => f.min_lr <= f.lr, { path: ['min_lr'], message: 'min_lr must not exceed lr' })
  .superRefine(checkLmAccum);

export const removalSchema = z
  .object({
    start: z.number().int().min(1).default(20).describe('step of the first removal (ln_2 of block 0)'),
    gap_ln2: z.number().int().min(1).default(2).describe('steps between ln_2 removals'),
    gap_ln1qk: z.number().int().min(1).default(2).describe('steps between ln_1 Q/K-path removals'),
    gap_ln1v: z.number().int().min(1).default(3).describe('steps between ln_1 V-path removals (ln_f follows one gap after the last)'),
    gap_eot: z.number().int().min(1).default(2).describe('special tokens: steps from ln_f to the EOT event (official configs: 2)'),
    gap_bos: z.number().int().min(1).default(10).describe('special tokens: steps from the EOT event to the BOS event (official configs: 10)'),
    momentum: z.number().min(0).lt(1).default(0.9).describe('EMA momentum of sigma_avg while an LN is real (one update per forward)'),
    momentum_tokens: z
      .number()
      .int()
      .min(1)
      .nullable()
      .default(null)
      .describe(
        'tokens per which the momentum applies: a forward over n tokens uses momentum^(n/momentum_tokens) (official 0.9^(B/32): 32768); null: per forward',
      ),
    schedule_tokens_per_step: z
      .number()
      .int()
      .min(1)
      .default(524288)
      .describe('tokens per optimizer step the removal schedule was tuned for (official configs: 2^19); runs far below it are flagged'),
    aux_weight: z.number().min(0).default(0.1).describe('weight w of the std-uniformity loss at the input of ln_f (0 = off)'),
    special_tokens: z
      .boolean()
      .default(false)
      .describe('position 0 keeps its own sigma at every site and EOT tokens theirs on the ln_1 V path, until the EOT and BOS events after ln_f'),
    eot_token: z.number().int().min(0).nullable().default(null).describe('EOT token id for special_tokens (default: 50256 with the gpt2 tokenizer)'),
    ln1_sigma: z.enum(['shared', 'separate']).default('shared').describe("ln_1's Q/K and V paths: one sigma (authors' code) or one frozen per path"),
    control_aux: z.boolean().default(false).describe('also add the auxiliary loss to the vanilla control'),
  })
  .strict();

export const dlaSchema = z
  .object({
    enabled: z.boolean().default(true).describe('DLA vs direct effect per head, before and after removal'),
    prompts: z.number().int().min(1).max(SIZE_LIMITS.count).default(8).describe('validation windows used as prompts'),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).default(64).describe('tokens per prompt'),
    positions: z.enum(['all', 'last']).default('all').describe("scored positions: every one, or the last of each prompt (the authors' script)"),
    center_unembed: z.boolean().default(false).describe('centre the unembedding over the vocabulary (TransformerLens fold_ln + center_unembed, as the paper)'),
  })
  .strict();

export const lnRemovalSchema = z
  .object({
    method: z.literal('ln-removal'),
    ...baseConfig,
    seeds: seedsField,
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
  if (arch !== 'gpt2') fail('model', `${dir} holds a ${String(json.model_type)} model; LN removal needs a GPT-2 (GPT2LMHeadModel) checkpoint`);
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

/** An arm's curves and final validation CE (what the summary and plots need of it). */
interface ArmCurves {
  steps: number[];
  ce: number[];
  valSteps: number[];
  val: number[];
  finalVal: number;
}

interface FinetuneResult extends ArmCurves {
  model: GPT2;
  fake: FakeLNSet | null;
}

/** What an ln-removal checkpoint records beyond the model folder and the optimizer. */
interface LnRemovalResumeState extends Record<string, unknown> {
  arm: 'vanilla' | 'remove';
  batcher: BatcherState;
  fake: FakeLNState | null;
  curves: ArmCurves;
  /** The finished vanilla arm (in the removal arm's checkpoints of a `both` run). */
  vanilla: ArmCurves | null;
  /** The model both arms start from, and the pretraining child's result, if any. */
  base_dir: string;
  pretrain: Record<string, unknown> | null;
}

/** What `finetune` needs to checkpoint its arm and continue from a checkpoint. */
interface ArmCheckpointing {
  /** The checkpoint to continue this arm from, or null to start it. */
  resumeDir: string | null;
  /** The run-level state every checkpoint of the arm carries. */
  carry: Pick<LnRemovalResumeState, 'vanilla' | 'base_dir' | 'pretrain'>;
}

/**
 * Fine-tune a fresh copy of the base model. `remove`: LN sites become FakeLN on the schedule,
 * with the auxiliary loss. The data order depends only on the seed, so both modes see the same
 * batches. Each step takes batch × grad_accum sequences, batch at a time; the sigma EMAs see the
 * whole step's tokens and the schedule counts optimizer steps. Checkpoints every
 * `checkpoint_every` steps (model, optimizer, data position, FakeLN state, curves so far).
 */
async function finetune(
  ctx: JobContext,
  cfg: LNRemovalConfig,
  baseDir: string,
  mode: 'vanilla' | 'remove',
  train: TokenStream,
  val: EvalWindows,
  schedule: RemovalEvent[],
  eotToken: number | null,
  progress: { done: number; total: number },
  ckpt: ArmCheckpointing,
): Promise<FinetuneResult> {
  const f = cfg.finetune;
  const r = cfg.removal;
  // A removal arm's last checkpoint holds the LN-free model (saveLnFreeCheckpoint): the same
  // tensors, and resumed there the arm takes no step.
  const model = await loadGpt2(ckpt.resumeDir ?? baseDir);
  const opt = new AdamW(model.params, { beta1: f.beta1, beta2: f.beta2, weightDecay: f.weight_decay });
  const accum = lmGradAccum(f);
  const rows = f.batch * accum;
  const batcher = new TokenBatcher(train, rows, f.seq, cfg.seed);
  const sched = { kind: 'cosine' as const, lr: f.lr, warmup: f.warmup, minLr: f.min_lr, total: f.steps };
  const eps = model.config.layer_norm_epsilon;
  const fake =
    mode === 'remove' || r.control_aux
      ? new FakeLNSet(
          model.params,
          model.nLayers,
          { momentum: r.momentum, momentumTokens: r.momentum_tokens, eps, ln1Sigma: r.ln1_sigma, special: r.special_tokens },
          eotToken,
        )
      : null;
  // Dropout masks from the run's seed and the step (so a resumed run draws the same ones): the
  // vanilla control and the removal draw the same masks.
  let dropSeed = 0;
  const dropoutAt = (step: number) => {
    dropSeed = cfg.seed * 1_000_003 + step * 10_007;
    return f.dropout > 0 ? { attn: f.dropout, resid: f.dropout, embd: f.dropout, seed: () => dropSeed++ } : undefined;
  };
  const prefix = mode === 'remove' ? 'ln_free' : 'vanilla';
  const out: FinetuneResult = { steps: [], ce: [], valSteps: [], val: [], finalVal: NaN, model, fake };
  const evalBatch = f.batch;
  const evalHooks = mode === 'remove' ? fake!.hooks(false) : undefined;
  const prepare = mode === 'remove' ? (x: Int32Array, B: number) => fake!.setTokens(x, B, f.seq) : undefined;
  const curves = (): ArmCurves => ({ steps: out.steps, ce: out.ce, valSteps: out.valSteps, val: out.val, finalVal: out.finalVal });
  // Every metric line names its arm: a resume into one arm supersedes only that arm's lines.
  const scope = { arm: prefix };
  const metric = (m: { step: number } & Record<string, unknown>) => ctx.metric({ ...m, ...scope });
  let first = 0;
  try {
    if (ckpt.resumeDir) {
      const state = await restoreTrainingCheckpoint<LnRemovalResumeState>(ckpt.resumeDir, { optimizer: opt });
      batcher.restore(state.batcher);
      if (fake && state.fake) fake.importState(state.fake);
      Object.assign(out, state.curves);
      first = state.step;
    }
    // The removals that take effect before 0-based step `s` are applied once step s - 1 is done
    // (and evaluated), so a checkpoint after step s - 1 already holds them.
    const applyRemovals = (s: number) => {
      if (mode !== 'remove') return;
      for (const e of schedule.filter((ev) => ev.step === s)) {
        fake!.apply(e);
        metric({ step: s, removed: e.layer >= 0 ? `h.${e.layer}.${e.kind}` : e.kind });
      }
    };
    if (first === 0) applyRemovals(0);
    for (let step = first; step < f.steps; step++) {
      const lr = learningRate(sched, step);
      const batch = { ...batcher.next(), batch: rows, seq: f.seq };
      const useAux = fake !== null && r.aux_weight > 0;
      const auxParts: tf.Tensor[] = [];
      const hooks = { ...(fake ? fake.hooks(mode === 'remove') : {}), dropout: dropoutAt(step) };
      const { value, grads } = accumulate(lmMicroBatches(rows, accum), (mb) => {
        const part = lmMicroBatch(batch, mb);
        fake?.setTokens(part.x, mb.rows, f.seq);
        const extraLoss = useAux
          ? () => {
              const a = auxStdLoss(fake!.lnfInput!, r.aux_weight, eps, fake!.auxExclude);
              auxParts.push(tf.keep(tf.mul(a, mb.rows / mb.total)));
              return a;
            }
          : undefined;
        return lmLossAndGrads(model, part, { hooks, extraLoss });
      });
      const { gradNorm: gradNormT } = lmApplyGrads(model, opt, grads, lr, { clip: f.clip });
      // Every step is logged here (the CE curve), so every step is read, in one transfer.
      const summed = tf.tidy(() => tf.stack([value, gradNormT, auxParts.length ? tf.addN(auxParts) : tf.scalar(0)]));
      const [loss, gradNorm, aux] = await summed.data();
      tf.dispose([summed, value, gradNormT, ...auxParts]);
      if (mode === 'remove') await fake!.commit();
      else fake?.discard();
      if (!Number.isFinite(loss)) fail('state', `${mode} fine-tuning diverged at step ${step + 1} (loss ${loss}); lower finetune.lr`);
      const ce = loss - aux;
      const done = step + 1;
      out.steps.push(done);
      out.ce.push(ce);
      metric({ step: done, [`${prefix}_ce`]: ce, [`${prefix}_aux`]: aux, [`${prefix}_lr`]: lr, [`${prefix}_grad_norm`]: gradNorm });
      if (done % f.eval_every === 0 || done === f.steps) {
        const v = await evalCE(model, val, evalBatch, evalHooks, prepare);
        out.valSteps.push(done);
        out.val.push(v);
        metric({ step: done, [`${prefix}_val_ce`]: v });
      }
      applyRemovals(done);
      progress.done += 1;
      ctx.progress({ step: progress.done, total: progress.total, phase: mode === 'remove' ? 'ln-removal' : 'vanilla', message: `CE ${ce.toFixed(3)}` });
      await endOfStep(
        ctx,
        isCheckpointStep(done, f.checkpoint_every, f.steps),
        () => {
          const state: Omit<LnRemovalResumeState, 'step'> = {
            ...ckpt.carry,
            arm: mode,
            batcher: batcher.state(),
            fake: fake?.exportState() ?? null,
            curves: curves(),
          };
          return saveTrainingCheckpoint(ctx.run, done, { model: (dir) => saveModel(model, dir), optimizer: opt, state, scope });
        },
        done === f.steps,
      );
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

/** Tokens per optimizer step of the fine-tuning (sequences per micro-batch × micro-batches × tokens per sequence). */
export function tokensPerStep(cfg: LNRemovalConfig): number {
  return cfg.finetune.batch * lmGradAccum(cfg.finetune) * cfg.finetune.seq;
}

/** How far below a quarter of its schedule's tokens per step a run is still not flagged. */
const FAR_BELOW = 4;

/**
 * Warnings about a removal schedule run with far fewer tokens per step than it was tuned for:
 * each removal then gives the model that many times fewer tokens to adapt before the next one.
 */
export function scheduleWarnings(cfg: LNRemovalConfig): string[] {
  if (cfg.mode === 'vanilla') return [];
  const have = tokensPerStep(cfg);
  const want = cfg.removal.schedule_tokens_per_step;
  if (have * FAR_BELOW > want) return [];
  return [
    `${have} tokens per step is ${Math.round(want / have)}x fewer than the ${want} the removal schedule (start ${cfg.removal.start}, gaps ${cfg.removal.gap_ln2}/${cfg.removal.gap_ln1qk}/${cfg.removal.gap_ln1v}) was tuned for: each LN gets that many times fewer tokens to adapt to before the next goes`,
  ];
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

/**
 * Make the removal arm's last checkpoint (step `steps`) hold the LN-free model: the final training
 * checkpoint's files (trainer.json, the optimizer) with `lnFree`'s model folder in place of the
 * fine-tuned one. The exports and a `both` run take the LN-free model from there, and a run stopped
 * before its summary still resumes there: its removal arm, at its last step, trains no more (its
 * curves and frozen sigmas are in trainer.json) and derives the same LN-free model from it.
 */
async function saveLnFreeCheckpoint(run: Run, steps: number, lnFree: GPT2, extraConfig: Record<string, unknown>): Promise<void> {
  const trained = run.latestCheckpoint();
  if (trained?.step !== steps) fail('internal', `the removal arm ended without its step-${steps} checkpoint`);
  await run.saveCheckpoint(
    steps,
    async (dir) => {
      fs.cpSync(trained.dir, dir, { recursive: true });
      await saveModel(lnFree, dir, extraConfig);
    },
    2,
    trained.scope,
  );
}

function dlaPrompts(val: TokenStream, d: LNRemovalConfig['dla']): EvalWindows {
  return evalWindows(val, d.seq, d.prompts);
}

async function writeCsv(file: string, header: string[], rows: (string | number)[][]): Promise<void> {
  await writeFileAtomic(file, [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
}

/** One model's DLA result with its NMAE interval, as the artifacts and the summary write it. */
interface ScoredDla {
  label: string;
  r: DlaResult;
  nmae: NmaeInterval;
}

/** A model's NMAE with its interval as a summary row and a dla_nmae.csv row. */
const nmaeRow = (d: NmaeInterval, tokens: number) => ({
  nmae_pct: d.nmae_pct,
  ci95_lo: d.ci95?.[0] ?? null,
  ci95_hi: d.ci95?.[1] ?? null,
  prompts: d.prompts,
  tokens,
});
type NmaeRow = ReturnType<typeof nmaeRow>;

/** dla_nmae.csv: each model's NMAE (%) with its 95% interval over prompts (bootstrap resamples and seed as columns), by its label. */
async function writeNmaeCsv(dir: string, rows: Record<string, NmaeRow>, seed: number): Promise<void> {
  await writeCsv(
    path.join(dir, 'dla_nmae.csv'),
    ['model', 'nmae_pct', 'ci95_lo', 'ci95_hi', 'prompts', 'tokens', 'bootstrap_resamples', 'bootstrap_seed'],
    Object.entries(rows).map(([model, r]) => [model, r.nmae_pct, r.ci95_lo ?? '', r.ci95_hi ?? '', r.prompts, r.tokens, NMAE_RESAMPLES, seed]),
  );
}

/** The summary keys of scored DLA results: `dla_nmae` (one row per model, keyed original / vanilla / ln_free) and how its interval was computed. */
function nmaeSummary(results: ScoredDla[], seed: number): { dla_nmae: Record<string, NmaeRow>; dla_nmae_interval: string } | null {
  if (!results.length) return null;
  return {
    dla_nmae: Object.fromEntries(results.map((d) => [summaryKey(d.label), nmaeRow(d.nmae, d.r.tokens)])),
    dla_nmae_interval: nmaeIntervalText(results[0].nmae.prompts, seed),
  };
}

/** "LN-free" → "ln_free": a DLA label as a summary key. */
const summaryKey = (label: string) => label.toLowerCase().replace(/[^a-z0-9]+/g, '_');

async function dlaArtifacts(ctx: JobContext, results: ScoredDla[], seed: number): Promise<void> {
  const dir = ctx.run.artifactsDir;
  const header = ['layer', 'head', ...results.flatMap(({ label }) => [`${label}_mean_abs_dla`, `${label}_mean_abs_de`, `${label}_nmae_pct`])];
  const rows = results[0].r.heads.map((h, i) => [h.layer, h.head, ...results.flatMap(({ r }) => [r.heads[i].dla_abs, r.heads[i].de_abs, r.heads[i].nmae])]);
  await writeCsv(path.join(dir, 'dla_per_head.csv'), header, rows);
  await writeNmaeCsv(dir, Object.fromEntries(results.map((d) => [d.label, nmaeRow(d.nmae, d.r.tokens)])), seed);
  // The scatter's points (an even subsample) as data, so the workbench draws it interactively.
  const interval = nmaeIntervalText(results[0].nmae.prompts, seed);
  const points = results.map(({ label, r, nmae }) => {
    const n = Math.min(r.dla.length, 1500);
    const pick = (a: ArrayLike<number>) => Array.from({ length: n }, (_, i) => a[Math.floor((i * a.length) / n)]);
    return { label, nmae_pct: r.nmae, nmae_ci95: nmae.ci95, interval, de: pick(r.de), dla: pick(r.dla) };
  });
  await writeFileAtomic(path.join(dir, 'dla_points.json'), JSON.stringify({ points }));
  for (const { label, r, nmae } of results) {
    const n = Math.min(r.dla.length, 4000);
    const stride = r.dla.length / n;
    const x = Float64Array.from({ length: n }, (_, i) => r.de[Math.floor(i * stride)]);
    const y = Float64Array.from({ length: n }, (_, i) => r.dla[Math.floor(i * stride)]);
    const png = await scatterWithRules({
      title: `Per-head DLA vs direct effect, ${label} (NMAE ${r.nmae.toPrecision(3)} %${nmae.ci95 ? `, 95% interval [${nmae.ci95.map((x) => x.toPrecision(3)).join(', ')}]` : ''})`,
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

/** The files of the LN-free model folder in a removal run's last checkpoint (beside its training state). */
const LN_FREE_FILES = ['config.json', 'model.safetensors'];

/** The run's LN-free model folder (its last checkpoint once the removal finished; before, a training checkpoint). */
function lnFreeCheckpoint(run: Run): { dir: string } {
  const ckpt = run.latestCheckpoint();
  const config = ckpt ? (readJsonSync(path.join(ckpt.dir, 'config.json'), 'config.json') as Record<string, unknown>) : null;
  if (!ckpt || !config?.normlab_ln_sigmas) fail('not-found', `run ${run.id} has no LN-free model to export (did the removal finish?)`);
  return ckpt;
}

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

/** The loss figure's curves, in order: each keeps its colour when a run has one arm only. */
const LOSS_CURVES = ['vanilla, train (EMA)', 'LN removal, train (EMA)', 'vanilla, val', 'LN removal, val'];

/** ce_table.csv, ce_table.md (with the run's warnings) and loss_curves.png (both arms' training and validation CE, removal steps as rules). */
async function writeCeTableAndCurves(
  dir: string,
  o: {
    originalCE: number;
    vanilla: ArmCurves | null;
    vanillaCE: number | null;
    removal: ArmCurves | null;
    lnFreeCE: number | null;
    schedule: RemovalEvent[];
    warnings: string[];
  },
): Promise<void> {
  const { originalCE, vanilla, vanillaCE, removal, lnFreeCE, schedule, warnings } = o;
  const table: (string | number)[][] = [['original', originalCE, 0, '']];
  if (vanillaCE !== null) table.push(['vanilla fine-tune', vanillaCE, vanillaCE - originalCE, 0]);
  if (lnFreeCE !== null) table.push(['LN-free', lnFreeCE, lnFreeCE - originalCE, vanillaCE !== null ? lnFreeCE - vanillaCE : '']);
  await writeCsv(path.join(dir, 'ce_table.csv'), ['model', 'val_ce', 'minus_original', 'minus_vanilla'], table);
  await writeFileAtomic(
    path.join(dir, 'ce_table.md'),
    [
      '| model | val CE | − original | − vanilla |',
      '|---|---:|---:|---:|',
      ...table.map((row) => `| ${row.map((c) => (typeof c === 'number' ? c.toFixed(4) : c)).join(' | ')} |`),
      ...warnings.map((w) => `\n**Warning:** ${w}`),
    ].join('\n') + '\n',
  );
  const series = [];
  const smooth = (ys: number[]) => {
    const out: number[] = [];
    let s = ys[0];
    for (const y of ys) out.push((s = 0.8 * s + 0.2 * y));
    return out;
  };
  const [vanillaTrain, removalTrain, vanillaVal, removalVal] = LOSS_CURVES;
  if (vanilla) series.push({ name: vanillaTrain, x: vanilla.steps, y: smooth(vanilla.ce) });
  if (removal) series.push({ name: removalTrain, x: removal.steps, y: smooth(removal.ce) });
  if (vanilla) series.push({ name: vanillaVal, x: [0, ...vanilla.valSteps], y: [originalCE, ...vanilla.val] });
  if (removal) series.push({ name: removalVal, x: [0, ...removal.valSteps], y: [originalCE, ...removal.val] });
  const firsts = new Map<string, number>();
  for (const e of schedule) if (!firsts.has(e.kind)) firsts.set(e.kind, e.step);
  const names: Record<string, string> = { ln_2: 'ln_2', ln_1_qk: 'ln_1 QK', ln_1_v: 'ln_1 V', ln_f: 'ln_f', eot: 'EOT', bos: 'BOS' };
  // The first removal of each group is labelled.
  const marks = removal ? schedule.map((e) => ({ x: e.step, label: firsts.get(e.kind) === e.step ? names[e.kind] : undefined })) : [];
  const png = await linePlot({
    title: `LN removal fine-tuning (original val CE ${originalCE.toFixed(3)})`,
    xLabel: 'fine-tuning step (rules: one LN site removed)',
    yLabel: 'cross-entropy (nats/token)',
    series,
    variants: LOSS_CURVES,
    marks,
    scale: 2,
  });
  await writePlot(path.join(dir, 'loss_curves.png'), png);
}

/**
 * The key result: the LN-free − vanilla CE gap with its paired t interval over the validation
 * windows both arms scored (dᵢ = CE_LN-free,i − CE_vanilla,i), or, with one arm, that arm's val CE
 * with its t interval over windows (an estimate of the CE on the whole distribution).
 */
function gapKeyResult(lnFree: ArrayLike<number> | null, vanilla: ArrayLike<number> | null, windows: string): { key: KeyResult; warning: string | null } {
  if (lnFree && vanilla) {
    const d = pairedDifference(lnFree, vanilla);
    return {
      key: comparison('LN-free − vanilla CE', d.mean, d.ci95, 'lower', `paired t over ${windows}`),
      warning: noiseWarning('LN-free − vanilla CE', d.mean, d.ci95),
    };
  }
  const w = (lnFree ?? vanilla)!;
  const t = tInterval(w);
  return {
    key: { label: lnFree ? 'LN-free val CE' : 'vanilla val CE', value: t.mean, ci95: t.ci95, interval: `t over ${windows}` },
    warning: null,
  };
}

/** The original, vanilla and LN-free rows of the arms' `dla_nmae` (the vanilla arm has the vanilla model's, the removal arm the others), or null without DLA. */
function armsNmae(vanilla: unknown, removal: unknown): Record<string, NmaeRow> | null {
  if (!vanilla || !removal) return null;
  const { original, ln_free } = removal as Record<string, NmaeRow>;
  return { original, vanilla: (vanilla as Record<string, NmaeRow>).vanilla, ln_free };
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
  const { executor: _executor, name: _name, tags: _tags, seeds: _seeds, ...shared } = cfg;
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
  const finalEval = rs.final_eval as { description: string } | undefined;
  const gap = gapKeyResult(
    rs.ln_free_val_ce_windows as number[],
    vs.vanilla_val_ce_windows as number[],
    finalEval?.description ?? `${(rs.ln_free_val_ce_windows as number[]).length} validation windows`,
  );
  const vanillaCurves = armCurves(vanillaRun, 'vanilla');
  const warnings = [...scheduleWarnings(cfg), ...convergenceWarnings(rs.convergence as Convergence)];
  const improving = vanillaCurves && stillImprovingWarning(vanillaCurves.valSteps, vanillaCurves.val);
  if (improving) warnings.push(improving);
  if (gap.warning) warnings.push(gap.warning);
  warnings.push(SINGLE_SEED);
  for (const w of warnings) ctx.log(`warning: ${w}`);
  const originalCE = rs.original_val_ce as number;
  const vanillaCE = vs.vanilla_val_ce as number;
  const lnFreeCE = rs.ln_free_val_ce as number;
  await writeCeTableAndCurves(dir, {
    originalCE,
    vanilla: vanillaCurves,
    vanillaCE,
    removal: armCurves(removalRun, 'remove'),
    lnFreeCE,
    schedule,
    warnings,
  });
  for (const f of removalRun.artifacts()) if (f.startsWith('dla')) fs.copyFileSync(path.join(removalRun.artifactsDir, f), path.join(dir, f));
  for (const f of vanillaRun.artifacts()) if (f.startsWith('dla_vanilla')) fs.copyFileSync(path.join(vanillaRun.artifactsDir, f), path.join(dir, f));
  const dlaNmae = armsNmae(vs.dla_nmae, rs.dla_nmae);
  if (dlaNmae) await writeNmaeCsv(dir, { original: dlaNmae.original, vanilla: dlaNmae.vanilla, 'LN-free': dlaNmae.ln_free }, cfg.seed);
  // The LN-free model is this run's checkpoint too, so its exports work on the study run.
  const lnFree = removalRun.latestCheckpoint();
  if (!lnFree) fail('state', `removal arm ${r.runId} left no LN-free model`);
  await ctx.run.saveCheckpoint(cfg.finetune.steps, async (out) => {
    for (const f of LN_FREE_FILES) fs.copyFileSync(path.join(lnFree.dir, f), path.join(out, f));
  });
  faultPoint('after-export', ctx.run);
  return {
    key_result: gap.key,
    original_val_ce: originalCE,
    vanilla_val_ce: vanillaCE,
    ln_free_val_ce: lnFreeCE,
    ln_free_val_ce_during_training: rs.ln_free_val_ce_during_training,
    gap_vs_vanilla: lnFreeCE - vanillaCE,
    gap_vs_original: lnFreeCE - originalCE,
    dla_nmae_pct_original: rs.dla_nmae_pct_original,
    dla_nmae_pct_vanilla: vs.dla_nmae_pct_vanilla,
    dla_nmae_pct_ln_free: rs.dla_nmae_pct_ln_free,
    ...(dlaNmae ? { dla_nmae: dlaNmae, dla_nmae_interval: rs.dla_nmae_interval } : {}),
    dla_scored: rs.dla_scored,
    sigmas: rs.sigmas,
    convergence: rs.convergence,
    calibrated: { ...(rs.calibrated as object), vanilla: (vs.calibrated as { vanilla: unknown }).vanilla },
    ln_f_input_std: rs.ln_f_input_std,
    schedule: rs.schedule,
    steps: cfg.finetune.steps,
    tokens_per_step: tokensPerStep(cfg),
    schedule_tokens_per_step: cfg.removal.schedule_tokens_per_step,
    warnings,
    val_tokens: rs.val_tokens,
    final_eval: rs.final_eval,
    pretrain,
    arms: { vanilla: v.runId, remove: r.runId },
    base_model: path.relative(ctx.run.dir, baseDir),
    checkpoint: path.relative(ctx.run.dir, ctx.run.latestCheckpoint()!.dir),
    backend: ctx.backend.name,
  };
}

/** The study over seeds: the CE table's numbers, and each arm's validation CE curve. */
const LN_REMOVAL_SEEDS: SeedStudy = {
  rows: (s) => ({
    'val CE': {
      original: s.original_val_ce as number,
      vanilla: s.vanilla_val_ce as number | null,
      ln_free: s.ln_free_val_ce as number | null,
      ln_free_minus_vanilla: s.gap_vs_vanilla as number | null,
      ln_free_minus_original: s.gap_vs_original as number | null,
    },
  }),
  curves: (project, runId) => metricCurves(project, runId, { vanilla: 'vanilla_val_ce', 'LN-free (during removal)': 'ln_free_val_ce' }),
  curveAxis: { title: 'Validation CE of both arms', yLabel: 'cross-entropy (nats/token)' },
};

registerJobKind({
  name: 'ln-removal',
  title: 'Remove LayerNorm from GPT-2',
  description: 'Fine-tune a GPT-2 while replacing every LayerNorm by a fixed scalar (FakeLN), with a vanilla control; exports the LN-free model.',
  schema: lnRemovalSchema,
  resumable: true,
  parent: true,
  async run(ctx, seededCfg) {
    if ((seededCfg.seeds?.length ?? 0) > 1) return runSeeds(ctx, seededCfg, LN_REMOVAL_SEEDS);
    const cfg = { ...seededCfg, seed: seededCfg.seeds?.[0] ?? seededCfg.seed };
    const f = cfg.finetune;
    const r = cfg.removal;
    // Everything that can be checked is checked before any training.
    const src = await resolveSource(ctx, cfg);
    const schedule = removalSchedule(src.nLayers, {
      start: r.start,
      gapLn2: r.gap_ln2,
      gapLn1qk: r.gap_ln1qk,
      gapLn1v: r.gap_ln1v,
      gapEot: r.gap_eot,
      gapBos: r.gap_bos,
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
    const warnings = scheduleWarnings(cfg);
    for (const w of warnings) ctx.log(`warning: ${w}`);
    const dlaOpts: DlaOptions = { positions: cfg.dla.positions, centerUnembed: cfg.dla.center_unembed };
    if (src.dir) (await loadGpt2(src.dir)).dispose(); // tensor names and shapes

    // A resumed run continues the arm its checkpoint is of, from the same base model (no new
    // pretraining child), with the finished vanilla arm's results when it has them.
    const resumed = ctx.resumeFrom && cfg.mode !== 'both' ? await readTrainerState<LnRemovalResumeState>(ctx.resumeFrom.dir) : null;
    let baseDir = resumed?.base_dir ?? src.dir;
    let pretrain: Record<string, unknown> | null = resumed?.pretrain ?? null;
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
    // The reported CEs, their intervals and the guards: every model scored on the final evaluation's windows.
    const final = finalEvalWindows(data.val, f.seq, f.final_eval_tokens);
    const scoreRows = logitRows(f.seq, src.vocab);
    const prompts = dlaPrompts(data.val, cfg.dla);
    const original = await loadGpt2(baseDir);
    const originalEval = await windowCE(original, final.windows, scoreRows);
    const originalCE = originalEval.ce;
    const convergence: Convergence = {
      base_ce: originalCE,
      unigram_ce: unigramCE(data.train, final.windows, src.vocab),
      base_temperature: originalEval.temperature,
      base_ce_calibrated: originalEval.calibratedCE,
    };
    const guard = convergenceWarnings(convergence);
    for (const w of guard) ctx.log(`warning: ${w}`);
    warnings.push(...guard);
    if (!resumed) ctx.metric({ step: 0, original_val_ce: originalCE });
    ctx.log(`original validation CE ${originalCE.toFixed(4)}`);
    const dlaBefore = cfg.dla.enabled ? await headDla(original, prompts.x, prompts.y, prompts.count, prompts.seq, dlaOpts) : null;
    original.dispose();

    const inRemoval = resumed?.arm === 'remove';
    const progress = { done: resumed?.step ?? 0, total: f.steps };
    const carry = { base_dir: baseDir, pretrain, vanilla: resumed?.vanilla ?? null };
    let vanilla: ArmCurves | null = carry.vanilla;
    let removal: FinetuneResult | null = null;
    let lnFree: GPT2 | null = null;
    let dlaVanilla: DlaResult | null = null;
    let vanillaEval: Awaited<ReturnType<typeof windowCE>> | null = null;
    try {
      if (cfg.mode !== 'remove' && !inRemoval) {
        const arm = await finetune(ctx, cfg, baseDir, 'vanilla', data.train, val, schedule, eotToken, progress, {
          resumeDir: ctx.resumeFrom?.dir ?? null,
          carry,
        });
        // DLA of the vanilla model beside the original and the LN-free one (not after a resume into the removal arm).
        if (dlaBefore) dlaVanilla = await headDla(arm.model, prompts.x, prompts.y, prompts.count, prompts.seq, dlaOpts);
        vanillaEval = await windowCE(arm.model, final.windows, scoreRows);
        arm.fake?.dispose();
        arm.model.dispose();
        vanilla = { steps: arm.steps, ce: arm.ce, valSteps: arm.valSteps, val: arm.val, finalVal: arm.finalVal };
      }
      let lnFreeCE: number | null = null;
      let lnFreeEval: Awaited<ReturnType<typeof windowCE>> | null = null;
      let lnfStd: number | null = null;
      let hookCE: number | null = null;
      let sigmas: Record<string, number> | null = null;
      let dlaAfter: DlaResult | null = null;
      if (cfg.mode !== 'vanilla') {
        removal = await finetune(ctx, cfg, baseDir, 'remove', data.train, val, schedule, eotToken, progress, {
          resumeDir: inRemoval ? ctx.resumeFrom!.dir : null,
          carry: { ...carry, vanilla },
        });
        hookCE = removal.finalVal;
        sigmas = removal.fake!.frozenSigmas();
        lnFree = lnFreeModel(removal.model, sigmas);
        removal.fake!.dispose();
        removal.model.dispose();
        // The reported number: the stand-alone LN-free model (no hooks), as eval-lm would see it.
        lnFreeEval = await windowCE(lnFree, final.windows, scoreRows);
        lnFreeCE = lnFreeEval.ce;
        lnfStd = await lnfInputStd(lnFree, final.windows, scoreRows);
        if (dlaBefore) dlaAfter = await headDla(lnFree, prompts.x, prompts.y, prompts.count, prompts.seq, dlaOpts);
        await saveLnFreeCheckpoint(ctx.run, f.steps, lnFree, { normlab_ln_removal: { original_val_ce: originalCE, ln_free_val_ce: lnFreeCE } });
        faultPoint('after-export', ctx.run);
      }

      const improving = vanilla && stillImprovingWarning(vanilla.valSteps, vanilla.val);
      if (improving) {
        ctx.log(`warning: ${improving}`);
        warnings.push(improving);
      }
      // Artifacts: CE table, loss curves with removal steps, DLA.
      const dir = ctx.run.artifactsDir;
      // A removal arm resumed after its vanilla arm knows the vanilla CE from training only.
      const vanillaCE = vanillaEval?.ce ?? vanilla?.finalVal ?? null;
      await writeCeTableAndCurves(dir, { originalCE, vanilla, vanillaCE, removal, lnFreeCE, schedule, warnings });
      const scored = [
        { label: 'original', r: dlaBefore },
        { label: 'vanilla', r: dlaVanilla },
        { label: 'LN-free', r: dlaAfter },
      ]
        .filter((d): d is { label: string; r: DlaResult } => d.r !== null)
        .map((d) => ({ ...d, nmae: nmaeInterval(d.r.perPrompt, cfg.seed) }));
      if (scored.length) await dlaArtifacts(ctx, scored, cfg.seed);

      const gap = gapKeyResult(lnFreeEval?.perWindow ?? null, vanillaEval?.perWindow ?? null, final.description);
      if (gap.warning) {
        ctx.log(`warning: ${gap.warning}`);
        warnings.push(gap.warning);
      }
      const calibrated = (e: typeof vanillaEval) => (e ? { temperature: e.temperature, ce: e.calibratedCE } : null);
      const summary: Record<string, unknown> = {
        key_result: gap.key,
        original_val_ce: originalCE,
        vanilla_val_ce: vanillaCE,
        ln_free_val_ce: lnFreeCE,
        ln_free_val_ce_during_training: hookCE,
        vanilla_val_ce_windows: vanillaEval ? Array.from(vanillaEval.perWindow) : null,
        ln_free_val_ce_windows: lnFreeEval ? Array.from(lnFreeEval.perWindow) : null,
        convergence,
        calibrated: { original: calibrated(originalEval), vanilla: calibrated(vanillaEval), ln_free: calibrated(lnFreeEval) },
        ln_f_input_std: lnfStd !== null ? { ln_free: lnfStd, frozen_sigma: sigmas!.ln_f } : null,
        gap_vs_vanilla: lnFreeCE !== null && vanillaCE !== null ? lnFreeCE - vanillaCE : null,
        gap_vs_original: lnFreeCE !== null ? lnFreeCE - originalCE : null,
        dla_nmae_pct_original: dlaBefore?.nmae ?? null,
        dla_nmae_pct_vanilla: dlaVanilla?.nmae ?? null,
        dla_nmae_pct_ln_free: dlaAfter?.nmae ?? null,
        ...nmaeSummary(scored, cfg.seed),
        dla_scored: dlaBefore ? { positions: dlaOpts.positions, center_unembed: dlaOpts.centerUnembed, tokens: dlaBefore.tokens } : null,
        sigmas,
        schedule: schedule.map((e) => ({ step: e.step, site: e.layer >= 0 ? `h.${e.layer}.${e.kind}` : e.kind })),
        steps: f.steps,
        tokens_per_step: tokensPerStep(cfg),
        schedule_tokens_per_step: r.schedule_tokens_per_step,
        warnings,
        val_tokens: final.windows.count * final.windows.seq,
        final_eval: { windows: final.windows.count, seq: f.seq, whole_split: final.whole, description: final.description },
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
      const ckpt = lnFreeCheckpoint(run);
      for (const f of LN_FREE_FILES) fs.copyFileSync(path.join(ckpt.dir, f), path.join(out, f));
    },
    /** The paper's HF form: plain GPT2LMHeadModel, eps 1e12, gamma * 1e6 / sigma. */
    'hf-ln-free': async (run: Run, out: string) => {
      const ckpt = lnFreeCheckpoint(run);
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
    model: pathField(z.string().min(1).describe('a GPT-2 model folder (with LN, NormLab LN-free, or the HF LN-free form)')),
    data: textDataSchema.default(textDataSchema.parse({})),
    prompts: z.number().int().min(1).max(SIZE_LIMITS.count).default(8).describe('validation windows used as prompts'),
    seq: z.number().int().min(2).max(SIZE_LIMITS.seq).default(64).describe('tokens per prompt'),
    positions: dlaSchema.shape.positions,
    center_unembed: dlaSchema.shape.center_unembed,
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
      const r = await headDla(model, prompts.x, prompts.y, prompts.count, prompts.seq, { positions: cfg.positions, centerUnembed: cfg.center_unembed });
      const nmae = nmaeInterval(r.perPrompt, cfg.seed);
      await dlaArtifacts(ctx, [{ label: 'model', r, nmae }], cfg.seed);
      const top = [...r.heads].sort((a, b) => b.de_abs - a.de_abs).slice(0, 5);
      return {
        key_result: {
          label: 'DLA NMAE %',
          value: r.nmae,
          ...(nmae.ci95 ? { ci95: nmae.ci95, interval: nmaeIntervalText(nmae.prompts, cfg.seed) } : {}),
        },
        nmae_pct: r.nmae,
        nmae_ci95: nmae.ci95,
        tokens: r.tokens,
        ln_free: Boolean(info.normlab_ln_sigmas) || info.layer_norm_epsilon >= 1,
        top_heads_by_direct_effect: top,
      };
    } finally {
      model.dispose();
    }
  },
});
