/**
 * `ptq-preset`: one row of a `ptq-study`, a child run its executor runs (in this process,
 * parallel processes or a Slurm array task): one ViT quantized with one preset at each bit width,
 * each evaluated (top-1). Optionally also the verified export (`export_bits`) and the per-channel
 * post-LN calibration the study plots (`ln_calibrations_bits`).
 *
 * One child per preset rather than per preset × bit width: a child pays a process start, the
 * model load and the calibration + evaluation image load once (about 2.7 s for the MNIST ViT on
 * a 2-core machine), each further bit width only its calibration pass and evaluation (about 0.8 s
 * there with 32 calibration and 2,000 evaluation images), so a row keeps the overhead to one start
 * per preset while the presets (9 by default) still spread over the executor's processes or nodes.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { faultPoint } from '../../core/fault-points.js';
import { writeJsonAtomicSync } from '../../io/atomic.js';
import type { JobContext } from '../../jobs/context.js';
import { pathField } from '../../jobs/paths.js';
import { baseConfig } from '../../jobs/registry.js';
import { ptqData, ptqDataSchema } from './data.js';
import { exportQuantized, loadQuantizedViT } from './export.js';
import { correctMask, imageBatch, inputNorm, maskText, quantizeViT, top1 } from './ptq.js';
import { wilson } from '../../stats/stats.js';
import { DEFAULT_SOFTMAX_CANDIDATES, MAX_BITS, MIN_BITS } from './quantizers.js';
import { PRESETS } from './study.js';
import { loadViT } from './vit-io.js';

const bitWidth = z.number().int().min(MIN_BITS, `bit widths must be at least ${MIN_BITS}`).max(MAX_BITS, `bit widths must be at most ${MAX_BITS}`);

export const ptqPresetSchema = z
  .object({
    method: z.literal('ptq-preset'),
    ...baseConfig,
    model: pathField(z.string().min(1, 'model: give a ViT model folder').describe('ViT model folder (timm names)')),
    data: ptqDataSchema.default(ptqDataSchema.parse({})),
    quantizer: z
      .enum(Object.keys(PRESETS) as [string, ...string[]])
      .describe("the study's quantizer preset (post-softmax quantizer × post-LN treatment; `preset` names config presets)"),
    bits: z.array(bitWidth).default([]).describe('bit widths b, each quantized as WbAb and evaluated'),
    softmax_candidates: z.number().int().min(4).default(DEFAULT_SOFTMAX_CANDIDATES).describe('calibration candidates of the log-√2 and TanQ quantizers'),
    export_bits: bitWidth.optional().describe('also export the model quantized at this bit width and check its dequantized reference'),
    ln_calibrations_bits: bitWidth.optional().describe('write the per-channel post-LN calibration at this bit width (ln_calibrations.json)'),
  })
  .strict();
export type PtqPresetConfig = z.infer<typeof ptqPresetSchema>;

const pct = (x: number) => (100 * x).toFixed(2);

export async function runPtqPreset(ctx: JobContext, cfg: PtqPresetConfig): Promise<Record<string, unknown>> {
  const model = await loadViT(cfg.model);
  const p = PRESETS[cfg.quantizer];
  try {
    const { calib, evalSet } = await ptqData(cfg, model);
    const x = imageBatch(calib.images, 0, calib.n, [calib.height, calib.width, calib.channels], inputNorm(model));
    const bits = [...new Set(cfg.bits)].sort((a, b) => a - b);
    const extra = cfg.export_bits !== undefined && !bits.includes(cfg.export_bits) ? [cfg.export_bits] : [];
    const top: Record<string, number> = {};
    const correct: Record<string, string> = {};
    let exported: Record<string, unknown> | null = null;
    let lnCalibrations: string | null = null;
    try {
      for (const [i, b] of [...bits, ...extra].entries()) {
        const q = await quantizeViT(model, x, { wBits: b, aBits: b, softmax: p.softmax, lnReparam: p.ln, softmaxCandidates: cfg.softmax_candidates });
        try {
          const mask = await correctMask(q.model, evalSet, q.hooks(), 250, () => ctx.tick());
          const acc = mask.reduce((s, c) => s + c, 0) / evalSet.n;
          if (bits.includes(b)) {
            top[`W${b}A${b}`] = acc;
            correct[`W${b}A${b}`] = maskText(mask);
            ctx.metric({ step: i + 1, preset: cfg.quantizer, bits: b, top1: acc });
            ctx.log(`${cfg.quantizer} W${b}A${b}: top-1 ${pct(acc)}%`);
          }
          if (b === cfg.ln_calibrations_bits) {
            lnCalibrations = 'ln_calibrations.json';
            writeJsonAtomicSync(
              path.join(ctx.run.artifactsDir, lnCalibrations),
              q.lnCalibrations.map(({ norm, linear, scales, zeros }) => ({ norm, linear, scales, zeros })),
            );
          }
          if (b === cfg.export_bits) {
            exported = await exportAndCheck(ctx, q, evalSet, acc);
            faultPoint('after-export', ctx.run);
          }
        } finally {
          q.dispose();
        }
        ctx.progress({ step: i + 1, total: bits.length + extra.length, phase: 'quantize', message: `${cfg.quantizer} W${b}A${b}` });
      }
    } finally {
      x.dispose();
    }
    const first = bits[0];
    return {
      key_result:
        first !== undefined
          ? {
              label: `${cfg.quantizer} W${first}A${first} top-1`,
              value: top[`W${first}A${first}`],
              ci95: wilson(Math.round(top[`W${first}A${first}`] * evalSet.n), evalSet.n),
              interval: `Wilson, ${evalSet.n} images`,
              unit: 'fraction' as const,
            }
          : undefined,
      quantizer: cfg.quantizer,
      label: p.label,
      top1: top,
      correct_by_image: correct,
      export: exported,
      ln_calibrations: lnCalibrations,
      calib_images: calib.n,
      eval_images: evalSet.n,
    };
  } finally {
    model.dispose();
  }
}

/** Export the quantized model into the run's `quantized/` and check its dequantized reference reproduces `simulated`. */
async function exportAndCheck(
  ctx: JobContext,
  q: Awaited<ReturnType<typeof quantizeViT>>,
  evalSet: Parameters<typeof top1>[1],
  simulated: number,
): Promise<Record<string, unknown>> {
  const dir = path.join(ctx.run.artifactsDir, 'quantized');
  await exportQuantized(q, dir);
  const ref = await loadQuantizedViT(dir);
  try {
    const refAcc = await top1(ref.model, evalSet, ref.hooks, 250, () => ctx.tick());
    ctx.log(`export: dequantized reference top-1 ${pct(refAcc)}% (simulated ${pct(simulated)}%)`);
    return {
      dir,
      w_bits: q.options.wBits,
      a_bits: q.options.aBits,
      softmax: q.options.softmax,
      ln_reparam: q.options.lnReparam,
      simulated_top1: simulated,
      reference_top1: refAcc,
      matches: refAcc === simulated,
    };
  } finally {
    ref.dispose();
  }
}
