/**
 * `normlab eval-lm`: mean next-token cross-entropy (nats) of a model folder on a text or token
 * file. Windows of `seq` tokens (default: the model's context) tile the file from its start
 * without overlap; every token after each window's first is scored once; a tail shorter than a
 * full window is not scored. A PyTorch script that windows the same way gets the same number.
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
import { nonFiniteCause } from '../models/finite.js';
import { loadLM } from '../models/index.js';
import { lmEvalLoss } from '../train/lm-step.js';

export async function evalLM(opts: {
  model: string;
  text?: string;
  tokens?: string;
  tokenizer?: TokenizerName;
  tokenDtype?: TokenDtype;
  seq?: number;
  /** Gets the line naming the tokenizer (default: stderr). */
  log?: (line: string) => void;
}): Promise<{ loss: number; tokens: number }> {
  const model = await loadLM(opts.model);
  try {
    let ids: TokenIds;
    if (opts.tokens) ids = await loadTokenFile(opts.tokens, model.vocabSize, opts.tokenDtype);
    else {
      const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
      const tok = await tokenizerForModel(opts.model, model.vocabSize, { explicit: opts.tokenizer, option: '--tokenizer byte|gpt2', log });
      ids = await tokenizeSource({ kind: 'file', path: opts.text! }, tok);
    }
    const seq = opts.seq ?? Math.min(model.maxSeq, Math.max(1, ids.length - 1));
    if (seq > model.maxSeq) fail('config', `--seq ${seq} exceeds the model's context ${model.maxSeq}`);
    const windows = evalWindows(ids, seq, Number.MAX_SAFE_INTEGER);
    const loss = await lmEvalLoss(model, windows, Math.max(1, Math.floor(4096 / seq)));
    if (!Number.isFinite(loss)) fail('model', `the loss of ${opts.model} is ${loss}: ${await nonFiniteCause(model)}`);
    return { loss, tokens: windows.count * seq };
  } finally {
    model.dispose();
  }
}
