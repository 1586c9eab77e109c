/**
 * `normlab eval-lm`: mean next-token cross-entropy (nats) of a model folder on a text or token
 * file. Windows of `seq` tokens (default: the model's context) tile the file from its start
 * without overlap; every token after each window's first is scored once; a tail shorter than a
 * full window is not scored. A PyTorch script that windows the same way gets the same number.
 */
import { fail } from '../core/errors.js';
import { evalWindows } from '../data/batches.js';
import { loadText, loadTokenFile } from '../data/text.js';
import { makeTokenizer } from '../data/tokenizers.js';
import { loadLM } from '../models/index.js';
import { lmEvalLoss } from '../train/lm-step.js';

export async function evalLM(opts: {
  model: string;
  text?: string;
  tokens?: string;
  tokenizer?: string;
  seq?: number;
}): Promise<{ loss: number; tokens: number }> {
  const model = await loadLM(opts.model);
  try {
    let ids: Uint16Array;
    if (opts.tokens) ids = await loadTokenFile(opts.tokens, model.vocabSize);
    else {
      const tok = makeTokenizer(opts.tokenizer ?? (model.vocabSize <= 256 ? 'byte' : 'gpt2'));
      if (tok.vocabSize > model.vocabSize)
        fail('data', `the ${tok.name} tokenizer has ${tok.vocabSize} tokens but the model's vocabulary has ${model.vocabSize}`);
      ids = Uint16Array.from(tok.encode(await loadText({ kind: 'file', path: opts.text! })));
    }
    const seq = opts.seq ?? Math.min(model.maxSeq, Math.max(1, ids.length - 1));
    if (seq > model.maxSeq) fail('config', `--seq ${seq} exceeds the model's context ${model.maxSeq}`);
    const windows = evalWindows(ids, seq, Number.MAX_SAFE_INTEGER);
    const loss = await lmEvalLoss(model, windows, Math.max(1, Math.floor(4096 / seq)));
    return { loss, tokens: windows.count * seq };
  } finally {
    model.dispose();
  }
}
