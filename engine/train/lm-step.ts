/**
 * One optimizer step of a causal LM: loss, gradients (accumulated over micro-batches when asked),
 * optional clipping, AdamW update.
 * Everything the step allocates is disposed before it returns (the tensor count stays flat),
 * except its results, which stay on the device until `readStep` (or `disposeStep`): a trainer
 * reads them only on the steps it logs, so the GPU is not synchronized every step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { CausalLM, ForwardHooks } from '../models/lm.js';
import { LOGITS_BUDGET } from '../models/memory.js';
import { crossEntropy } from '../nn/ops.js';
import { clipGlobalNorm, type AdamW } from '../nn/optim.js';
import { accumulate, microBatches, type LossAndGrads, type MicroBatch } from './accumulate.js';

export interface LMBatch {
  x: Int32Array; // (B, T) row-major
  y: Int32Array; // (B, T)
  batch: number;
  seq: number;
}

export interface LMStepResult {
  loss: number;
  gradNorm: number;
  /** L2 norm of each block's gradient (all its parameters), when asked for. */
  layerGradNorms?: number[];
}

/** An LMStepResult still on the device. */
export interface LMStepTensors {
  loss: tf.Scalar;
  gradNorm: tf.Scalar;
  layerGradNorms?: tf.Tensor1D;
}

/** Read a step's results to the host and dispose them. */
export async function readStep(r: LMStepTensors): Promise<LMStepResult> {
  try {
    const [loss, gradNorm, layers] = await Promise.all([r.loss.data(), r.gradNorm.data(), r.layerGradNorms?.data()]);
    return { loss: loss[0], gradNorm: gradNorm[0], ...(layers ? { layerGradNorms: Array.from(layers) } : {}) };
  } finally {
    disposeStep(r);
  }
}

/** Drop a step's results unread. */
export function disposeStep(r: LMStepTensors): void {
  tf.dispose([r.loss, r.gradNorm, ...(r.layerGradNorms ? [r.layerGradNorms] : [])]);
}

/** Block index of a parameter name (`...layers.3...` or `...h.3...`), or -1 for the rest. */
export function blockOf(name: string): number {
  const m = /\.(?:layers|h)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

export interface LMStepOptions {
  clip?: number;
  layerGradNorms?: boolean;
  hooks?: ForwardHooks;
  extraLoss?: () => tf.Scalar;
  /** Gradient accumulation: split the batch's rows into this many equal micro-batches (default 1). */
  microBatches?: number;
}

/** Rows `mb` of a batch, as views (no copy). */
export function lmMicroBatch(batch: LMBatch, mb: MicroBatch): LMBatch {
  const { seq } = batch;
  return {
    x: batch.x.subarray(mb.start * seq, (mb.start + mb.rows) * seq),
    y: batch.y.subarray(mb.start * seq, (mb.start + mb.rows) * seq),
    batch: mb.rows,
    seq,
  };
}

/** Equal micro-batches of a step's rows; `k` must divide them. */
export function lmMicroBatches(rows: number, k: number): MicroBatch[] {
  if (!Number.isInteger(k) || k < 1 || rows % k !== 0) fail('config', `${rows} rows do not split into ${k} equal micro-batches`);
  return microBatches(rows, rows / k);
}

/**
 * The mean loss and its gradients over all rows of `batch`, computed `microBatches` micro-batches
 * at a time (./accumulate.ts); one micro-batch is `lmLossAndGrads` itself.
 */
export function lmAccumulatedLossAndGrads(
  model: CausalLM,
  batch: LMBatch,
  opts: Pick<LMStepOptions, 'hooks' | 'extraLoss' | 'microBatches'> = {},
): LossAndGrads {
  return accumulate(lmMicroBatches(batch.batch, opts.microBatches ?? 1), (mb) => lmLossAndGrads(model, lmMicroBatch(batch, mb), opts));
}

/**
 * The loss (a scalar the caller disposes) and its gradients by parameter name (tensors the caller
 * disposes) on one batch, without touching the parameters. Data-parallel replicas run this on
 * their shard of the batch.
 */
export function lmLossAndGrads(
  model: CausalLM,
  batch: LMBatch,
  opts: Pick<LMStepOptions, 'hooks' | 'extraLoss'> = {},
): { value: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const x = tf.tensor2d(batch.x, [batch.batch, batch.seq], 'int32');
  const y = tf.tensor2d(batch.y, [batch.batch, batch.seq], 'int32');
  const vars = model.params.trainable();
  const { value, grads: byVarName } = tf.variableGrads(() => {
    const ce = crossEntropy(model.forward(x, opts.hooks), y);
    return opts.extraLoss ? tf.add(ce, opts.extraLoss()) : ce;
  }, vars);
  x.dispose();
  y.dispose();
  const grads = new Map<string, tf.Tensor>();
  for (const v of vars) grads.set(model.params.nameOf(v), byVarName[v.name]);
  return { value, grads };
}

/**
 * The optimizer half of a step: per-block gradient norms (when asked), global-norm clipping and
 * the AdamW update. Disposes `grads`. Returns the gradient norm before clipping (on the device).
 */
export function lmApplyGrads(
  model: CausalLM,
  opt: AdamW,
  grads: Map<string, tf.Tensor>,
  lr: number,
  opts: Pick<LMStepOptions, 'clip' | 'layerGradNorms'> = {},
): { gradNorm: tf.Scalar; layerGradNorms?: tf.Tensor1D } {
  const layerGradNorms = opts.layerGradNorms ? blockGradNorms(grads, model.nLayers) : undefined;
  const clipped = clipGlobalNorm(grads, opts.clip ?? 0);
  opt.step(clipped.grads, lr);
  for (const g of clipped.grads.values()) g.dispose();
  return { gradNorm: clipped.norm, ...(layerGradNorms ? { layerGradNorms } : {}) };
}

/** One optimizer step; its results stay on the device (see `readStep`). */
export function lmTrainStep(model: CausalLM, opt: AdamW, batch: LMBatch, lr: number, opts: LMStepOptions = {}): LMStepTensors {
  const { value, grads } = lmAccumulatedLossAndGrads(model, batch, opts);
  return { loss: value, ...lmApplyGrads(model, opt, grads, lr, opts) };
}

/** L2 norm of each block's gradient, (nLayers). */
function blockGradNorms(grads: Map<string, tf.Tensor>, nLayers: number): tf.Tensor1D {
  return tf.tidy(() => {
    const perLayer: tf.Tensor[][] = Array.from({ length: nLayers }, () => []);
    for (const [name, g] of grads) {
      const l = blockOf(name);
      if (l >= 0 && l < nLayers) perLayer[l].push(tf.sum(tf.square(g)));
    }
    return tf.sqrt(tf.stack(perLayer.map((ts) => (ts.length ? tf.addN(ts) : tf.scalar(0))))) as tf.Tensor1D;
  });
}

/**
 * Summed next-token cross-entropy (nats) of x predicting y, both int32 (B, T), one scalar per
 * chunk of positions: the head runs over chunks so that a 50257-way vocabulary at T = 1024
 * never materializes at once.
 */
function summedCrossEntropy(model: CausalLM, x: tf.Tensor2D, y: tf.Tensor2D, hooks?: ForwardHooks): tf.Scalar[] {
  const [B, T] = x.shape;
  const h = model.hidden(x, { ...hooks, scopeBlocks: true }); // (B, T, C)
  return summedRows(model, tf.reshape(h, [B * T, h.shape[2]]), tf.reshape(y, [B * T]));
}

/** Summed cross-entropy of hidden rows flatH (N, C) predicting flatY (N), one scalar per head chunk. */
function summedRows(model: CausalLM, flatH: tf.Tensor2D, flatY: tf.Tensor1D): tf.Scalar[] {
  const [N, C] = flatH.shape;
  const rows = Math.max(1, Math.floor(LOGITS_BUDGET / model.vocabSize));
  const parts: tf.Scalar[] = [];
  for (let r = 0; r < N; r += rows) {
    const n = Math.min(rows, N - r);
    parts.push(
      tf.tidy(() => {
        const logits = model.logits(tf.reshape(tf.slice(flatH, [r, 0], [n, C]), [1, n, C]) as tf.Tensor3D);
        return tf.mul(crossEntropy(logits, tf.slice(flatY, [r], [n])), n) as tf.Scalar;
      }),
    );
  }
  return parts;
}

/**
 * Mean cross-entropy (nats) of `model` over fixed windows, in batches, without gradients. The
 * per-chunk sums are read to the host once, at the end, and added there in double precision.
 */
export async function lmEvalLoss(
  model: CausalLM,
  windows: { x: Int32Array; y: Int32Array; count: number; seq: number },
  batchSize: number,
  hooks?: ForwardHooks,
): Promise<number> {
  const { seq, count } = windows;
  const parts: tf.Scalar[] = [];
  for (let i = 0; i < count; i += batchSize) {
    const B = Math.min(batchSize, count - i);
    const x = tf.tensor2d(windows.x.subarray(i * seq, (i + B) * seq), [B, seq], 'int32');
    const y = tf.tensor2d(windows.y.subarray(i * seq, (i + B) * seq), [B, seq], 'int32');
    parts.push(...tf.tidy(() => summedCrossEntropy(model, x, y, hooks)));
    tf.dispose([x, y]);
  }
  let total = 0;
  if (parts.length > 0) {
    const sums = tf.stack(parts);
    tf.dispose(parts);
    for (const v of await sums.data()) total += v;
    sums.dispose();
  }
  return total / (count * seq);
}

/**
 * Mean cross-entropy (nats/token) of each window on its own, without gradients: the units of a
 * paired comparison of models scored on the same windows (engine/stats pairedDifference; layer
 * pruning's per-window drops). Their mean is lmEvalLoss, every window having seq tokens.
 */
export async function lmEvalWindowLosses(
  model: CausalLM,
  windows: { x: Int32Array; y: Int32Array; count: number; seq: number },
  batchSize: number,
  hooks?: ForwardHooks,
): Promise<Float64Array> {
  const { seq, count } = windows;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += batchSize) {
    const B = Math.min(batchSize, count - i);
    const x = tf.tensor2d(windows.x.subarray(i * seq, (i + B) * seq), [B, seq], 'int32');
    const y = tf.tensor2d(windows.y.subarray(i * seq, (i + B) * seq), [B, seq], 'int32');
    const sums = tf.tidy(() => {
      const h = model.hidden(x, { ...hooks, scopeBlocks: true }); // (B, T, C)
      const C = h.shape[2];
      return tf.stack(
        Array.from({ length: B }, (_, b) =>
          tf.addN(summedRows(model, tf.reshape(tf.slice(h, [b, 0, 0], [1, seq, C]), [seq, C]), tf.reshape(tf.slice(y, [b, 0], [1, seq]), [seq]))),
        ),
      );
    });
    tf.dispose([x, y]);
    const v = await sums.data();
    sums.dispose();
    for (let b = 0; b < B; b++) out[i + b] = v[b] / seq;
  }
  return out;
}
