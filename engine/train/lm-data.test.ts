import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sentencePieceBpeJson } from '../data/hf-tokenizer-fixtures.js';
import { writeTokenFile } from '../data/text.js';
import { errorOf, tempDir } from '../testing/helpers.js';
import { textDataSchema } from './lm-config.js';
import { loadLMData } from './lm-data.js';

describe('loadLMData', () => {
  it('reads text for a model folder through its own tokenizer.json, and logs it', async () => {
    const dir = tempDir('lm-data');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceBpeJson()));
    const file = path.join(dir, 'a.txt');
    fs.writeFileSync(file, Array(8).fill('hello world').join(' '));
    const lines: string[] = [];
    const d = await loadLMData(textDataSchema.parse({ source: 'file', path: file, val_fraction: 0.5 }), 4, { vocab: 32000, dir, log: (l) => lines.push(l) });
    expect(lines[0]).toMatch(/tokenizer\.json \(the model's own, 274 ids, BOS 1 at the start\)$/);
    // <s>, then ▁hello ▁w or l d and (▁hello ▁w or l d) seven more times (the spaces become ▁).
    expect(Array.from([...d.train, ...d.val])).toEqual([1, ...Array(8).fill([271, 273, 272, 262, 266]).flat()]);
    // data.tokenizer, when set, wins.
    const byte = await loadLMData(textDataSchema.parse({ source: 'file', path: file, tokenizer: 'byte' }), 4, { vocab: 32000, dir, log: () => {} });
    expect(byte.tokenizer?.name).toBe('byte');
  });

  it('without a folder uses data.tokenizer, byte by default', async () => {
    expect(textDataSchema.parse({})).toMatchObject({ source: 'moby-dick', dtype: 'uint16' });
    expect(textDataSchema.parse({}).tokenizer).toBeUndefined();
    expect((await loadLMData(textDataSchema.parse({}), 16, 256)).tokenizer?.name).toBe('byte');
    expect((await errorOf(loadLMData(textDataSchema.parse({ tokenizer: 'gpt2' }), 16, 256))).message).toBe(
      "the gpt2 tokenizer has 50257 tokens but the model's vocabulary has 256",
    );
  });

  it('reads data.dtype uint32 token files, each id checked against the model vocabulary', async () => {
    const f = path.join(tempDir('lm-data'), 't.bin');
    const ids = Array.from({ length: 40 }, (_, i) => 100000 + i);
    await writeTokenFile(f, ids, 'uint32');
    const d = await loadLMData(textDataSchema.parse({ source: 'tokens', path: f, dtype: 'uint32', val_fraction: 0.25 }), 8, 151936);
    expect(d.tokenizer).toBeNull();
    expect(Array.from([...d.train, ...d.val])).toEqual(ids);
    const err = await errorOf(loadLMData(textDataSchema.parse({ source: 'tokens', path: f, dtype: 'uint32' }), 8, 100020));
    expect(err.message).toBe("the token id at position 20 is outside the model's vocabulary (100020)");
    // The file size must fit the dtype.
    fs.appendFileSync(f, Buffer.from([0, 0]));
    expect((await errorOf(loadLMData(textDataSchema.parse({ source: 'tokens', path: f, dtype: 'uint32' }), 8, 151936))).message).toMatch(
      /has 162 bytes, not a multiple of 4/,
    );
  });
});
