import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { byteLevelBpeJson, sentencePieceBpeJson } from './hf-tokenizer-fixtures.js';
import { tokenizerForModel } from './model-tokenizer.js';
import { HfTokenizer } from './tokenizers.js';

/** A model folder holding only the given tokenizer files (the loader reads nothing else). */
function folder(files: Record<string, unknown> = {}): string {
  const dir = tempDir('model-tokenizer');
  for (const [name, json] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), JSON.stringify(json));
  return dir;
}

async function pick(dir: string, vocab: number, explicit?: 'byte' | 'gpt2') {
  const lines: string[] = [];
  const tokenizer = await tokenizerForModel(dir, vocab, { explicit, option: '--tokenizer byte|gpt2', log: (l) => lines.push(l) });
  return { tokenizer, lines };
}

describe('tokenizerForModel', () => {
  it("uses the folder's tokenizer.json, with its tokenizer_config.json, and says so", async () => {
    const dir = folder({ 'tokenizer.json': sentencePieceBpeJson(), 'tokenizer_config.json': { add_bos_token: true, clean_up_tokenization_spaces: false } });
    const { tokenizer, lines } = await pick(dir, 32000);
    expect(tokenizer).toBeInstanceOf(HfTokenizer);
    expect(tokenizer.encode('hello world')).toEqual([271, 273, 272, 262, 266]);
    expect(lines).toEqual([`tokenizer: ${path.join(dir, 'tokenizer.json')} (the model's own, 274 ids, BOS 1 at the start)`]);
  });

  it("accepts a model vocabulary equal to the tokenizer's and refuses a smaller one in one line", async () => {
    const dir = folder({ 'tokenizer.json': byteLevelBpeJson() });
    expect((await pick(dir, 18)).tokenizer.vocabSize).toBe(18);
    const err = await errorOf(pick(dir, 17));
    expect(err.code).toBe('data');
    expect(err.message).toBe(`the ${path.join(dir, 'tokenizer.json')} tokenizer has 18 ids (largest id + 1) but the model's vocabulary has 17`);
  });

  it("takes NormLab's byte and GPT-2 tokenizers for 256- and 50257-id models without tokenizer.json", async () => {
    const dir = folder();
    const byte = await pick(dir, 256);
    expect(byte.tokenizer.name).toBe('byte');
    expect(byte.lines).toEqual(['tokenizer: byte (the model has no tokenizer.json and 256 ids)']);
    expect((await pick(dir, 50257)).tokenizer.name).toBe('gpt2');
  });

  it('refuses to guess for any other vocabulary without tokenizer.json (a 50,304-id model is not GPT-2)', async () => {
    const dir = folder();
    const err = await errorOf(pick(dir, 50304));
    expect(err.code).toBe('config');
    expect(err.message).toBe(
      `${dir} has no tokenizer.json and its vocabulary of 50304 is neither byte level (256) nor GPT-2 (50257): set --tokenizer byte|gpt2 or put the model's tokenizer.json in the folder`,
    );
    // Named explicitly, GPT-2 fits the larger vocabulary.
    expect((await pick(dir, 50304, 'gpt2')).tokenizer.name).toBe('gpt2');
  });

  it('an explicit choice wins over tokenizer.json, and still has to fit the vocabulary', async () => {
    const dir = folder({ 'tokenizer.json': byteLevelBpeJson() });
    const { tokenizer, lines } = await pick(dir, 300, 'byte');
    expect(tokenizer.name).toBe('byte');
    expect(lines).toEqual(["tokenizer: byte (chosen; the folder's tokenizer.json is not used)"]);
    expect((await errorOf(pick(dir, 300, 'gpt2'))).message).toBe("the gpt2 tokenizer has 50257 ids (largest id + 1) but the model's vocabulary has 300");
  });

  it('names a tokenizer.json that is not JSON', async () => {
    const dir = folder();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": secret');
    const err = await errorOf(pick(dir, 100));
    expect(err.message).toContain('tokenizer.json');
    expect(err.message).not.toContain('secret');
  });
});
