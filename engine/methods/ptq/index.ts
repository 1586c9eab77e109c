/**
 * Registers the ptq job kinds:
 * - `vit-train`: train a small timm-layout ViT on MNIST or a PNG folder (./vit-train.ts).
 * - `ptq-vit`: quantize one ViT with one quantizer choice at one bit width, evaluate it, export
 *   integer weights + scales and check the export's dequantized reference reproduces the accuracy.
 * - `ptq-preset`: one preset of a ptq-study at each of its bit widths (a child run, ./preset-job.ts).
 * - `ptq-study`: DopQ-ViT vs RepQ-ViT vs uniform (docs/methods.md, "DopQ-ViT"): top-1 per preset × bit width,
 *   post-softmax histogram with each quantizer's levels, per-channel post-LN scales with mean and
 *   median, and a verified export (./study.ts).
 */
import * as path from 'node:path';
import { z } from 'zod';
import type { JobContext } from '../../jobs/context.js';
import { registerPresets } from '../../jobs/presets.js';
import { baseConfig, registerJobKind } from '../../jobs/registry.js';
import { exportQuantized, loadQuantizedViT } from './export.js';
import { imageBatch, inputNorm, quantizeViT, top1 } from './ptq.js';
import { DEFAULT_SOFTMAX_CANDIDATES, MAX_BITS, MIN_BITS, softmaxCandidatesTried } from './quantizers.js';
import { ptqPresetSchema, runPtqPreset } from './preset-job.js';
import { ptqStudySchema, runPtqStudy } from './study.js';
import { loadViT } from './vit-io.js';
import { ptqData, ptqDataSchema } from './data.js';
import { trainViT, vitTrainSchema } from './vit-train.js';
import { pathField } from '../../jobs/paths.js';
import { wilson } from '../../stats/stats.js';
import { ptqPresets } from './presets.js';

registerPresets(ptqPresets);

const bitsSchema = (what: string) =>
  z.number().int().min(MIN_BITS, `${what} bit width must be at least ${MIN_BITS}`).max(MAX_BITS, `${what} bit width must be at most ${MAX_BITS}`);

export const ptqVitSchema = z
  .object({
    method: z.literal('ptq-vit'),
    ...baseConfig,
    model: pathField(
      z.string().min(1, 'model: give a ViT model folder (config.json + model.safetensors, timm names)').describe('ViT model folder (timm names)'),
    ),
    data: ptqDataSchema.default(ptqDataSchema.parse({})),
    w_bits: bitsSchema('weight').default(4).describe('weight bits (per output channel)'),
    a_bits: bitsSchema('activation').default(4).describe('activation bits'),
    softmax: z
      .enum(['uniform', 'log-sqrt2', 'tanq'])
      .default('tanq')
      .describe("post-softmax quantizer: uniform, log-sqrt2 (RepQ-ViT) or tanq (TanQ, NormLab's reconstruction: DopQ-ViT's formula is not public)"),
    softmax_candidates: z
      .number()
      .int()
      .min(4)
      .default(DEFAULT_SOFTMAX_CANDIDATES)
      .describe('calibration candidates of the log-sqrt2 and tanq quantizers (the same budget for both)'),
    ln_reparam: z
      .enum(['none', 'mean', 'median', 'mad'])
      .default('median')
      .describe(
        "post-LayerNorm: per-tensor (none), or per-channel reparameterized to the mean (RepQ-ViT), median (DopQ-ViT MOSF) or mad (the MAD-guided rule, NormLab's reconstruction) scale",
      ),
    export: z.boolean().default(true).describe('write integer weights + scales and check the dequantized reference'),
  })
  .strict();
export type PtqVitConfig = z.infer<typeof ptqVitSchema>;

async function runPtqVit(ctx: JobContext, cfg: PtqVitConfig): Promise<Record<string, unknown>> {
  const model = await loadViT(cfg.model);
  try {
    const { calib, evalSet } = await ptqData(cfg, model);
    ctx.progress({ step: 0, total: 3, phase: 'fp' });
    const fp = await top1(model, evalSet, undefined, 250, () => ctx.tick());
    const x = imageBatch(calib.images, 0, calib.n, [calib.height, calib.width, calib.channels], inputNorm(model));
    const q = await (async () => {
      try {
        return await quantizeViT(model, x, {
          wBits: cfg.w_bits,
          aBits: cfg.a_bits,
          softmax: cfg.softmax,
          lnReparam: cfg.ln_reparam,
          softmaxCandidates: cfg.softmax_candidates,
        });
      } finally {
        x.dispose();
      }
    })();
    try {
      ctx.progress({ step: 1, total: 3, phase: 'quantized' });
      const acc = await top1(q.model, evalSet, q.hooks(), 250, () => ctx.tick());
      ctx.metric({ step: 1, fp_top1: fp, quant_top1: acc });
      const summary: Record<string, unknown> = {
        key_result: {
          label: `top-1 W${cfg.w_bits}A${cfg.a_bits}`,
          value: acc,
          ci95: wilson(Math.round(acc * evalSet.n), evalSet.n),
          interval: `Wilson interval of the top-1 proportion, ${evalSet.n} images`,
          unit: 'fraction',
        },
        fp_top1: fp,
        quant_top1: acc,
        drop: fp - acc,
        calib_images: calib.n,
        eval_images: evalSet.n,
        softmax_candidates: softmaxCandidatesTried(cfg.softmax, cfg.softmax_candidates),
      };
      if (cfg.export) {
        ctx.progress({ step: 2, total: 3, phase: 'export' });
        const dir = path.join(ctx.run.artifactsDir, 'quantized');
        await exportQuantized(q, dir);
        const ref = await loadQuantizedViT(dir);
        try {
          const refAcc = await top1(ref.model, evalSet, ref.hooks, 250, () => ctx.tick());
          Object.assign(summary, { export_dir: dir, export_reference_top1: refAcc, export_matches: refAcc === acc });
        } finally {
          ref.dispose();
        }
      }
      ctx.progress({ step: 3, total: 3, phase: 'done' });
      return summary;
    } finally {
      q.dispose();
    }
  } finally {
    model.dispose();
  }
}

registerJobKind({
  name: 'vit-train',
  title: 'Train a ViT',
  description: 'Train a small timm-layout Vision Transformer on MNIST or a labelled PNG folder; saves a timm-style model folder.',
  schema: vitTrainSchema,
  resumable: true,
  async run(ctx, cfg) {
    const { model, summary } = await trainViT(ctx, cfg);
    model.dispose();
    return summary;
  },
});

registerJobKind({
  name: 'ptq-vit',
  title: 'Quantize a ViT (PTQ)',
  description:
    "Post-training quantization of a ViT with uniform / log-sqrt2 / TanQ (NormLab's reconstruction) post-softmax and mean / median / MAD-guided (NormLab's reconstruction) post-LN reparameterization; exports integer weights + scales.",
  schema: ptqVitSchema,
  resumable: false,
  run: runPtqVit,
});

registerJobKind({
  name: 'ptq-preset',
  title: 'One ptq-study preset',
  description: "A ptq-study's child run: one quantizer preset at each bit width (top-1), optionally the verified export; the study's executor runs these.",
  schema: ptqPresetSchema,
  resumable: false,
  run: runPtqPreset,
});

registerJobKind({
  name: 'ptq-study',
  title: 'DopQ-ViT study',
  description:
    'Top-1 per quantizer preset × bit width (FP, uniform, RepQ-ViT, DopQ-ViT with TanQ as NormLab reconstructs it, and each component), with quantizer-level and post-LN scale plots and a verified export.',
  schema: ptqStudySchema,
  resumable: false,
  parent: true,
  run: runPtqStudy,
});
