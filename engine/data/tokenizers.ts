/**
 * Tokenizers: byte level (UTF-8 bytes, vocab 256) and GPT-2 BPE (r50k_base from `gpt-tokenizer`,
 * vocab 50257, end-of-text 50256) for NormLab's own models, and a model's own Hugging Face
 * `tokenizer.json` (run by the official `@huggingface/tokenizers`) for models from the hub.
 * Pure: no node imports (engine/data/model-tokenizer.ts reads a model folder's files).
 */
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { decode as gpt2Decode, encode as gpt2Encode } from 'gpt-tokenizer/encoding/r50k_base';
import { fail } from '../core/errors.js';

import { TOKENIZER_NAMES, type TokenizerName } from '../core/choices.js';
export { TOKENIZER_NAMES, type TokenizerName };

export interface Tokenizer {
  /** 'byte', 'gpt2', or the tokenizer.json it was loaded from. */
  name: string;
  /** Number of ids: the largest id + 1. */
  vocabSize: number;
  /** End-of-text id placed between documents, or null (documents are then joined by a blank line). */
  eot: number | null;
  /** Id placed once at the very start of a token stream (a model's BOS), or null. */
  bos: number | null;
  /** The text's ids, without BOS or end-of-text. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

function checkIds(ids: ArrayLike<number>, vocabSize: number, name: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      fail('data', `${name} tokenizer: id ${id} at position ${i} is outside the vocabulary (size ${vocabSize})`);
    }
  }
}

/** UTF-8 bytes as tokens. Decoding invalid UTF-8 (a cut multi-byte char) yields U+FFFD. */
export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte' as const;
  readonly vocabSize = 256;
  readonly eot = null;
  readonly bos = null;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  encode(text: string): number[] {
    return Array.from(this.encoder.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.vocabSize, this.name);
    return this.decoder.decode(Uint8Array.from(ids as ArrayLike<number>));
  }
}

/**
 * GPT-2 BPE. Text is encoded as ordinary text: a literal "<|endoftext|>" in the input is spelled
 * out, never turned into the special id (like tiktoken's `encode_ordinary`).
 */
export class Gpt2Tokenizer implements Tokenizer {
  readonly name = 'gpt2' as const;
  readonly vocabSize = 50257;
  readonly eot = 50256;
  readonly bos = null;

  encode(text: string): number[] {
    return gpt2Encode(text, { disallowedSpecial: new Set() });
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.vocabSize, this.name);
    return gpt2Decode(Array.from(ids));
  }
}

/** A first line of an error message, cut to 200 characters. */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200);
}

/**
 * A model's own Hugging Face tokenizer: the parsed `tokenizer.json` (and `tokenizer_config.json`,
 * or `{}`), run by `@huggingface/tokenizers` (ByteLevel BPE as GPT-2, Llama 3 and Qwen;
 * SentencePiece BPE with byte fallback as Llama 2 and Mistral; Unigram; WordPiece).
 *
 * - `encode(text)` gives the ids of Hugging Face's `tokenizer(text, add_special_tokens=False)`:
 *   the normalizer, pre-tokenizer and model, with special-token strings in the text (a literal
 *   `<|endoftext|>`) turned into their ids as Hugging Face does.
 * - `bos` is the one id the post-processor puts before a text (Llama 2's `<s>`, Llama 3's
 *   `<|begin_of_text|>`; none for GPT-2 or Qwen). A token stream starts with it once
 *   (`tokenizeDocuments`), so the stream of one text is Hugging Face's `tokenizer(text)` without
 *   what the post-processor appends (an EOS); an evaluation's windows are cut from that stream, so
 *   only the first window starts with BOS, as in Hugging Face's perplexity recipe.
 * - `eot` is null: documents are joined by a blank line and encoded as one text.
 * - `vocabSize` is the largest id + 1, added tokens included.
 * - `decode` keeps special tokens and does not clean up spaces, so decode(encode(t)) is t for any
 *   text the vocabulary covers.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eot = null;
  readonly bos: number | null;
  private readonly hf: HfLibTokenizer;

  constructor(
    readonly name: string,
    json: unknown,
    config: unknown = {},
  ) {
    if (typeof json !== 'object' || json === null || !('model' in json)) fail('data', `${name} is not a tokenizer.json: it has no "model"`);
    try {
      this.hf = new HfLibTokenizer(json, typeof config === 'object' && config !== null ? config : {});
    } catch (err) {
      fail('data', `${name} cannot be loaded by @huggingface/tokenizers: ${firstLine(err)}`);
    }
    let largest = -1;
    for (const id of this.hf.get_vocab(true).values()) largest = Math.max(largest, id);
    if (largest < 0) fail('data', `${name} has an empty vocabulary`);
    this.vocabSize = largest + 1;
    this.bos = this.leadingId();
  }

  /** The id the post-processor puts before a text, found by running it on a placeholder token. */
  private leadingId(): number | null {
    const pp = this.hf.post_processor;
    if (!pp) return null;
    const placeholder = '\u0000normlab';
    const tokens = pp([placeholder], null, true).tokens;
    const before = tokens.slice(0, Math.max(0, tokens.indexOf(placeholder)));
    if (before.length === 0) return null;
    if (before.length > 1) fail('data', `${this.name}: its post-processor puts ${before.length} tokens before a text; NormLab handles one (a BOS)`);
    const id = this.hf.token_to_id(before[0]);
    if (id === undefined) fail('data', `${this.name}: its post-processor adds a token that is not in the vocabulary`);
    return id;
  }

  encode(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.vocabSize, this.name);
    if (ids.length === 0) return '';
    return this.hf.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** A tokenizer by name; unknown names are a 'config' error listing the known ones. */
export function makeTokenizer(name: string): Tokenizer {
  switch (name) {
    case 'byte':
      return new ByteTokenizer();
    case 'gpt2':
      return new Gpt2Tokenizer();
    default:
      fail('config', `unknown tokenizer "${name}" (known: ${TOKENIZER_NAMES.join(', ')})`);
  }
}
