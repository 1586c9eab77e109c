/**
 * The post-training quantization settings of RepQ-ViT and DopQ-ViT as a `ptq-study` preset
 * (docs/methods.md, "DopQ-ViT"). (`ptq-vit`'s own choices are its four fields; with `model`
 * required there, a preset could not stand alone.)
 *
 * Source: zkkli/RepQ-ViT `classification/test_quant.py` (defaults: 32 calibration images
 * `--calib-batchsize 32`, `--w_bits 4 --a_bits 4`) and its README's results table (W4/A4 and
 * W6/A6). DopQ-ViT keeps RepQ-ViT's pipeline and replaces log-√2 by TanQ and the mean by MOSF;
 * TanQ's formula is not public, so `tanq` is NormLab's reconstruction and the presets say so.
 */
import type { Preset } from '../../jobs/presets.js';

const SOURCE = 'zkkli/RepQ-ViT classification/test_quant.py defaults (32 calibration images, W4/A4) and README results table (W4/A4, W6/A6)';

export const ptqPresets: Preset[] = [
  {
    name: 'dopq-vit-paper-bits',
    method: 'ptq-study',
    description:
      "The papers' comparison: W4/A4 and W6/A6, 32 calibration images, uniform / RepQ-ViT / DopQ-ViT (TanQ as NormLab reconstructs it) and each component",
    source: `${SOURCE}; DopQ-ViT (Yang et al. 2024) abstract: TanQ + MOSF on RepQ-ViT's pipeline`,
    config: {
      bits: [4, 6],
      data: { calib_count: 32 },
      presets: ['uniform', 'log-sqrt2', 'tanq', 'mean', 'median', 'repq', 'repq+tanq', 'repq+mosf', 'dopq', 'dopq-mad'],
      export_bits: 4,
      plot_bits: 4,
    },
  },
];
