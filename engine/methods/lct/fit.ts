/**
 * A small supervised training loop (AdamW + warmup/cosine) shared by the autoencoder and
 * classifier jobs, with gradient accumulation (../../train/accumulate.ts) and checkpoints a
 * killed run resumes from (../../train/checkpoint.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import type { Rng } from '../../data/rng.js';
import type { JobContext } from '../../jobs/context.js';
import { AdamW, clipGlobalNorm } from '../../nn/optim.js';
import type { ParamSet } from '../../nn/params.js';
import { learningRate } from '../../nn/schedule.js';
import { accumulate, microBatches, namedGrads, type MicroBatch } from '../../train/accumulate.js';
import { endOfStep, restoreTrainingCheckpoint, saveTrainingCheckpoint } from '../../train/checkpoint.js';

export interface FitOptions {
  steps: number;
  lr: number;
  phase: string;
  /** Rows per micro-batch; a step's batch has batch × gradAccum rows. */
  batch: number;
  gradAccum: number;
  checkpointEvery: number;
  /** Writes the trained model's folder into the final checkpoint (what the job's `model_dir` names). */
  saveModel: (dir: string) => Promise<void>;
  logEvery?: number;
  clip?: number;
}

/** What a job trains: how it draws a step's batch and the mean loss of some of its rows. */
export interface FitTask<B extends tf.TensorContainer> {
  /** The data RNG (`draw` uses it and nothing else does): checkpointed, so a resumed run draws the same batches. */
  rng: Rng;
  /** Step `step`'s whole batch of `rows` rows (host arrays, or tensors `fit` disposes). */
  draw(step: number, rows: number): B;
  /** The mean loss over rows `mb` of `batch`, and any extra scalars (row means) to log. */
  loss(batch: B, mb: MicroBatch): { loss: tf.Scalar; extra?: Record<string, tf.Scalar> };
}

/**
 * Run `steps` AdamW steps of `task`. Logs `<phase>_loss` metrics every `logEvery` steps and at
 * the end (the only steps whose loss is read from the device); checkpoints every
 * `checkpointEvery` steps and at the last, where the checkpoint also holds the model folder
 * (`saveModel`), so a run stopped after training but before its summary resumes from there
 * without training again; resumes from `ctx.resumeFrom`. Returns the last logged loss and the
 * final checkpoint's folder.
 */
export async function fit<B extends tf.TensorContainer>(
  ctx: JobContext,
  params: ParamSet,
  task: FitTask<B>,
  o: FitOptions,
): Promise<{ loss: number; modelDir: string }> {
  const opt = new AdamW(params, { weightDecay: 0 });
  const schedule = { kind: 'cosine' as const, lr: o.lr, warmup: Math.min(50, Math.floor(o.steps / 10)), minLr: o.lr * 0.05, total: o.steps };
  const rows = o.batch * o.gradAccum;
  let last = NaN;
  const every = o.logEvery ?? 50;
  let first = 0;
  try {
    if (ctx.resumeFrom) {
      const state = await restoreTrainingCheckpoint<{ rng: number; loss: number | null }>(ctx.resumeFrom.dir, { optimizer: opt, groups: { params } });
      task.rng.restore(state.rng);
      first = state.step;
      last = state.loss ?? NaN; // NaN (no step logged yet) is stored as null
      ctx.log(`resumed from step ${first}`);
    }
    for (let step = first; step < o.steps; step++) {
      const lr = learningRate(schedule, step);
      const batch = task.draw(step, rows);
      let extras = new Map<string, tf.Scalar>(); // kept past the tape, read on logged steps
      const { value, grads } = accumulate(microBatches(rows, o.batch), (mb) => {
        const part = new Map<string, tf.Scalar>();
        const r = namedGrads(params, () => {
          const l = task.loss(batch, mb);
          for (const [k, v] of Object.entries(l.extra ?? {})) part.set(k, tf.keep(tf.mul(v, mb.rows / mb.total)) as tf.Scalar);
          return l.loss;
        });
        extras = addScalars(extras, part);
        return r;
      });
      tf.dispose(batch);
      const clipped = clipGlobalNorm(grads, o.clip ?? 1);
      opt.step(clipped.grads, lr);
      for (const g of clipped.grads.values()) g.dispose();
      clipped.norm.dispose();
      const done = step + 1;
      // The loss is read (a device sync) only on the steps that log it.
      if (done % every === 0 || done === o.steps) {
        const keys = [...extras.keys()];
        const stacked = tf.stack([value, ...keys.map((k) => extras.get(k)!)]);
        const vals = await stacked.data();
        stacked.dispose();
        last = vals[0];
        if (!Number.isFinite(last)) fail('internal', `${o.phase} training diverged by step ${done} (loss ${last}); lower the learning rate`);
        ctx.metric({ step: done, [`${o.phase}_loss`]: last, lr, ...Object.fromEntries(keys.map((k, i) => [k, vals[i + 1]])) });
      }
      tf.dispose([value, ...extras.values()]);
      ctx.progress({ step: done, total: o.steps, phase: o.phase, message: Number.isNaN(last) ? o.phase : `loss ${last.toFixed(4)}` });
      const final = done === o.steps;
      await endOfStep(
        ctx,
        done % o.checkpointEvery === 0 || final,
        () =>
          saveTrainingCheckpoint(ctx.run, done, {
            ...(final ? { model: o.saveModel } : {}),
            optimizer: opt,
            groups: { params },
            state: { rng: task.rng.state(), loss: last },
          }),
        final,
      );
    }
  } finally {
    opt.dispose();
  }
  const finalCheckpoint = ctx.run.latestCheckpoint();
  if (finalCheckpoint?.step !== o.steps) fail('internal', `${o.phase} training ended without its step-${o.steps} checkpoint`);
  return { loss: last, modelDir: finalCheckpoint.dir };
}

/** a + b by key (disposes both maps' tensors). */
function addScalars(a: Map<string, tf.Scalar>, b: Map<string, tf.Scalar>): Map<string, tf.Scalar> {
  if (a.size === 0) return b;
  const out = new Map<string, tf.Scalar>();
  for (const [k, v] of a) {
    const w = b.get(k);
    out.set(k, w ? (tf.add(v, w) as tf.Scalar) : v);
    if (w) tf.dispose([v, w]);
  }
  return out;
}
