/**
 * Tokenizers: byte level (UTF-8 bytes, vocab 256) and GPT-2 BPE (r50k_base from `gpt-tokenizer`,
 * vocab 50257, end-of-text 50256). Pure: no node imports.
 */
import { decode as gpt2Decode, encode as gpt2Encode } from 'gpt-tokenizer/encoding/r50k_base';
import { fail } from '../core/errors.js';

export type TokenizerName = 'byte' | 'gpt2';
export const TOKENIZER_NAMES: readonly TokenizerName[] = ['byte', 'gpt2'];

export interface Tokenizer {
  name: TokenizerName;
  vocabSize: number;
  /** End-of-text id placed between documents, or null when the tokenizer has none. */
  eot: number | null;
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

  encode(text: string): number[] {
    return gpt2Encode(text, { disallowedSpecial: new Set() });
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.vocabSize, this.name);
    return gpt2Decode(Array.from(ids));
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
