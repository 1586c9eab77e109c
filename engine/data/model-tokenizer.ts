/**
 * Which tokenizer a model folder's text goes through (node only).
 *
 * 1. An explicit choice (`--tokenizer`, a job's `data.tokenizer`): NormLab's byte or GPT-2 one.
 * 2. Else the folder's own `tokenizer.json` (with its `tokenizer_config.json` where present), as
 *    every model from the Hugging Face hub has: `HfTokenizer`.
 * 3. Else the folder is taken for one of NormLab's own checkpoints, which record no tokenizer
 *    because NormLab trains on exactly two: a vocabulary of 256 is byte level, one of 50,257 GPT-2
 *    (GPT-2 itself included). Any other vocabulary is an error asking for a choice or a
 *    tokenizer.json, never a guess (a 50,304-token model is not evaluated on GPT-2 ids).
 *
 * The tokenizer's vocabulary (its largest id + 1) must fit the model's; `log` gets one line naming
 * the tokenizer used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.js';
import { readJson } from '../io/atomic.js';
import { HfTokenizer, makeTokenizer, type Tokenizer, type TokenizerName } from './tokenizers.js';

export interface ModelTokenizerOptions {
  /** NormLab's byte or GPT-2 tokenizer, chosen by the user; the folder's tokenizer.json is then not used. */
  explicit?: TokenizerName;
  /** How the user makes that choice, for the error when there is none: "--tokenizer byte|gpt2". */
  option: string;
  /** Gets one line naming the tokenizer used. */
  log: (line: string) => void;
}

/** The tokenizer for text scored by, or fed to, the model in `dir` of `vocabSize` ids. */
export async function tokenizerForModel(dir: string, vocabSize: number, opts: ModelTokenizerOptions): Promise<Tokenizer> {
  const file = path.join(dir, 'tokenizer.json');
  const hasJson = fs.existsSync(file);
  let tokenizer: Tokenizer;
  let why: string;
  if (opts.explicit) {
    tokenizer = makeTokenizer(opts.explicit);
    why = hasJson ? `chosen; the folder's tokenizer.json is not used` : 'chosen';
  } else if (hasJson) {
    const configFile = path.join(dir, 'tokenizer_config.json');
    const config = fs.existsSync(configFile) ? await readJson(configFile, 'tokenizer_config.json') : {};
    tokenizer = new HfTokenizer(file, await readJson(file, 'tokenizer.json'), config);
    why = `the model's own, ${tokenizer.vocabSize} ids, ${tokenizer.bos === null ? 'no BOS' : `BOS ${tokenizer.bos} at the start`}`;
  } else if (vocabSize === 256 || vocabSize === 50257) {
    tokenizer = makeTokenizer(vocabSize === 256 ? 'byte' : 'gpt2');
    why = `the model has no tokenizer.json and ${vocabSize} ids`;
  } else {
    fail(
      'config',
      `${dir} has no tokenizer.json and its vocabulary of ${vocabSize} is neither byte level (256) nor GPT-2 (50257): set ${opts.option} or put the model's tokenizer.json in the folder`,
    );
  }
  if (tokenizer.vocabSize > vocabSize) {
    fail('data', `the ${tokenizer.name} tokenizer has ${tokenizer.vocabSize} ids (largest id + 1) but the model's vocabulary has ${vocabSize}`);
  }
  opts.log(`tokenizer: ${tokenizer.name} (${why})`);
  return tokenizer;
}
