import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { readJson, readJsonSync, writeFileAtomic, writeFileAtomicSync, writeJsonAtomic, writeJsonAtomicSync } from './atomic.js';

describe('writeFileAtomic', () => {
  it('writes strings and bytes and leaves no temp file behind', async () => {
    const dir = tempDir('atomic');
    await writeFileAtomic(path.join(dir, 'a.txt'), 'hello');
    await writeFileAtomic(path.join(dir, 'b.bin'), new Uint8Array([1, 2, 3]));
    writeFileAtomicSync(path.join(dir, 'c.txt'), 'sync');
    expect(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('hello');
    expect([...fs.readFileSync(path.join(dir, 'b.bin'))]).toEqual([1, 2, 3]);
    expect(fs.readFileSync(path.join(dir, 'c.txt'), 'utf8')).toBe('sync');
    expect(fs.readdirSync(dir).sort()).toEqual(['a.txt', 'b.bin', 'c.txt']);
  });

  it('replaces an existing file whole', async () => {
    const dir = tempDir('atomic');
    const f = path.join(dir, 'a.txt');
    await writeFileAtomic(f, 'a much longer old content');
    await writeFileAtomic(f, 'new');
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
    expect(fs.readdirSync(dir)).toEqual(['a.txt']);
  });

  it('names the file and the missing folder when the folder does not exist', async () => {
    const dir = tempDir('atomic');
    const f = path.join(dir, 'nope', 'a.txt');
    const err = await errorOf(writeFileAtomic(f, 'x'));
    expect(err.code).toBe('io');
    expect(err.message).toContain(f);
    expect(err.message).toContain('does not exist');
    const errSync = await errorOf(() => writeFileAtomicSync(f, 'x'));
    expect(errSync.code).toBe('io');
  });

  it('fails cleanly when the target is a folder and removes its temp file', async () => {
    const dir = tempDir('atomic');
    fs.mkdirSync(path.join(dir, 'sub'));
    const err = await errorOf(writeFileAtomic(path.join(dir, 'sub'), 'x'));
    expect(err.code).toBe('io');
    expect(fs.readdirSync(dir)).toEqual(['sub']);
  });
});

describe('writeJsonAtomic', () => {
  it('writes 2-space JSON with a trailing newline', async () => {
    const dir = tempDir('atomic');
    const f = path.join(dir, 'x.json');
    await writeJsonAtomic(f, { a: 1, b: [1, 2] });
    expect(fs.readFileSync(f, 'utf8')).toBe('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}\n');
    writeJsonAtomicSync(f, { c: true });
    expect(fs.readFileSync(f, 'utf8')).toBe('{\n  "c": true\n}\n');
  });

  it('leaves the old file intact when the value cannot be serialized', async () => {
    const dir = tempDir('atomic');
    const f = path.join(dir, 'x.json');
    await writeJsonAtomic(f, { keep: 1 });
    const err = await errorOf(writeJsonAtomic(f, { big: 1n }));
    expect(err.message).toContain(f);
    expect(JSON.parse(fs.readFileSync(f, 'utf8'))).toEqual({ keep: 1 });
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
  });
});

describe('readJson', () => {
  it('reads what writeJsonAtomic wrote', async () => {
    const dir = tempDir('atomic');
    const f = path.join(dir, 'x.json');
    await writeJsonAtomic(f, { a: [1, 'b'] });
    expect(await readJson(f, 'x.json')).toEqual({ a: [1, 'b'] });
    expect(readJsonSync(f, 'x.json')).toEqual({ a: [1, 'b'] });
  });

  it('says "not found" for a missing file, naming what and where', async () => {
    const f = path.join(tempDir('atomic'), 'config.json');
    const err = await errorOf(readJson(f, 'config.json'));
    expect(err.code).toBe('io');
    expect(err.message).toBe(`config.json not found: ${f}`);
    expect((await errorOf(() => readJsonSync(f, 'config.json'))).code).toBe('io');
  });

  it('says "not valid JSON" in one line for a broken file', async () => {
    const f = path.join(tempDir('atomic'), 'config.json');
    fs.writeFileSync(f, '{"a": 1,');
    const err = await errorOf(readJson(f, 'config.json'));
    expect(err.code).toBe('io');
    expect(err.message).toContain('is not valid JSON');
    expect(err.message).toContain(f);
    expect(err.message).not.toContain('\n');
  });

  it('says an empty file is empty', async () => {
    const f = path.join(tempDir('atomic'), 'run.json');
    fs.writeFileSync(f, '');
    const err = await errorOf(readJson(f, 'run record'));
    expect(err.message).toContain('is empty');
  });
});
