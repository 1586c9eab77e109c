/**
 * Image data for the lct jobs: MNIST (the `mnist` package's fixed train/test split) or a user's
 * PNG folder. Training images come from MNIST's train split or the whole folder; the reference
 * set for FID comes from MNIST's test split, or (a folder has no split) the folder itself.
 */
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { loadImageFolder, loadMnist, type ImageSet } from '../../data/images.js';
import { pathField } from '../../jobs/paths.js';
import { SIZE_LIMITS } from '../../jobs/registry.js';

export const imageDataSchema = z
  .object({
    source: z.enum(['mnist', 'folder']).default('mnist').describe('mnist (embedded 28x28 digits) or a folder of PNG images'),
    path: pathField(z.string().nullable().default(null).describe('folder of PNGs: dir/<class>/*.png (labelled) or dir/*.png; only for source folder')),
    count: z.number().int().positive().max(SIZE_LIMITS.count).nullable().default(null).describe('training images to use (default: all; MNIST train has 8,000)'),
    ref_count: z
      .number()
      .int()
      .positive()
      .max(SIZE_LIMITS.count)
      .default(2000)
      .describe('reference images for FID (MNIST test split has 2,000; a folder uses its own images)'),
    grayscale: z
      .union([z.boolean(), z.literal('auto')])
      .default('auto')
      .describe('folders: 1 channel (true), RGB (false) or auto'),
  })
  .strict();
export type ImageData = z.infer<typeof imageDataSchema>;

export async function loadTrainImages(d: ImageData, seed: number): Promise<ImageSet> {
  if (d.source === 'mnist') return loadMnist({ split: 'train', count: d.count ?? undefined, seed });
  if (!d.path) fail('config', 'data.path is required when data.source is "folder"');
  return loadImageFolder(d.path, { count: d.count ?? undefined, seed, grayscale: d.grayscale });
}

export async function loadReferenceImages(d: ImageData, seed: number): Promise<ImageSet> {
  if (d.source === 'mnist') return loadMnist({ split: 'test', count: Math.min(d.ref_count, 2000), seed: seed + 1 });
  if (!d.path) fail('config', 'data.path is required when data.source is "folder"');
  const all = await loadImageFolder(d.path, { grayscale: d.grayscale });
  return all.n > d.ref_count ? loadImageFolder(d.path, { count: d.ref_count, seed: seed + 1, grayscale: d.grayscale }) : all;
}

/** Rows `idx` of an image set as one flat (B, H*W*C) array. */
export function gatherRows(images: Float32Array, dim: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * dim);
  for (let i = 0; i < idx.length; i++) out.set(images.subarray(idx[i] * dim, idx[i] * dim + dim), i * dim);
  return out;
}
