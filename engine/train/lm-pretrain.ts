/**
 * `lm-pretrain`: train a causal LM (LLaMA- or GPT-2-style) on a text corpus with AdamW and a
 * warmup + cosine schedule; log train loss, validation loss and per-block gradient norms;
 * checkpoint as a HF-style model folder (+ optimizer and data-order state) so a killed run
 * resumes where its last checkpoint left off.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { TokenBatcher, evalWindows, finalEvalWindows, type BatcherState, type TokenStream } from '../data/batches.js';
import type { JobContext } from '../jobs/context.js';
import { baseConfig, registerJobKind } from '../jobs/registry.js';
import { fail } from '../core/errors.js';
import { nonFiniteCause } from '../models/finite.js';
import { createLM, loadLM, saveModel } from '../models/index.js';
import type { CausalLM } from '../models/lm.js';
import { AdamW } from '../nn/optim.js';
import { learningRate } from '../nn/schedule.js';
import { lmGradAccum } from './accumulate.js';
import { endOfStep, isCheckpointStep, restoreTrainingCheckpoint, saveTrainingCheckpoint } from './checkpoint.js';
import { hfConfigFor, lmModelSchema, lmWarmup, textDataSchema, trainSchema } from './lm-config.js';
import { DataParallelPool, resolveWorkers } from './data-parallel.js';
import { loadLMData } from './lm-data.js';
import { disposeStep, lmEvalLoss, lmEvalWindowLosses, lmTrainStep, readStep } from './lm-step.js';
import { meanSd, tInterval } from '../stats/stats.js';

export const lmPretrainSchema = z
  .object({
    method: z.literal('lm-pretrain'),
    ...baseConfig,
    model: lmModelSchema.default(lmModelSchema.parse({})),
    data: textDataSchema.default(textDataSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    diagnostics: z
      .object({
        sequences: z.number().int().min(1).default(8).describe('validation sequences for the variance and angular distance'),
        pruning_windows: z.number().int().min(1).default(8).describe('validation windows for the layer-pruning losses'),
        max_n: z.number().int().min(1).optional().describe('largest layer gap n of the angular-distance heatmap (default: L)'),
        // The two definitions of engine/methods/lns/diagnostics.ts (VARIANCE_DEFINITIONS).
        variance: z
          .enum(['elements', 'per-token'])
          .default('elements')
          .describe('per-layer variance: elements = over every element of x_l; per-token = each token’s variance over its features, averaged'),
      })
      .strict()
      .default({ sequences: 8, pruning_windows: 8, variance: 'elements' })
      .describe('sizes of the depth diagnostics at the end of the run (default: small, a few seconds)'),
  })
  .strict();
export type LMPretrainConfig = z.infer<typeof lmPretrainSchema>;

/**
 * Rows per forward pass of the final evaluation: about 4,096 tokens, never fewer than a training
 * batch (the head already runs in chunks of LOGITS_BUDGET logits). The rows change only the speed.
 */
export function finalEvalBatch(batch: number, seq: number): number {
  return Math.max(batch, Math.floor(4096 / seq));
}

/** Hooks other methods add to every lm-pretrain run (LNS diagnostics run at the end). */
export type AfterTraining = (
  ctx: JobContext,
  model: CausalLM,
  data: { val: TokenStream; seq: number },
  config: LMPretrainConfig,
) => Promise<Record<string, unknown>>;
const afterTraining: AfterTraining[] = [];
export function addAfterTraining(fn: AfterTraining): void {
  afterTraining.push(fn);
}

/** What an lm-pretrain checkpoint records beyond the model folder and the optimizer (./checkpoint.ts). */
interface LMResumeState extends Record<string, unknown> {
  batcher: BatcherState;
  initialValLoss: number;
  /** Training tokens and seconds up to the checkpoint; absent in checkpoints of older engines. */
  trained?: { tokens: number; seconds: number };
}

export interface LMTrainResult {
  model: CausalLM;
  finalValLoss: number;
  initialValLoss: number;
  summary: Record<string, unknown>;
}

/** Whose tokenizer reads the text: a fine-tune's model folder (its tokenizer.json, also on resume), else the vocabulary's. */
function lmDataModel(cfg: LMPretrainConfig, vocab: number, log: (line: string) => void): number | { vocab: number; dir: string; log: (line: string) => void } {
  return cfg.model.init_from ? { vocab, dir: cfg.model.init_from, log } : vocab;
}

/** The training loop, shared by lm-pretrain and the study jobs built on it. */
export async function trainLM(ctx: JobContext, cfg: LMPretrainConfig): Promise<LMTrainResult> {
  const t = cfg.train;
  // A resumed run starts from its checkpoint, a fine-tune from init_from, else from random init.
  const startFrom = ctx.resumeFrom?.dir ?? cfg.model.init_from;
  const loaded = startFrom ? await loadLM(startFrom) : null;
  const vocab = loaded?.vocabSize ?? (cfg.data.tokenizer === 'gpt2' ? 50257 : 256);
  const data = await loadLMData(
    cfg.data,
    t.seq,
    lmDataModel(cfg, vocab, (line) => ctx.log(line)),
  );
  const model = loaded ?? createLM(cfg.model.arch, hfConfigFor(cfg.model, vocab, t.seq), cfg.seed, { batch: t.batch, seq: t.seq, training: true });
  if (t.seq > model.maxSeq) {
    model.dispose();
    throw new Error(`train.seq ${t.seq} exceeds the model's context ${model.maxSeq}`);
  }
  const opt = new AdamW(model.params, { beta1: t.beta1, beta2: t.beta2, weightDecay: t.weight_decay });
  // Each step draws its whole batch (batch × grad_accum rows) at once: the data order of the
  // unaccumulated batch; the micro-batches are its consecutive rows.
  const accum = lmGradAccum(t);
  const rows = t.batch * accum;
  const batcher = new TokenBatcher(data.train, rows, t.seq, cfg.seed);
  const val = evalWindows(data.val, t.seq, t.eval_windows);
  const evalBatch = Math.max(1, t.batch);
  const schedule = { kind: t.schedule, lr: t.lr, warmup: lmWarmup(t), minLr: t.lr * t.min_lr_ratio, total: t.steps };

  let step = 0;
  let initialValLoss: number;
  // Training tokens and seconds of the steps before this process (a resumed run's throughput is the whole run's).
  let before = { tokens: 0, seconds: 0 };
  if (ctx.resumeFrom) {
    // The model itself was loaded from the checkpoint's model folder above.
    const state = await restoreTrainingCheckpoint<LMResumeState>(ctx.resumeFrom.dir, { optimizer: opt });
    batcher.restore(state.batcher);
    step = state.step;
    initialValLoss = state.initialValLoss;
    before = state.trained ?? before;
    ctx.log(`resumed from step ${step}`);
  } else {
    initialValLoss = await lmEvalLoss(model, val, evalBatch);
    if (!Number.isFinite(initialValLoss)) fail('model', `the initial validation loss is ${initialValLoss}: ${await nonFiniteCause(model)}`);
    ctx.metric({ step: 0, val_loss: initialValLoss });
  }

  let pool: DataParallelPool | null = null;
  // Decided from the whole run (not the steps left), so that a resumed run picks the same count.
  const replicas = resolveWorkers(t.workers, ctx.backend.name, t.batch, t.seq, model.params.count(), t.steps * accum);
  let started = Date.now();
  let tokensSeen = 0;
  const trained = () => ({ tokens: before.tokens + tokensSeen, seconds: before.seconds + (Date.now() - started) / 1000 });
  const checkpoint = () => {
    const state: Omit<LMResumeState, 'step'> = { batcher: batcher.state(), initialValLoss, trained: trained() };
    return saveTrainingCheckpoint(ctx.run, step, { model: (dir) => saveModel(model, dir), optimizer: opt, state });
  };
  let lastLoss = NaN; // the loss of the last logged step
  try {
    if (replicas > 1) {
      pool = await DataParallelPool.start(model, replicas, ctx.backend.name);
      ctx.log(`data-parallel training on ${replicas} replicas (the main thread + ${replicas - 1} worker thread${replicas > 2 ? 's' : ''})`);
      started = Date.now();
    }
    while (step < t.steps) {
      const lr = learningRate(schedule, step);
      const batch = batcher.next();
      // The step's results are read (a device sync) only on the steps that log them.
      const logNow = (step + 1) % t.log_every === 0 || step + 1 === t.steps;
      const stepOpts = { clip: t.clip, layerGradNorms: t.layer_grad_norms && logNow, microBatches: accum };
      const full = { ...batch, batch: rows, seq: t.seq };
      const out = pool ? await pool.step(opt, full, lr, stepOpts) : lmTrainStep(model, opt, full, lr, stepOpts);
      step += 1;
      tokensSeen += rows * t.seq;
      if (!logNow) disposeStep(out);
      else {
        const r = await readStep(out);
        lastLoss = r.loss;
        if (!Number.isFinite(r.loss)) throw new Error(`training diverged by step ${step} (loss ${r.loss}); lower the learning rate`);
        const tps = tokensSeen / ((Date.now() - started) / 1000);
        ctx.metric({
          step,
          loss: r.loss,
          lr,
          grad_norm: r.gradNorm,
          tokens_per_s: Math.round(tps),
          ...(r.layerGradNorms ? { layer_grad_norms: r.layerGradNorms } : {}),
        });
      }
      if (step % t.eval_every === 0 || step === t.steps) {
        const valLoss = await lmEvalLoss(model, val, evalBatch);
        ctx.metric({ step, val_loss: valLoss, val_ppl: Math.exp(valLoss) });
      }
      ctx.progress({ step, total: t.steps, phase: 'train', message: Number.isNaN(lastLoss) ? 'training' : `loss ${lastLoss.toFixed(3)}` });
      await endOfStep(ctx, isCheckpointStep(step, t.checkpoint_every, t.steps), checkpoint, step === t.steps);
    }
  } catch (err) {
    await pool?.close();
    opt.dispose();
    model.dispose();
    throw err;
  }
  await pool?.close();
  opt.dispose();
  // The final model on the final evaluation's windows (from the model alone, so a resume at any
  // checkpoint gives these numbers): its interval, and the units a study pairs variants on.
  const final = finalEvalWindows(data.val, t.seq, t.final_eval_tokens);
  const windowLosses = Array.from(await lmEvalWindowLosses(model, final.windows, finalEvalBatch(evalBatch, t.seq)));
  const valLoss = meanSd(windowLosses).mean;
  const ci = final.windows.count > 1 ? { ci95: tInterval(windowLosses).ci95, interval: `t over ${final.description}` } : {};
  const total = trained();
  const summary = {
    key_result: { label: 'val loss', value: valLoss, ...ci },
    initial_val_loss: initialValLoss,
    final_val_loss: valLoss,
    final_val_ppl: Math.exp(valLoss),
    final_val_loss_windows: windowLosses,
    final_eval: { windows: final.windows.count, seq: t.seq, whole_split: final.whole, description: final.description },
    steps: t.steps,
    tokens_per_step: rows * t.seq,
    grad_accum: accum,
    params: model.params.count(),
    // Null only where no step's time is known (resumed at the last step from an older engine's checkpoint).
    tokens_per_s: total.tokens > 0 ? Math.round(total.tokens / Math.max(1e-3, total.seconds)) : null,
    backend: ctx.backend.name,
    ...(replicas > 1 ? { data_parallel_replicas: replicas } : {}),
    checkpoint: path.relative(ctx.run.dir, ctx.run.latestCheckpoint()?.dir ?? ctx.run.checkpointsDir),
  };
  return { model, finalValLoss: valLoss, initialValLoss, summary };
}

registerJobKind({
  name: 'lm-pretrain',
  title: 'Pretrain a language model',
  description: 'Train a LLaMA- or GPT-2-style causal LM on a text corpus; checkpoints as HF safetensors.',
  schema: lmPretrainSchema,
  resumable: true,
  async run(ctx, cfg) {
    const { model, summary } = await trainLM(ctx, cfg);
    try {
      const extra: Record<string, unknown> = {};
      for (const fn of afterTraining)
        Object.assign(
          extra,
          await fn(
            ctx,
            model,
            {
              val: (
                await loadLMData(
                  cfg.data,
                  cfg.train.seq,
                  cfg.model.init_from ? { vocab: model.vocabSize, dir: cfg.model.init_from, log: () => {} } : model.vocabSize,
                )
              ).val,
              seq: cfg.train.seq,
            },
            cfg,
          ),
        );
      return { ...summary, ...extra };
    } finally {
      model.dispose();
    }
  },
});
