import { beforeAll, describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../backend/backend.js';
import { byteLevelBpeJson } from '../data/hf-tokenizer-fixtures.js';
import { writeTokenFile } from '../data/text.js';
import { createLM, saveModel } from '../models/index.js';
import { errorOf, tempDir } from '../testing/helpers.js';
import { evalLM } from './eval-lm.js';

/** A tiny NormLab llama of `vocab` ids saved as a model folder. */
async function llamaFolder(vocab: number): Promise<string> {
  const dir = tempDir('eval-lm');
  const m = createLM(
    'llama',
    { vocab_size: vocab, hidden_size: 16, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16 },
    1,
  );
  await saveModel(m, dir);
  m.dispose();
  return dir;
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('eval-lm on text', () => {
  it("tokenizes with the model folder's tokenizer.json: BOS, then the text's ids, as one stream", async () => {
    const dir = await llamaFolder(18);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(byteLevelBpeJson()));
    const text = path.join(dir, 'eval.txt');
    fs.writeFileSync(text, Array(10).fill('hello world').join(' '));
    const lines: string[] = [];
    const r = await evalLM({ model: dir, text, seq: 8, log: (l) => lines.push(l) });
    expect(lines).toEqual([`tokenizer: ${path.join(dir, 'tokenizer.json')} (the model's own, 18 ids, BOS 16 at the start)`]);
    // By hand: <|begin_of_text|>, hello Ġworl d, then (Ġ hello Ġworl d) nine times: 40 ids, 4 windows of 8.
    const ids = [16, 11, 15, 1, ...Array(9).fill([0, 11, 15, 1]).flat()];
    const bin = path.join(dir, 'eval.bin');
    await writeTokenFile(bin, ids, 'uint32');
    const viaTokens = await evalLM({ model: dir, tokens: bin, tokenDtype: 'uint32', seq: 8 });
    expect(r.tokens).toBe(32);
    expect({ loss: viaTokens.loss, tokens: viaTokens.tokens }).toEqual({ loss: r.loss, tokens: r.tokens });
  });

  it('asks for a tokenizer for a 50,304-id model without tokenizer.json instead of guessing GPT-2', async () => {
    const dir = await llamaFolder(50304);
    const text = path.join(dir, 'eval.txt');
    fs.writeFileSync(text, 'hello world');
    const err = await errorOf(evalLM({ model: dir, text, log: () => {} }));
    expect(err.code).toBe('config');
    expect(err.message).toMatch(
      /has no tokenizer\.json and its vocabulary of 50304 .*: set --tokenizer byte\|gpt2 or put the model's tokenizer\.json in the folder$/,
    );
  });

  it('checks every id of a uint32 token file against the vocabulary', async () => {
    const dir = await llamaFolder(18);
    const bin = path.join(dir, 'eval.bin');
    await writeTokenFile(bin, [1, 2, 3, 70000], 'uint32');
    expect((await errorOf(evalLM({ model: dir, tokens: bin, tokenDtype: 'uint32' }))).message).toBe(
      `token file ${bin}: the id at position 3 is not below the vocabulary size 18`,
    );
  });
});
