/**
 * Language-model batches from a token stream (pure): a contiguous train/validation split, random
 * training windows that are deterministic per seed and resumable, and fixed non-overlapping
 * evaluation windows for a deterministic validation loss.
 */
import { fail } from '../core/errors.js';
import { Rng } from './rng.js';

/**
 * Token ids: Uint16Array or Uint32Array from token files and tokenizers (uint32 for vocabularies
 * beyond 65,536, as Llama 3's 128,256 or Qwen's 151,936), or any integer array. Batches and
 * windows hold them as int32, as tfjs takes them.
 */
export type TokenStream = Uint16Array | Int32Array | Uint32Array | readonly number[];

export interface LmBatch {
  /** Inputs, row-major (batch, seq). */
  x: Int32Array;
  /** Targets (inputs shifted by one), row-major (batch, seq). */
  y: Int32Array;
}

export interface BatcherState {
  rng: number;
  step: number;
}

function sub<T extends TokenStream>(tokens: T, begin: number, end: number): T {
  if (ArrayBuffer.isView(tokens)) return (tokens as Uint16Array).subarray(begin, end) as T;
  return (tokens as readonly number[]).slice(begin, end) as unknown as T;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) fail('config', `${name} must be a positive integer, got ${v}`);
}

/**
 * Split a stream: the first (1 - valFraction) is training, the last valFraction validation
 * (views, not copies, for typed arrays). Both parts must hold at least seq + 1 tokens.
 */
export function splitTrainVal<T extends TokenStream>(tokens: T, valFraction: number, seq: number): { train: T; val: T } {
  if (!(valFraction > 0 && valFraction < 1)) fail('config', `valFraction must be between 0 and 1, got ${valFraction}`);
  checkPositiveInt('seq', seq);
  const n = tokens.length;
  const nVal = Math.floor(n * valFraction);
  const nTrain = n - nVal;
  if (nTrain < seq + 1 || nVal < seq + 1) {
    fail(
      'data',
      `${n} tokens split ${nTrain}/${nVal} (valFraction ${valFraction}) leaves a part shorter than seq + 1 = ${seq + 1} tokens; ` +
        `use more text, a shorter seq or another valFraction`,
    );
  }
  return { train: sub(tokens, 0, nTrain), val: sub(tokens, nTrain, n) };
}

/** Random (seq + 1)-token windows, `batch` per call; the same seed gives the same batches. */
export class TokenBatcher {
  private readonly rng: Rng;
  private step = 0;

  constructor(
    private readonly tokens: TokenStream,
    readonly batch: number,
    readonly seq: number,
    seed: number,
  ) {
    checkPositiveInt('batch', batch);
    checkPositiveInt('seq', seq);
    if (tokens.length < seq + 1) {
      fail('data', `${tokens.length} tokens are too few for seq ${seq}: need at least ${seq + 1}`);
    }
    this.rng = new Rng(seed);
  }

  /** The next batch: x = window[0:seq], y = window[1:seq+1]. */
  next(): LmBatch {
    const { batch, seq, tokens } = this;
    const x = new Int32Array(batch * seq);
    const y = new Int32Array(batch * seq);
    const starts = tokens.length - seq; // window start in [0, len - seq - 1]
    for (let b = 0; b < batch; b++) {
      const s = this.rng.int(starts);
      const row = b * seq;
      for (let t = 0; t < seq; t++) {
        x[row + t] = tokens[s + t];
        y[row + t] = tokens[s + t + 1];
      }
    }
    this.step++;
    return { x, y };
  }

  /** Batches drawn so far and the RNG state, to store with a checkpoint. */
  state(): BatcherState {
    return { rng: this.rng.state(), step: this.step };
  }

  /** Continue from a stored state: the following batches are those the original would have drawn. */
  restore(state: BatcherState): void {
    if (typeof state !== 'object' || state === null || !Number.isInteger(state.step) || state.step < 0) {
      fail('config', `invalid batcher state ${JSON.stringify(state)}`);
    }
    this.rng.restore(state.rng);
    this.step = state.step;
  }
}

export interface EvalWindows extends LmBatch {
  /** Number of windows (rows of x and y). */
  count: number;
  seq: number;
}

/**
 * Consecutive windows from the start of the stream: row k has x = tokens[k*seq, (k+1)*seq) and
 * y = the same shifted by one, so every token after the first is predicted exactly once.
 * At most `maxWindows` (and at most floor((len - 1) / seq)) rows.
 */
export function evalWindows(tokens: TokenStream, seq: number, maxWindows: number): EvalWindows {
  checkPositiveInt('seq', seq);
  checkPositiveInt('maxWindows', maxWindows);
  const available = Math.floor((tokens.length - 1) / seq);
  if (available < 1) fail('data', `${tokens.length} tokens are too few for one evaluation window of seq ${seq}`);
  const count = Math.min(available, maxWindows);
  const x = new Int32Array(count * seq);
  const y = new Int32Array(count * seq);
  for (let k = 0; k < count; k++) {
    const s = k * seq;
    for (let t = 0; t < seq; t++) {
      x[s + t] = tokens[s + t];
      y[s + t] = tokens[s + t + 1];
    }
  }
  return { x, y, count, seq };
}

/**
 * The windows of a run's final evaluation: `evalWindows` over the first `budgetTokens` tokens of
 * the split ('all': the whole split), with the words an interval over them is given in.
 */
export function finalEvalWindows(
  tokens: TokenStream,
  seq: number,
  budgetTokens: number | 'all',
): { windows: EvalWindows; whole: boolean; description: string } {
  const available = Math.floor((tokens.length - 1) / seq);
  const windows = evalWindows(tokens, seq, budgetTokens === 'all' ? Math.max(1, available) : Math.max(1, Math.floor(budgetTokens / seq)));
  const whole = windows.count === available;
  const n = windows.count.toLocaleString('en-US');
  const description = whole
    ? `all ${n} validation windows of ${seq} tokens (the whole split)`
    : `the first ${n} validation windows of ${seq} tokens (${(windows.count * seq).toLocaleString('en-US')} of ${(tokens.length - 1).toLocaleString('en-US')} tokens)`;
  return { windows, whole, description };
}
