import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { errorOf, tempDir } from '../testing/helpers.js';
import { loadImageFolder, loadImages, loadMnist } from './images.js';

/** Write a w×h PNG filled with one RGB colour; gray PNGs use colour type 0. */
function writeTestPng(file: string, w: number, h: number, rgb: [number, number, number], gray = false): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const png = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) png.data.set([...rgb, 255], i * 4);
  fs.writeFileSync(file, PNG.sync.write(png, gray ? { colorType: 0 } : { colorType: 2 }));
}

describe('loadMnist', () => {
  it('splits the 10,000 digits into disjoint fixed train (8,000) and test (2,000) sets', () => {
    const train = loadMnist({ split: 'train' });
    const test = loadMnist({ split: 'test' });
    expect(train.n).toBe(8000);
    expect(test.n).toBe(2000);
    const trainIds = new Set(train.files);
    expect(test.files.some((f) => trainIds.has(f))).toBe(false);
    for (const set of [train, test]) {
      const counts = new Array(10).fill(0);
      for (const l of set.labels) counts[l]++;
      for (const c of counts) expect(c).toBeGreaterThan(set.n / 20);
    }
  });

  it('returns 28×28×1 images in [0, 1] with labels, deterministic per seed', () => {
    const a = loadMnist({ split: 'test', count: 16, seed: 1 });
    expect([a.n, a.height, a.width, a.channels, a.classes]).toEqual([16, 28, 28, 1, 10]);
    expect(a.images.length).toBe(16 * 784);
    expect(Math.min(...a.images)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a.images)).toBeLessThanOrEqual(1);
    expect(Math.max(...a.images)).toBeGreaterThan(0.9);
    expect(loadMnist({ split: 'test', count: 16, seed: 1 })).toEqual(a);
    expect(loadMnist({ split: 'test', count: 16, seed: 2 }).files).not.toEqual(a.files);
  });

  it('rejects a count beyond the split', () => {
    expect(() => loadMnist({ split: 'test', count: 2001 })).toThrow(/2001 is more than the 2000 images/);
  });
});

describe('loadImageFolder', () => {
  it('reads class sub-folders, labels by sorted class name, gray PNGs as 1 channel', async () => {
    const dir = tempDir('images');
    writeTestPng(path.join(dir, 'zebra', 'a.png'), 3, 2, [255, 255, 255], true);
    writeTestPng(path.join(dir, 'apple', 'b.png'), 3, 2, [0, 0, 0], true);
    writeTestPng(path.join(dir, 'apple', 'a.png'), 3, 2, [51, 51, 51], true);
    fs.writeFileSync(path.join(dir, 'apple', 'notes.txt'), 'ignored');
    const set = await loadImageFolder(dir);
    expect(set.classNames).toEqual(['apple', 'zebra']);
    expect([set.n, set.height, set.width, set.channels, set.classes]).toEqual([3, 2, 3, 1, 2]);
    expect(Array.from(set.labels)).toEqual([0, 0, 1]);
    expect(set.files.map((f) => path.relative(dir, f))).toEqual([path.join('apple', 'a.png'), path.join('apple', 'b.png'), path.join('zebra', 'a.png')]);
    expect(set.images[0]).toBeCloseTo(0.2, 5);
    expect(set.images[6]).toBe(0);
    expect(set.images[12]).toBeCloseTo(1, 5);
  });

  it('reads colour PNGs as RGB, or as luma when grayscale is asked', async () => {
    const dir = tempDir('images');
    writeTestPng(path.join(dir, 'x.png'), 2, 2, [255, 0, 0]);
    const rgb = await loadImageFolder(dir);
    expect(rgb.channels).toBe(3);
    expect(Array.from(rgb.images.subarray(0, 3))).toEqual([1, 0, 0]);
    expect(Array.from(rgb.labels)).toEqual([-1]);
    expect(rgb.classes).toBe(0);
    const gray = await loadImageFolder(dir, { grayscale: true });
    expect(gray.channels).toBe(1);
    expect(gray.images[0]).toBeCloseTo(0.299, 5);
  });

  it('takes a seeded subset with count, in folder order', async () => {
    const dir = tempDir('images');
    for (let i = 0; i < 6; i++) writeTestPng(path.join(dir, `${i}.png`), 1, 1, [i * 40, 0, 0]);
    const a = await loadImageFolder(dir, { count: 3, seed: 4 });
    expect(a.n).toBe(3);
    expect([...a.files].sort()).toEqual(a.files);
    expect((await loadImageFolder(dir, { count: 3, seed: 4 })).files).toEqual(a.files);
    expect((await errorOf(loadImageFolder(dir, { count: 7 }))).code).toBe('config');
  });

  it('names the two files when images differ in size', async () => {
    const dir = tempDir('images');
    writeTestPng(path.join(dir, 'c', 'a.png'), 2, 2, [0, 0, 0]);
    writeTestPng(path.join(dir, 'c', 'b.png'), 3, 2, [0, 0, 0]);
    const err = await errorOf(loadImageFolder(dir));
    expect(err.code).toBe('data');
    expect(err.message).toBe(`images differ in size: ${path.join(dir, 'c', 'a.png')} is 2×2, ${path.join(dir, 'c', 'b.png')} is 3×2`);
  });

  it('names an unreadable PNG', async () => {
    const dir = tempDir('images');
    writeTestPng(path.join(dir, 'a.png'), 2, 2, [0, 0, 0]);
    fs.writeFileSync(path.join(dir, 'b.png'), 'not a png');
    const err = await errorOf(loadImageFolder(dir));
    expect(err.message).toContain(`${path.join(dir, 'b.png')} is not a readable PNG`);
  });

  it('says the folder is missing, empty or mixes layouts', async () => {
    const dir = tempDir('images');
    expect((await errorOf(loadImageFolder(path.join(dir, 'none')))).message).toContain('image folder not found');
    expect((await errorOf(loadImageFolder(dir))).message).toContain('has no PNG images');
    writeTestPng(path.join(dir, 'a.png'), 1, 1, [0, 0, 0]);
    writeTestPng(path.join(dir, 'cls', 'b.png'), 1, 1, [0, 0, 0]);
    expect((await errorOf(loadImageFolder(dir))).message).toContain('mixes class folders');
  });
});

describe('loadImages', () => {
  it('dispatches on the source kind', async () => {
    expect((await loadImages({ kind: 'mnist' }, { split: 'test', count: 4 })).n).toBe(4);
    const dir = tempDir('images');
    writeTestPng(path.join(dir, 'a.png'), 1, 1, [0, 0, 0]);
    expect((await loadImages({ kind: 'folder', path: dir })).n).toBe(1);
    expect((await errorOf(loadImages({ kind: 'cifar' } as never))).code).toBe('config');
  });
});
