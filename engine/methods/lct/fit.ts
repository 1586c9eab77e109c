/** A small supervised training loop (AdamW + warmup/cosine) shared by the autoencoder and classifier jobs. */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import type { JobContext } from '../../jobs/context.js';
import { AdamW, clipGlobalNorm } from '../../nn/optim.js';
import type { ParamSet } from '../../nn/params.js';
import { learningRate } from '../../nn/schedule.js';

export interface FitOptions {
  steps: number;
  lr: number;
  phase: string;
  logEvery?: number;
  clip?: number;
}

/**
 * Run `steps` AdamW steps on `lossFn(step)` (which returns the scalar loss and any extra scalars
 * to log). Logs `<phase>_loss` metrics every `logEvery` steps and at the end (the only steps whose
 * loss is read from the device); returns the last loss.
 */
export async function fit(
  ctx: JobContext,
  params: ParamSet,
  lossFn: (step: number) => { loss: tf.Scalar; extra?: Record<string, tf.Scalar> },
  o: FitOptions,
): Promise<number> {
  const opt = new AdamW(params, { weightDecay: 0 });
  const schedule = { kind: 'cosine' as const, lr: o.lr, warmup: Math.min(50, Math.floor(o.steps / 10)), minLr: o.lr * 0.05, total: o.steps };
  const vars = params.trainable();
  let last = NaN;
  const every = o.logEvery ?? 50;
  try {
    for (let step = 0; step < o.steps; step++) {
      const lr = learningRate(schedule, step);
      const extra: Record<string, tf.Scalar> = {}; // kept past the tape, read on logged steps
      const { value, grads } = tf.variableGrads(() => {
        const r = lossFn(step);
        for (const [k, v] of Object.entries(r.extra ?? {})) extra[k] = tf.keep(v);
        return r.loss;
      }, vars);
      const named = new Map<string, tf.Tensor>(Object.entries(grads).map(([k, g]) => [params.nameOf(vars.find((v) => v.name === k)!), g]));
      const clipped = clipGlobalNorm(named, o.clip ?? 1);
      opt.step(clipped.grads, lr);
      for (const g of clipped.grads.values()) g.dispose();
      clipped.norm.dispose();
      // The loss is read (a device sync) only on the steps that log it.
      const logNow = (step + 1) % every === 0 || step === o.steps - 1;
      if (logNow) {
        const keys = Object.keys(extra);
        const stacked = tf.stack([value, ...keys.map((k) => extra[k])]);
        const vals = await stacked.data();
        stacked.dispose();
        last = vals[0];
        if (!Number.isFinite(last)) fail('internal', `${o.phase} training diverged by step ${step + 1} (loss ${last}); lower the learning rate`);
        ctx.metric({ step: step + 1, [`${o.phase}_loss`]: last, lr, ...Object.fromEntries(keys.map((k, i) => [k, vals[i + 1]])) });
      }
      tf.dispose([value, ...Object.values(extra)]);
      ctx.progress({ step: step + 1, total: o.steps, phase: o.phase, message: Number.isNaN(last) ? o.phase : `loss ${last.toFixed(4)}` });
      await ctx.tick();
    }
  } finally {
    opt.dispose();
  }
  return last;
}
