import { describe, it, expect } from 'vitest';
import { NormLabError } from '../core/errors.js';
import { errorOfSync } from '../testing/helpers.js';
import { byteLevelBpeJson, sentencePieceBpeJson } from './hf-tokenizer-fixtures.js';
import { ByteTokenizer, Gpt2Tokenizer, HfTokenizer, makeTokenizer } from './tokenizers.js';

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

describe('HfTokenizer', () => {
  // The expected ids follow the merges of hf-tokenizer-fixtures.ts by hand.
  describe('byte-level BPE (GPT-2 / Llama 3 layout)', () => {
    const tok = new HfTokenizer('bl/tokenizer.json', byteLevelBpeJson());
    it('applies the merges by rank within each pre-token', () => {
      // "hello" -> he l l o -> he ll o -> hell o -> hello; "Ġworld" -> Ġw o r l d -> Ġw or l d -> Ġwor l d -> Ġworl d.
      expect(tok.encode('hello world')).toEqual([11, 15, 1]);
      // No "w or" merge without the leading space.
      expect(tok.encode('world')).toEqual([7, 13, 4, 1]);
      // "Ġhello": no "Ġ h" merge, so Ġ stays alone before hello.
      expect(tok.encode('hello hello')).toEqual([11, 0, 11]);
      // Special-token strings in the text become their ids, as in Hugging Face.
      expect(tok.encode('hello<|end_of_text|>')).toEqual([11, 17]);
    });
    it("has the post-processor's BOS, no end-of-text, and its largest id + 1 as vocabulary", () => {
      expect(tok.bos).toBe(16);
      expect(tok.eot).toBeNull();
      expect(tok.vocabSize).toBe(18);
      expect(tok.name).toBe('bl/tokenizer.json');
    });
    it('round-trips text', () => {
      for (const s of ['hello world', 'world hello', ' hello  world ', '']) expect(tok.decode(tok.encode(s))).toBe(s);
      expect(tok.decode(new Uint32Array([16, 11]))).toBe('<|begin_of_text|>hello');
    });
    it('rejects ids outside the vocabulary', () => {
      expect(errorOfSync(() => tok.decode([11, 18])).message).toBe('bl/tokenizer.json tokenizer: id 18 at position 1 is outside the vocabulary (size 18)');
    });
  });

  describe('SentencePiece BPE with byte fallback (Llama 2 layout)', () => {
    const tok = new HfTokenizer('sp/tokenizer.json', sentencePieceBpeJson());
    it('merges across ▁ and falls back to bytes', () => {
      // "▁hello▁world": l l first, then ▁ h, ▁h e, ▁he ll, ▁hell o, o r, ▁ w; "l" and "d" stay.
      expect(tok.encode('hello world')).toEqual([271, 273, 272, 262, 266]);
      // "é" is not a piece: its UTF-8 bytes C3 A9 are ids 3 + 0xC3 and 3 + 0xA9.
      expect(tok.encode('hé')).toEqual([268, 198, 172]);
      expect(tok.encode('world')).toEqual([273, 272, 262, 266]);
    });
    it('has BOS <s> and 274 ids', () => {
      expect(tok.bos).toBe(1);
      expect(tok.eot).toBeNull();
      expect(tok.vocabSize).toBe(274);
    });
    it('round-trips text, byte-fallback pieces included', () => {
      for (const s of ['hello world', 'hé', ' hello', 'naïve café 🐳']) expect(tok.decode(tok.encode(s))).toBe(s);
    });
  });

  it('names a file that is not a tokenizer.json or that the library cannot load', () => {
    expect(errorOfSync(() => new HfTokenizer('x.json', { vocab: {} })).message).toBe('x.json is not a tokenizer.json: it has no "model"');
    const bad = errorOfSync(() => new HfTokenizer('y.json', { ...byteLevelBpeJson(), post_processor: { type: 'Nope' } }));
    expect(bad.code).toBe('data');
    expect(bad.message).toMatch(/^y\.json cannot be loaded by @huggingface\/tokenizers: .*Nope/);
  });
});
