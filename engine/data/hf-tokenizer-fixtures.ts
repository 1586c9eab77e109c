/**
 * Small hand-written `tokenizer.json` files for the tokenizer tests, in the layouts of the hub's
 * files: their vocabularies and merges are tiny, so the expected ids are worked out by hand in the
 * tests.
 */

function special(content: string, id: number): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** A TemplateProcessing that puts `bos` (of id `id`) before a text, as Llama's. */
function bosTemplate(bos: string, id: number): Record<string, unknown> {
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: bos, type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: bos, type_id: 1 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { [bos]: { id: bos, ids: [id], tokens: [bos] } },
  };
}

/**
 * GPT-2 / Llama 3 style: byte-level BPE (Ġ marks a leading space), a post-processor that is
 * Llama 3's Sequence of ByteLevel and a template adding `<|begin_of_text|>` (id 16) before a text,
 * and `<|end_of_text|>` (17) as a second added token: 18 ids.
 *
 * Vocabulary: Ġ 0, d 1, e 2, h 3, l 4, o 5, r 6, w 7, he 8, ll 9, hell 10, hello 11, Ġw 12,
 * or 13, Ġwor 14, Ġworl 15. Merges by rank: h e, l l, he ll, hell o, Ġ w, o r, Ġw or, Ġwor l.
 */
export function byteLevelBpeJson(): Record<string, unknown> {
  const pieces = ['Ġ', 'd', 'e', 'h', 'l', 'o', 'r', 'w', 'he', 'll', 'hell', 'hello', 'Ġw', 'or', 'Ġwor', 'Ġworl'];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('<|begin_of_text|>', 16), special('<|end_of_text|>', 17)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'Sequence',
      processors: [{ type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }, bosTemplate('<|begin_of_text|>', 16)],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
      merges: [
        ['h', 'e'],
        ['l', 'l'],
        ['he', 'll'],
        ['hell', 'o'],
        ['Ġ', 'w'],
        ['o', 'r'],
        ['Ġw', 'or'],
        ['Ġwor', 'l'],
      ],
    },
  };
}

/**
 * Llama 2 style: SentencePiece BPE with byte fallback, as the hub's Llama-2 tokenizer.json: a
 * normalizer that prepends ▁ and turns spaces into ▁, no pre-tokenizer (merges cross ▁), `<s>`
 * (id 1) before a text, and a decoder of Replace, ByteFallback, Fuse and Strip: 274 ids.
 *
 * Vocabulary: <unk> 0, <s> 1, </s> 2, the byte pieces <0x00>..<0xFF> 3..258, then ▁ 259, h 260,
 * e 261, l 262, o 263, w 264, r 265, d 266, ll 267, ▁h 268, ▁he 269, ▁hell 270, ▁hello 271, or 272,
 * ▁w 273. Merges by rank: l l, ▁ h, ▁h e, ▁he ll, ▁hell o, o r, ▁ w.
 */
export function sentencePieceBpeJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'll', '▁h', '▁he', '▁hell', '▁hello', 'or', '▁w'].forEach((p, i) => (vocab[p] = 259 + i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('<unk>', 0), special('<s>', 1), special('</s>', 2)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: bosTemplate('<s>', 1),
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: ['l l', '▁ h', '▁h e', '▁he ll', '▁hell o', 'o r', '▁ w'],
    },
  };
}
