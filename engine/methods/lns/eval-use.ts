/**
 * How the depth diagnostics evaluate a model, for the memory estimate that decides between in
 * memory and block by block (engine/models/index.ts `openLM`) and, in a depth study, whether a
 * model runs in its own process.
 */
import type { EvalUseOf } from '../../models/index.js';

/** The default window of a model folder's diagnostics: its context, at most this. */
const DEFAULT_SEQ_CAP = 1024;

/** The diagnostics' window on a model of this context: `seq` when given (at most the context), else the context up to 1024. */
export function diagnosticsWindow(seq: number | undefined, context: number): number {
  return Math.min(seq ?? Math.min(context, DEFAULT_SEQ_CAP), context);
}

/**
 * The diagnostics' largest in-memory use of a model of `layers` blocks: batches of `batch` windows
 * (fewer when there are fewer windows) whose residual statistics keep x_0..x_L.
 */
export function diagnosticsUse(o: { seq?: number; batch: number; sequences: number; pruningWindows: number; layers: number }): EvalUseOf {
  return (context) => ({
    batch: Math.min(o.batch, Math.max(o.sequences, o.pruningWindows)),
    seq: diagnosticsWindow(o.seq, context),
    streams: o.layers + 1,
  });
}
