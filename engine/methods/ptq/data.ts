/** The image sets of the ptq jobs: calibration images (train split) and evaluation images. */
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import type { ViT } from '../../models/vit.js';
import { checkImagesFit, loadImageSource } from './vit-io.js';
import { pathField } from '../../jobs/paths.js';
import { SIZE_LIMITS } from '../../jobs/registry.js';

export const ptqDataSchema = z
  .object({
    source: pathField(z.string().default('mnist').describe('"mnist" (train split calibrates, test split evaluates) or a folder of labelled PNGs'), {
      keywords: ['mnist'],
    }),
    eval_source: pathField(z.string().optional().describe('folder of evaluation PNGs (default: the same folder as source)'), { keywords: ['mnist'] }),
    calib_count: z
      .number()
      .int()
      .min(1, 'calib_count must be at least 1: PTQ needs calibration images')
      .max(SIZE_LIMITS.count)
      .default(32)
      .describe('calibration images'),
    eval_count: z.number().int().min(1).max(SIZE_LIMITS.count).optional().describe('evaluation images (default: all; the MNIST test split has 2,000)'),
  })
  .strict();

/** Calibration and evaluation sets for a model (errors name what does not fit). */
export async function ptqData(cfg: { seed: number; data: z.infer<typeof ptqDataSchema> }, model: ViT) {
  const d = cfg.data;
  const calib = await loadImageSource(d.source, 'train', d.calib_count, cfg.seed);
  const evalSource = d.eval_source ?? d.source;
  const evalSet = await loadImageSource(evalSource, 'test', d.eval_count, 0);
  checkImagesFit(model, calib, 'calibration');
  checkImagesFit(model, evalSet, 'evaluation');
  if (evalSet.labels.some((l) => l < 0)) fail('data', 'evaluation images have no class labels (use dir/<class>/*.png)');
  return { calib, evalSet };
}
