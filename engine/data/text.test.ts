import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { loadDocuments, loadText, loadTokenFile, tokenizeDocuments, tokenizeSource, writeTokenFile } from './text.js';
import { byteLevelBpeJson } from './hf-tokenizer-fixtures.js';
import { ByteTokenizer, Gpt2Tokenizer, HfTokenizer, type Tokenizer } from './tokenizers.js';

describe('embedded corpora', () => {
  it('loads Moby Dick as one document of about 1.2 MB', async () => {
    const docs = await loadDocuments({ kind: 'moby-dick' });
    expect(docs.length).toBe(1);
    expect(docs[0].length).toBeGreaterThan(1_100_000);
    expect(docs[0]).toContain('Call me Ishmael.');
  });

  it('loads the State of the Union speeches, one document each', async () => {
    const docs = await loadDocuments({ kind: 'sotu' });
    expect(docs.length).toBeGreaterThan(200);
    expect(docs[0]).toContain('Fellow-Citizens');
    expect(docs.every((d) => d.length > 0)).toBe(true);
  });

  it('tokenizes Moby Dick once per tokenizer and hands out copies', async () => {
    const gpt2 = new Gpt2Tokenizer();
    const a = await tokenizeSource({ kind: 'moby-dick' }, gpt2);
    expect(a).toBeInstanceOf(Uint16Array);
    expect(a.length).toBeGreaterThan(250_000);
    const t0 = performance.now();
    const b = await tokenizeSource({ kind: 'moby-dick' }, gpt2);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(b).toEqual(a);
    a[0] = 1;
    expect((await tokenizeSource({ kind: 'moby-dick' }, gpt2))[0]).toBe(b[0]);
    const bytes = await tokenizeSource({ kind: 'moby-dick' }, new ByteTokenizer());
    expect(bytes.length).toBe(Buffer.byteLength(await loadText({ kind: 'moby-dick' })));
  });
});

describe('documents', () => {
  it('separates documents with end-of-text (none after the last) or a blank line for bytes', () => {
    const gpt2 = new Gpt2Tokenizer();
    expect(Array.from(tokenizeDocuments(['Hello world', 'Hello world'], gpt2))).toEqual([15496, 995, 50256, 15496, 995]);
    expect(Array.from(tokenizeDocuments(['Hello world'], gpt2))).toEqual([15496, 995]);
    expect(Array.from(tokenizeDocuments(['a', 'b'], new ByteTokenizer()))).toEqual([97, 10, 10, 98]);
  });

  it("puts a tokenizer's BOS once before all documents, joined by a blank line without end-of-text", () => {
    const tok = new HfTokenizer('bl', byteLevelBpeJson());
    // "hello\n\nworld" has bytes outside the fixture's vocabulary: one document here.
    expect(Array.from(tokenizeDocuments(['hello world'], tok))).toEqual([16, 11, 15, 1]);
    expect(tokenizeDocuments(['hello'], tok)).toBeInstanceOf(Uint16Array);
  });

  it('holds the ids of a vocabulary beyond uint16 in a Uint32Array', () => {
    const big: Tokenizer = {
      name: 'big',
      vocabSize: 151936,
      eot: 151643,
      bos: 151000,
      encode: (t) => [...t].map((c) => 100000 + c.charCodeAt(0)),
      decode: () => '',
    };
    const ids = tokenizeDocuments(['a', 'b'], big);
    expect(ids).toBeInstanceOf(Uint32Array);
    expect(Array.from(ids)).toEqual([151000, 100097, 151643, 100098]);
  });

  it('reads a UTF-8 text file and names missing, empty and non-UTF-8 files', async () => {
    const dir = tempDir('text');
    const f = path.join(dir, 'a.txt');
    fs.writeFileSync(f, 'Hello world');
    expect(Array.from(await tokenizeSource({ kind: 'file', path: f }, new Gpt2Tokenizer()))).toEqual([15496, 995]);
    const missing = await errorOf(loadText({ kind: 'file', path: path.join(dir, 'b.txt') }));
    expect(missing.code).toBe('io');
    expect(missing.message).toContain('b.txt');
    fs.writeFileSync(f, '');
    expect((await errorOf(loadText({ kind: 'file', path: f }))).message).toBe(`text file ${f} is empty`);
    fs.writeFileSync(f, Buffer.from([0x41, 0xff, 0xfe]));
    expect((await errorOf(loadText({ kind: 'file', path: f }))).message).toContain('is not UTF-8');
  });
});

describe('token files', () => {
  it('round-trips ids through a flat little-endian uint16 file', async () => {
    const f = path.join(tempDir('text'), 'val.bin');
    await writeTokenFile(f, [0, 1, 258, 50256, 65535]);
    expect([...fs.readFileSync(f)]).toEqual([0, 0, 1, 0, 2, 1, 0x50, 0xc4, 0xff, 0xff]);
    expect(Array.from(await loadTokenFile(f))).toEqual([0, 1, 258, 50256, 65535]);
  });

  it('names the position of the first id outside the vocabulary, not the id (an error never quotes a file)', async () => {
    const f = path.join(tempDir('text'), 'val.bin');
    await writeTokenFile(f, [5, 50256, 50300, 60000]);
    const err = await errorOf(loadTokenFile(f, 50257));
    expect(err.code).toBe('data');
    expect(err.message).toBe(`token file ${f}: the id at position 2 is not below the vocabulary size 50257`);
    const viaSource = (await errorOf(tokenizeSource({ kind: 'tokens', path: f }, new Gpt2Tokenizer()))).message;
    expect(viaSource).toContain('the id at position 2');
    expect(viaSource).not.toContain('50300');
  });

  it('round-trips ids beyond 65535 through a flat little-endian uint32 file, checked against the vocabulary', async () => {
    const f = path.join(tempDir('text'), 'val.bin');
    const ids = [0, 65535, 65536, 128255, 151935];
    await writeTokenFile(f, ids, 'uint32');
    expect([...fs.readFileSync(f)].slice(8, 16)).toEqual([0, 0, 1, 0, 0xff, 0xf4, 0x01, 0]);
    const back = await loadTokenFile(f, 151936, 'uint32');
    expect(back).toBeInstanceOf(Uint32Array);
    expect(Array.from(back)).toEqual(ids);
    const err = await errorOf(loadTokenFile(f, 128256, 'uint32'));
    expect(err.message).toBe(`token file ${f}: the id at position 4 is not below the vocabulary size 128256`);
    const qwenSized: Tokenizer = { name: 'qwen-sized', vocabSize: 151936, eot: null, bos: null, encode: () => [], decode: () => '' };
    expect(Array.from(await tokenizeSource({ kind: 'tokens', path: f, dtype: 'uint32' }, qwenSized))).toEqual(ids);
  });

  it('rejects files whose size is not a multiple of the id size, empty and missing files', async () => {
    const dir = tempDir('text');
    const f = path.join(dir, 'x.bin');
    fs.writeFileSync(f, Buffer.from([1, 0, 2]));
    expect((await errorOf(loadTokenFile(f))).message).toBe(`token file ${f} has 3 bytes, not a multiple of 2; expected flat little-endian uint16 ids`);
    fs.writeFileSync(f, Buffer.from([1, 0, 0, 0, 2, 0]));
    const err = await errorOf(loadTokenFile(f, undefined, 'uint32'));
    expect(err.code).toBe('data');
    expect(err.message).toBe(`token file ${f} has 6 bytes, not a multiple of 4; expected flat little-endian uint32 ids`);
    fs.writeFileSync(f, '');
    expect((await errorOf(loadTokenFile(f))).message).toBe(`token file ${f} is empty`);
    expect((await errorOf(loadTokenFile(path.join(dir, 'none.bin')))).code).toBe('io');
  });

  it('refuses to write ids that do not fit uint16 and leaves the old file', async () => {
    const f = path.join(tempDir('text'), 'x.bin');
    await writeTokenFile(f, [1, 2]);
    expect((await errorOf(writeTokenFile(f, [1, 70000]))).message).toContain('id 70000 at position 1 does not fit uint16');
    expect(Array.from(await loadTokenFile(f))).toEqual([1, 2]);
  });
});
