/**
 * `normlab eval-lm`: mean next-token cross-entropy (nats) of a model folder on a text or token
 * file. Windows of `seq` tokens (default: the model's context, at most 2048) tile the file from
 * its start without overlap; every token after each window's first is scored once; a tail shorter
 * than a full window is not scored. A PyTorch script that windows the same way gets the same number.
 * A model too large to hold as float32 is evaluated block by block (engine/models/streamed.ts;
 * `streaming`), with the same numbers.
 *
 * Text goes through `tokenizerForModel`: `--tokenizer` when given, else the folder's own
 * tokenizer.json, else byte or GPT-2 for NormLab's 256- and 50257-id models. Its ids form one
 * stream, led by the tokenizer's BOS where it has one (Hugging Face's `tokenizer(text)`), which the
 * windows tile: only the first window starts with BOS. The tokenizer used is named on `log`.
 */
import { fail } from '../core/errors.js';
import { evalWindows } from '../data/batches.js';
import { tokenizerForModel } from '../data/model-tokenizer.js';
import { loadTokenFile, tokenizeSource, type TokenDtype, type TokenIds } from '../data/text.js';
import type { TokenizerName } from '../data/tokenizers.js';
import { defaultStreamBudget, streamedEvalLoss } from '../methods/lns/streamed-diagnostics.js';
import { nonFiniteCause } from '../models/finite.js';
import { openLM, type StreamingMode } from '../models/index.js';
import { lmEvalLoss } from '../train/lm-step.js';

/** The default window when none is given: the model's context, at most this. */
export const EVAL_SEQ_CAP = 2048;

/** Windows per forward pass: about 4096 tokens. */
const batchOf = (seq: number) => Math.max(1, Math.floor(4096 / seq));

export async function evalLM(opts: {
  model: string;
  text?: string;
  tokens?: string;
  tokenizer?: TokenizerName;
  tokenDtype?: TokenDtype;
  seq?: number;
  /** Gets the line naming the tokenizer (default: stderr). */
  log?: (line: string) => void;
  streaming?: StreamingMode;
  /** Loading (bytes) and, when streamed, evaluation (blocks) progress. */
  onProgress?: (phase: 'load' | 'evaluate', done: number, total: number, message: string) => void;
}): Promise<{ loss: number; tokens: number; streamed: boolean; seconds: number; peak_rss_mib: number }> {
  const started = Date.now();
  const opened = await openLM(opts.model, {
    streaming: opts.streaming,
    use: (context) => {
      const seq = Math.min(opts.seq ?? EVAL_SEQ_CAP, context); // the longest window (a short file makes them shorter)
      return { batch: batchOf(seq), seq };
    },
    onProgress: (read, total) => opts.onProgress?.('load', read, total, `${(read / 2 ** 30).toFixed(2)} / ${(total / 2 ** 30).toFixed(2)} GiB`),
  });
  const model = opened.model;
  try {
    let ids: TokenIds;
    if (opts.tokens) ids = await loadTokenFile(opts.tokens, model.vocabSize, opts.tokenDtype);
    else {
      const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
      const tok = await tokenizerForModel(opts.model, model.vocabSize, { explicit: opts.tokenizer, option: '--tokenizer byte|gpt2', log });
      ids = await tokenizeSource({ kind: 'file', path: opts.text! }, tok);
    }
    const seq = opts.seq ?? Math.min(model.maxSeq, EVAL_SEQ_CAP, Math.max(1, ids.length - 1));
    if (seq > model.maxSeq) fail('config', `--seq ${seq} exceeds the model's context ${model.maxSeq}`);
    const windows = evalWindows(ids, seq, Number.MAX_SAFE_INTEGER);
    const batch = batchOf(seq);
    let loss: number;
    if (opened.kind === 'streamed') {
      const sm = opened.model;
      loss = await streamedEvalLoss(sm, windows, {
        batch,
        budgetBytes: defaultStreamBudget(sm),
        onBlock: (b, L, pass, passes) => opts.onProgress?.('evaluate', pass * L + b + 1, passes * L, `block ${b + 1}/${L}`),
      });
      if (!Number.isFinite(loss)) fail('model', `the loss of ${opts.model} is ${loss}: its weights or activations are not finite`);
    } else {
      loss = await lmEvalLoss(opened.model, windows, batch);
      if (!Number.isFinite(loss)) fail('model', `the loss of ${opts.model} is ${loss}: ${await nonFiniteCause(opened.model)}`);
    }
    return {
      loss,
      tokens: windows.count * seq,
      streamed: opened.kind === 'streamed',
      seconds: (Date.now() - started) / 1000,
      // The process's peak resident memory so far (Linux reports kilobytes).
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  } finally {
    await opened.dispose();
  }
}
