/**
 * Gradient accumulation, shared by every trainer: one optimizer step over a batch too large for
 * memory, computed `grad_accum` micro-batches at a time. A step draws its whole batch first (so
 * the data order is that of the unaccumulated batch), splits its rows into micro-batches in order,
 * and sums each micro-batch's loss and gradients weighted by its share of the rows:
 *
 *   L = Σ_i (rows_i / rows) · L_i,   ∇L = Σ_i (rows_i / rows) · ∇L_i,
 *
 * which is the whole batch's mean loss and its gradient when each L_i is the mean over its rows.
 * (A trainer whose micro-batch losses are already parts of one sum passes weight 1.) The sums
 * stay on the device: nothing is read back to the host per micro-batch. One micro-batch is the
 * unaccumulated step itself: its tensors are returned as they are, with no extra operation.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import type { ParamSet } from '../nn/params.js';

/** The `grad_accum` config field every trainer has. */
export const gradAccumField = z
  .number()
  .int()
  .min(1)
  .max(65536)
  .default(1)
  .describe(
    'gradient accumulation: micro-batches of `batch` rows per optimizer step (each step then sees batch × grad_accum rows; results equal that batch unaccumulated)',
  );

/** The LM trainers' fields: `grad_accum`, or `tokens_per_step` that derives it. */
export const lmAccumFields = {
  grad_accum: gradAccumField,
  tokens_per_step: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('tokens per optimizer step (e.g. 524288 = 2^19); sets grad_accum = tokens_per_step / (batch × seq), which must be a whole number'),
};

/**
 * Micro-batches per step of an LM trainer: `tokens_per_step / (batch × seq)` when tokens_per_step
 * is set (an error unless it divides, or when it contradicts an explicit grad_accum), else grad_accum.
 */
export function lmGradAccum(t: { batch: number; seq: number; grad_accum: number; tokens_per_step?: number }): number {
  if (t.tokens_per_step === undefined) return t.grad_accum;
  const perMicro = t.batch * t.seq;
  if (t.tokens_per_step % perMicro !== 0)
    fail('config', `tokens_per_step ${t.tokens_per_step} is not a multiple of batch × seq = ${t.batch} × ${t.seq} = ${perMicro}`);
  const k = t.tokens_per_step / perMicro;
  if (t.grad_accum !== 1 && t.grad_accum !== k)
    fail('config', `grad_accum ${t.grad_accum} contradicts tokens_per_step ${t.tokens_per_step} (= ${k} micro-batches of ${perMicro} tokens); set only one`);
  return k;
}

/** The same check as a zod refinement, so that a bad config fails when it is read. */
export function checkLmAccum(t: { batch: number; seq: number; grad_accum: number; tokens_per_step?: number }, ctx: z.RefinementCtx): void {
  try {
    lmGradAccum(t);
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['tokens_per_step'], message: (err as Error).message });
  }
}

/** Rows [start, start + rows) of a step's `total` rows. */
export interface MicroBatch {
  index: number;
  start: number;
  rows: number;
  total: number;
}

/** `total` rows in micro-batches of `size` rows, in order (the last one shorter when size does not divide). */
export function microBatches(total: number, size: number): MicroBatch[] {
  if (!Number.isInteger(total) || total < 1 || !Number.isInteger(size) || size < 1)
    fail('internal', `cannot split ${total} rows into micro-batches of ${size}`);
  const out: MicroBatch[] = [];
  for (let start = 0, index = 0; start < total; start += size, index++) out.push({ index, start, rows: Math.min(size, total - start), total });
  return out;
}

/** A loss (scalar) and its gradients by parameter name; the holder disposes them. */
export interface LossAndGrads {
  value: tf.Scalar;
  grads: Map<string, tf.Tensor>;
}

/**
 * The step's loss and gradients from its micro-batches: Σ_i w_i · compute(mb_i), with
 * w_i = rows_i / total unless `weightOf` says otherwise. Disposes every micro-batch's tensors.
 */
export function accumulate(
  parts: MicroBatch[],
  compute: (mb: MicroBatch) => LossAndGrads,
  weightOf: (mb: MicroBatch) => number = (mb) => mb.rows / mb.total,
): LossAndGrads {
  if (parts.length === 0) fail('internal', 'a step needs at least one micro-batch');
  if (parts.length === 1 && weightOf(parts[0]) === 1) return compute(parts[0]);
  let value: tf.Scalar | null = null;
  const grads = new Map<string, tf.Tensor>();
  for (const mb of parts) {
    const r = compute(mb);
    const w = weightOf(mb);
    const prev: tf.Scalar | null = value;
    value = tf.tidy((): tf.Scalar => (prev ? tf.add(prev, tf.mul(r.value, w)) : tf.mul(r.value, w)) as tf.Scalar);
    prev?.dispose();
    r.value.dispose();
    for (const [name, g] of r.grads) {
      const acc = grads.get(name);
      grads.set(
        name,
        tf.tidy(() => (acc ? tf.add(acc, tf.mul(g, w)) : tf.mul(g, w))),
      );
      acc?.dispose();
      g.dispose();
    }
  }
  return { value: value!, grads };
}

/** The loss `f()` and its gradients for every trainable parameter of `params`, keyed by name. */
export function namedGrads(params: ParamSet, f: () => tf.Scalar): LossAndGrads {
  const vars = params.trainable();
  const { value, grads: byVar } = tf.variableGrads(f, vars);
  return { value, grads: new Map(vars.map((v) => [params.nameOf(v), byVar[v.name]] as const)) };
}
