/** Text data for LM jobs: tokenizer + tokens + the contiguous train/validation split. */
import { fail } from '../core/errors.js';
import { splitTrainVal } from '../data/batches.js';
import { tokenizerForModel } from '../data/model-tokenizer.js';
import { loadTokenFile, tokenizeSource, type TokenIds, type TokenSource } from '../data/text.js';
import { makeTokenizer, type Tokenizer } from '../data/tokenizers.js';
import type { TextDataConfig } from './lm-config.js';

export interface LMData {
  /** The tokenizer the text went through; null for a token file (its ids are used as they are). */
  tokenizer: Tokenizer | null;
  train: TokenIds;
  val: TokenIds;
}

/** A model folder the data is for: text goes through its own tokenizer (`tokenizerForModel`). */
export interface LMDataModel {
  vocab: number;
  dir: string;
  /** Gets the line naming the tokenizer used. */
  log: (line: string) => void;
}

export function tokenSourceOf(d: TextDataConfig): TokenSource {
  if (d.source === 'file') return { kind: 'file', path: d.path! };
  if (d.source === 'tokens') return { kind: 'tokens', path: d.path!, dtype: d.dtype };
  return { kind: d.source };
}

/**
 * Load and split the data for a model: its vocabulary, or its folder (`LMDataModel`). A token file's
 * ids must be below the model's vocabulary. Text goes through `data.tokenizer` when set; else,
 * with a folder, the model's own tokenizer (`tokenizerForModel`), and without one the byte
 * tokenizer (training from scratch). A tokenizer larger than the model's vocabulary is an error.
 */
export async function loadLMData(d: TextDataConfig, seq: number, model: number | LMDataModel): Promise<LMData> {
  const vocab = typeof model === 'number' ? model : model.vocab;
  if (d.source === 'tokens') {
    const tokens = await loadTokenFile(d.path!, undefined, d.dtype);
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] >= vocab) fail('data', `the token id at position ${i} is outside the model's vocabulary (${vocab})`);
    }
    return { tokenizer: null, ...splitTrainVal(tokens, d.val_fraction, seq) };
  }
  let tokenizer: Tokenizer;
  if (typeof model === 'object') {
    tokenizer = await tokenizerForModel(model.dir, model.vocab, { explicit: d.tokenizer, option: 'data.tokenizer (byte or gpt2)', log: model.log });
  } else {
    tokenizer = makeTokenizer(d.tokenizer ?? 'byte');
    if (vocab < tokenizer.vocabSize) fail('data', `the ${tokenizer.name} tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${vocab}`);
  }
  const tokens = await tokenizeSource(tokenSourceOf(d), tokenizer);
  return { tokenizer, ...splitTrainVal(tokens, d.val_fraction, seq) };
}
