/**
 * The depth diagnostics (./diagnostics.ts) and the evaluation loss of a model evaluated one block
 * at a time (engine/models/streamed.ts), for checkpoints too large to hold as float32.
 *
 * A pass walks the blocks once: block ℓ's weights are read, every residual stream being carried is
 * run through it, and it is freed. The streams are the full model's and, for layer pruning, one per
 * removed block s: a copy of the full model's stream taken just before block s, which then skips
 * block s and runs every later one. So one pass measures the full model and several pruned ones,
 * and each block is read once per pass instead of once per pruned model. The streams live on the
 * host; when the windows and streams do not fit `budgetBytes`, the windows and the removed blocks
 * are split into groups, one pass each (loss sums add up over window groups).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import type { EvalWindows } from '../../data/batches.js';
import type { StreamedDecoder } from '../../models/streamed.js';
import { pruningFromWindows, ResidualAccumulator, type PruningResult, type ResidualStats } from './diagnostics.js';

export interface StreamOptions {
  /** Sequences per forward pass. */
  batch: number;
  /** Host memory for the residual streams a pass carries (float32, windows × seq × width each). */
  budgetBytes: number;
  /** Called between blocks (cancellation, progress). */
  tick?: () => Promise<void>;
  /** Called after each block of each pass with (block, blocks, pass, passes). */
  onBlock?: (block: number, blocks: number, pass: number, passes: number) => void;
}

interface PassResult {
  /** Summed CE of the full model on each of the pass's windows. */
  base: number[];
  /** Summed CE of the model without block s on each window, for each s of the pass. */
  skipped: Map<number, number[]>;
}

/**
 * One pass over windows [w0, w1) carrying the full model's stream and one stream per block in
 * `skips`; `stats` (when given) receives x_0..x_L of the full model for windows below its count.
 */
async function pass(
  sm: StreamedDecoder,
  windows: EvalWindows,
  w0: number,
  w1: number,
  skips: readonly number[],
  opts: StreamOptions & { stats?: { acc: ResidualAccumulator; count: number }; index: number; passes: number },
): Promise<PassResult> {
  const { seq: T } = windows;
  const C = sm.spec.width;
  const per = T * C; // floats per window
  const L = sm.nLayers;
  const base = sm.embed(windows.x.subarray(w0 * T, w1 * T), T);
  const streams = new Map<number, Float32Array>([[-1, base]]);
  const batches: [number, number][] = [];
  for (let a = w0; a < w1; a += opts.batch) batches.push([a, Math.min(w1, a + opts.batch)]);

  /** Feed the full model's x_l of batch [a, b) (and x_{l-1}, its block's input) to the statistics, for the windows they cover. */
  const measure = async (l: number, x: tf.Tensor3D, a: number, b: number, input?: tf.Tensor3D) => {
    const st = opts.stats;
    if (!st || a >= st.count) return;
    const rows = Math.min(b, st.count) - a;
    const cut = (t: tf.Tensor3D) => (rows === b - a ? t : (tf.slice(t, [0, 0, 0], [rows, T, C]) as tf.Tensor3D));
    const part = cut(x);
    const inPart = input && cut(input);
    const m = ResidualAccumulator.measure(part, inPart);
    if (part !== x) part.dispose();
    if (inPart && inPart !== input) inPart.dispose();
    await st.acc.add(l, m, a);
  };

  for (const [a, b] of batches) {
    const x = tf.tensor3d(base.subarray((a - w0) * per, (b - w0) * per), [b - a, T, C]);
    await measure(0, x, a, b);
    x.dispose();
  }
  for (let l = 0; l < L; l++) {
    await sm.loadBlock(l);
    if (skips.includes(l)) streams.set(l, base.slice()); // the model without block l: x_{l} = x_{l-1}
    for (const [key, state] of streams) {
      if (key === l) continue;
      for (const [a, b] of batches) {
        const x = tf.tensor3d(state.subarray((a - w0) * per, (b - w0) * per), [b - a, T, C]);
        const y = sm.block(l, x);
        state.set((await y.data()) as Float32Array, (a - w0) * per);
        if (key === -1) await measure(l + 1, y, a, b, x);
        x.dispose();
        y.dispose();
      }
    }
    opts.onBlock?.(l, L, opts.index, opts.passes);
    await opts.tick?.();
  }
  sm.unloadBlock();
  /** Summed CE of each window of the pass. */
  const lossOf = async (state: Float32Array) => {
    const sums: number[] = [];
    for (const [a, b] of batches) {
      const x = tf.tensor3d(state.subarray((a - w0) * per, (b - w0) * per), [b - a, T, C]);
      sums.push(...(await sm.windowLossSums(x, windows.y.subarray(a * T, b * T))));
      x.dispose();
    }
    return sums;
  };
  const skipped = new Map<number, number[]>();
  for (const s of skips) skipped.set(s, await lossOf(streams.get(s)!));
  return { base: await lossOf(base), skipped };
}

/** Host memory for a streamed evaluation's residual streams: a quarter of the stored weights, at least 256 MiB. */
export function defaultStreamBudget(sm: StreamedDecoder): number {
  return Math.max(256 * 2 ** 20, sm.storedBytes / 4);
}

/** Windows per group so that `streams` residual streams of a group fit the budget (at least 1). */
function windowsPerGroup(windows: EvalWindows, width: number, streams: number, budgetBytes: number): number {
  const perWindow = windows.seq * width * 4;
  return Math.max(1, Math.floor(budgetBytes / (streams * perWindow)));
}

function groups(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = 0; a < n; a += size) out.push([a, Math.min(n, a + size)]);
  return out;
}

/** Mean next-token cross-entropy (nats) over every window, streamed. */
export async function streamedEvalLoss(sm: StreamedDecoder, windows: EvalWindows, opts: StreamOptions): Promise<number> {
  const wg = groups(windows.count, windowsPerGroup(windows, sm.spec.width, 1, opts.budgetBytes));
  let total = 0;
  for (const [i, [a, b]] of wg.entries()) for (const v of (await pass(sm, windows, a, b, [], { ...opts, index: i, passes: wg.length })).base) total += v;
  return total / (windows.count * windows.seq);
}

/** Each window's mean next-token cross-entropy (nats), streamed (the per-window losses of streamedEvalLoss). */
export async function streamedWindowLosses(sm: StreamedDecoder, windows: EvalWindows, opts: StreamOptions): Promise<number[]> {
  const wg = groups(windows.count, windowsPerGroup(windows, sm.spec.width, 1, opts.budgetBytes));
  const out: number[] = [];
  for (const [i, [a, b]] of wg.entries())
    for (const v of (await pass(sm, windows, a, b, [], { ...opts, index: i, passes: wg.length })).base) out.push(v / windows.seq);
  return out;
}

/** The residual statistics (as residualStats) of the first `sequences` windows, streamed in one pass. */
export async function streamedResidualStats(sm: StreamedDecoder, windows: EvalWindows, sequences: number, opts: StreamOptions): Promise<ResidualStats> {
  const S = Math.min(sequences, windows.count);
  if (S < 1) fail('data', 'residual statistics need at least one validation sequence');
  const acc = new ResidualAccumulator(sm.nLayers, S);
  await pass(sm, windows, 0, S, [], { ...opts, stats: { acc, count: S }, index: 0, passes: 1 });
  return acc.result();
}

/**
 * The residual statistics of the first `sequences` windows and the layer-pruning drops over the
 * first `pruningWindows`, exactly as residualStats and layerPruning define them, in as few passes as
 * the budget allows (the statistics ride along the first pass when its windows cover them).
 */
export async function streamedDiagnostics(
  sm: StreamedDecoder,
  windows: EvalWindows,
  sequences: number,
  pruningWindows: number,
  opts: StreamOptions,
): Promise<{ stats: ResidualStats; pruning: PruningResult }> {
  const L = sm.nLayers;
  const S = Math.min(sequences, windows.count);
  const P = Math.min(pruningWindows, windows.count);
  if (S < 1 || P < 1) fail('data', 'the diagnostics need at least one validation window');
  const acc = new ResidualAccumulator(L, S);
  // As many removed blocks per pass as fit beside the full model's stream, over as many windows as fit.
  const wg = groups(P, windowsPerGroup(windows, sm.spec.width, 2, opts.budgetBytes));
  const perStreamBytes = (wg[0][1] - wg[0][0]) * windows.seq * sm.spec.width * 4;
  const skipsPerPass = Math.max(1, Math.min(L, Math.floor(opts.budgetBytes / perStreamBytes) - 1));
  const sg = groups(L, skipsPerPass);
  const statsInline = S <= wg[0][1];
  const passes = wg.length * sg.length + (statsInline ? 0 : 1);
  let index = 0;
  if (!statsInline) await pass(sm, windows, 0, S, [], { ...opts, stats: { acc, count: S }, index: index++, passes });
  const base: number[] = [];
  const perBlock: number[][] = Array.from({ length: L }, () => []);
  for (const [a, b] of wg) {
    let baseCounted = false;
    for (const [s0, s1] of sg) {
      const skips = Array.from({ length: s1 - s0 }, (_, k) => s0 + k);
      const withStats = statsInline && a === 0 && s0 === 0 ? { acc, count: S } : undefined;
      const r = await pass(sm, windows, a, b, skips, { ...opts, stats: withStats, index: index++, passes });
      if (!baseCounted) base.push(...r.base);
      baseCounted = true;
      for (const [s, v] of r.skipped) perBlock[s].push(...v);
    }
  }
  const perWindow = (sums: number[]) => sums.map((v) => v / windows.seq);
  return { stats: acc.result(), pruning: pruningFromWindows(perWindow(base), perBlock.map(perWindow)) };
}
