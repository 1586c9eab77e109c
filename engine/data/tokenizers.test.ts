import { describe, it, expect } from 'vitest';
import { NormLabError } from '../core/errors.js';
import { ByteTokenizer, Gpt2Tokenizer, makeTokenizer } from './tokenizers.js';

const samples = ['Hello, world!', 'Grüße, 東京 🐳 — naïve café', '', '  leading and trailing  \n\ttabs\n', '<|endoftext|>'];

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();
  it('round-trips ASCII, Unicode and empty text', () => {
    for (const s of samples) expect(tok.decode(tok.encode(s))).toBe(s);
  });
  it('encodes UTF-8 bytes, vocab 256, no end-of-text', () => {
    expect(tok.encode('é')).toEqual([0xc3, 0xa9]);
    expect(tok.vocabSize).toBe(256);
    expect(tok.eot).toBeNull();
  });
  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([65, 256])).toThrow(/id 256 at position 1/);
  });
});

describe('Gpt2Tokenizer', () => {
  const tok = new Gpt2Tokenizer();
  it('encodes "Hello world" to [15496, 995]', () => {
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
  });
  it('round-trips ASCII, Unicode and empty text', () => {
    for (const s of samples) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.encode('')).toEqual([]);
  });
  it('has vocab 50257 and end-of-text 50256, and spells a literal <|endoftext|> out as text', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eot).toBe(50256);
    expect(tok.encode('a<|endoftext|>b')).not.toContain(50256);
    expect(tok.decode([50256])).toBe('<|endoftext|>');
  });
  it('decodes typed arrays and rejects ids outside the vocabulary', () => {
    expect(tok.decode(new Uint16Array([15496, 995]))).toBe('Hello world');
    expect(() => tok.decode([50257])).toThrow(NormLabError);
  });
});

describe('makeTokenizer', () => {
  it('makes tokenizers by name and rejects unknown names', () => {
    expect(makeTokenizer('byte').name).toBe('byte');
    expect(makeTokenizer('gpt2').vocabSize).toBe(50257);
    try {
      makeTokenizer('llama');
      expect.unreachable();
    } catch (err) {
      expect((err as NormLabError).code).toBe('config');
      expect((err as NormLabError).message).toBe('unknown tokenizer "llama" (known: byte, gpt2)');
    }
  });
});
