/**
 * The engine's figures keep their text labels apart at realistic sizes: for each figure the
 * methods write, no two labels' boxes (from vega's scenegraph, DejaVu Sans widths) intersect.
 */
import type { TopLevelSpec } from 'vega-lite';
import { describe, expect, it } from 'vitest';
import { removalSchedule } from '../methods/ln-removal/fake-ln.js';
import { describeOverlaps, labelBoxes, overlappingLabels } from '../testing/label-overlap.js';
import { barPlotSpec, heatmapSpec, histogramSpec, linePlotSpec, scatterSpec } from './index.js';

async function overlaps(spec: TopLevelSpec): Promise<string[]> {
  return describeOverlaps(overlappingLabels(await labelBoxes(spec)));
}

/** A deterministic value in [0, 1) for index i. */
const jitter = (i: number) => (((i * 0.618034) % 1) + 1) % 1;
const VARIANTS = ['pre_ln', 'lns', 'mix_ln_peri'];

describe('label guard', () => {
  it('finds overlapping labels (vega left to draw every tick label of 48 blocks)', async () => {
    const spec = barPlotSpec({
      title: 'drop',
      xLabel: 'removed block ℓ',
      yLabel: 'ΔCE (nats)',
      groups: [{ name: 'pre_ln', values: Array.from({ length: 48 }, (_, i) => ({ label: `block ${i + 1}`, value: i })) }],
    }) as unknown as { config: { axis: Record<string, unknown> }; layer: { encoding: { x: { axis: Record<string, unknown> } } }[] };
    spec.config.axis.labelOverlap = false;
    spec.layer[0].encoding.x.axis.labelOverlap = false;
    expect((await overlaps(spec as unknown as TopLevelSpec)).length).toBeGreaterThan(10);
  });
});

describe('engine figures have no overlapping labels', () => {
  it.each([24, 36, 48])('layer-pruning drop, %i blocks, 1–3 variants', async (L) => {
    for (const n of [1, 2, 3]) {
      const groups = VARIANTS.slice(0, n).map((name, k) => ({
        name,
        values: Array.from({ length: L }, (_, i) => ({ label: String(i + 1), value: (jitter(i + 7 * k) - 0.1) * 0.05 })),
      }));
      const spec = barPlotSpec({
        title: 'Validation loss increase when one block is removed',
        xLabel: 'removed block ℓ',
        yLabel: 'ΔCE (nats)',
        groups,
        width: 720,
      });
      expect(await overlaps(spec), `${L} blocks × ${n}`).toEqual([]);
    }
  });

  it('class histogram of five configurations and the reference; top-1 drop of four presets', async () => {
    const classes = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    const configs = ['baseline iLCT', '+ cauchy', '+ ema_teacher', '+ diffusion_term', 'reference images'];
    const hist = barPlotSpec({
      title: 'Classifier-predicted classes of 1-step samples',
      xLabel: 'class',
      yLabel: 'fraction of samples',
      groups: configs.map((name, k) => ({ name, values: classes.map((label, i) => ({ label, value: jitter(i + k) / 10 })) })),
    });
    expect(await overlaps(hist)).toEqual([]);
    const presets = ['RepQ-ViT (log-√2 + mean)', "DopQ-ViT (TanQ (NormLab's reconstruction) + median)", 'median (MOSF) reparam only', 'uniform baseline'];
    const drop = barPlotSpec({
      title: 'Top-1 lost to post-training quantization (FP 81.2%)',
      xLabel: 'weights / activations bits',
      yLabel: 'top-1 drop from FP (points)',
      groups: presets.map((name, k) => ({ name, values: ['W4A4', 'W6A6', 'W8A8'].map((label, i) => ({ label, value: 10 * jitter(i + k) })) })),
      width: 760,
      height: 420,
    });
    expect(await overlaps(drop)).toEqual([]);
  });

  it('post-softmax histogram with three 16-level quantizers', async () => {
    const levels = Array.from({ length: 16 }, (_, i) => i / 15);
    const spec = histogramSpec({
      title: 'Post-softmax attention probabilities and 4-bit quantizer levels',
      values: Array.from({ length: 5000 }, (_, i) => (i / 5000) ** 6),
      bins: 100,
      range: [0, 1],
      logY: true,
      xLabel: 'attention probability',
      yLabel: 'count (log scale)',
      levels: [
        { name: 'uniform', points: levels },
        { name: 'log-√2 (RepQ-ViT)', points: levels.map((p) => p ** 4) },
        { name: "TanQ (NormLab's reconstruction)", points: levels.map((p) => p ** 2) },
      ],
      width: 760,
      height: 440,
    });
    expect(await overlaps(spec)).toEqual([]);
  });

  it.each([
    [12, 300, 2, 3],
    [36, 1200, 4, 6],
    [12, 3000, 2, 3],
  ])('LN removal curves with the removal rules labelled: %i blocks over %i steps', async (L, steps, gap, gapV) => {
    const schedule = removalSchedule(L, { start: 20, gapLn2: gap, gapLn1qk: gap, gapLn1v: gapV, gapEot: 2, gapBos: 10, special: true });
    const seen = new Set<string>();
    const marks = schedule.map((e) => ({ x: e.step, label: seen.has(e.kind) ? undefined : (seen.add(e.kind), e.kind) }));
    const x = Array.from({ length: steps }, (_, i) => i);
    const series = ['vanilla, train (EMA)', 'LN removal, train (EMA)', 'vanilla, val', 'LN removal, val'].map((name, k) => ({
      name,
      x,
      y: x.map((i) => 3 + 0.05 * k + Math.exp(-i / 100)),
    }));
    const spec = linePlotSpec({ title: 'LN removal fine-tuning', xLabel: 'fine-tuning step', yLabel: 'cross-entropy (nats/token)', series, marks });
    expect(await overlaps(spec)).toEqual([]);
  });

  it('sweep curves of eight grid points with long names; gradient norms per block', async () => {
    const names = Array.from({ length: 8 }, (_, k) => `model.norm=${VARIANTS[k % 3]}, train.lr=${10 ** -(k % 4)}, optimizer.weight_decay=0.${k} (3 seeds)`);
    const sweep = linePlotSpec({
      title: 'val_loss, mean over seeds',
      xLabel: 'step',
      yLabel: 'val_loss',
      series: names.map((name, k) => ({ name, x: [0, 100, 200], y: [5, 4 - k / 10, 3 - k / 10] })),
      points: false,
      width: 720,
    });
    expect(await overlaps(sweep)).toEqual([]);
    const blocks = Array.from({ length: 48 }, (_, i) => i + 1);
    const grads = linePlotSpec({
      title: 'Gradient norm per block (pre_ln)',
      xLabel: 'block ℓ',
      yLabel: '‖∇θ_ℓ‖ (log scale)',
      series: ['first quarter of training', 'whole run (mean)', 'last quarter of training'].map((name, k) => ({
        name,
        x: blocks,
        y: blocks.map((b) => 1 + jitter(b + k)),
      })),
      logY: true,
      points: true,
    });
    expect(await overlaps(grads)).toEqual([]);
  });

  it('per-channel scales with three rules; angular distance over 48 layers', async () => {
    const scatter = scatterSpec({
      title: 'Per-channel 4-bit scales after blocks.0.norm1 (input of blocks.0.attn.qkv)',
      xLabel: 'channel',
      yLabel: 'quantization scale',
      pointsLabel: 'channel scale',
      x: Array.from({ length: 384 }, (_, i) => i),
      y: Array.from({ length: 384 }, (_, i) => 0.01 + 0.02 * jitter(i)),
      rules: [
        { y: 0.02, label: 'mean (RepQ-ViT)' },
        { y: 0.019, label: 'median (DopQ-ViT MOSF)' },
        { y: 0.021, label: "MAD-guided rule (NormLab's reconstruction)" },
      ],
      width: 760,
      height: 420,
    });
    expect(await overlaps(scatter)).toEqual([]);
    const L = 48;
    const heat = heatmapSpec({
      title: 'Angular distance d(ℓ, ℓ+n), last token (pre_ln)',
      xLabel: 'layer ℓ',
      yLabel: 'block size n',
      x: Array.from({ length: L }, (_, i) => i),
      y: Array.from({ length: L }, (_, i) => i + 1),
      values: Array.from({ length: L }, (_, n) => Array.from({ length: L }, (_, l) => (l + n < L ? jitter(l * n) : NaN))),
      colorLabel: 'angular distance',
    });
    expect(await overlaps(heat)).toEqual([]);
  });
});
