/** Text data for LM jobs: tokenizer + tokens + the contiguous train/validation split. */
import { fail } from '../core/errors.js';
import { splitTrainVal } from '../data/batches.js';
import { tokenizeSource, type TokenSource } from '../data/text.js';
import { makeTokenizer, type Tokenizer } from '../data/tokenizers.js';
import type { TextDataConfig } from './lm-config.js';

export interface LMData {
  tokenizer: Tokenizer;
  train: Uint16Array;
  val: Uint16Array;
}

export function tokenSourceOf(d: TextDataConfig): TokenSource {
  if (d.source === 'file') return { kind: 'file', path: d.path! };
  if (d.source === 'tokens') return { kind: 'tokens', path: d.path! };
  return { kind: d.source };
}

/** Load and split the data; a model's vocabulary smaller than the tokenizer's is an error. */
export async function loadLMData(d: TextDataConfig, seq: number, modelVocab?: number): Promise<LMData> {
  const tokenizer = makeTokenizer(d.tokenizer);
  if (modelVocab !== undefined && modelVocab < tokenizer.vocabSize && d.source !== 'tokens') {
    fail('data', `the ${d.tokenizer} tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${modelVocab}`);
  }
  const tokens = await tokenizeSource(tokenSourceOf(d), tokenizer);
  if (modelVocab !== undefined) {
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] >= modelVocab) fail('data', `the token id at position ${i} is outside the model's vocabulary (${modelVocab})`);
    }
  }
  const { train, val } = splitTrainVal(tokens, d.val_fraction, seq);
  return { tokenizer, train, val };
}
