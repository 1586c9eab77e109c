/**
 * PNG output (node only, via pngjs): encode RGBA pixels, write them atomically, and tile a batch
 * of images in [0, 1] into one sample grid.
 */
import { PNG } from 'pngjs';
import { fail } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';

function checkSize(rgba: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    fail('shape', `PNG size must be positive integers, got ${width}×${height}`);
  }
  if (rgba.length !== width * height * 4) {
    fail('shape', `PNG ${width}×${height} needs ${width * height * 4} RGBA bytes, got ${rgba.length}`);
  }
}

/** Encode 8-bit RGBA pixels (row-major) as PNG bytes. */
export function encodePng(rgba: Uint8Array, width: number, height: number): Uint8Array {
  checkSize(rgba, width, height);
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.length);
  return PNG.sync.write(png);
}

/** Encode and write a PNG atomically. */
export async function writePng(file: string, rgba: Uint8Array, width: number, height: number): Promise<void> {
  await writeFileAtomic(file, encodePng(rgba, width, height));
}

export interface GridImage {
  rgba: Uint8Array;
  width: number;
  height: number;
}

/**
 * Tile `n` images (HWC, values in [0, 1], c = 1 gray, 3 RGB or 4 RGBA) into a grid of `cols`
 * columns with `gap` pixels (default 1) of `background` gray level (0..255, default 255) between.
 */
export function imageGrid(images: Float32Array, n: number, h: number, w: number, c: number, cols: number, gap = 1, background = 255): GridImage {
  if (c !== 1 && c !== 3 && c !== 4) fail('shape', `imageGrid: channels must be 1, 3 or 4, got ${c}`);
  for (const [k, v] of Object.entries({ n, h, w, cols })) {
    if (!Number.isInteger(v) || v <= 0) fail('shape', `imageGrid: ${k} must be a positive integer, got ${v}`);
  }
  if (images.length < n * h * w * c) {
    fail('shape', `imageGrid: ${n} images of ${h}×${w}×${c} need ${n * h * w * c} values, got ${images.length}`);
  }
  const cc = Math.min(cols, n);
  const rows = Math.ceil(n / cc);
  const width = cc * w + (cc - 1) * gap;
  const height = rows * h + (rows - 1) * gap;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[i * 4] = background;
    rgba[i * 4 + 1] = background;
    rgba[i * 4 + 2] = background;
    rgba[i * 4 + 3] = 255;
  }
  const to8 = (v: number): number => (v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0); // NaN → 0
  for (let k = 0; k < n; k++) {
    const ox = (k % cc) * (w + gap);
    const oy = Math.floor(k / cc) * (h + gap);
    const base = k * h * w * c;
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const src = base + (yy * w + xx) * c;
        const dst = ((oy + yy) * width + ox + xx) * 4;
        if (c === 1) {
          const g = to8(images[src]);
          rgba[dst] = g;
          rgba[dst + 1] = g;
          rgba[dst + 2] = g;
        } else {
          rgba[dst] = to8(images[src]);
          rgba[dst + 1] = to8(images[src + 1]);
          rgba[dst + 2] = to8(images[src + 2]);
          if (c === 4) rgba[dst + 3] = to8(images[src + 3]);
        }
      }
    }
  }
  return { rgba, width, height };
}
