/**
 * What LN removal needs to be readable: per-window validation CE (for the paired interval of the
 * LN-free − vanilla gap), temperature-calibrated CE, and the guard that says when the base model
 * was not converged. An unconverged base (CE above a unigram model's, or logits far from
 * calibrated) makes fine-tuning continued pretraining, and freezing ln_f lets the LN-free arm
 * rescale its logits: the gap then measures calibration, not the cost of removing LayerNorm.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { EvalWindows, TokenStream } from '../../data/batches.js';
import type { GPT2 } from '../../models/gpt2.js';
import type { ForwardHooks } from '../../models/lm.js';
import { LOGITS_BUDGET } from '../../models/memory.js';
import { crossEntropy } from '../../nn/ops.js';
import { fmt } from '../../stats/stats.js';

/** Logit temperatures scored in the same pass: τ = 4^(k/12 − 1), k = 0..24 (¼ to 4, 12% apart). */
export const TEMPERATURES = Array.from({ length: 25 }, (_, k) => 4 ** (k / 12 - 1));

/** A base is flagged when its CE-optimal temperature is outside [1/1.25, 1.25]. */
export const TEMPERATURE_TOLERANCE = 1.25;

export interface WindowCE {
  /** Mean CE (nats/token) of each window at τ = 1. */
  perWindow: Float64Array;
  /** Mean CE over all windows. */
  ce: number;
  /** The CE-minimizing logit temperature (grid, refined by a parabola in log τ) and its CE. */
  temperature: number;
  calibratedCE: number;
}

/** Windows per scoring pass (`windowCE` holds a pass's whole logits): at most LOGITS_BUDGET logits, at least one window, at most 64. */
export function logitRows(seq: number, vocab: number): number {
  return Math.max(1, Math.min(64, Math.floor(LOGITS_BUDGET / (seq * vocab))));
}

/**
 * Per-window CE of `model` on `val` and the CE of logits/τ for every τ in TEMPERATURES, in one
 * forward pass per batch. `prepare` runs before each batch (marks special tokens), as in training.
 * A batch holds its logits and one scaled copy at a time, so `batch` × seq × vocabulary floats
 * bound the memory (see `logitRows`).
 */
export async function windowCE(
  model: GPT2,
  val: EvalWindows,
  batch: number,
  hooks?: ForwardHooks,
  prepare?: (x: Int32Array, B: number) => void,
): Promise<WindowCE> {
  const perWindow = new Float64Array(val.count);
  const byTemp = new Float64Array(TEMPERATURES.length);
  for (let i = 0; i < val.count; i += batch) {
    const B = Math.min(batch, val.count - i);
    const xs = val.x.subarray(i * val.seq, (i + B) * val.seq);
    const ys = val.y.subarray(i * val.seq, (i + B) * val.seq);
    prepare?.(xs, B);
    const y = tf.tensor2d(ys, [B, val.seq], 'int32');
    const logits = tf.tidy(() => model.forward(tf.tensor2d(xs, [B, val.seq], 'int32'), hooks));
    const w = tf.tidy(() =>
      tf.stack(Array.from({ length: B }, (_, b) => crossEntropy(tf.slice(logits, [b, 0, 0], [1, -1, -1]), tf.slice(y, [b, 0], [1, -1])))),
    );
    const t = tf.stack(TEMPERATURES.map((tau) => tf.tidy(() => crossEntropy(tf.div(logits, tau), y))));
    tf.dispose([logits, y]);
    const [wv, tv] = await Promise.all([w.data(), t.data()]);
    tf.dispose([w, t]);
    perWindow.set(wv, i);
    for (let k = 0; k < tv.length; k++) byTemp[k] += tv[k] * B;
  }
  let ce = 0;
  for (const v of perWindow) ce += v;
  ce /= val.count;
  for (let k = 0; k < byTemp.length; k++) byTemp[k] /= val.count;
  const { temperature, calibratedCE } = refineTemperature(byTemp);
  return { perWindow, ce, temperature, calibratedCE: Math.min(calibratedCE, ce) };
}

/**
 * The minimum of CE over log τ: the best grid point, refined by the vertex of the parabola through
 * it and its neighbours (u = log τ on an even grid: u* = u_k + h (c₋ − c₊) / (2 (c₋ − 2c + c₊))).
 */
function refineTemperature(ce: Float64Array): { temperature: number; calibratedCE: number } {
  let k = 0;
  for (let j = 1; j < ce.length; j++) if (ce[j] < ce[k]) k = j;
  if (k === 0 || k === ce.length - 1) return { temperature: TEMPERATURES[k], calibratedCE: ce[k] };
  const [cm, c0, cp] = [ce[k - 1], ce[k], ce[k + 1]];
  const curv = cm - 2 * c0 + cp;
  if (!(curv > 0)) return { temperature: TEMPERATURES[k], calibratedCE: c0 };
  const h = Math.log(4) / 12;
  const off = (0.5 * (cm - cp)) / curv; // in grid steps, within (−½, ½)
  return { temperature: TEMPERATURES[k] * Math.exp(off * h), calibratedCE: c0 - (curv * off * off) / 2 };
}

/**
 * CE (nats/token) of a unigram model fitted on the training tokens (add-one smoothed over the
 * vocabulary), scored on the validation windows' targets: −mean log p(y).
 */
export function unigramCE(train: TokenStream, val: EvalWindows, vocab: number): number {
  const counts = new Float64Array(vocab);
  for (let i = 0; i < train.length; i++) counts[train[i]]++;
  const total = train.length + vocab;
  let nll = 0;
  for (const y of val.y) nll -= Math.log((counts[y] + 1) / total);
  return nll / val.y.length;
}

/**
 * Mean over validation tokens of the per-token standard deviation (over channels, as LayerNorm
 * computes it) of ln_f's input: the residual stream after the last block.
 */
export async function lnfInputStd(model: GPT2, val: EvalWindows, batch: number): Promise<number> {
  const last = model.config.n_layer - 1;
  let sum = 0;
  for (let i = 0; i < val.count; i += batch) {
    const B = Math.min(batch, val.count - i);
    let s: tf.Scalar | null = null;
    tf.tidy(() => {
      model.forward(tf.tensor2d(val.x.subarray(i * val.seq, (i + B) * val.seq), [B, val.seq], 'int32'), {
        residual: (l, x) => {
          if (l === last) s = tf.keep(tf.sum(tf.sqrt(tf.moments(x, -1).variance)) as tf.Scalar);
        },
      });
    });
    sum += (await s!.data())[0];
    tf.dispose(s!);
  }
  return sum / (val.count * val.seq);
}

/** The base model's readiness: its CE beside a unigram model's and its optimal temperature. */
export interface Convergence {
  base_ce: number;
  unigram_ce: number;
  base_temperature: number;
  base_ce_calibrated: number;
}

/**
 * The warnings for an unconverged base: CE at or above the unigram model's CE, or a CE-optimal
 * temperature outside [1/TEMPERATURE_TOLERANCE, TEMPERATURE_TOLERANCE].
 */
export function convergenceWarnings(c: Convergence): string[] {
  const out: string[] = [];
  if (c.base_ce >= c.unigram_ce) {
    out.push(
      `the base model is not converged: its val CE ${fmt(c.base_ce)} is not below a unigram model's ${fmt(c.unigram_ce)}; fine-tuning is continued pretraining and the LN-free − vanilla gap is not the cost of removing LayerNorm (pretrain longer)`,
    );
  }
  const tau = c.base_temperature;
  if (tau > TEMPERATURE_TOLERANCE || tau < 1 / TEMPERATURE_TOLERANCE) {
    out.push(
      `the base model's logits are miscalibrated: CE-optimal temperature ${fmt(tau)} (CE ${fmt(c.base_ce)} → ${fmt(c.base_ce_calibrated)}); freezing ln_f lets an arm rescale its logits, so compare the arms' temperature-calibrated CE`,
    );
  }
  return out;
}

/**
 * The vanilla arm counts as still improving when its validation CE fell by more than this
 * (nats/token) over the last quarter of fine-tuning: the gap is then partly continued training.
 */
export const STILL_IMPROVING_NATS = 0.01;

/**
 * The warning when the vanilla arm's validation CE dropped by more than STILL_IMPROVING_NATS
 * between the evaluation nearest 3/4 of the steps and the last one (null otherwise, or with fewer
 * than two evaluations).
 */
export function stillImprovingWarning(valSteps: number[], val: number[]): string | null {
  if (valSteps.length < 2) return null;
  const last = valSteps.length - 1;
  const target = valSteps[last] * 0.75;
  let k = 0;
  for (let i = 0; i < last; i++) if (Math.abs(valSteps[i] - target) < Math.abs(valSteps[k] - target)) k = i;
  const drop = val[k] - val[last];
  if (!(drop > STILL_IMPROVING_NATS)) return null;
  return `the vanilla arm was still improving at its end: its val CE fell ${fmt(drop)} nats from step ${valSteps[k]} to ${valSteps[last]} (more than ${STILL_IMPROVING_NATS}); the gap partly measures continued training, so train longer or start from a converged base`;
}
