import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { NormLabError } from '../core/errors.js';
import { encodePng, imageGrid, writePng } from './png.js';

describe('encodePng / writePng', () => {
  it('encodes RGBA pixels that decode back unchanged', async () => {
    const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 255, 10, 20, 30, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const png = encodePng(rgba, 3, 2);
    const back = PNG.sync.read(Buffer.from(png));
    expect([back.width, back.height]).toEqual([3, 2]);
    expect([...back.data]).toEqual([...rgba]);
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-png-')), 'a.png');
    await writePng(f, rgba, 3, 2);
    expect([...PNG.sync.read(fs.readFileSync(f)).data]).toEqual([...rgba]);
  });

  it('rejects a pixel buffer of the wrong size', () => {
    expect(() => encodePng(new Uint8Array(10), 2, 2)).toThrow(NormLabError);
  });
});

describe('imageGrid', () => {
  it('tiles gray images into RGB cells with a 1-pixel gap', () => {
    // three 2×2 gray images with values 0, 0.5, 1, two columns
    const imgs = new Float32Array([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1]);
    const g = imageGrid(imgs, 3, 2, 2, 1, 2, 1, 100);
    expect([g.width, g.height]).toEqual([5, 5]);
    const px = (x: number, y: number): number[] => [...g.rgba.subarray((y * g.width + x) * 4, (y * g.width + x) * 4 + 4)];
    expect(px(0, 0)).toEqual([0, 0, 0, 255]);
    expect(px(2, 0)).toEqual([100, 100, 100, 255]); // gap column
    expect(px(3, 1)).toEqual([128, 128, 128, 255]);
    expect(px(0, 2)).toEqual([100, 100, 100, 255]); // gap row
    expect(px(1, 4)).toEqual([255, 255, 255, 255]);
    expect(px(4, 4)).toEqual([100, 100, 100, 255]); // empty cell
  });

  it('clamps RGB values to [0, 1] and maps NaN to 0', () => {
    const g = imageGrid(new Float32Array([-1, 2, NaN]), 1, 1, 1, 3, 4);
    expect([g.width, g.height]).toEqual([1, 1]);
    expect([...g.rgba]).toEqual([0, 255, 0, 255]);
  });
});
